//! Build script: link scripts only. esp-hal's build script provides `linkall.x` (memory map,
//! sections, ROM functions); defmt's `defmt.x` places the interned format strings. There is
//! no `memory.x` here: esp-hal generates it (README.md says why a copy here breaks the link).
//!
//! The model and recording are embedded by `tinyrnn-board-support`'s build script
//! (`../board-support/build.rs`); link arguments stay here because `cargo:rustc-link-arg*` applies
//! only to the package's own targets.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-Tlinkall.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}

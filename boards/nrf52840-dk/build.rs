//! Build script: link scripts only. Puts `memory.x` on the linker search path and links the
//! binaries with cortex-m-rt's `link.x` and defmt's `defmt.x`.
//!
//! The model and recording are embedded by `tinyrnn-board-support`'s build script
//! (`../board-support/build.rs`); link arguments stay here because `cargo:rustc-link-arg*` applies
//! only to the package's own targets.

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=build.rs");
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}

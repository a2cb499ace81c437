//! Selects the Cortex-M DSP kernels (`src/kernel/dsp.rs`).
//!
//! Stable Rust exposes no `target_feature` cfg for Arm, so the DSP extension is inferred from
//! the target name: every `thumbv7em-*` target (Cortex-M4/M7) has it, and so cfg
//! `tinyrnn_dsp` is set there. Other targets (Cortex-M0/M3/M33 without DSP, RISC-V, the host)
//! use the portable kernels. A toolchain that does expose `target_feature = "dsp"` (nightly,
//! e.g. `thumbv8m.main` with `-C target-feature=+dsp`) selects the DSP kernels too.

fn main() {
    println!("cargo:rerun-if-changed=src/build.rs");
    println!("cargo::rustc-check-cfg=cfg(tinyrnn_dsp)");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo:rustc-cfg=tinyrnn_dsp");
    }
}

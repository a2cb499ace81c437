//! Selects the Cortex-M DSP kernels (`src/kernel/dsp.rs`).
//!
//! Stable Rust exposes no `target_feature` cfg for Arm, so the DSP extension is inferred from
//! the target name: every `thumbv7em-*` target (Cortex-M4/M7) has it, and so cfg
//! `tinyrnn_dsp` is set there. Other targets (Cortex-M0/M3/M33 without DSP, RISC-V, the host)
//! use the portable kernels. A toolchain that does expose `target_feature = "dsp"` (nightly,
//! e.g. `thumbv8m.main` with `-C target-feature=+dsp`) selects the DSP kernels too.
//!
//! cfg `tinyrnn_fpu` (the f32 kernels of the same module: `VLDM` + `VFMA`) is set for the
//! hard-float `thumbv7em-*eabihf` and `thumbv8m.main-*eabihf` targets (FPv4-SP / FPv5).

fn main() {
    println!("cargo:rerun-if-changed=src/build.rs");
    println!("cargo::rustc-check-cfg=cfg(tinyrnn_dsp)");
    println!("cargo::rustc-check-cfg=cfg(tinyrnn_fpu)");
    println!("cargo::rustc-check-cfg=cfg(tinyrnn_v6m)");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo:rustc-cfg=tinyrnn_dsp");
    }
    // ARMv6-M (Cortex-M0/M0+/M1): no DSP extension, `MULS` only, 8 low registers; the int8
    // four-row kernel of `dsp` for these cores (`tinyrnn_v6m_dot4_i8`).
    if target.starts_with("thumbv6m") {
        println!("cargo:rustc-cfg=tinyrnn_v6m");
    }
    // Single-precision FPU with VFMA (FPv4-SP on the M4F, FPv5 on the M33): the hard-float
    // Cortex-M4/M7/M33 targets.
    if (target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main"))
        && target.ends_with("eabihf")
    {
        println!("cargo:rustc-cfg=tinyrnn_fpu");
    }
}

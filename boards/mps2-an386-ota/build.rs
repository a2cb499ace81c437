//! Puts `memory.x` on the linker search path, links with cortex-m-rt's and defmt's scripts,
//! and passes on the generated model module (`TINYRNN_OTA_MODULE`: `tinyrnn codegen BLOB
//! --inline --trusted-key KEY.pub`, which `cargo xtask ota` writes with a key it generates).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TINYRNN_OTA_MODULE");
    let Some(module) = env::var_os("TINYRNN_OTA_MODULE").filter(|m| !m.is_empty()) else {
        eprintln!(
            "error: TINYRNN_OTA_MODULE is not set: build this firmware with `cargo xtask ota`, \
             which generates the signing key and the module (README.md)"
        );
        std::process::exit(1);
    };
    let module = fs::canonicalize(&module).expect("TINYRNN_OTA_MODULE names a file");
    println!("cargo:rerun-if-changed={}", module.display());
    fs::copy(&module, out.join("model.rs")).unwrap();
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}

//! Picks the memory map for the target and signs the 4 KiB test message with the RFC 8032
//! TEST 1 secret key (Ed25519 signing is deterministic: the same bytes every build).

use std::path::PathBuf;
use std::{env, fs};

use ed25519_dalek::{Signer, SigningKey};

/// RFC 8032 §7.1 TEST 1 secret key.
const SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target = env::var("TARGET").unwrap();
    let memory = match target.as_str() {
        "thumbv7em-none-eabihf" => "memory-an386.x",
        "thumbv6m-none-eabi" => "memory-microbit.x",
        t => panic!("tinyrnn-sigbench: no QEMU machine for target {t}"),
    };
    println!("cargo:rerun-if-changed={memory}");
    println!("cargo:rerun-if-changed=build.rs");
    fs::copy(memory, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");

    let msg: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let sig = SigningKey::from_bytes(&SEED).sign(&msg).to_bytes();
    fs::write(out.join("msg4k.bin"), &msg).unwrap();
    fs::write(out.join("msg4k.sig"), sig).unwrap();
    // The same message in a tinyrnn envelope (model version 1) signed by the same key.
    let key = SigningKey::from_bytes(&SEED);
    let public = key.verifying_key().to_bytes();
    let mut env = tinyrnn::signed::header(tinyrnn::signed::key_id(&public), 1, msg.len())
        .unwrap()
        .to_vec();
    env.extend_from_slice(&msg);
    let sig = key.sign(&env).to_bytes();
    env.extend_from_slice(&sig);
    fs::write(out.join("env4k.bin"), &env).unwrap();
}

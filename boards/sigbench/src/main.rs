//! Ed25519 verifier comparison firmware (QEMU mps2-an386 Cortex-M4F, microbit Cortex-M0).
//!
//! Verifies the RFC 8032 §7.1 TEST 1 vector (empty message) and a 4 KiB message signed by
//! `build.rs` with the same key, each between calls to the marker functions
//! `tinyrnn_bench_start` / `tinyrnn_bench_stop` that the QEMU insn-count plugin
//! (`boards/qemu-plugin/insncount.c`) turns into instruction windows; then a tampered copy of
//! each, which must be refused. Exactly one verifier feature (`dalek`, `compact`, `salty`) or
//! `none` (the baseline: the same driver, no verifier) is enabled. Prints
//! `sigbench verifier=NAME ok` and exits 0, or exits 1 on a wrong verdict.
#![no_std]
#![no_main]

use core::hint::black_box;

/// RFC 8032 §7.1 TEST 1 public key.
const PK: [u8; 32] = [
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
];
/// RFC 8032 §7.1 TEST 1 signature of the empty message.
const SIG1: [u8; 64] = [
    0xe5, 0x56, 0x43, 0x00, 0xc3, 0x60, 0xac, 0x72, 0x90, 0x86, 0xe2, 0xcc, 0x80, 0x6e, 0x82, 0x8a,
    0x84, 0x87, 0x7f, 0x1e, 0xb8, 0xe5, 0xd9, 0x74, 0xd8, 0x73, 0xe0, 0x65, 0x22, 0x49, 0x01, 0x55,
    0x5f, 0xb8, 0x82, 0x15, 0x90, 0xa3, 0x3b, 0xac, 0xc6, 0x1e, 0x39, 0x70, 0x1c, 0xf9, 0xb4, 0x6b,
    0xd2, 0x5b, 0xf5, 0xf0, 0x59, 0x5b, 0xbe, 0x24, 0x65, 0x51, 0x41, 0x43, 0x8e, 0x7a, 0x10, 0x0b,
];
static MSG4K: &[u8; 4096] = include_bytes!(concat!(env!("OUT_DIR"), "/msg4k.bin"));
static SIG4K: &[u8; 64] = include_bytes!(concat!(env!("OUT_DIR"), "/msg4k.sig"));

#[cfg(feature = "dalek")]
const NAME: &str = "ed25519-dalek";
#[cfg(all(feature = "compact", not(feature = "compact-small")))]
const NAME: &str = "ed25519-compact";
#[cfg(feature = "compact-small")]
const NAME: &str = "ed25519-compact/opt_size";
#[cfg(feature = "salty")]
const NAME: &str = "salty";
#[cfg(feature = "none")]
const NAME: &str = "none";
#[cfg(feature = "tinyrnn")]
const NAME: &str = "tinyrnn::signed";
#[cfg(feature = "tinyrnn")]
static ENV4K: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/env4k.bin"));

/// `true` if `sig` is a valid signature of `msg` by `pk`.
#[inline(never)]
fn verify(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    #[cfg(feature = "dalek")]
    {
        let Ok(k) = ed25519_dalek::VerifyingKey::from_bytes(pk) else {
            return false;
        };
        k.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    }
    #[cfg(feature = "compact")]
    {
        let Ok(k) = ed25519_compact::PublicKey::from_slice(pk) else {
            return false;
        };
        k.verify(msg, &ed25519_compact::Signature::new(*sig))
            .is_ok()
    }
    #[cfg(feature = "salty")]
    {
        let Ok(k) = salty::PublicKey::try_from(pk) else {
            return false;
        };
        k.verify(msg, &salty::Signature::from(sig)).is_ok()
    }
    #[cfg(feature = "tinyrnn")]
    {
        // The 4 KiB case goes through the whole envelope check (`signed::verify`).
        // (The measured call passes MSG4K itself: a pointer test, no copy in the window.)
        if core::ptr::eq(msg.as_ptr(), MSG4K.as_ptr()) {
            return tinyrnn::signed::verify(ENV4K, &[*pk], 1).is_ok();
        }
        if msg.len() == MSG4K.len() {
            // The tampered message inside a copy of the envelope.
            let mut env = [0u8; 4096 + tinyrnn::signed::OVERHEAD];
            env.copy_from_slice(ENV4K);
            env[tinyrnn::signed::HEADER_LEN..][..4096].copy_from_slice(msg);
            return tinyrnn::signed::verify(&env, &[*pk], 1).is_ok();
        }
        tinyrnn::signed::verify_detached(pk, msg, sig).is_ok()
    }
    #[cfg(feature = "none")]
    {
        // The baseline reads every byte so the driver around it is the same.
        let mut x = 0u8;
        for b in pk.iter().chain(msg).chain(sig.iter()) {
            x ^= *b;
        }
        x != 0x5a
    }
}

/// Start of a measured window (the QEMU plugin counts from its first instruction).
#[no_mangle]
#[inline(never)]
pub extern "C" fn tinyrnn_bench_start() {
    // SAFETY: an empty instruction; the asm block (no `nomem`) is also a compiler barrier.
    unsafe { core::arch::asm!("nop") }
}

/// End of a measured window (the QEMU plugin counts up to its first instruction, excluded).
#[no_mangle]
#[inline(never)]
pub extern "C" fn tinyrnn_bench_stop() {
    // SAFETY: as in `tinyrnn_bench_start` (two nops: the functions stay distinct).
    unsafe { core::arch::asm!("nop", "nop") }
}

fn measured(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    tinyrnn_bench_start();
    let ok = verify(black_box(pk), black_box(msg), black_box(sig));
    tinyrnn_bench_stop();
    ok
}

fn run() -> bool {
    let mut ok = measured(&PK, &[], &SIG1);
    ok &= measured(&PK, MSG4K, SIG4K);
    let mut bad = SIG1;
    bad[0] ^= 1;
    let refused1 = !verify(&PK, &[], &bad);
    let mut msg = *MSG4K;
    msg[100] ^= 0x80;
    let refused2 = !verify(&PK, &msg, SIG4K);
    let all = if cfg!(feature = "none") {
        true
    } else {
        ok && refused1 && refused2
    };
    semihosting::println!(
        "sigbench verifier={} valid={} tampered_refused={} {}",
        NAME,
        ok,
        refused1 && refused2,
        if all { "ok" } else { "FAIL" }
    );
    all
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let ok = run();
    semihosting::process::exit(if ok { 0 } else { 1 })
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    semihosting::println!("error: HardFault");
    semihosting::process::exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    semihosting::println!("panic: {}", info);
    semihosting::process::exit(101)
}

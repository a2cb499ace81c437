//! tinyrnn benchmark firmware: instruction counts per step under QEMU, and the bit-exactness
//! check of the target's kernels against the host.
//!
//! For every case of [`cases`] (cell × precision × shape), the firmware runs a fresh session
//! for 1 step and then a fresh session for [`cases::STEPS`] steps, each run bracketed by
//! calls to the two marker functions [`tinyrnn_bench_start`] and [`tinyrnn_bench_stop`]. The
//! QEMU plugin (`boards/qemu-plugin/insncount.c`) counts the guest instructions of each
//! window; `cargo xtask bench` computes per step = (long − short) / (STEPS − 1).
//!
//! After each run the firmware compares a checksum of the state with the host's (computed by
//! `build.rs` through the portable kernels) and, on targets with the DSP fast path, first
//! compares the DSP kernels with the portable ones on random rows ([`check`]). Output lines
//! (semihosting stdout):
//!
//! ```text
//! bench machine=mps2-an386 cases=27 steps=65
//! kernels ok rows=... (DSP targets)
//! case 0 lstm int8 9 32 ok
//! ...
//! done ok
//! ```
//! Exit status 0 if every check passed, 1 on a mismatch or error, 101 on a panic.
#![no_std]
#![no_main]

mod cases;
mod check;

use cases::{Case, Pools, MAX_IN, SCRATCH, STATE, STEPS};
use tinyrnn::{Model, Session};

include!(concat!(env!("OUT_DIR"), "/generated.rs"));

type Sess<'m> = Session<'m, STATE, SCRATCH>;

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

/// The measured body: `n` steps of an integer model.
#[inline(never)]
fn steps_q(s: &mut Sess<'_>, frames: &[[i16; MAX_IN]], input: usize) -> tinyrnn::Result<()> {
    for f in frames {
        s.step_q(f.get(..input).unwrap_or(&[]))?;
    }
    Ok(())
}

/// The measured body: `n` steps of an f32 model.
#[cfg(bench_full)]
#[inline(never)]
fn steps_f32(s: &mut Sess<'_>, frames: &[[f32; MAX_IN]], input: usize) -> tinyrnn::Result<()> {
    for f in frames {
        s.step(f.get(..input).unwrap_or(&[]))?;
    }
    Ok(())
}

struct Frames {
    q: [[i16; MAX_IN]; STEPS],
    #[cfg(bench_full)]
    f: [[f32; MAX_IN]; STEPS],
}

/// One measured run of `steps` steps from a fresh session; the state checksum.
fn measure(model: &Model<'_>, c: &Case, frames: &Frames, steps: usize) -> tinyrnn::Result<u32> {
    let mut s = Sess::new(model)?;
    let r = match c.precision {
        #[cfg(bench_full)]
        tinyrnn::Precision::F32 => {
            tinyrnn_bench_start();
            let r = steps_f32(&mut s, &frames.f[..steps], c.input);
            tinyrnn_bench_stop();
            r
        }
        _ => {
            tinyrnn_bench_start();
            let r = steps_q(&mut s, &frames.q[..steps], c.input);
            tinyrnn_bench_stop();
            r
        }
    };
    r.map(|()| cases::checksum(s.state()))
}

fn run() -> bool {
    let full = cfg!(bench_full);
    semihosting::println!(
        "bench machine={} cases={} steps={}",
        MACHINE,
        N_CASES,
        STEPS
    );
    let mut ok = check::kernels();
    let mut frames = Frames {
        q: [[0; MAX_IN]; STEPS],
        #[cfg(bench_full)]
        f: [[0.0; MAX_IN]; STEPS],
    };
    for t in 0..STEPS {
        for j in 0..MAX_IN {
            frames.q[t][j] = cases::input_q(t, j);
            #[cfg(bench_full)]
            {
                frames.f[t][j] = cases::input_f32(t, j);
            }
        }
    }
    let pools: &Pools<'static> = &POOLS;
    for (k, want) in EXPECTED.iter().enumerate() {
        let Some(c) = cases::case(full, k) else {
            break;
        };
        // tinyrnn's cargo feature names: `lstm`/`gru`/`rnn`, `int8`/`int16`/`f32`.
        let (cell, prec) = (c.cell.feature(), c.precision.feature());
        let model = match Model::from_desc(cases::desc(&c, pools)) {
            Ok(m) => m,
            Err(e) => {
                semihosting::println!(
                    "case {} {} {} {} {} error {:?}",
                    k,
                    cell,
                    prec,
                    c.input,
                    c.hidden,
                    e
                );
                ok = false;
                continue;
            }
        };
        let short = measure(&model, &c, &frames, 1);
        let long = measure(&model, &c, &frames, STEPS);
        let verdict = match (short, long) {
            (Ok(a), Ok(b)) if (a, b) == *want => "ok",
            (Ok(_), Ok(_)) => "MISMATCH",
            _ => "ERROR",
        };
        ok &= verdict == "ok";
        semihosting::println!(
            "case {} {} {} {} {} {}",
            k,
            cell,
            prec,
            c.input,
            c.hidden,
            verdict
        );
    }
    semihosting::println!("done {}", if ok { "ok" } else { "FAILED" });
    ok
}

#[cfg(target_arch = "arm")]
#[cortex_m_rt::entry]
fn main() -> ! {
    let ok = run();
    semihosting::process::exit(if ok { 0 } else { 1 })
}

#[cfg(target_arch = "arm")]
#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    semihosting::println!("error: HardFault");
    semihosting::process::exit(1)
}

#[cfg(target_arch = "riscv32")]
#[riscv_rt::entry]
fn main() -> ! {
    let ok = run();
    semihosting::process::exit(if ok { 0 } else { 1 })
}

/// Any trap the firmware does not expect ends the run.
#[cfg(target_arch = "riscv32")]
#[export_name = "ExceptionHandler"]
fn exception_handler(_frame: &riscv_rt::TrapFrame) -> ! {
    semihosting::println!("error: exception");
    semihosting::process::exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    semihosting::println!("panic: {}", info);
    semihosting::process::exit(101)
}

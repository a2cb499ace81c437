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

use cases::{Aligned, Case, Graph, Pools, MAX_IN, MAX_OUT, SCRATCH, STATE, STEPS, WINDOW};
use tinyrnn::{Model, Session, Window};

include!(concat!(env!("OUT_DIR"), "/generated.rs"));

type Sess<'m> = Session<'m, STATE, SCRATCH>;
/// The session of the graph cases: a type of its own, so that the plain cases' session
/// code is generated as before (one caller each: LLVM inlines `Session::new` into
/// `measure` and propagates the capacities, which a second caller would undo), with the
/// same state capacity (the non-generic `run_layers_int` sees one state length).
type GSess<'m> = Session<'m, STATE, GSCRATCH>;
/// The window buffer's words on this machine.
const WINDOW_WORDS: usize = cases::window_words(cfg!(bench_full));
/// Scratch words of the graph cases' session.
const GSCRATCH: usize = cases::gscratch(cfg!(bench_full));
/// Width of the windowed case's f32 frames (every width on the FPU machine, where the f32
/// graph cases use them too).
const F_IN: usize = if cfg!(bench_full) { MAX_IN } else { 9 };
/// Distinct frames of the windowed case, repeated (16 KB of RAM on the micro:bit and
/// sifive-e: the window buffer takes most of it).
const WFRAMES: usize = cases::WFRAMES;

/// Fills the input frames of the graph cases, which live on the stack of the function that
/// measures (flash is short on the micro:bit; the plain cases' frames are gone by then).
fn fill_q(f: &mut [[i16; MAX_IN]; STEPS]) {
    for (t, row) in f.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = cases::input_q(t, j);
        }
    }
}

fn fill_f32<const N: usize, const T: usize>(f: &mut [[f32; N]; T]) {
    for (t, row) in f.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = cases::input_f32(t, j);
        }
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

/// The measured body of the windowed case: `n` frames into the window.
#[inline(never)]
fn wsteps(
    s: &mut GSess<'_>,
    win: &mut Window<'_>,
    frames: &[[f32; F_IN]; WFRAMES],
    steps: usize,
    input: usize,
) -> tinyrnn::Result<()> {
    for t in 0..steps {
        let f = &frames[t % WFRAMES];
        s.step_window(f.get(..input).unwrap_or(&[]), win)?;
    }
    Ok(())
}

/// The measured body of a graph case: `n` steps of an integer model.
#[inline(never)]
fn gsteps_q(s: &mut GSess<'_>, frames: &[[i16; MAX_IN]], input: usize) -> tinyrnn::Result<()> {
    for f in frames {
        s.step_q(f.get(..input).unwrap_or(&[]))?;
    }
    Ok(())
}

/// The measured body of a graph case: `n` steps of an f32 model.
#[cfg(bench_full)]
#[inline(never)]
fn gsteps_f32(s: &mut GSess<'_>, frames: &[[f32; MAX_IN]], input: usize) -> tinyrnn::Result<()> {
    for f in frames {
        s.step(f.get(..input).unwrap_or(&[]))?;
    }
    Ok(())
}

/// The measured decision of a streaming graph case (integer models): the model's output
/// (pooling, hidden head ops, head).
#[inline(never)]
fn decide_q(s: &mut GSess<'_>, out: &mut [i16]) -> tinyrnn::Result<()> {
    s.output_q(out)
}

/// The measured decision of a streaming graph case (f32 models).
#[cfg(bench_full)]
#[inline(never)]
fn decide_f32(s: &mut GSess<'_>, out: &mut [f32]) -> tinyrnn::Result<()> {
    s.output(out)
}

/// The measured decision of the windowed case (integer models): the windowed layers run
/// over the window, then pooling and the head.
#[inline(never)]
fn wdecide_q(s: &mut GSess<'_>, win: &mut Window<'_>, out: &mut [i16]) -> tinyrnn::Result<()> {
    s.output_window_q(win, out)
}

/// The measured decision of the windowed case (f32 models).
#[cfg(bench_full)]
#[inline(never)]
fn wdecide_f32(s: &mut GSess<'_>, win: &mut Window<'_>, out: &mut [f32]) -> tinyrnn::Result<()> {
    s.output_window(win, out)
}

/// One measured decision (`win`: the windowed case); the checksum of the output.
fn decision(s: &mut GSess<'_>, c: &Case, win: Option<&mut Window<'_>>) -> tinyrnn::Result<u32> {
    let n = s.model().output_size();
    let mut q = [0i16; MAX_OUT];
    #[cfg(bench_full)]
    let mut f = [0f32; MAX_OUT];
    let r = match c.precision {
        #[cfg(bench_full)]
        tinyrnn::Precision::F32 => {
            let out = f.get_mut(..n).unwrap_or(&mut []);
            tinyrnn_bench_start();
            let r = match win {
                Some(w) => wdecide_f32(s, w, out),
                None => decide_f32(s, out),
            };
            tinyrnn_bench_stop();
            r
        }
        _ => {
            let out = q.get_mut(..n).unwrap_or(&mut []);
            tinyrnn_bench_start();
            let r = match win {
                Some(w) => wdecide_q(s, w, out),
                None => decide_q(s, out),
            };
            tinyrnn_bench_stop();
            r
        }
    };
    #[cfg(not(bench_full))]
    let f: [f32; 0] = [];
    r.map(|()| {
        if c.precision.is_int() {
            cases::output_checksum(q.get(..n).unwrap_or(&[]), &[])
        } else {
            cases::output_checksum(&[], f.get(..n).unwrap_or(&[]))
        }
    })
}

/// `steps` steps of a streaming graph case from a fresh session, measured unless
/// `measured` is false.
fn gsteps(
    s: &mut GSess<'_>,
    c: &Case,
    frames: &Frames,
    steps: usize,
    measured: bool,
) -> tinyrnn::Result<()> {
    if measured {
        tinyrnn_bench_start();
    }
    let r = match c.precision {
        #[cfg(bench_full)]
        tinyrnn::Precision::F32 => gsteps_f32(s, &frames.f[..steps], c.input),
        _ => gsteps_q(s, &frames.q[..steps], c.input),
    };
    if measured {
        tinyrnn_bench_stop();
    }
    r
}

/// One run of a streaming graph case from a fresh session: `steps` measured steps (the
/// state checksum), or `WINDOW` steps and a measured decision (`decide`: its checksum).
/// Out of line: one session on the stack at a time.
#[inline(never)]
fn graph_run(
    model: &Model<'_>,
    c: &Case,
    frames: &Frames,
    steps: usize,
    decide: bool,
) -> tinyrnn::Result<u32> {
    let mut s = GSess::new(model)?;
    if decide {
        gsteps(&mut s, c, frames, WINDOW, false)?;
        decision(&mut s, c, None)
    } else {
        gsteps(&mut s, c, frames, steps, true)?;
        Ok(cases::checksum(s.state()))
    }
}

/// The three windows of a streaming graph case: 1 step, `STEPS` steps (state checksums),
/// and the decision after `WINDOW` steps (its checksum).
#[inline(never)]
fn measure_graph(model: &Model<'_>, c: &Case) -> tinyrnn::Result<(u32, u32, u32)> {
    let mut frames = Frames {
        q: [[0; MAX_IN]; STEPS],
        #[cfg(bench_full)]
        f: [[0.0; MAX_IN]; STEPS],
    };
    fill_q(&mut frames.q);
    #[cfg(bench_full)]
    fill_f32(&mut frames.f);
    let short = graph_run(model, c, &frames, 1, false)?;
    let long = graph_run(model, c, &frames, STEPS, false)?;
    let d = graph_run(model, c, &frames, 0, true)?;
    Ok((short, long, d))
}

/// One run of the windowed case from a fresh session and an empty window over `buf`:
/// `steps` measured frames (state and window checksum), or `WINDOW` frames and a measured
/// decision (`decide`: its checksum).
#[inline(never)]
fn window_run(
    model: &Model<'_>,
    c: &Case,
    frames: &[[f32; F_IN]; WFRAMES],
    buf: &mut [u32],
    steps: usize,
    decide: bool,
) -> tinyrnn::Result<u32> {
    let mut s = GSess::new(model)?;
    if decide {
        let mut win = Window::new(buf);
        wsteps(&mut s, &mut win, frames, WINDOW, c.input)?;
        return decision(&mut s, c, Some(&mut win));
    }
    let mut win = Window::new(&mut *buf);
    tinyrnn_bench_start();
    let r = wsteps(&mut s, &mut win, frames, steps, c.input);
    tinyrnn_bench_stop();
    r?;
    Ok(cases::window_checksum(s.state(), buf, c, steps))
}

/// The three windows of the windowed case: 1 frame, `STEPS` frames (state and window
/// checksums), and the decision over a window of `WINDOW` frames.
#[inline(never)]
fn measure_window(model: &Model<'_>, c: &Case) -> tinyrnn::Result<(u32, u32, u32)> {
    let mut frames = [[0.0; F_IN]; WFRAMES];
    fill_f32(&mut frames);
    let mut buf = [0u32; WINDOW_WORDS];
    let short = window_run(model, c, &frames, &mut buf, 1, false)?;
    let long = window_run(model, c, &frames, &mut buf, STEPS, false)?;
    let d = window_run(model, c, &frames, &mut buf, 0, true)?;
    Ok((short, long, d))
}

/// The graph cases (after the plain ones, whose frames are gone from the stack by then).
fn run_graph() -> bool {
    let full = cfg!(bench_full);
    let pools: &Pools<'static> = &POOLS;
    let mut ok = true;
    for (k, want) in EXPECTED.iter().enumerate() {
        let Some(c) = cases::case(full, k) else {
            break;
        };
        if c.graph == Graph::Plain {
            continue;
        }
        let (cell, prec, g) = (c.cell.feature(), c.precision.feature(), c.graph.name());
        let r = Model::from_desc(cases::desc(&c, pools)).and_then(|model| {
            if c.graph == Graph::BiWindow {
                measure_window(&model, &c)
            } else {
                measure_graph(&model, &c)
            }
        });
        let verdict = match r {
            Ok((a, b, d)) if (a, b) == *want && Some(&d) == DECISIONS.get(k) => "ok",
            Ok(_) => "MISMATCH",
            Err(e) => {
                semihosting::println!("case {} error {:?}", k, e);
                "ERROR"
            }
        };
        ok &= verdict == "ok";
        semihosting::println!(
            "case {} {}+{} {} {} {} {}",
            k,
            cell,
            g,
            prec,
            c.input,
            c.hidden,
            verdict
        );
    }
    semihosting::println!("done {}", if ok { "ok" } else { "FAILED" });
    ok
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
        if c.graph != Graph::Plain {
            break;
        }
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
    ok
}

#[cfg(target_arch = "arm")]
#[cortex_m_rt::entry]
fn main() -> ! {
    let ok = run() & run_graph();
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
    let ok = run() & run_graph();
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

//! Picks the memory map for the target, generates the weight pools of `src/cases.rs`, and runs
//! every case on the host (tinyrnn's portable kernels) to embed the expected checksums.
//!
//! | target | machine | cases |
//! |---|---|---|
//! | `thumbv7em-none-eabihf` | mps2-an386 (Cortex-M4F) | int8, int16, f32 (cfg `bench_full`) |
//! | `thumbv6m-none-eabi` | microbit (Cortex-M0) | int8 |
//! | `riscv32imac-unknown-none-elf` | sifive-e (RV32IMAC, QEMU `-M sifive_e`) | int8 |

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

#[path = "src/cases.rs"]
#[allow(dead_code)]
mod cases;

use cases::*;
use tinyrnn::{Model, Precision, Session, Window};

/// Uniform in `[0, 1)` from a hash.
fn unit(seed: u32) -> f64 {
    mix(seed) as f64 / 4294967296.0
}

fn requant(factor: f64, max_shift: u32) -> [u8; 5] {
    let mut s = 1u32;
    while factor * 2f64.powi(s as i32) < (1u64 << 30) as f64 {
        s += 1;
    }
    let mut m = (factor * 2f64.powi(s as i32)).round() as i64;
    if m >= 1 << 31 {
        m >>= 1;
        s -= 1;
    }
    assert!(s <= max_shift && m > 0);
    let mut r = [0u8; 5];
    r[..4].copy_from_slice(&(m as i32).to_le_bytes());
    r[4] = s as u8;
    r
}

/// The checksum of a model's output (`win`: the windowed case), as the firmware's decision.
fn output_of(s: &mut Session<'_, STATE, SCRATCH>, win: Option<&mut Window<'_>>) -> u32 {
    let n = s.model().output_size();
    if s.model().precision().is_int() {
        let mut q = vec![0i16; n];
        match win {
            Some(w) => s.output_window_q(w, &mut q).unwrap(),
            None => s.output_q(&mut q).unwrap(),
        }
        output_checksum(&q, &[])
    } else {
        let mut f = vec![0f32; n];
        match win {
            Some(w) => s.output_window(w, &mut f).unwrap(),
            None => s.output(&mut f).unwrap(),
        }
        output_checksum(&[], &f)
    }
}

fn main() {
    let target = env::var("TARGET").unwrap();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cases.rs");
    let (machine, memory, full) = match target.as_str() {
        "thumbv7em-none-eabihf" => ("mps2-an386", "memory-an386.x", true),
        "thumbv6m-none-eabi" => ("microbit", "memory-microbit.x", false),
        t if t.starts_with("riscv32") => ("sifive-e", "memory-sifive-e.x", false),
        t => panic!("tinyrnn-bench: no machine for target {t}"),
    };
    println!("cargo:rerun-if-changed={memory}");
    fs::copy(memory, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    if target.starts_with("thumb") {
        println!("cargo:rustc-link-arg-bins=--nmagic");
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
    } else {
        println!("cargo:rustc-link-arg-bins=-Tmemory.x");
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
    }
    if full {
        println!("cargo:rustc-cfg=bench_full");
    }
    // tinyrnn's build.rs selects its DSP kernels for the same targets.
    if target.starts_with("thumbv7em") {
        println!("cargo:rustc-cfg=bench_dsp");
    }
    // ... and its Cortex-M0 int8 kernel for `thumbv6m-*`.
    if target.starts_with("thumbv6m") {
        println!("cargo:rustc-cfg=bench_v6m");
    }

    // ---- pools ----
    let n_w = MAX_ROWS * MAX_HIDDEN;
    let w8: Vec<u8> = (0..n_w)
        .map(|i| (mix(i as u32 ^ 0x1000_0000) % 255) as i32 - 127)
        .map(|v| v as i8 as u8)
        .collect();
    let w16: Vec<u8> = (0..n_w)
        .flat_map(|i| {
            let v = (mix(i as u32 ^ 0x2000_0000) % 65535) as i32 - 32767;
            (v as i16).to_le_bytes()
        })
        .collect();
    let wf: Vec<u8> = (0..n_w)
        .flat_map(|i| ((unit(i as u32 ^ 0x3000_0000) as f32 - 0.5) * 0.5).to_le_bytes())
        .collect();
    let b8: Vec<u8> = (0..2 * MAX_ROWS)
        .flat_map(|i| {
            (((unit(i as u32 ^ 0x4000_0000) - 0.5) * (1 << 21) as f64) as i32).to_le_bytes()
        })
        .collect();
    let b16: Vec<u8> = (0..2 * MAX_ROWS)
        .flat_map(|i| {
            (((unit(i as u32 ^ 0x5000_0000) - 0.5) * (1u64 << 29) as f64) as i64).to_le_bytes()
        })
        .collect();
    let bf: Vec<u8> = (0..2 * MAX_ROWS)
        .flat_map(|i| (unit(i as u32 ^ 0x6000_0000) as f32 - 0.5).to_le_bytes())
        .collect();
    // σ of the uniform weights: int8 ±127 → 73.3, int16 ±32767 → 18918; inputs σ 1.0 in Q.12,
    // hidden states σ ≈ 0.5 in Q0.15. Target: pre-activation σ ≈ 1.5 (6144 in Q.12).
    let mut rq: Vec<Vec<Vec<u8>>> = Vec::new();
    for (sigma_w, max_shift) in [(73.3f64, 62), (18918.0, 94)] {
        let mut tables = Vec::new();
        for (t, &(hidden, cols)) in RQ_TABLES.iter().enumerate() {
            let sigma_x = if hidden { 16384.0 } else { 4096.0 };
            let base = 6144.0 / (sigma_w * sigma_x * (cols as f64).sqrt());
            let table: Vec<u8> = (0..rq_rows(full)[t])
                .flat_map(|r| {
                    let jitter = 0.75 + 0.5 * unit((t * MAX_ROWS + r) as u32 ^ 0x7000_0000);
                    requant(base * jitter, max_shift)
                })
                .collect();
            tables.push(table);
        }
        rq.push(tables);
    }

    let mut rs = String::new();
    writeln!(rs, "// @generated by boards/bench/build.rs for {target}").unwrap();
    writeln!(rs, "/// The board (xtask's name) this build is for.").unwrap();
    writeln!(rs, "pub const MACHINE: &str = {machine:?};").unwrap();
    let files: [(&str, &[u8], bool); 6] = [
        ("w8", &w8, true),
        ("w16", &w16, full),
        ("wf", &wf, full),
        ("b8", &b8, true),
        ("b16", &b16, full),
        ("bf", &bf, full),
    ];
    for (name, bytes, used) in files {
        let path = out.join(format!("{name}.bin"));
        fs::write(&path, if used { bytes } else { &[] }).unwrap();
    }
    for (p, tables) in rq.iter().enumerate() {
        for (t, table) in tables.iter().enumerate() {
            let used = p == 0 || full;
            fs::write(
                out.join(format!("rq{p}_{t}.bin")),
                if used { &table[..] } else { &[] },
            )
            .unwrap();
        }
    }
    // 16-byte aligned: the f32 kernel's `VLDM` needs word-aligned weights (an unaligned blob
    // runs the portable kernel), and a bare `include_bytes!` is aligned by luck only.
    let inc =
        |n: &str| format!("&Aligned(*include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{n}.bin\"))).0");
    let rq_list = |p: usize| {
        (0..RQ_TABLES.len())
            .map(|t| inc(&format!("rq{p}_{t}")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(rs, "/// The weight pools (see `cases.rs`).").unwrap();
    writeln!(
        rs,
        "pub static POOLS: Pools<'static> = Pools {{ weights: [{}, {}, {}], biases: [{}, {}, {}], rq: [[{}], [{}]] }};",
        inc("w8"),
        inc("w16"),
        inc("wf"),
        inc("b8"),
        inc("b16"),
        inc("bf"),
        rq_list(0),
        rq_list(1)
    )
    .unwrap();

    // ---- host reference: checksums after 1 and after STEPS steps ----
    let pools = Pools {
        weights: [&w8, &w16, &wf],
        biases: [&b8, &b16, &bf],
        rq: [
            [
                &rq[0][0], &rq[0][1], &rq[0][2], &rq[0][3], &rq[0][4], &rq[0][5],
            ],
            [
                &rq[1][0], &rq[1][1], &rq[1][2], &rq[1][3], &rq[1][4], &rq[1][5],
            ],
        ],
    };
    let mut expected = Vec::new();
    let mut decisions = Vec::new();
    let frame_q = |t: usize, n: usize| -> Vec<i16> { (0..n).map(|j| input_q(t, j)).collect() };
    let frame_f = |t: usize, n: usize| -> Vec<f32> { (0..n).map(|j| input_f32(t, j)).collect() };
    let mut k = 0;
    while let Some(c) = case(full, k) {
        let model = Model::from_desc(desc(&c, &pools)).expect("bench model is valid");
        let mut sums = [0u32; 2];
        let mut decision = 0u32;
        match c.graph {
            Graph::Plain => {
                for (i, steps) in [1, STEPS].into_iter().enumerate() {
                    let mut s = Session::<STATE, SCRATCH>::new(&model).unwrap();
                    for t in 0..steps {
                        if c.precision == Precision::F32 {
                            s.step(&frame_f(t, c.input)).unwrap();
                        } else {
                            s.step_q(&frame_q(t, c.input)).unwrap();
                        }
                    }
                    sums[i] = checksum(s.state());
                }
            }
            Graph::BiWindow => {
                let mut buf = vec![0u32; window_words(full)];
                for (i, steps) in [1, STEPS, WINDOW].into_iter().enumerate() {
                    let mut s = Session::<STATE, SCRATCH>::new(&model).unwrap();
                    {
                        let mut win = Window::new(&mut buf);
                        for t in 0..steps {
                            s.step_window(&frame_f(t % WFRAMES, c.input), &mut win)
                                .unwrap();
                        }
                        if i == 2 {
                            decision = output_of(&mut s, Some(&mut win));
                        }
                    }
                    if i < 2 {
                        sums[i] = window_checksum(s.state(), &buf, &c, steps);
                    }
                }
            }
            _ => {
                for (i, steps) in [1, STEPS, WINDOW].into_iter().enumerate() {
                    let mut s = Session::<STATE, SCRATCH>::new(&model).unwrap();
                    for t in 0..steps {
                        if c.precision == Precision::F32 {
                            s.step(&frame_f(t, c.input)).unwrap();
                        } else {
                            s.step_q(&frame_q(t, c.input)).unwrap();
                        }
                    }
                    if i == 2 {
                        decision = output_of(&mut s, None);
                    } else {
                        sums[i] = checksum(s.state());
                    }
                }
            }
        }
        expected.push(format!("({:#010x}, {:#010x})", sums[0], sums[1]));
        decisions.push(format!("{decision:#010x}"));
        k += 1;
    }
    writeln!(rs, "/// Number of cases on this machine.").unwrap();
    writeln!(rs, "pub const N_CASES: usize = {};", expected.len()).unwrap();
    writeln!(
        rs,
        "/// Host checksums of the state after 1 and after STEPS steps, per case."
    )
    .unwrap();
    writeln!(
        rs,
        "pub static EXPECTED: [(u32, u32); N_CASES] = [{}];",
        expected.join(", ")
    )
    .unwrap();
    writeln!(
        rs,
        "/// Host checksums of the decision after WINDOW frames, per case (graph cases; 0 for the plain ones)."
    )
    .unwrap();
    writeln!(
        rs,
        "pub static DECISIONS: [u32; N_CASES] = [{}];",
        decisions.join(", ")
    )
    .unwrap();
    fs::write(out.join("generated.rs"), rs).unwrap();
}

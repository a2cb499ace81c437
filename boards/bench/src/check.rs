//! Bit-exactness of the assembly kernels (`tinyrnn::kernel::dsp`) against the portable ones
//! (`tinyrnn::kernel::{dot_i8, dot4_i8, dot4_i16}`; the f32 `dot4_f32` against `libm::fmaf`),
//! on the target itself: every row length from 4 to
//! 256 columns, weight slices at every byte alignment, random and extreme values. cfg
//! `bench_dsp` (set by `build.rs` for `thumbv7em-*`, where tinyrnn selects the DSP kernels)
//! and `bench_v6m` (`thumbv6m-*`: the Cortex-M0 int8 kernel) mark the targets that have
//! them. (The
//! sessions of every case are compared with the host separately, in `main.rs`.)

/// The operands of check round `round` (0..4), the same on every target: rounds 0, 1
/// random; 2 extremes (−128 · −32768 everywhere: |Σ| = 2^30); 3 mixed extremes (+127 / −128
/// against ±32767 / −32768). `w` int8 weight bytes, `x` packed `i16` pairs.
#[cfg(any(bench_dsp, bench_v6m))]
fn fill(round: u32, w: &mut [u8], x: &mut [u32]) {
    use crate::cases::mix;
    for (i, b) in w.iter_mut().enumerate() {
        let r = mix(i as u32 ^ round << 24);
        *b = match round {
            2 => 0x80,
            3 => [0x7f, 0x80][r as usize & 1],
            _ => r as u8,
        };
    }
    for (i, v) in x.iter_mut().enumerate() {
        let r = mix(i as u32 ^ round << 24 ^ 0x00ab_0000);
        *v = match round {
            2 => 0x8000_8000,
            3 => [0x8000_7fff, 0x7fff_8000, 0x8000_8000][r as usize % 3],
            _ => r,
        };
    }
}

/// Compares the target's fast kernels with the portable ones; `true` if they agree.
#[cfg(bench_dsp)]
pub fn kernels() -> bool {
    use crate::cases::mix;
    use tinyrnn::fxp::Requant;
    use tinyrnn::kernel::{dot4_i16, dot4_i8, dot_i8, dsp};

    const MAX: usize = 256;
    let mut w = [0u8; 8 * MAX + 3];
    let mut x = [0u32; MAX / 2];
    let mut compared = 0u32;
    for round in 0..4u32 {
        fill(round, &mut w, &mut x);
        for n in (4..=MAX).step_by(4) {
            let xs = &x[..n / 2];
            for off in 0..4 {
                let w4 = &w[off..off + 4 * n];
                let (a, b) = (dsp::dot4_i8(w4, xs), dot4_i8(w4, xs));
                let (c, d) = (dsp::dot_i8(&w4[..n], xs), dot_i8(&w4[..n], xs));
                if a != b || c != d {
                    semihosting::println!(
                        "kernels MISMATCH round={} n={} offset={} dot4 {:?} vs {:?}, dot {} vs {}",
                        round,
                        n,
                        off,
                        a,
                        b,
                        c,
                        d
                    );
                    return false;
                }
                compared += 5;
            }
            for off in 0..4 {
                let w4 = &w[off..off + 8 * n];
                let (a, b) = (dsp::dot4_i16(w4, xs), dot4_i16(w4, xs));
                if a != b {
                    semihosting::println!(
                        "kernels MISMATCH round={} n={} offset={} dot4_i16 {:?} vs {:?}",
                        round,
                        n,
                        off,
                        a,
                        b
                    );
                    return false;
                }
                compared += 4;
            }
        }
    }
    // Whole blocks: both products + biases + requantization (dsp::Gate8::block) against the
    // portable composition, for the two blocks of an 8-unit gate, with every shift 1..=62
    // (the short path and the fallback) and biases up to the saturation limits.
    let mut b = [0u8; 64];
    let mut rq = [0u8; 80];
    for n in (4..=MAX / 2).step_by(4) {
        for round in 0..8u32 {
            for (i, v) in b.iter_mut().enumerate() {
                *v = mix(i as u32 ^ round << 20 ^ n as u32) as u8;
            }
            for r in 0..16u32 {
                let m = (1u32 << 30) | (mix(r ^ round << 8 ^ (n as u32) << 16) >> 2);
                let shift = 1 + (mix(r ^ round << 12 ^ (n as u32) << 4) % 62) as u8;
                let k = 5 * r as usize;
                rq[k..k + 4].copy_from_slice(&m.to_le_bytes());
                rq[k + 4] = shift;
            }
            let (w_ih, w_hh) = (&w[..8 * n], &w[1..1 + 8 * n]);
            let (xs, hs) = (&x[..n / 2], &x[1..1 + n / 2]);
            let (b_ih, b_hh, rq_ih, rq_hh) = (&b[..32], &b[32..], &rq[..40], &rq[40..]);
            let Some(g8) = dsp::Gate8::new(w_ih, xs, b_ih, rq_ih, w_hh, hs, b_hh, rq_hh) else {
                semihosting::println!("kernels Gate8 refused n={}", n);
                return false;
            };
            let want = |w: &[u8], v: &[u32], b: &[u8], q: &[u8]| {
                let acc = dot4_i8(w, v);
                core::array::from_fn::<i32, 4, _>(|r| {
                    let bias =
                        i32::from_le_bytes([b[4 * r], b[4 * r + 1], b[4 * r + 2], b[4 * r + 3]]);
                    let k = 5 * r;
                    let rq = Requant::from_bytes([q[k], q[k + 1], q[k + 2], q[k + 3], q[k + 4]]);
                    rq.apply(acc[r].saturating_add(bias))
                })
            };
            for j in [0usize, 4] {
                let got = g8.block(j);
                let e0 = want(&w_ih[j * n..], xs, &b_ih[4 * j..], &rq_ih[5 * j..]);
                let e1 = want(&w_hh[j * n..], hs, &b_hh[4 * j..], &rq_hh[5 * j..]);
                let exp = [e0[0], e0[1], e0[2], e0[3], e1[0], e1[1], e1[2], e1[3]];
                if got != Some(exp) {
                    semihosting::println!(
                        "kernels MISMATCH Gate8 n={} round={} j={} {:?} vs {:?}",
                        n,
                        round,
                        j,
                        got,
                        exp
                    );
                    return false;
                }
                compared += 8;
            }
            if g8.block(8).is_some() {
                semihosting::println!("kernels Gate8 accepted a block past its rows");
                return false;
            }
        }
    }
    // f32: dsp::dot4_f32 (VLDM + VFMA; the portable fallback for unaligned weights) against
    // fused multiply-adds in software (libm::fmaf), row by row in column order, for every
    // row length of 4..=64 columns at every byte offset, random weights, inputs and
    // accumulators of mixed magnitudes.
    const MAXF: usize = 64;
    let mut wf = [0u8; 16 * MAXF + 3];
    let mut xf = [0u32; MAXF];
    let val = |r: u32| {
        let m = (r >> 8) as f32 * (1.0 / (1u32 << 23) as f32) - 1.0; // [−1, 1)
        m * [1.0, 1e-3, 37.0, 1e4][(r & 3) as usize]
    };
    for round in 0..2u32 {
        for (i, v) in xf.iter_mut().enumerate() {
            *v = val(mix(i as u32 ^ round << 24 ^ 0x00f3_0000)).to_bits();
        }
        for n in (4..=MAXF).step_by(4) {
            let xs = &xf[..n];
            for off in 0..4 {
                for k in 0..4 * n {
                    let v = val(mix(k as u32 ^ round << 24 ^ (n as u32) << 12));
                    wf[off + 4 * k..off + 4 * k + 4].copy_from_slice(&v.to_le_bytes());
                }
                let w4 = &wf[off..off + 16 * n];
                let init: [f32; 4] =
                    core::array::from_fn(|r| val(mix(r as u32 ^ round << 4 ^ n as u32)));
                let mut got = init;
                dsp::dot4_f32(w4, 4 * n, xs, &mut got);
                let want: [f32; 4] = core::array::from_fn(|r| {
                    let mut a = init[r];
                    for (c, &x) in xs.iter().enumerate() {
                        let b = &w4[4 * (r * n + c)..4 * (r * n + c) + 4];
                        let w = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        a = libm::fmaf(w, f32::from_bits(x), a);
                    }
                    a
                });
                if got.map(f32::to_bits) != want.map(f32::to_bits) {
                    semihosting::println!(
                        "kernels MISMATCH dot4_f32 round={} n={} offset={} {:?} vs {:?}",
                        round,
                        n,
                        off,
                        got,
                        want
                    );
                    return false;
                }
                compared += 4;
            }
        }
    }
    semihosting::println!("kernels ok: DSP == portable on {} rows", compared);
    true
}

/// The Cortex-M0 four-row int8 kernel (`dsp::dot4_i8`: `MULS`, byte loads, cfg
/// `bench_v6m`) against the portable `dot4_i8`: every row length from 4 to 256 columns,
/// weight slices at every byte alignment, random and extreme values (as on the M4F).
#[cfg(bench_v6m)]
pub fn kernels() -> bool {
    use tinyrnn::kernel::{dot4_i8, dsp};

    const MAX: usize = 256;
    let mut w = [0u8; 4 * MAX + 3];
    let mut x = [0u32; MAX / 2];
    let mut compared = 0u32;
    for round in 0..4u32 {
        fill(round, &mut w, &mut x);
        for n in (4..=MAX).step_by(4) {
            let xs = &x[..n / 2];
            for off in 0..4 {
                let w4 = &w[off..off + 4 * n];
                let (a, b) = (dsp::dot4_i8(w4, xs), dot4_i8(w4, xs));
                if a != b {
                    semihosting::println!(
                        "kernels MISMATCH round={} n={} offset={} dot4 {:?} vs {:?}",
                        round,
                        n,
                        off,
                        a,
                        b
                    );
                    return false;
                }
                compared += 4;
            }
        }
    }
    semihosting::println!("kernels ok: Cortex-M0 == portable on {} rows", compared);
    true
}

/// No assembly kernels on this target: nothing to compare.
#[cfg(not(any(bench_dsp, bench_v6m)))]
pub fn kernels() -> bool {
    true
}

//! Pooling over 10⁶ frames (issue #10 §2: "the mean is exact for any sequence length, no
//! overflow over 10⁶ frames").
//!
//! One LSTM (3 inputs, 5 units, no head) in int8, int16 and f32 is streamed for
//! [`FRAMES`] frames four times over: with `Pool::Last` (the reference: its `h` after every
//! frame), `Mean`, `Max` and `Sum`. The test keeps its own exact reductions of the reference
//! `h` sequence (`i128` sums and the maximum; for f32 an exactly rounded sum, Shewchuk's
//! `fsum`) and compares the pooled output with them at checkpoints from 1 to 10⁶ frames,
//! against the documented rules (`src/session.rs`, "Memory layout"):
//!
//! * integer `Mean`: `round(sum / n)`, ties up, exact for any length (an `i64` sum of `i16`
//!   values cannot overflow before 2⁴⁸ frames);
//! * integer `Sum`: the sum shifted to `pool_frac` (round to nearest, ties up) and
//!   saturated to `i16` (after 10⁶ frames of a non-zero mean it saturates: checked);
//! * integer `Max`: the maximum;
//! * f32: an `f64` running sum, `Mean` = `(sum / n) as f32`, `Sum` = `sum as f32`: within
//!   half an f32 ulp plus the `f64` sum's rounding (≤ n·2⁻⁵³ of the sum of magnitudes) of
//!   the exact value; `Max` exact.
//!
//! The inputs have a positive offset so that `h` has a non-zero mean (the sums grow).
//! Runtime: about 12 M steps of a 5-unit LSTM, a few seconds in `--profile checked`.
#[path = "../src/testutil.rs"]
mod testutil;

use testutil::*;
use tinyrnn::model::write_blob;
use tinyrnn::{CellKind, Model, Pool, Precision, Session};

/// Frames streamed (≥ 10⁶).
const FRAMES: usize = 1_000_000;
/// Frame counts after which the pooled output is compared.
const CHECKPOINTS: [usize; 7] = [1, 10, 100, 1_000, 10_000, 100_000, FRAMES];
const INPUT: usize = 3;
const HIDDEN: usize = 5;

type Sess<'m> = Session<'m, 64, 64>;

/// The blob of `base` with its pooling (and, for an integer `Sum`, `pool_frac`) replaced; the
/// output format follows the pooled vector's (no head).
fn with_pool(base: &[u8], pool: Pool, pool_frac: u8) -> Vec<u8> {
    let m = Model::from_blob(base).unwrap();
    let mut d = m.desc().clone();
    let int = d.precision.is_int();
    d.pool = pool;
    d.pool_frac = if int && pool == Pool::Sum {
        pool_frac
    } else {
        0
    };
    if int && pool == Pool::Sum {
        d.output_frac = pool_frac;
    }
    let mut buf = vec![0u8; base.len() + 64];
    let n = write_blob(&d, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Shewchuk's exact partial sums (as Python's `math.fsum`): `add` keeps the sum exactly as
/// non-overlapping f64 partials, `value` rounds it once.
#[derive(Default)]
struct ExactSum(Vec<f64>);

impl ExactSum {
    fn add(&mut self, mut x: f64) {
        let mut i = 0;
        for j in 0..self.0.len() {
            let mut y = self.0[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.0[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.0.truncate(i);
        self.0.push(x);
    }
    fn value(&self) -> f64 {
        // the partials are non-overlapping and increasing: summing from the top is exact
        // to within the final rounding for these magnitudes (no cancellation here)
        self.0.iter().rev().fold(0.0, |s, &p| s + p)
    }
}

/// `round(s / 2^shift)` (ties up) saturated to `i16`: the documented integer `Sum`.
fn sum_q(s: i128, shift: u32) -> i16 {
    let v = if shift == 0 {
        s
    } else {
        (s + (1i128 << (shift - 1))).div_euclid(1i128 << shift)
    };
    v.clamp(i16::MIN as i128, i16::MAX as i128) as i16
}

/// `round(s / n)` (ties up) saturated to `i16`: the documented integer `Mean`.
fn mean_q(s: i128, n: i128) -> i16 {
    (2 * s + n)
        .div_euclid(2 * n)
        .clamp(i16::MIN as i128, i16::MAX as i128) as i16
}

fn f32_ulp(x: f32) -> f64 {
    let b = x.abs().to_bits();
    (f32::from_bits(b + 1) as f64) - (f32::from_bits(b) as f64)
}

fn run(p: Precision) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ p as u64);
    let cell = CellKind::Lstm { peepholes: false };
    let m = single_layer(FLayer::random(&mut rng, cell, INPUT, HIDDEN, 1.0));
    let calib: Vec<Vec<f32>> = (0..200)
        .map(|_| (0..INPUT).map(|_| 0.6 + rng.uniform()).collect())
        .collect();
    let base = blob(&m, p, &calib);
    let int = p.is_int();
    // Sum: the pooled sum in whole units (shift 15 from Q0.15): saturates within 10⁶ frames
    let sum_frac = 0u8;
    let blobs = [
        base.clone(),
        with_pool(&base, Pool::Mean, 0),
        with_pool(&base, Pool::Max, 0),
        with_pool(&base, Pool::Sum, sum_frac),
    ];
    let models: Vec<Model<'_>> = blobs.iter().map(|b| Model::from_blob(b).unwrap()).collect();
    let mut s: Vec<Sess<'_>> = models.iter().map(|m| Sess::new(m).unwrap()).collect();
    let h_frac = models[0].layers()[0].h_frac as u32;

    let mut sum_i = [0i128; HIDDEN];
    let mut max_i = [i16::MIN; HIDDEN];
    let mut sum_f: Vec<ExactSum> = (0..HIDDEN).map(|_| ExactSum::default()).collect();
    let mut abs_f = [0f64; HIDDEN];
    let mut max_f = [f32::NEG_INFINITY; HIDDEN];
    let mut next = 0;
    let mut saturated_sum = false;
    let mut q = [0i16; HIDDEN];
    let mut f = [0f32; HIDDEN];
    let mut frame = [0f32; INPUT];
    for t in 1..=FRAMES {
        for v in frame.iter_mut() {
            *v = 0.6 + rng.uniform();
        }
        for x in s.iter_mut() {
            x.step(&frame).unwrap();
        }
        // the reference h (the Last model's state, the same weights)
        let h = &s[0].state()[..HIDDEN];
        for j in 0..HIDDEN {
            if int {
                let v = h[j] as i16;
                sum_i[j] += v as i128;
                max_i[j] = max_i[j].max(v);
            } else {
                let v = f32::from_bits(h[j] as u32);
                sum_f[j].add(v as f64);
                abs_f[j] += (v as f64).abs();
                if v > max_f[j] {
                    max_f[j] = v;
                }
            }
        }
        if t != CHECKPOINTS[next] {
            continue;
        }
        next += 1;
        let n = t as i128;
        if int {
            s[1].output_q(&mut q).unwrap();
            let mean: Vec<i16> = sum_i.iter().map(|&a| mean_q(a, n)).collect();
            assert_eq!(q.to_vec(), mean, "{p:?} mean after {t} frames");
            s[2].output_q(&mut q).unwrap();
            assert_eq!(q, max_i, "{p:?} max after {t} frames");
            s[3].output_q(&mut q).unwrap();
            let shift = h_frac - sum_frac as u32;
            let want: Vec<i16> = sum_i.iter().map(|&a| sum_q(a, shift)).collect();
            assert_eq!(q.to_vec(), want, "{p:?} sum after {t} frames");
            saturated_sum |= q.iter().any(|&v| v == i16::MAX || v == i16::MIN);
            println!("{p:?} t={t}: mean {mean:?}, exact sums {sum_i:?}, pooled sum {q:?}");
        } else {
            s[1].output(&mut f).unwrap();
            for j in 0..HIDDEN {
                let exact = sum_f[j].value() / t as f64;
                // f32 rounding, the f64 running sum's (≤ n·2⁻⁵³·Σ|h|, divided by n) and the
                // division's
                let bound =
                    0.5 * f32_ulp(f[j]) + 2f64.powi(-53) * abs_f[j] + 2f64.powi(-52) * exact.abs();
                let err = (f[j] as f64 - exact).abs();
                assert!(
                    err <= bound,
                    "f32 mean[{j}] after {t} frames: {} vs exact {exact} (err {err:e} > {bound:e})",
                    f[j]
                );
            }
            println!("f32 t={t}: mean {f:?}");
            s[2].output(&mut f).unwrap();
            assert_eq!(f, max_f, "f32 max after {t} frames");
            s[3].output(&mut f).unwrap();
            for j in 0..HIDDEN {
                let exact = sum_f[j].value();
                let bound = 0.5 * f32_ulp(f[j]) + (t as f64) * 2f64.powi(-53) * abs_f[j];
                let err = (f[j] as f64 - exact).abs();
                assert!(
                    err <= bound,
                    "f32 sum[{j}] after {t} frames: {} vs exact {exact} (err {err:e} > {bound:e})",
                    f[j]
                );
            }
        }
    }
    assert_eq!(next, CHECKPOINTS.len());
    if int {
        // the documented saturation was reached (the sums are far beyond i16 in whole units)
        assert!(saturated_sum, "{p:?}: the Sum never saturated: {sum_i:?}");
        // and the exact sums themselves are beyond i32 in Q0.15 for some element: an i32
        // accumulator would have overflowed
        assert!(
            sum_i.iter().any(|&a| a.abs() > i32::MAX as i128),
            "{p:?}: sums {sum_i:?} stay within i32: the test does not reach the overflow range"
        );
    }
}

#[test]
fn int8_pooling_over_a_million_frames() {
    run(Precision::Int8);
}

#[test]
fn int16_pooling_over_a_million_frames() {
    run(Precision::Int16);
}

#[test]
fn f32_pooling_over_a_million_frames() {
    run(Precision::F32);
}

//! The dense output head and the output activations.
//!
//! ```text
//! y_r = b_r + Σ_j W[r, j]·h_j                     (r = 0..C; W row-major, padded)
//! integer: y_r = rq[r].apply(b_r ⊕ W[r]·h)        (⊕ saturating)
//!   Identity        → sat_i16(y_r)                 in output_frac
//!   Sigmoid / Tanh  → σ_q(y_r) / tanh_q(y_r)       y in Q19.12 → Q0.15
//!   Softmax         → softmax_q(y)                 y in Q19.12 → Q0.15
//! ```
//!
//! Outputs are produced one by one through a callback, so no buffer of `C` values is
//! needed: a softmax evaluates the head twice (pass 1: running max and running sum of
//! `e^(y−max)`, rescaled whenever the max grows; pass 2: the outputs).

use core::num::NonZeroU64;

use crate::activation::{exp_q, sigmoid_q, tanh_q, Math};
use crate::fxp::sat_i16;
use crate::kernel::{le_f32, le_requant, pre_f32, IntKernel};
use crate::model::{pad4, DenseDesc, OutputAct};

/// The integer head's rows: `y_r` in the requant target format, one per output.
pub(crate) fn int_logits<'a, K: IntKernel>(
    d: &DenseDesc<'a>,
    x: &'a [u32],
) -> impl Iterator<Item = i32> + Clone + 'a {
    let row = pad4(d.in_size as usize)
        .saturating_mul(K::WEIGHT_BYTES)
        .max(1);
    d.weight
        .chunks_exact(row)
        .zip(d.bias.chunks_exact(K::BIAS_BYTES))
        .zip(d.rq.chunks_exact(crate::fxp::Requant::BYTES))
        .map(move |((w, b), rq)| K::pre(w, x, b, le_requant(rq)))
}

/// The f32 head's rows.
pub(crate) fn f32_logits<'a>(
    d: &DenseDesc<'a>,
    x: &'a [u32],
) -> impl Iterator<Item = f32> + Clone + 'a {
    let row = pad4(d.in_size as usize).saturating_mul(4).max(1);
    d.weight
        .chunks_exact(row)
        .zip(d.bias.chunks_exact(4))
        .map(move |(w, b)| pre_f32(w, x, le_f32(b)))
}

/// Applies the integer output activation to `logits` and emits every output (Q0.15, or
/// `output_frac` for Identity).
pub(crate) fn emit_int(
    logits: impl Iterator<Item = i32> + Clone,
    act: OutputAct,
    mut emit: impl FnMut(i16),
) {
    match act {
        OutputAct::Identity => logits.for_each(|y| emit(sat_i16(y))),
        OutputAct::Sigmoid => logits.for_each(|y| emit(sigmoid_q(y))),
        OutputAct::Tanh => logits.for_each(|y| emit(tanh_q(y))),
        OutputAct::Softmax => softmax_q(logits, emit),
    }
}

/// `round(sum · f / 2^30)` for `sum ≤ 2^38` and a Q2.30 factor `f ≤ 2^30`, in `u64` without
/// overflow: `(sum >> 30)·f + round((sum mod 2^30)·f / 2^30)`.
#[inline]
fn rescale(sum: u64, f: u32) -> u64 {
    let f = f as u64;
    let hi = (sum >> 30).wrapping_mul(f); // ≤ 2^8 · 2^30
    let lo = (sum & ((1 << 30) - 1))
        .wrapping_mul(f)
        .wrapping_add(1 << 29)
        >> 30; // < 2^61
    hi.wrapping_add(lo)
}

/// Integer softmax of Q19.12 logits, emitted in Q0.15:
/// `out_r = min(round(2^15 · e^(y_r − max) / Σ_k e^(y_k − max)), 32767)` with [`exp_q`]
/// (Q2.30) and a `u64` sum (≤ 256 · 2^30). Max error ≈ 0.5 LSB + the exp error (tested).
///
/// `logits` is iterated twice (a single online pass for max and sum, then the outputs).
pub fn softmax_q(logits: impl Iterator<Item = i32> + Clone, mut emit: impl FnMut(i16)) {
    let mut max = 0i32;
    let mut sum = 0u64;
    let mut first = true;
    for y in logits.clone() {
        if first {
            (max, sum, first) = (y, 1 << 30, false);
        } else if y > max {
            sum = rescale(sum, exp_q(max.saturating_sub(y))).wrapping_add(1 << 30);
            max = y;
        } else {
            sum = sum.wrapping_add(exp_q(y.saturating_sub(max)) as u64);
        }
    }
    let Some(den) = NonZeroU64::new(sum) else {
        return;
    };
    for y in logits {
        let e = exp_q(y.saturating_sub(max)) as u64; // ≤ 2^30
        let q = (e << 15).wrapping_add(sum >> 1) / den; // < 2^46
        emit(if q > 32767 { 32767 } else { q as i16 });
    }
}

/// Applies the f32 output activation and emits every output.
pub(crate) fn emit_f32<M: Math>(
    logits: impl Iterator<Item = f32> + Clone,
    act: OutputAct,
    mut emit: impl FnMut(f32),
) {
    match act {
        OutputAct::Identity => logits.for_each(emit),
        OutputAct::Sigmoid => logits.for_each(|y| emit(M::sigmoid(y))),
        OutputAct::Tanh => logits.for_each(|y| emit(M::tanh(y))),
        OutputAct::Softmax => {
            let mut max = 0.0f32;
            let mut sum = 0.0f32;
            let mut first = true;
            for y in logits.clone() {
                if first {
                    (max, sum, first) = (y, 1.0, false);
                } else if y > max {
                    sum = sum * M::exp(max - y) + 1.0;
                    max = y;
                } else {
                    sum += M::exp(y - max);
                }
            }
            for y in logits {
                emit(M::exp(y - max) / sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::FastMath;
    use proptest::prelude::*;

    fn softmax_ref(y: &[f64]) -> Vec<f64> {
        let m = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = y.iter().map(|v| (v - m).exp()).sum();
        y.iter().map(|v| (v - m).exp() / s).collect()
    }

    fn run_softmax(y: &[i32]) -> Vec<i16> {
        let mut out = Vec::new();
        softmax_q(y.iter().copied(), |v| out.push(v));
        out
    }

    #[test]
    fn softmax_examples() {
        assert_eq!(run_softmax(&[0, 0]), [16384, 16384]);
        assert_eq!(run_softmax(&[5 << 12]), [32767]);
        // ln 3 in Q.12 = 4500 → probabilities 1/4, 3/4
        let out = run_softmax(&[0, 4500]);
        assert!(
            (out[0] - 8192).abs() <= 1 && (out[1] - 24576).abs() <= 1,
            "{out:?}"
        );
        // max first, then increasing logits (rescaling path), extremes
        let out = run_softmax(&[i32::MIN, i32::MAX, 0]);
        assert_eq!(out, [0, 32767, 0]);
    }

    #[test]
    fn f32_softmax_matches() {
        let y = [1.0f32, -2.0, 3.5, 3.5, 0.0];
        let mut out = Vec::new();
        emit_f32::<FastMath>(y.iter().copied(), OutputAct::Softmax, |v| out.push(v));
        let want = softmax_ref(&y.map(|v| v as f64));
        for (a, b) in out.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 2e-3, "{out:?} vs {want:?}");
        }
    }

    proptest! {
        /// Q0.15 softmax vs f64: ≤ 1 LSB per output (0.5 rounding + exp error ~1e-8),
        /// whatever the order of the logits (the online rescaling path is exercised).
        #[test]
        fn softmax_within_one_lsb(y in proptest::collection::vec(-(20i32 << 12)..(20 << 12), 1..40)) {
            let out = run_softmax(&y);
            let want = softmax_ref(&y.iter().map(|&v| v as f64 / 4096.0).collect::<Vec<_>>());
            prop_assert_eq!(out.len(), y.len());
            for (q, p) in out.iter().zip(&want) {
                let exact = (p * 32768.0).min(32767.0);
                prop_assert!((*q as f64 - exact).abs() <= 1.0, "{} vs {}", q, exact);
            }
        }
    }
}

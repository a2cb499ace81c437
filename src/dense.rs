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
//! needed: a softmax evaluates the head three times (max, sum of `e^(y−max)`, outputs).

use core::num::NonZeroU64;

use crate::activation::exp_q;
#[cfg(feature = "f32")]
use crate::activation::Math;
#[cfg(any(feature = "int8", feature = "int16", feature = "f32"))]
use crate::kernel::Rows;
#[cfg(feature = "f32")]
use crate::kernel::{le_f32, pre_f32};
#[cfg(any(feature = "int8", feature = "int16", feature = "f32"))]
use crate::model::{pad4, DenseDesc, OutputAct};
#[cfg(any(feature = "int8", feature = "int16"))]
use crate::{
    activation::{sigmoid_q, tanh_q},
    fxp::sat_i16,
    kernel::{le_requant, IntKernel},
};

/// The integer head's rows: `y_r` in the requant target format, one per output.
#[cfg(any(feature = "int8", feature = "int16"))]
pub(crate) fn int_logits<'a, K: IntKernel>(
    d: &DenseDesc<'a>,
    x: &'a [u32],
) -> impl Iterator<Item = i32> + Clone + 'a {
    let row = pad4(d.in_size as usize).saturating_mul(K::WEIGHT_BYTES);
    Rows::new(d.weight, row)
        .zip(d.bias.chunks_exact(K::BIAS_BYTES))
        .zip(d.rq.chunks_exact(crate::fxp::Requant::BYTES))
        .map(move |((w, b), rq)| K::pre(w, x, b, le_requant(rq)))
}

/// The f32 head's rows.
#[cfg(feature = "f32")]
pub(crate) fn f32_logits<'a>(
    d: &DenseDesc<'a>,
    x: &'a [u32],
) -> impl Iterator<Item = f32> + Clone + 'a {
    let row = pad4(d.in_size as usize).saturating_mul(4);
    Rows::new(d.weight, row)
        .zip(d.bias.chunks_exact(4))
        .map(move |(w, b)| pre_f32(w, x, le_f32(b)))
}

/// One pre-net / hidden head dense op on an integer model: `x` packed `i16` in `x_frac`,
/// `y` packed `i16` in `y_frac` (see [`dense_act_q`](crate::activation::dense_act_q)).
#[cfg(all(feature = "dense-net", any(feature = "int8", feature = "int16")))]
pub(crate) fn op_int<K: IntKernel>(d: &crate::model::DenseOpDesc<'_>, x: &[u32], y: &mut [u32]) {
    let f = d.y_frac as u32;
    let act = d.act;
    crate::kernel::pack_i16(
        y,
        int_logits::<K>(&d.dense, x).map(|v| crate::activation::dense_act_q(act, v, f)),
    );
}

/// A dense activation in `f32`.
#[cfg(all(feature = "dense-net", feature = "f32"))]
#[inline]
pub(crate) fn act_f32<M: Math>(act: crate::model::DenseAct, y: f32) -> f32 {
    use crate::model::DenseAct;
    match act {
        DenseAct::Identity => y,
        DenseAct::Gelu => crate::activation::gelu_f32(y),
        DenseAct::Relu => y.max(0.0),
        DenseAct::Clip { lo, hi } => y.max(lo).min(hi),
        DenseAct::LeakyRelu { alpha } => {
            if y >= 0.0 {
                y
            } else {
                alpha * y
            }
        }
        DenseAct::Tanh => M::tanh(y),
        DenseAct::Sigmoid => M::sigmoid(y),
        // 0.5·y·(1 + tanh(√(2/π)·(y + 0.044715·y³))), every f32 (y³ may overflow to ±inf:
        // tanh saturates). Max absolute error on [−12, 12] vs the exact tanh form: 1.9e-6
        // with the fast tanh, 4.4e-7 with libm (test `gelu_tanh_f32_error`, every 64th f32).
        DenseAct::GeluTanh => {
            // √(2/π)
            const K: f32 = 0.797_884_6;
            0.5 * y * (1.0 + M::tanh(K * (y + 0.044_715 * y * y * y)))
        }
    }
}

/// One pre-net / hidden head dense op on an f32 model (one `f32` per word).
#[cfg(all(feature = "dense-net", feature = "f32"))]
pub(crate) fn op_f32<M: Math>(d: &crate::model::DenseOpDesc<'_>, x: &[u32], y: &mut [u32]) {
    let act = d.act;
    crate::kernel::copy_words(
        y,
        f32_logits(&d.dense, x).map(|v| act_f32::<M>(act, v).to_bits()),
    );
}

/// Applies the integer output activation to `logits` and emits every output (Q0.15, or
/// `output_frac` for Identity).
#[cfg(any(feature = "int8", feature = "int16"))]
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

/// Integer softmax of Q19.12 logits, emitted in Q0.15:
///
/// ```text
/// m = max_k y_k,  e_r = exp_q(y_r − m) (Q2.30),  S = Σ_k e_k (u64, exact)
/// out_r = min(⌊(e_r·2^15 + ⌊S/2⌋) / S⌋, 32767)
/// ```
///
/// Within 1 LSB of the exact softmax (tested); `logits` is iterated three times (max, sum,
/// outputs) so that the result does not depend on the order of the logits.
pub fn softmax_q(logits: impl Iterator<Item = i32> + Clone, mut emit: impl FnMut(i16)) {
    let max = logits.clone().max().unwrap_or(0);
    // ≤ 256 terms of ≤ 2^30
    let sum = logits.clone().fold(0u64, |s, y| {
        s.wrapping_add(exp_q(y.saturating_sub(max)) as u64)
    });
    let Some(den) = NonZeroU64::new(sum) else {
        return;
    };
    for y in logits {
        let e = exp_q(y.saturating_sub(max)) as u64; // ≤ 2^30
        let num = (e << 15).wrapping_add(sum >> 1); // < 2^46
        emit(crate::fxp::div_sat_q15(num, den));
    }
}

/// Applies the f32 output activation and emits every output.
#[cfg(feature = "f32")]
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
            let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = logits.clone().map(|y| M::exp(y - max)).sum();
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

    /// The f32 tanh-form GELU vs f64 on every 64th f32 in [0, 12] and its negative.
    #[cfg(feature = "dense-net")]
    #[test]
    fn gelu_tanh_f32_error() {
        use crate::model::DenseAct;
        fn sweep<M: Math>() -> f64 {
            let k = (2.0 / core::f64::consts::PI).sqrt();
            let mut e = 0f64;
            for b in (0..=12.0f32.to_bits()).step_by(64) {
                for x in [f32::from_bits(b), -f32::from_bits(b)] {
                    let xd = x as f64;
                    let want = 0.5 * xd * (1.0 + (k * (xd + 0.044_715 * xd * xd * xd)).tanh());
                    e = e.max((act_f32::<M>(DenseAct::GeluTanh, x) as f64 - want).abs());
                }
            }
            e
        }
        let e = sweep::<FastMath>();
        println!("f32 GELU (tanh form), fast tanh: max abs error {e:.3e} on [−12, 12]");
        assert!(e <= 2.0e-6, "{e}");
        #[cfg(feature = "libm")]
        {
            let e = sweep::<crate::activation::AccurateMath>();
            println!("f32 GELU (tanh form), libm tanh: max abs error {e:.3e} on [−12, 12]");
            assert!(e <= 5e-7, "{e}");
        }
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
        // extremes
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
        /// Q0.15 softmax vs f64: ≤ 1 LSB per output (0.5 rounding + exp error ~1e-8).
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

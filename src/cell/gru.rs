//! GRU cell, both reset variants.
//!
//! ```text
//! PyTorch nn.GRU, gate order r, z, n (rows 0..H, H..2H, 2H..3H):
//!   r_t = σ(W_ir·x + b_ir + W_hr·h_{t−1} + b_hr)
//!   z_t = σ(W_iz·x + b_iz + W_hz·h_{t−1} + b_hz)
//!   linear_before_reset = true  (PyTorch; ONNX linear_before_reset=1; Keras reset_after=True):
//!     n_t = tanh(W_in·x + b_in + r_t ⊙ (W_hn·h_{t−1} + b_hn))
//!   linear_before_reset = false (ONNX default; Keras reset_after=False):
//!     n_t = tanh(W_in·x + b_in + W_hn·(r_t ⊙ h_{t−1}) + b_hn)
//!   h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}
//!
//! integer (per unit j; pre_* = rq.apply(b ⊕ W·v) in Q19.12, ⊕ saturating):
//!   r = σ_q(pre_ih_r ⊕ pre_hh_r),  z = σ_q(pre_ih_z ⊕ pre_hh_z)               Q0.15
//!   before-reset: n = tanh_q(pre_ih_n ⊕ mul_q15(pre_hh_n, r))
//!   reset-before: first, for every unit, rh_j = round(r_j·h_j / 2^15) (i16, into scratch);
//!                 then n = tanh_q(pre_ih_n ⊕ rq_hh[n].apply(b_hn ⊕ W_hn·rh))
//!   h_j = sat_i16(n + mul_q15(h_j − n, z))                                     Q0.15
//! ```

#[cfg(feature = "f32")]
use crate::activation::Math;
#[cfg(feature = "f32")]
use crate::cell::Gate;
use crate::cell::Io;
use crate::model::LayerDesc;
#[cfg(any(feature = "int8", feature = "int16"))]
use crate::{
    activation::{sigmoid_q, tanh_q},
    cell::{halves, IntGate},
    fxp::{mul_q15, sat_i16},
    kernel::{set_i16, IntKernel},
};

/// `h' = sat_i16(n + mul_q15(h − n, z))`, i.e. `(1 − z)·n + z·h`.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(always)]
fn update(h: i32, n: i16, z: i16) -> i32 {
    let n = n as i32;
    sat_i16(n.saturating_add(mul_q15(h.saturating_sub(n), z))) as i32
}

/// One integer step (see the module equations): blocks of four units (the last one
/// shorter), each gate's rows of a block in one pass of the row kernels
/// ([`IntGate::at`]), then the block's units one by one.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(never)]
pub(crate) fn step_int<K: IntKernel>(l: &LayerDesc<'_>, linear_before_reset: bool, io: Io<'_>) {
    let Io { x, h, rh, hs, .. } = io;
    let (g_r, g_z) = (IntGate::new::<K>(l, 0, x, h), IntGate::new::<K>(l, 1, x, h));
    if !linear_before_reset {
        rh.fill(0);
        let mut j = 0;
        for h4 in hs.chunks(4) {
            let r = g_r.sum_at::<K>(j, h4.len());
            for (&h_j, &r) in h4.iter().zip(&r) {
                // |h_j·r / 2^15| < 2^15: fits i16
                set_i16(rh, j, sat_i16(mul_q15(h_j, sigmoid_q(r))));
                j += 1;
            }
        }
    }
    let rh: &[u32] = rh;
    // the n gate's hidden product multiplies h (linear before reset) or r ⊙ h
    let g_n = IntGate::new::<K>(l, 2, x, if linear_before_reset { h } else { rh });
    for (q, h4) in hs.chunks_mut(4).enumerate() {
        let (j, n) = (4 * q, h4.len());
        let z = g_z.sum_at::<K>(j, n);
        let (ni, nh) = halves(g_n.at::<K>(j, n));
        let r = if linear_before_reset {
            g_r.sum_at::<K>(j, n)
        } else {
            [0; 4]
        };
        for (u, h_j) in h4.iter_mut().enumerate() {
            let u = u & 3;
            let n = if linear_before_reset {
                tanh_q(ni[u].saturating_add(mul_q15(nh[u], sigmoid_q(r[u]))))
            } else {
                tanh_q(ni[u].saturating_add(nh[u]))
            };
            *h_j = update(*h_j, n, sigmoid_q(z[u]));
        }
    }
}

/// One f32 step (see the module equations): blocks of four units ([`Gate::sum4`],
/// [`Gate::pair4`] for the `n` gate).
#[cfg(feature = "f32")]
#[inline(never)]
pub(crate) fn step_f32<M: Math>(l: &LayerDesc<'_>, linear_before_reset: bool, io: Io<'_>) {
    let Io { x, h, rh, hs, .. } = io;
    let g_r = Gate::f32(l, 0, x, h);
    let g_z = Gate::f32(l, 1, x, h);
    let update = |h_j: &mut i32, n: f32, z: f32| {
        let h_prev = f32::from_bits(*h_j as u32);
        *h_j = ((1.0 - z) * n + z * h_prev).to_bits() as i32;
    };
    if linear_before_reset {
        let g_n = Gate::f32(l, 2, x, h);
        let mut j = 0;
        for h4 in hs.chunks_mut(4) {
            let r = g_r.sum4(j);
            let z = g_z.sum4(j);
            let (ni, nh) = g_n.pair4(j);
            for (u, h_j) in h4.iter_mut().enumerate() {
                let u = u & 3;
                let n = M::tanh(ni[u] + M::sigmoid(r[u]) * nh[u]);
                update(h_j, n, M::sigmoid(z[u]));
            }
            j += 4;
        }
    } else {
        rh.fill(0);
        let mut j = 0;
        for (w4, h4) in rh.chunks_mut(4).zip(hs.chunks(4)) {
            let r = g_r.sum4(j);
            for ((w, h_j), &r) in w4.iter_mut().zip(h4).zip(&r) {
                *w = (M::sigmoid(r) * f32::from_bits(*h_j as u32)).to_bits();
            }
            j += 4;
        }
        let rh: &[u32] = rh;
        let g_n = Gate::f32(l, 2, x, rh);
        let mut j = 0;
        for h4 in hs.chunks_mut(4) {
            let z = g_z.sum4(j);
            let n = g_n.sum4(j);
            for (u, h_j) in h4.iter_mut().enumerate() {
                let u = u & 3;
                update(h_j, M::tanh(n[u]), M::sigmoid(z[u]));
            }
            j += 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::{CellKind, F32Math, Precision};

    /* candle-nn/tests/rnn.rs: verified against PyTorch with
    import torch
    from torch import nn
    gru = nn.GRU(2, 3, 1)
    gru.weight_ih_l0 = torch.nn.Parameter(torch.arange(0., 18.).reshape(9, 2).cos())
    gru.weight_hh_l0 = torch.nn.Parameter(torch.arange(0., 27.).reshape(9, 3).sin())
    gru.bias_ih_l0 = torch.nn.Parameter(torch.tensor([-1., 1., -0.5, 2, -1, 1, -0.5, 2, -1]))
    gru.bias_hh_l0 = torch.nn.Parameter(torch.tensor([-1., 1., -0.5, 2, -1, 1, -0.5, 2, -1]).cos())
    state = torch.zeros((1, 3))
    for inp in [3., 1., 4., 1., 5., 9., 2.]:
        inp = torch.tensor([[inp, inp * 0.5]])
        _out, state = gru(inp, state)
    print(state)
    # tensor([[ 0.0579,  0.8836, -0.9991]], grad_fn=<SqueezeBackward1>)
    */
    const TORCH_H: [f64; 3] = [0.0579, 0.8836, -0.9991];

    fn candle(linear_before_reset: bool) -> FModel {
        single_layer(candle_layer(CellKind::Gru {
            linear_before_reset,
        }))
    }

    fn final_h(m: &FModel, p: Precision, math: F32Math) -> Vec<f64> {
        let x = candle_inputs();
        session_states(m, p, math, &x, &x)
            .pop()
            .unwrap()
            .pop()
            .unwrap()
            .0
    }

    #[test]
    fn reference_matches_pytorch() {
        let st = candle(true).run_states(&candle_inputs()).pop().unwrap();
        assert!(max_abs_diff(&st.h[0], &TORCH_H) <= 6e-5, "{:?}", st.h);
    }

    #[test]
    fn f32_matches_pytorch() {
        let h = final_h(&candle(true), Precision::F32, F32Math::Fast);
        let e = max_abs_diff(&h, &TORCH_H);
        println!("gru candle f32 fast: h err {e:.2e}");
        // ≤ 4.1e-7 per tanh, ≤ 2.3e-7 per sigmoid: below the 4 printed decimals
        assert!(e <= 6e-5, "{h:?}");
        if cfg!(feature = "libm") {
            let h = final_h(&candle(true), Precision::F32, F32Math::Accurate);
            let e = max_abs_diff(&h, &TORCH_H);
            println!("gru candle f32 accurate: h err {e:.2e}");
            assert!(e <= 6e-5, "{h:?}");
        }
    }

    /// Integer GRU vs PyTorch's values: int16 within 4 LSB-scale errors of the activations
    /// (≈ 1e-4 plus the 0.5e-4 printing precision), int8 within the weight resolution:
    /// per-row int8 rounding is ≤ max|w|/254 ≈ 4e-3 per weight, times |x| ≤ 9 on two inputs.
    #[test]
    fn int_matches_pytorch() {
        for (p, tol) in [(Precision::Int16, 3e-4), (Precision::Int8, 3e-2)] {
            let h = final_h(&candle(true), p, F32Math::Fast);
            let e = max_abs_diff(&h, &TORCH_H);
            println!("gru candle {p:?}: h err {e:.2e}");
            assert!(e <= tol, "{p:?} {h:?}");
        }
    }

    /// The reset-before variant has no PyTorch vector: f32 / int vs the f64 reference,
    /// which differs from the linear-before-reset result (so the variant is really used).
    #[test]
    fn reset_before_vs_reference() {
        let m = candle(false);
        let want = m.run_states(&candle_inputs()).pop().unwrap().h.remove(0);
        assert!(
            max_abs_diff(&want, &TORCH_H) > 1e-2,
            "variants should differ: {want:?}"
        );
        for (p, tol) in [
            (Precision::F32, 2e-3),
            (Precision::Int16, 3e-4),
            (Precision::Int8, 3e-2),
        ] {
            let h = final_h(&m, p, F32Math::Fast);
            let e = max_abs_diff(&h, &want);
            println!("gru reset-before candle weights {p:?}: h err {e:.2e}");
            assert!(e <= tol, "{p:?} {h:?} vs {want:?}");
        }
    }
}

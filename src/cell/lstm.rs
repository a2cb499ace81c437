//! LSTM cell, with optional ONNX peepholes.
//!
//! ```text
//! PyTorch nn.LSTM, gate order i, f, g, o (rows 0..H, H..2H, 2H..3H, 3H..4H);
//! peepholes P (ONNX), stored in order i, f, o:
//!   i_t = σ(W_ii·x + b_ii + W_hi·h_{t−1} + b_hi + P_i ⊙ c_{t−1})
//!   f_t = σ(W_if·x + b_if + W_hf·h_{t−1} + b_hf + P_f ⊙ c_{t−1})
//!   g_t = tanh(W_ig·x + b_ig + W_hg·h_{t−1} + b_hg)
//!   c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t
//!   o_t = σ(W_io·x + b_io + W_ho·h_{t−1} + b_ho + P_o ⊙ c_t)
//!   h_t = o_t ⊙ tanh(c_t)
//!
//! integer (per unit j; pre_* = rq_ih.apply(…) ⊕ rq_hh.apply(…) in Q19.12, ⊕ saturating;
//! c in Q16.15 (i32, saturating); peepholes i16 with p_frac fractional bits):
//!   pre_i ⊕= round(p_i·c / 2^(p_frac+3)),  pre_f ⊕= round(p_f·c / 2^(p_frac+3))
//!   i = σ_q(pre_i), f = σ_q(pre_f), g = tanh_q(pre_g)                          Q0.15
//!   c' = sat_i32(round(f·c / 2^15) + round(i·g / 2^15))                        (i64)
//!   pre_o ⊕= round(p_o·c' / 2^(p_frac+3)),  o = σ_q(pre_o)
//!   h' = round(o · tanh_q(round_shr(c', 3)) / 2^15)                            Q0.15
//! ```
//! (Q16.15 × Q.p_frac → Q.12 is a shift by `p_frac + 3`; `round` ties toward +∞.)

use crate::activation::{sigmoid_q, tanh_q, Math};
use crate::cell::{Gate, Io, Peep};
use crate::fxp::{mul_q15, round_shr, sat_i16, sat_i32};
use crate::kernel::IntKernel;
use crate::model::LayerDesc;

/// `round(p·c / 2^(p_frac+3))`: peephole contribution to a Q.12 pre-activation.
#[inline(always)]
fn peep(p: i16, c: i32, p_frac: u32) -> i32 {
    // p_frac ≤ 15 (validated; masked anyway) → shift in 3..=18; |p·c| < 2^46.
    let s = (p_frac & 15) + 3;
    let v = (p as i64).wrapping_mul(c as i64);
    sat_i32(v.wrapping_add(1 << (s - 1)) >> s)
}

/// `round(a·b / 2^15)` in i64, unsaturated.
#[inline(always)]
fn mul_q15_wide(a: i32, b: i16) -> i64 {
    (a as i64).wrapping_mul(b as i64).wrapping_add(1 << 14) >> 15
}

/// One integer step (see the module equations).
pub(crate) fn step_int<K: IntKernel>(l: &LayerDesc<'_>, peepholes: bool, io: Io<'_>) {
    let mut g_i = Gate::int::<K>(l, 0);
    let mut g_f = Gate::int::<K>(l, 1);
    let mut g_g = Gate::int::<K>(l, 2);
    let mut g_o = Gate::int::<K>(l, 3);
    let Io { x, h, hs, cs, .. } = io;
    let (mut p_i, mut p_f, mut p_o) = (Peep::new(l, 0, 2), Peep::new(l, 1, 2), Peep::new(l, 2, 2));
    let p_frac = l.p_frac as u32;
    for (h_j, c_j) in hs.iter_mut().zip(cs.iter_mut()) {
        let c = *c_j;
        let (a, b) = g_i.next_int::<K>(x, h);
        let mut pre_i = a.saturating_add(b);
        let (a, b) = g_f.next_int::<K>(x, h);
        let mut pre_f = a.saturating_add(b);
        let (a, b) = g_g.next_int::<K>(x, h);
        let pre_g = a.saturating_add(b);
        let (a, b) = g_o.next_int::<K>(x, h);
        let mut pre_o = a.saturating_add(b);
        if peepholes {
            pre_i = pre_i.saturating_add(peep(p_i.next_i16(), c, p_frac));
            pre_f = pre_f.saturating_add(peep(p_f.next_i16(), c, p_frac));
        }
        let i = sigmoid_q(pre_i);
        let f = sigmoid_q(pre_f);
        let g = tanh_q(pre_g);
        // |f·c/2^15| < 2^31, |i·g/2^15| ≤ 2^15: the i64 sum cannot overflow.
        let c_new = sat_i32(mul_q15_wide(c, f).wrapping_add(mul_q15_wide(g as i32, i)));
        if peepholes {
            pre_o = pre_o.saturating_add(peep(p_o.next_i16(), c_new, p_frac));
        }
        let o = sigmoid_q(pre_o);
        *c_j = c_new;
        *h_j = sat_i16(mul_q15(tanh_q(round_shr(c_new, 3)) as i32, o)) as i32;
    }
}

/// One f32 step (see the module equations).
pub(crate) fn step_f32<M: Math>(l: &LayerDesc<'_>, peepholes: bool, io: Io<'_>) {
    let mut g_i = Gate::f32(l, 0);
    let mut g_f = Gate::f32(l, 1);
    let mut g_g = Gate::f32(l, 2);
    let mut g_o = Gate::f32(l, 3);
    let Io { x, h, hs, cs, .. } = io;
    let (mut p_i, mut p_f, mut p_o) = (Peep::new(l, 0, 4), Peep::new(l, 1, 4), Peep::new(l, 2, 4));
    for (h_j, c_j) in hs.iter_mut().zip(cs.iter_mut()) {
        let c = f32::from_bits(*c_j as u32);
        let (a, b) = g_i.next_f32(x, h);
        let mut pre_i = a + b;
        let (a, b) = g_f.next_f32(x, h);
        let mut pre_f = a + b;
        let (a, b) = g_g.next_f32(x, h);
        let pre_g = a + b;
        let (a, b) = g_o.next_f32(x, h);
        let mut pre_o = a + b;
        if peepholes {
            pre_i += p_i.next_f32() * c;
            pre_f += p_f.next_f32() * c;
        }
        let c_new = M::sigmoid(pre_f) * c + M::sigmoid(pre_i) * M::tanh(pre_g);
        if peepholes {
            pre_o += p_o.next_f32() * c_new;
        }
        *c_j = c_new.to_bits() as i32;
        *h_j = (M::sigmoid(pre_o) * M::tanh(c_new)).to_bits() as i32;
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::{CellKind, F32Math, Precision};

    /* candle-nn/tests/rnn.rs: verified against PyTorch with
    import torch
    from torch import nn
    lstm = nn.LSTM(2, 3, 1)
    lstm.weight_ih_l0 = torch.nn.Parameter(torch.arange(0., 24.).reshape(12, 2).cos())
    lstm.weight_hh_l0 = torch.nn.Parameter(torch.arange(0., 36.).reshape(12, 3).sin())
    lstm.bias_ih_l0 = torch.nn.Parameter(torch.tensor([-1., 1., -0.5, 2, -1, 1, -0.5, 2, -1, 1, -0.5, 2]))
    lstm.bias_hh_l0 = torch.nn.Parameter(torch.tensor([-1., 1., -0.5, 2, -1, 1, -0.5, 2, -1, 1, -0.5, 2]).cos())
    state = torch.zeros((1, 3)), torch.zeros((1, 3))
    for inp in [3., 1., 4., 1., 5., 9., 2.]:
        inp = torch.tensor([[inp, inp * 0.5]])
        _out, state = lstm(inp, state)
    print(state)
    # (tensor([[ 0.9919,  0.1738, -0.1451]], grad_fn=...), tensor([[ 5.7250,  0.4458, -0.2908]], grad_fn=...))
    */
    const TORCH_H: [f64; 3] = [0.9919, 0.1738, -0.1451];
    const TORCH_C: [f64; 3] = [5.7250, 0.4458, -0.2908];

    fn candle() -> FModel {
        single_layer(candle_layer(CellKind::Lstm { peepholes: false }))
    }

    fn final_state(p: Precision, math: F32Math) -> (Vec<f64>, Vec<f64>) {
        let x = candle_inputs();
        session_states(&candle(), p, math, &x, &x)
            .pop()
            .unwrap()
            .pop()
            .unwrap()
    }

    #[test]
    fn reference_matches_pytorch() {
        let st = candle().run_states(&candle_inputs()).pop().unwrap();
        // PyTorch printed 4 decimals: ≤ 0.5e-4 plus f32-vs-f64 weights.
        assert!(max_abs_diff(&st.h[0], &TORCH_H) <= 6e-5, "{:?}", st.h);
        assert!(max_abs_diff(&st.c[0], &TORCH_C) <= 6e-5, "{:?}", st.c);
    }

    #[test]
    fn f32_fast_matches_pytorch() {
        let (h, c) = final_state(Precision::F32, F32Math::Fast);
        let (eh, ec) = (max_abs_diff(&h, &TORCH_H), max_abs_diff(&c, &TORCH_C));
        println!("lstm candle f32 fast: h err {eh:.2e}, c err {ec:.2e}");
        // micromath sigmoid/tanh errors ≤ 1.1e-3 per call, a few calls per unit and step.
        assert!(eh <= 3e-3 && ec <= 1e-2, "{h:?} {c:?}");
    }

    #[cfg(feature = "libm")]
    #[test]
    fn f32_accurate_matches_pytorch() {
        let (h, c) = final_state(Precision::F32, F32Math::Accurate);
        let (eh, ec) = (max_abs_diff(&h, &TORCH_H), max_abs_diff(&c, &TORCH_C));
        println!("lstm candle f32 accurate: h err {eh:.2e}, c err {ec:.2e}");
        // the 4 printed decimals only
        assert!(eh <= 6e-5 && ec <= 6e-5, "{h:?} {c:?}");
    }

    #[test]
    fn int_matches_pytorch() {
        for p in [Precision::Int16, Precision::Int8] {
            let (h, c) = final_state(p, F32Math::Fast);
            let (eh, ec) = (max_abs_diff(&h, &TORCH_H), max_abs_diff(&c, &TORCH_C));
            println!("lstm candle {p:?}: h err {eh:.2e}, c err {ec:.2e}");
        }
    }
}

//! LSTM cell, with optional ONNX peepholes, cell clipping and projection.
//!
//! ```text
//! PyTorch nn.LSTM, gate order i, f, g, o (rows 0..H, H..2H, 2H..3H, 3H..4H);
//! peepholes P (ONNX), stored in order i, f, o; optional cell clip (TFLite `cell_clip`)
//! and projection W_hr [P, H] (PyTorch `proj_size`):
//!   i_t = σ(W_ii·x + b_ii + W_hi·h_{t−1} + b_hi + P_i ⊙ c_{t−1})
//!   f_t = σ(W_if·x + b_if + W_hf·h_{t−1} + b_hf + P_f ⊙ c_{t−1})
//!   g_t = tanh(W_ig·x + b_ig + W_hg·h_{t−1} + b_hg)
//!   c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t,   then clamp(c_t, −clip, clip) with a cell clip
//!   o_t = σ(W_io·x + b_io + W_ho·h_{t−1} + b_ho + P_o ⊙ c_t)
//!   m_t = o_t ⊙ tanh(c_t)
//!   h_t = m_t, or W_hr·m_t with a projection (P wide; W_h· are then [·, P], h_0 is [P])
//!
//! integer (per unit j; pre_* = rq_ih.apply(…) ⊕ rq_hh.apply(…) in Q19.12, ⊕ saturating;
//! c in Q16.15 (i32, saturating); peepholes i16 with p_frac fractional bits; clip an i32
//! in Q16.15, > 0):
//!   pre_i ⊕= round(p_i·c / 2^(p_frac+3)),  pre_f ⊕= round(p_f·c / 2^(p_frac+3))
//!   i = σ_q(pre_i), f = σ_q(pre_f), g = tanh_q(pre_g)                          Q0.15
//!   c' = sat_i32(round(f·c / 2^15) + round(i·g / 2^15))                        (i64)
//!   c' = min(max(c', −clip), clip)                          with a clip (i32 compares)
//!   pre_o ⊕= round(p_o·c' / 2^(p_frac+3)),  o = σ_q(pre_o)
//!   m_j = round(o · tanh_q(round_shr(c', 3)) / 2^15)                           Q0.15
//!   without projection: h_j = m_j (h_frac = 15)
//!   with projection, per output p (after every unit's m_j):
//!   h_p = sat_i16(rq_hr[p].apply(Σ_j W_hr[p,j]·m_j))                           Q(15−h_frac).h_frac
//! ```
//! (Q16.15 × Q.p_frac → Q.12 is a shift by `p_frac + 3`; `round` ties toward +∞.)
//!
//! A projected `h` is not bounded by 1: its `h_frac` is calibrated like an unbounded output
//! (the most fractional bits that hold the calibrated `max |h|` with headroom), and `rq_hr`
//! is `scale_row · 2^(h_frac − 15)` (no bias). The projection's accumulator is that of the
//! gates' products (`m` is `i16`, at most `MAX_DIM` terms: |Σ| ≤ 2^30 for int8, 2^38 for
//! int16), with the same requant shift bounds (62 / 94). `m` lives in the scratch after the
//! packed `h_{t−1}` ([`Io::rh`]), `pad4(H)` values, so `h` (`P` state words) is written
//! only after every unit has read `h_{t−1}`.

#[cfg(feature = "f32")]
use crate::activation::Math;
#[cfg(feature = "f32")]
use crate::cell::Gate;
use crate::cell::Io;
#[cfg(all(feature = "lstm-peephole", feature = "f32"))]
use crate::cell::Peep;
#[cfg(all(feature = "f32", any(feature = "lstm-clip", feature = "lstm-proj")))]
use crate::kernel::le_f32;
#[cfg(all(feature = "lstm-proj", any(feature = "int8", feature = "int16")))]
use crate::kernel::Rows;
use crate::model::LayerDesc;
#[cfg(any(feature = "int8", feature = "int16"))]
use crate::{
    activation::{sigmoid_q, tanh_q},
    cell::IntGate,
    fxp::sat_i32,
    kernel::{le_i16, le_i32, IntKernel},
};
#[cfg(all(feature = "lstm-proj", any(feature = "int8", feature = "int16")))]
use crate::{fxp::sat_i16, kernel::le_requant, model::pad4};

/// `round(p·c / 2^(p_frac+3))`: peephole contribution to a Q.12 pre-activation.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(always)]
fn peep(p: i16, c: i32, p_frac: u32) -> i32 {
    // p_frac ≤ 15 (validated; masked anyway) → shift in 3..=18; |p·c| < 2^46.
    let s = (p_frac & 15) + 3;
    let v = (p as i64).wrapping_mul(c as i64);
    sat_i32(v.wrapping_add(1 << (s - 1)) >> s)
}

/// `round(a·b / 2^15)` in i64, unsaturated.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(always)]
fn mul_q15_wide(a: i32, b: i16) -> i64 {
    (a as i64).wrapping_mul(b as i64).wrapping_add(1 << 14) >> 15
}

/// One unit's update from its four pre-activations `[i, f, g, o]` (Q.12), peephole
/// weights `[p_i, p_f, p_o]` (zeros without peepholes) and the cell clip (Q16.15, `0` =
/// none): the module equations; returns `m_j` (Q0.15). The products `i·g` and
/// `o·tanh(c')` are below 2^30 in magnitude, so they are computed in `i32`: the same
/// integers as the `i64` forms of src/DESIGN.md.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(always)]
fn unit(c_j: &mut i32, pre: [i32; 4], p: Option<[i16; 3]>, p_frac: u32, clip: i32) -> i32 {
    let [mut pre_i, mut pre_f, pre_g, mut pre_o] = pre;
    let c = *c_j;
    if let Some([p_i, p_f, _]) = p {
        pre_i = pre_i.saturating_add(peep(p_i, c, p_frac));
        pre_f = pre_f.saturating_add(peep(p_f, c, p_frac));
    }
    let i = sigmoid_q(pre_i);
    let f = sigmoid_q(pre_f);
    let g = tanh_q(pre_g);
    // |f·c/2^15| < 2^31, |i·g/2^15| ≤ 2^15: the i64 sum cannot overflow.
    let ig = ((g as i32) * (i as i32) + (1 << 14)) >> 15;
    let mut c_new = sat_i32(mul_q15_wide(c, f).wrapping_add(ig as i64));
    if clip > 0 {
        // clip ∈ (0, i32::MAX] (validated): −clip cannot overflow
        c_new = c_new.max(clip.wrapping_neg()).min(clip);
    }
    if let Some([_, _, p_o]) = p {
        pre_o = pre_o.saturating_add(peep(p_o, c_new, p_frac));
    }
    let o = sigmoid_q(pre_o);
    *c_j = c_new;
    // round_shr(c', 3) without the i64: ⌊c'/8⌋ + bit 2 of c' (round half up).
    let t = tanh_q((c_new >> 3) + ((c_new >> 2) & 1));
    ((t as i32) * (o as i32) + (1 << 14)) >> 15
}

/// One integer step (see the module equations): [`step_int_plain`], `step_int_peep`
/// (feature `lstm-peephole`), `step_int_proj` (feature `lstm-proj`, with or without
/// peepholes) or `step_int_clip` (feature `lstm-clip`; the peephole and projection copies
/// apply a clip too). Without the feature a layer needs, the loader rejects the model and
/// this does nothing for it.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline]
pub(crate) fn step_int<K: IntKernel>(l: &LayerDesc<'_>, peepholes: bool, io: Io<'_>) {
    if l.proj_size != 0 {
        #[cfg(feature = "lstm-proj")]
        step_int_proj::<K>(l, peepholes, io)
    } else if peepholes {
        #[cfg(feature = "lstm-peephole")]
        step_int_peep::<K>(l, io)
    } else if !l.cell_clip.is_empty() {
        #[cfg(feature = "lstm-clip")]
        step_int_clip::<K>(l, io)
    } else {
        step_int_plain::<K>(l, io)
    }
}

/// One integer step without peepholes, projection or clip (the common case: its own copy,
/// without their code). Callers check `l.proj_size == 0 && l.cell_clip.is_empty()`.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(never)]
pub(crate) fn step_int_plain<K: IntKernel>(l: &LayerDesc<'_>, io: Io<'_>) {
    step_int_body::<K, false, false, false>(l, io)
}

/// One integer step with a cell clip (TFLite's LSTMs; feature `lstm-clip`): its own copy,
/// so that the plain step has no clip test in its unit loop (+3 % instructions per step on
/// the M4F) and firmware without clipped models does not carry it.
#[cfg(all(feature = "lstm-clip", any(feature = "int8", feature = "int16")))]
#[inline(never)]
fn step_int_clip<K: IntKernel>(l: &LayerDesc<'_>, io: Io<'_>) {
    step_int_body::<K, false, false, true>(l, io)
}

/// One integer step with peepholes (and a clip if the layer has one).
#[cfg(all(feature = "lstm-peephole", any(feature = "int8", feature = "int16")))]
#[inline(never)]
fn step_int_peep<K: IntKernel>(l: &LayerDesc<'_>, io: Io<'_>) {
    step_int_body::<K, true, false, true>(l, io)
}

/// One integer step with projection (and peepholes if the layer has them).
#[cfg(all(feature = "lstm-proj", any(feature = "int8", feature = "int16")))]
#[inline(never)]
fn step_int_proj<K: IntKernel>(l: &LayerDesc<'_>, peepholes: bool, io: Io<'_>) {
    if peepholes {
        #[cfg(feature = "lstm-peephole")]
        step_int_body::<K, true, true, true>(l, io)
    } else {
        step_int_body::<K, false, true, true>(l, io)
    }
}

/// One integer step (see the module equations): blocks of four units (the last one
/// shorter), each gate's rows of a block in one pass of the row kernels
/// ([`IntGate::at`]), then the block's units one by one; `m` goes to `h` directly, or with
/// `PROJ` to the scratch `io.rh` (packed, zero-padded) and then through `W_hr` to `h`.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(always)]
fn step_int_body<K: IntKernel, const PEEPHOLES: bool, const PROJ: bool, const CLIP: bool>(
    l: &LayerDesc<'_>,
    io: Io<'_>,
) {
    let peepholes = PEEPHOLES;
    let Io { x, h, rh, hs, cs } = io;
    // (an array literal, not `map`: built in place, no copy)
    let gates = [
        IntGate::new::<K>(l, 0, x, h),
        IntGate::new::<K>(l, 1, x, h),
        IntGate::new::<K>(l, 2, x, h),
        IntGate::new::<K>(l, 3, x, h),
    ];
    let hidden = l.hidden_size as usize;
    let p_frac = l.p_frac as u32;
    // 0 without a clip (validated positive when present); a constant 0 in the plain copy
    let clip = if CLIP { le_i32(l.cell_clip) } else { 0 };
    // Units j..j+n: updates c4, returns their m (zeros past n).
    let block = |j: usize, c4: &mut [i32]| -> [i32; 4] {
        let n = c4.len();
        let mut pre = [[0i32; 4]; 4];
        for (p, g) in pre.iter_mut().zip(&gates) {
            *p = g.sum_at::<K>(j, n);
        }
        // the block's peephole weights (gates i, f, o), read outside the unit loop
        let mut pw = [[0i16; 3]; 4];
        if peepholes {
            for (u, w) in pw.iter_mut().enumerate().take(n) {
                for (k, w) in w.iter_mut().enumerate() {
                    *w = le_i16(l.peephole.get(2 * (k * hidden + j + u)..).unwrap_or(&[]));
                }
            }
        }
        let mut m = [0i32; 4];
        for (u, (m_j, c_j)) in m.iter_mut().zip(c4.iter_mut()).enumerate() {
            let pre_u = [pre[0][u], pre[1][u], pre[2][u], pre[3][u]];
            *m_j = unit(c_j, pre_u, peepholes.then_some(pw[u]), p_frac, clip);
        }
        m
    };
    if PROJ {
        #[cfg(feature = "lstm-proj")]
        {
            // two scratch words (four packed m values) per block of four units
            for (j, (m2, c4)) in rh.chunks_mut(2).zip(cs.chunks_mut(4)).enumerate() {
                let [m0, m1, m2_, m3] = block(4 * j, c4);
                let pack = |lo: i32, hi: i32| (lo as u16 as u32) | (hi as u16 as u32) << 16;
                for (w, v) in m2.iter_mut().zip([pack(m0, m1), pack(m2_, m3)]) {
                    *w = v;
                }
            }
            project_int::<K>(l, rh, hs);
        }
    } else {
        // (the block's units written straight to h, as `block` does to its array)
        let _ = (rh, block);
        let mut j = 0;
        for (h4, c4) in hs.chunks_mut(4).zip(cs.chunks_mut(4)) {
            let n = h4.len().min(c4.len());
            let mut pre = [[0i32; 4]; 4];
            for (p, g) in pre.iter_mut().zip(&gates) {
                *p = g.sum_at::<K>(j, n);
            }
            let mut pw = [[0i16; 3]; 4];
            if peepholes {
                for (u, w) in pw.iter_mut().enumerate().take(n) {
                    for (k, w) in w.iter_mut().enumerate() {
                        *w = le_i16(l.peephole.get(2 * (k * hidden + j + u)..).unwrap_or(&[]));
                    }
                }
            }
            for (u, (h_j, c_j)) in h4.iter_mut().zip(c4.iter_mut()).enumerate() {
                let u = u & 3;
                let pre_u = [pre[0][u], pre[1][u], pre[2][u], pre[3][u]];
                *h_j = unit(c_j, pre_u, peepholes.then_some(pw[u]), p_frac, clip);
            }
            j += 4;
        }
    }
}

/// `h_p = sat_i16(rq_hr[p].apply(W_hr[p]·m))` for every output `p` (`m` packed, `pad4(H)`
/// values).
#[cfg(all(feature = "lstm-proj", any(feature = "int8", feature = "int16")))]
#[inline(never)]
fn project_int<K: IntKernel>(l: &LayerDesc<'_>, m: &[u32], hs: &mut [i32]) {
    let row = pad4(l.hidden_size as usize).wrapping_mul(K::WEIGHT_BYTES);
    let rows = Rows::new(l.w_hr, row).zip(l.rq_hr.chunks_exact(crate::fxp::Requant::BYTES));
    for (h_p, (w, rq)) in hs.iter_mut().zip(rows) {
        // no bias: an empty slice reads as 0
        *h_p = sat_i16(K::pre(w, m, &[], le_requant(rq))) as i32;
    }
}

/// One f32 step (see the module equations): blocks of four units, the four gates' rows of
/// a block from one pass over `x` and `h` each ([`Gate::sum4`]), then the block's units.
/// Without the feature `lstm-peephole` the peephole terms are not compiled (the loader
/// rejects such a model). A layer with a clip or a projection goes to `step_f32_ext`.
#[cfg(feature = "f32")]
#[cfg_attr(not(feature = "lstm-peephole"), allow(unused_mut))]
#[inline(never)]
pub(crate) fn step_f32<M: Math>(l: &LayerDesc<'_>, peepholes: bool, io: Io<'_>) {
    #[cfg(any(feature = "lstm-clip", feature = "lstm-proj"))]
    if l.proj_size != 0 || !l.cell_clip.is_empty() {
        return step_f32_ext::<M>(l, peepholes, io);
    }
    let gates = [
        Gate::f32(l, 0, io.x, io.h),
        Gate::f32(l, 1, io.x, io.h),
        Gate::f32(l, 2, io.x, io.h),
        Gate::f32(l, 3, io.x, io.h),
    ];
    let Io { hs, cs, .. } = io;
    #[cfg(feature = "lstm-peephole")]
    let (mut p_i, mut p_f, mut p_o) = (Peep::new(l, 0, 4), Peep::new(l, 1, 4), Peep::new(l, 2, 4));
    #[cfg(not(feature = "lstm-peephole"))]
    let _ = peepholes;
    let mut j = 0;
    for (h4, c4) in hs.chunks_mut(4).zip(cs.chunks_mut(4)) {
        let [pi, pf, pg, po] = [
            gates[0].sum4(j),
            gates[1].sum4(j),
            gates[2].sum4(j),
            gates[3].sum4(j),
        ];
        for (u, (h_j, c_j)) in h4.iter_mut().zip(c4.iter_mut()).enumerate() {
            let u = u & 3;
            let c = f32::from_bits(*c_j as u32);
            let (mut pre_i, mut pre_f, pre_g, mut pre_o) = (pi[u], pf[u], pg[u], po[u]);
            #[cfg(feature = "lstm-peephole")]
            if peepholes {
                pre_i += p_i.next_f32() * c;
                pre_f += p_f.next_f32() * c;
            }
            let c_new = M::sigmoid(pre_f) * c + M::sigmoid(pre_i) * M::tanh(pre_g);
            #[cfg(feature = "lstm-peephole")]
            if peepholes {
                pre_o += p_o.next_f32() * c_new;
            }
            *c_j = c_new.to_bits() as i32;
            *h_j = (M::sigmoid(pre_o) * M::tanh(c_new)).to_bits() as i32;
        }
        j += 4;
    }
}

/// One f32 step with a clip or a projection (see the module equations): out of line of
/// [`step_f32`], whose loop stays as it was without them. Without `lstm-proj` the
/// projection is not compiled (the loader rejects such a model).
#[cfg(all(feature = "f32", any(feature = "lstm-clip", feature = "lstm-proj")))]
#[cfg_attr(not(feature = "lstm-peephole"), allow(unused_mut))]
#[inline(never)]
fn step_f32_ext<M: Math>(l: &LayerDesc<'_>, peepholes: bool, io: Io<'_>) {
    // the hidden product reads h: `P` wide with a projection
    let hw = l.h_len();
    let Io { x, h, rh, hs, cs } = io;
    let gates = [
        Gate::f32_with(l, 0, x, h, hw),
        Gate::f32_with(l, 1, x, h, hw),
        Gate::f32_with(l, 2, x, h, hw),
        Gate::f32_with(l, 3, x, h, hw),
    ];
    #[cfg(feature = "lstm-peephole")]
    let (mut p_i, mut p_f, mut p_o) = (Peep::new(l, 0, 4), Peep::new(l, 1, 4), Peep::new(l, 2, 4));
    #[cfg(not(feature = "lstm-peephole"))]
    let _ = peepholes;
    // none: the loop's clamp is skipped (validated finite and positive when present)
    let clip = (!l.cell_clip.is_empty()).then(|| le_f32(l.cell_clip));
    let proj = l.proj_size != 0;
    if proj {
        // m goes to the scratch, its padding +0.0 for the projection's dot products
        for w in rh.iter_mut() {
            *w = 0;
        }
    }
    let mut j = 0;
    for c4 in cs.chunks_mut(4) {
        let [pi, pf, pg, po] = [
            gates[0].sum4(j),
            gates[1].sum4(j),
            gates[2].sum4(j),
            gates[3].sum4(j),
        ];
        for (u, c_j) in c4.iter_mut().enumerate() {
            let u = u & 3;
            let c = f32::from_bits(*c_j as u32);
            let (mut pre_i, mut pre_f, pre_g, mut pre_o) = (pi[u], pf[u], pg[u], po[u]);
            #[cfg(feature = "lstm-peephole")]
            if peepholes {
                pre_i += p_i.next_f32() * c;
                pre_f += p_f.next_f32() * c;
            }
            let mut c_new = M::sigmoid(pre_f) * c + M::sigmoid(pre_i) * M::tanh(pre_g);
            if let Some(clip) = clip {
                c_new = c_new.max(-clip).min(clip);
            }
            #[cfg(feature = "lstm-peephole")]
            if peepholes {
                pre_o += p_o.next_f32() * c_new;
            }
            *c_j = c_new.to_bits() as i32;
            let out = M::sigmoid(pre_o) * M::tanh(c_new);
            if proj {
                if let Some(m) = rh.get_mut(j + u) {
                    *m = out.to_bits();
                }
            } else if let Some(h_j) = hs.get_mut(j + u) {
                *h_j = out.to_bits() as i32;
            }
        }
        j += 4;
    }
    #[cfg(feature = "lstm-proj")]
    if proj {
        // h = W_hr·m, four rows per pass, each row one chain of fused multiply-adds
        let row = crate::model::pad4(l.hidden_size as usize).saturating_mul(4);
        let m: &[u32] = rh;
        for (p, h4) in hs.chunks_mut(4).enumerate() {
            let w4 = l
                .w_hr
                .get(p.saturating_mul(4).saturating_mul(row)..)
                .unwrap_or(&[]);
            let mut acc = [0.0f32; 4];
            crate::kernel::dot4_f32_fast(w4, row, m, &mut acc);
            for (h_p, a) in h4.iter_mut().zip(acc) {
                *h_p = a.to_bits() as i32;
            }
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
        // rational sigmoid/tanh errors ≤ 4.1e-7 per call: below the 4 printed decimals
        assert!(eh <= 6e-5 && ec <= 6e-5, "{h:?} {c:?}");
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

    /// Tolerance: |int − PyTorch| ≤ |int − f64 reference| + |reference − PyTorch|. The
    /// first term is the error budget `tests/core_numerics.rs` holds every integer cell to
    /// against the f64 reference (its module docs: int16 ≈ 1e-4 per step from input
    /// quantization, the activation table's ≤ 1.1 LSB and the Q0.15 rounding of h; int8 up to
    /// 0.4 % per pre-activation term from the per-row weight rounding), i.e. its `tolerance`:
    /// 1e-3 (int16) and 2e-2 (int8) on h, four times that on c (as there: c is not bounded
    /// by 1, it reaches 5.7 here). The second is ≤ 6e-5 (`reference_matches_pytorch`: PyTorch's 4 printed
    /// decimals plus f32 weights). Measured: int16 h 8.1e-5, c 1.2e-4; int8 h 1.1e-3,
    /// c 2.5e-3 (`cargo test -p tinyrnn --lib lstm::tests::int -- --nocapture`).
    #[test]
    fn int_matches_pytorch() {
        for (p, budget) in [(Precision::Int16, 1e-3), (Precision::Int8, 2e-2)] {
            let (h, c) = final_state(p, F32Math::Fast);
            let (eh, ec) = (max_abs_diff(&h, &TORCH_H), max_abs_diff(&c, &TORCH_C));
            println!("lstm candle {p:?}: h err {eh:.2e}, c err {ec:.2e}");
            assert!(eh <= budget + 6e-5, "{p:?} h {h:?} vs {TORCH_H:?}");
            assert!(ec <= 4.0 * budget + 6e-5, "{p:?} c {c:?} vs {TORCH_C:?}");
        }
    }
}

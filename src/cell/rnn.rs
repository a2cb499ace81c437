//! Elman RNN cell.
//!
//! ```text
//! PyTorch nn.RNN, one gate (rows 0..H):
//!   h_t = act(W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh),   act = tanh | relu
//!
//! integer (per unit j, DESIGN.md):
//!   pre  = rq_ih[j].apply(b_ih[j] ⊕ W_ih[j]·x) ⊕ rq_hh[j].apply(b_hh[j] ⊕ W_hh[j]·h)
//!          (⊕ saturating; pre in Q19.12 for tanh, in h_frac for relu)
//!   tanh: h_j = tanh_q(pre)                      Q0.15
//!   relu: h_j = sat_i16(max(pre, 0))             Q(15−h_frac).h_frac
//! ```

use crate::activation::{tanh_q, Math};
use crate::cell::{Gate, Io};
use crate::fxp::sat_i16;
use crate::kernel::IntKernel;
use crate::model::{LayerDesc, RnnAct};

/// One integer step (see the module equations).
pub(crate) fn step_int<K: IntKernel>(l: &LayerDesc<'_>, act: RnnAct, io: Io<'_>) {
    let mut gate = Gate::int::<K>(l, 0);
    match act {
        RnnAct::Tanh => {
            for h_j in io.hs.iter_mut() {
                let (a_ih, a_hh) = gate.next_int::<K>(io.x, io.h);
                *h_j = tanh_q(a_ih.saturating_add(a_hh)) as i32;
            }
        }
        RnnAct::Relu => {
            for h_j in io.hs.iter_mut() {
                let (a_ih, a_hh) = gate.next_int::<K>(io.x, io.h);
                *h_j = sat_i16(a_ih.saturating_add(a_hh).max(0)) as i32;
            }
        }
    }
}

/// One f32 step (see the module equations).
pub(crate) fn step_f32<M: Math>(l: &LayerDesc<'_>, act: RnnAct, io: Io<'_>) {
    let mut gate = Gate::f32(l, 0);
    for h_j in io.hs.iter_mut() {
        let (a_ih, a_hh) = gate.next_f32(io.x, io.h);
        let pre = a_ih + a_hh;
        let h = match act {
            RnnAct::Tanh => M::tanh(pre),
            RnnAct::Relu => pre.max(0.0),
        };
        *h_j = h.to_bits() as i32;
    }
}

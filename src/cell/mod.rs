//! The recurrent cells: one step of one layer, integer and `f32`.
//!
//! Every cell is computed unit by unit: for hidden unit `j`, the rows of all its gates
//! (`g·H + j` for gate `g`, PyTorch order) are evaluated — two dot products and, on the
//! integer paths, two requantizations per row — then `h_j` (and `c_j`) are updated in place.
//! There is no gate buffer: the previous `h` is read from the packed scratch copy
//! ([`Io::h`]) and from the state word of unit `j` before it is overwritten.
//!
//! The integer arithmetic is normative (docs/DESIGN.md, "Integer cell arithmetic"); the
//! equations are written above each cell in its module.

pub(crate) mod gru;
pub(crate) mod lstm;
pub(crate) mod rnn;

use crate::activation::Math;
use crate::kernel::{block, le_f32, le_i16, le_requant, pre_f32, IntKernel, Rows};
use crate::model::{pad4, CellKind, LayerDesc};

/// The operands of one layer step.
pub(crate) struct Io<'s> {
    /// The layer input, packed (int: two `i16` per word; f32: bits), padded with zeros.
    pub x: &'s [u32],
    /// `h_{t−1}`, packed like `x`.
    pub h: &'s [u32],
    /// Scratch for `r ⊙ h` (reset-before GRU), at least `pad4(H)` elements.
    pub rh: &'s mut [u32],
    /// State words of `h` (`H`): read as `h_{t−1}`, overwritten with `h_t`.
    pub hs: &'s mut [i32],
    /// State words of `c` (`H`, LSTM only; empty otherwise).
    pub cs: &'s mut [i32],
}

/// The rows of one gate, yielded unit by unit: weights, biases and requant records of the
/// input and the hidden product.
pub(crate) struct Gate<'a> {
    w_ih: Rows<'a>,
    w_hh: Rows<'a>,
    b_ih: Rows<'a>,
    b_hh: Rows<'a>,
    rq_ih: Rows<'a>,
    rq_hh: Rows<'a>,
}

impl<'a> Gate<'a> {
    /// Gate `g` of an integer layer `l`.
    #[inline]
    pub(crate) fn int<K: IntKernel>(l: &LayerDesc<'a>, g: usize) -> Self {
        Self::new(l, g, K::WEIGHT_BYTES, K::BIAS_BYTES)
    }

    /// Gate `g` of an f32 layer `l`.
    #[inline]
    pub(crate) fn f32(l: &LayerDesc<'a>, g: usize) -> Self {
        Self::new(l, g, 4, 4)
    }

    /// Gate `g` of layer `l`, with `wb` bytes per weight and `bb` bytes per bias.
    #[inline]
    fn new(l: &LayerDesc<'a>, g: usize, wb: usize, bb: usize) -> Self {
        let h = l.hidden_size as usize;
        // Bounded by MAX_DIM: ≤ 256 · 1024 bytes; saturating only to avoid a panic path.
        let row_ih = pad4(l.input_size as usize).saturating_mul(wb);
        let row_hh = pad4(h).saturating_mul(wb);
        let rq = crate::fxp::Requant::BYTES;
        Gate {
            w_ih: Rows::new(block(l.w_ih, g, h.saturating_mul(row_ih)), row_ih),
            w_hh: Rows::new(block(l.w_hh, g, h.saturating_mul(row_hh)), row_hh),
            b_ih: Rows::new(block(l.b_ih, g, h.saturating_mul(bb)), bb),
            b_hh: Rows::new(block(l.b_hh, g, h.saturating_mul(bb)), bb),
            rq_ih: Rows::new(block(l.rq_ih, g, h.saturating_mul(rq)), rq),
            rq_hh: Rows::new(block(l.rq_hh, g, h.saturating_mul(rq)), rq),
        }
    }

    /// The next unit's `(pre_ih, pre_hh)` in the target format (Q.12, or `h_frac` for a ReLU
    /// RNN): `rq_ih.apply(b_ih ⊕ W_ih·x)`, `rq_hh.apply(b_hh ⊕ W_hh·h)`.
    #[inline(always)]
    pub(crate) fn next_int<K: IntKernel>(&mut self, x: &[u32], h: &[u32]) -> (i32, i32) {
        let ih = match (self.w_ih.next(), self.b_ih.next(), self.rq_ih.next()) {
            (Some(w), Some(b), Some(rq)) => K::pre(w, x, b, le_requant(rq)),
            _ => 0,
        };
        let hh = match (self.w_hh.next(), self.b_hh.next(), self.rq_hh.next()) {
            (Some(w), Some(b), Some(rq)) => K::pre(w, h, b, le_requant(rq)),
            _ => 0,
        };
        (ih, hh)
    }

    /// The next unit's `(b_ih + W_ih·x, b_hh + W_hh·h)` in f32.
    #[inline(always)]
    pub(crate) fn next_f32(&mut self, x: &[u32], h: &[u32]) -> (f32, f32) {
        let ih = match (self.w_ih.next(), self.b_ih.next()) {
            (Some(w), Some(b)) => pre_f32(w, x, le_f32(b)),
            _ => 0.0,
        };
        let hh = match (self.w_hh.next(), self.b_hh.next()) {
            (Some(w), Some(b)) => pre_f32(w, h, le_f32(b)),
            _ => 0.0,
        };
        (ih, hh)
    }
}

/// Peephole weights of one gate (`i`, `f` or `o`), yielded unit by unit.
pub(crate) struct Peep<'a>(Rows<'a>);

impl<'a> Peep<'a> {
    /// Gate `k` (0 = i, 1 = f, 2 = o) of layer `l`'s peepholes, `ab` bytes per value.
    /// Empty (yields nothing) if the layer has none.
    pub(crate) fn new(l: &LayerDesc<'a>, k: usize, ab: usize) -> Self {
        let h = l.hidden_size as usize;
        Peep(Rows::new(
            block(l.peephole, k, h.saturating_mul(ab)),
            ab.max(1),
        ))
    }
    /// The next unit's `i16` weight (0 if none).
    #[inline(always)]
    pub(crate) fn next_i16(&mut self) -> i16 {
        self.0.next().map_or(0, le_i16)
    }
    /// The next unit's `f32` weight (0.0 if none).
    #[inline(always)]
    pub(crate) fn next_f32(&mut self) -> f32 {
        self.0.next().map_or(0.0, le_f32)
    }
}

/// One integer step of layer `l`.
pub(crate) fn step_int<K: IntKernel>(l: &LayerDesc<'_>, io: Io<'_>) {
    match l.cell {
        CellKind::Rnn(act) => rnn::step_int::<K>(l, act, io),
        CellKind::Gru {
            linear_before_reset,
        } => gru::step_int::<K>(l, linear_before_reset, io),
        CellKind::Lstm { peepholes } => lstm::step_int::<K>(l, peepholes, io),
    }
}

/// One f32 step of layer `l`.
pub(crate) fn step_f32<M: Math>(l: &LayerDesc<'_>, io: Io<'_>) {
    match l.cell {
        CellKind::Rnn(act) => rnn::step_f32::<M>(l, act, io),
        CellKind::Gru {
            linear_before_reset,
        } => gru::step_f32::<M>(l, linear_before_reset, io),
        CellKind::Lstm { peepholes } => lstm::step_f32::<M>(l, peepholes, io),
    }
}

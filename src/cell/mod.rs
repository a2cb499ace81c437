//! The recurrent cells: one step of one layer, integer and `f32`.
//!
//! Every cell is computed unit by unit: for hidden unit `j`, the rows of all its gates
//! (`g·H + j` for gate `g`, PyTorch order) are evaluated — two dot products and, on the
//! integer paths, two requantizations per row — then `h_j` (and `c_j`) are updated in place.
//! The integer paths take blocks of four units ([`IntGate::at`]: the rows `j..j+4` of a
//! gate are consecutive, so one kernel pass reads `x` once for four rows), the last block
//! shorter; the integers are the same as unit by unit.
//! There is no gate buffer: the previous `h` is read from the packed scratch copy
//! ([`Io::h`]) and from the state word of unit `j` before it is overwritten.
//!
//! The integer arithmetic is normative (src/DESIGN.md, "Integer cell arithmetic"); the
//! equations are written above each cell in its module.

//! Each cell module is compiled only with its cargo feature (`rnn`, `gru`, `lstm`), and in
//! it the integer code only with `int8` or `int16`, the f32 code only with `f32` (the crate
//! docs list the features); the loader rejects a blob whose code is left out.

#[cfg(feature = "gru")]
pub(crate) mod gru;
#[cfg(feature = "lstm")]
pub(crate) mod lstm;
#[cfg(feature = "rnn")]
pub(crate) mod rnn;

#[cfg(feature = "f32")]
use crate::activation::Math;
use crate::kernel::block;
#[cfg(feature = "f32")]
use crate::kernel::dot4_f32_fast;
#[cfg(all(feature = "lstm-peephole", feature = "f32"))]
use crate::kernel::{le_f32, Rows};
#[cfg(any(feature = "int8", feature = "int16"))]
use crate::kernel::{le_requant, IntKernel};
#[cfg(any(feature = "f32", feature = "int8", feature = "int16"))]
use crate::model::CellKind;
use crate::model::{pad4, LayerDesc};

/// The operands of one layer step.
pub(crate) struct Io<'s> {
    /// The layer input, packed (int: two `i16` per word; f32: bits), padded with zeros.
    pub x: &'s [u32],
    /// `h_{t−1}`, packed like `x`.
    pub h: &'s [u32],
    /// Scratch for `r ⊙ h` (reset-before GRU) or `m = o ⊙ tanh c` (projected LSTM), at
    /// least `pad4(H)` elements.
    #[cfg_attr(not(any(feature = "gru", feature = "lstm-proj")), allow(dead_code))]
    pub rh: &'s mut [u32],
    /// State words of `h` (`H`, or `P` for a projected LSTM): read as `h_{t−1}`,
    /// overwritten with `h_t`.
    pub hs: &'s mut [i32],
    /// State words of `c` (`H`, LSTM only; empty otherwise).
    #[cfg_attr(not(feature = "lstm"), allow(dead_code))]
    pub cs: &'s mut [i32],
}

/// The rows of one gate of an f32 layer, addressed by block of four units: weights and
/// biases of the input and the hidden product.
///
/// Each row's pre-activation is one chain of fused multiply-adds ([`dot4_f32_fast`]):
/// `sum4` starts from `b_ih + b_hh` and runs over `x`, then over `h`; `pair4` keeps the two
/// products apart (`b_ih + W_ih·x`, `b_hh + W_hh·h`) for the GRU's `n` gate. Four rows share
/// one pass over each vector; the bits are those of one row at a time.
#[cfg(feature = "f32")]
pub(crate) struct Gate<'a> {
    w_ih: &'a [u8],
    w_hh: &'a [u8],
    b_ih: &'a [u8],
    b_hh: &'a [u8],
    row_ih: usize,
    row_hh: usize,
    x: &'a [u32],
    h: &'a [u32],
    /// Both products of a block in one assembly call (`None`: unaligned weights).
    #[cfg(tinyrnn_fpu)]
    fast: Option<crate::kernel::dsp::GateF32<'a>>,
}

/// Four f32 values from bytes `4j ..` of `b` (0.0 where `b` ends).
#[cfg(feature = "f32")]
#[inline(always)]
fn bias4(b: &[u8], j: usize) -> [f32; 4] {
    let b = b.get(4 * j..).unwrap_or(&[]);
    // a whole block: four fixed-size reads (no copy loop)
    if let Some(w) = b.first_chunk::<16>() {
        let f = |k: usize| f32::from_le_bytes([w[k], w[k + 1], w[k + 2], w[k + 3]]);
        return [f(0), f(4), f(8), f(12)];
    }
    let mut out = [0.0f32; 4];
    for (o, w) in out.iter_mut().zip(b.as_chunks::<4>().0) {
        *o = f32::from_le_bytes(*w);
    }
    out
}

#[cfg(feature = "f32")]
impl<'a> Gate<'a> {
    /// Gate `g` of an f32 layer `l`, multiplying `x` and `h`.
    #[inline]
    pub(crate) fn f32(l: &LayerDesc<'a>, g: usize, x: &'a [u32], h: &'a [u32]) -> Self {
        Self::f32_with(l, g, x, h, l.hidden_size as usize)
    }

    /// Gate `g` of an f32 layer `l` whose hidden product reads `hw` values of `h` (`P` for
    /// a projected LSTM).
    #[inline]
    pub(crate) fn f32_with(
        l: &LayerDesc<'a>,
        g: usize,
        x: &'a [u32],
        h: &'a [u32],
        hw: usize,
    ) -> Self {
        let units = l.hidden_size as usize;
        // Bounded by MAX_DIM: ≤ 256 · 1024 bytes; saturating only to avoid a panic path.
        let row_ih = pad4(l.input_size as usize).saturating_mul(4);
        let row_hh = pad4(hw).saturating_mul(4);
        let w_ih = block(l.w_ih, g, units.saturating_mul(row_ih));
        let w_hh = block(l.w_hh, g, units.saturating_mul(row_hh));
        Gate {
            w_ih,
            w_hh,
            b_ih: block(l.b_ih, g, units.saturating_mul(4)),
            b_hh: block(l.b_hh, g, units.saturating_mul(4)),
            row_ih,
            row_hh,
            x,
            h,
            #[cfg(tinyrnn_fpu)]
            fast: crate::kernel::dsp::GateF32::new(w_ih, x, row_ih, w_hh, h, row_hh, units),
        }
    }

    /// The weights of units `j ..` (at most four rows are read).
    #[inline(always)]
    fn rows(w: &'a [u8], row: usize, j: usize) -> &'a [u8] {
        w.get(j.saturating_mul(row)..).unwrap_or(&[])
    }

    /// `b_ih + b_hh + W_ih·x + W_hh·h` for units `j .. j+4` (units past the gate: garbage
    /// the caller ignores).
    #[inline(always)]
    pub(crate) fn sum4(&self, j: usize) -> [f32; 4] {
        let (bi, bh) = (bias4(self.b_ih, j), bias4(self.b_hh, j));
        let mut acc = [bi[0] + bh[0], bi[1] + bh[1], bi[2] + bh[2], bi[3] + bh[3]];
        #[cfg(tinyrnn_fpu)]
        if let Some(g) = &self.fast {
            if g.block(j, &mut acc) {
                return acc;
            }
        }
        let (x, h) = (self.x, self.h);
        dot4_f32_fast(
            Self::rows(self.w_ih, self.row_ih, j),
            self.row_ih,
            x,
            &mut acc,
        );
        dot4_f32_fast(
            Self::rows(self.w_hh, self.row_hh, j),
            self.row_hh,
            h,
            &mut acc,
        );
        acc
    }

    /// `(b_ih + W_ih·x, b_hh + W_hh·h)` for units `j .. j+4`.
    #[cfg(feature = "gru")]
    #[inline(always)]
    pub(crate) fn pair4(&self, j: usize) -> ([f32; 4], [f32; 4]) {
        let (x, h) = (self.x, self.h);
        let (mut ih, mut hh) = (bias4(self.b_ih, j), bias4(self.b_hh, j));
        dot4_f32_fast(
            Self::rows(self.w_ih, self.row_ih, j),
            self.row_ih,
            x,
            &mut ih,
        );
        dot4_f32_fast(
            Self::rows(self.w_hh, self.row_hh, j),
            self.row_hh,
            h,
            &mut hh,
        );
        (ih, hh)
    }
}

/// The rows of one gate of an integer layer, addressed by unit: weights, biases and requant
/// records of the input and the hidden product, and the two vectors they multiply.
#[derive(Clone, Copy)]
#[cfg(any(feature = "int8", feature = "int16"))]
pub(crate) struct IntGate<'a> {
    w_ih: &'a [u8],
    w_hh: &'a [u8],
    b_ih: &'a [u8],
    b_hh: &'a [u8],
    rq_ih: &'a [u8],
    rq_hh: &'a [u8],
    row_ih: usize,
    row_hh: usize,
    x: &'a [u32],
    h: &'a [u32],
    /// int8 with the DSP extension: the gate checked once for the fused assembly.
    #[cfg(all(
        feature = "int8",
        any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))
    ))]
    g8: Option<crate::kernel::dsp::Gate8<'a>>,
}

#[cfg(any(feature = "int8", feature = "int16"))]
impl<'a> IntGate<'a> {
    /// Gate `g` of an integer layer `l`, multiplying `x` (input product) and `h` (hidden
    /// product). Not inlined: one copy for every cell.
    #[inline(never)]
    pub(crate) fn new<K: IntKernel>(
        l: &LayerDesc<'a>,
        g: usize,
        x: &'a [u32],
        h: &'a [u32],
    ) -> Self {
        // Validated dimensions (≤ MAX_DIM) keep every product far below 2^32; `wrapping_mul`
        // only spells out that no check is needed (an absurd size gives empty slices).
        let hidden = l.hidden_size as usize;
        let (wb, bb) = (K::WEIGHT_BYTES, K::BIAS_BYTES);
        let row_ih = pad4(l.input_size as usize).wrapping_mul(wb);
        // the hidden product reads h: `P` wide for a projected LSTM
        let row_hh = pad4(l.h_len()).wrapping_mul(wb);
        let rq = crate::fxp::Requant::BYTES;
        let (w_ih, w_hh) = (
            block(l.w_ih, g, hidden.wrapping_mul(row_ih)),
            block(l.w_hh, g, hidden.wrapping_mul(row_hh)),
        );
        let (b_ih, b_hh) = (
            block(l.b_ih, g, hidden.wrapping_mul(bb)),
            block(l.b_hh, g, hidden.wrapping_mul(bb)),
        );
        let (rq_ih, rq_hh) = (
            block(l.rq_ih, g, hidden.wrapping_mul(rq)),
            block(l.rq_hh, g, hidden.wrapping_mul(rq)),
        );
        IntGate {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            rq_ih,
            rq_hh,
            row_ih,
            row_hh,
            x,
            h,
            #[cfg(all(
                feature = "int8",
                any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))
            ))]
            g8: if K::WEIGHT_BYTES == 1 {
                crate::kernel::dsp::Gate8::new(w_ih, x, b_ih, rq_ih, w_hh, h, b_hh, rq_hh)
            } else {
                None
            },
        }
    }

    /// Units `j..j+n` (`n ≤ 4`): their `pre_ih` then their `pre_hh` in the target format
    /// (Q.12, or `h_frac` for a ReLU RNN), `rq_ih.apply(b_ih ⊕ W_ih·x)` and
    /// `rq_hh.apply(b_hh ⊕ W_hh·h)`, zeros past `n`. Four rows per kernel pass when `n = 4`
    /// (int8 with the DSP extension: both products, biases and requantization in one call of
    /// the assembly). Not inlined: one copy serves every gate of every cell.
    #[inline(never)]
    pub(crate) fn at<K: IntKernel>(&self, j: usize, n: usize) -> [i32; 8] {
        #[cfg(all(
            feature = "int8",
            any(tinyrnn_dsp, all(target_arch = "arm", target_feature = "dsp"))
        ))]
        if n == 4 {
            if let Some(p) = self.g8.as_ref().and_then(|g| g.block(j)) {
                return p;
            }
        }
        if n == 4 {
            return self.block4::<K>(j);
        }
        self.partial::<K>(j, n)
    }

    /// [`at`](Self::at) for a full block through `IntKernel::pre4x2` (int8 on a DSP target:
    /// only if the fused assembly refused the gate, never for a validated model).
    #[inline(never)]
    fn block4<K: IntKernel>(&self, j: usize) -> [i32; 8] {
        let (bb, rq) = (K::BIAS_BYTES, crate::fxp::Requant::BYTES);
        let (row_ih, row_hh) = (self.row_ih, self.row_hh);
        let from = |s: &'a [u8], k: usize| s.get(k..).unwrap_or(&[]);
        K::pre4x2(
            from(self.w_ih, j * row_ih),
            self.x,
            from(self.b_ih, j * bb),
            from(self.rq_ih, j * rq),
            from(self.w_hh, j * row_hh),
            self.h,
            from(self.b_hh, j * bb),
            from(self.rq_hh, j * rq),
        )
    }

    /// [`at`](Self::at) for a last block of `n < 4` units (`H mod 4`), row by row.
    #[inline(never)]
    fn partial<K: IntKernel>(&self, j: usize, n: usize) -> [i32; 8] {
        let (x, h) = (self.x, self.h);
        let (bb, rq) = (K::BIAS_BYTES, crate::fxp::Requant::BYTES);
        let (row_ih, row_hh) = (self.row_ih, self.row_hh);
        let from = |s: &'a [u8], k: usize| s.get(k..).unwrap_or(&[]);
        let mut out = [0; 8];
        let (a, b) = out.split_at_mut(4);
        for (u, (a, b)) in a.iter_mut().zip(b.iter_mut()).take(n).enumerate() {
            let j = j + u;
            *a = K::pre(
                from(self.w_ih, j * row_ih).get(..row_ih).unwrap_or(&[]),
                x,
                from(self.b_ih, j * bb),
                le_requant(from(self.rq_ih, j * rq)),
            );
            *b = K::pre(
                from(self.w_hh, j * row_hh).get(..row_hh).unwrap_or(&[]),
                h,
                from(self.b_hh, j * bb),
                le_requant(from(self.rq_hh, j * rq)),
            );
        }
        out
    }

    /// Units `j..j+n` (`n ≤ 4`): `pre_ih ⊕ pre_hh` (saturating), zeros past `n`.
    #[inline(always)]
    pub(crate) fn sum_at<K: IntKernel>(&self, j: usize, n: usize) -> [i32; 4] {
        let p = self.at::<K>(j, n);
        [0, 1, 2, 3].map(|u| p[u].saturating_add(p[u + 4]))
    }
}

/// The `pre_ih` and `pre_hh` halves of [`IntGate::at`]'s result.
#[cfg(all(feature = "gru", any(feature = "int8", feature = "int16")))]
#[inline(always)]
pub(crate) fn halves(p: [i32; 8]) -> ([i32; 4], [i32; 4]) {
    ([p[0], p[1], p[2], p[3]], [p[4], p[5], p[6], p[7]])
}

/// Peephole weights of one gate (`i`, `f` or `o`), yielded unit by unit.
#[cfg(all(feature = "lstm-peephole", feature = "f32"))]
pub(crate) struct Peep<'a>(Rows<'a>);

#[cfg(all(feature = "lstm-peephole", feature = "f32"))]
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
    /// The next unit's `f32` weight (0.0 if none).
    #[inline(always)]
    pub(crate) fn next_f32(&mut self) -> f32 {
        self.0.next().map_or(0.0, le_f32)
    }
}

/// One integer step of layer `l`. A cell whose feature is disabled does nothing: the loader
/// never accepts such a model ([`CellKind::enabled`]).
#[cfg(any(feature = "int8", feature = "int16"))]
pub(crate) fn step_int<K: IntKernel>(l: &LayerDesc<'_>, io: Io<'_>) {
    #[allow(unreachable_patterns, clippy::match_single_binding)]
    match l.cell {
        #[cfg(feature = "rnn")]
        CellKind::Rnn(act) => rnn::step_int::<K>(l, act, io),
        #[cfg(feature = "gru")]
        CellKind::Gru {
            linear_before_reset,
        } => gru::step_int::<K>(l, linear_before_reset, io),
        #[cfg(feature = "lstm")]
        CellKind::Lstm { peepholes } => lstm::step_int::<K>(l, peepholes, io),
        _ => {}
    }
}

/// One f32 step of layer `l` (a disabled cell: as [`step_int`]).
#[cfg(feature = "f32")]
pub(crate) fn step_f32<M: Math>(l: &LayerDesc<'_>, io: Io<'_>) {
    #[allow(unreachable_patterns, clippy::match_single_binding)]
    match l.cell {
        #[cfg(feature = "rnn")]
        CellKind::Rnn(act) => rnn::step_f32::<M>(l, act, io),
        #[cfg(feature = "gru")]
        CellKind::Gru {
            linear_before_reset,
        } => gru::step_f32::<M>(l, linear_before_reset, io),
        #[cfg(feature = "lstm")]
        CellKind::Lstm { peepholes } => lstm::step_f32::<M>(l, peepholes, io),
        _ => {}
    }
}

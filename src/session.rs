//! [`Session`]: the recurrent state of one model and the step / output functions.
//!
//! A session owns all the memory inference needs, sized by two const parameters:
//! `STATE` `i32` words (≥ [`Model::state_len`]) and `SCRATCH` `u32` words
//! (≥ [`Model::scratch_len`]). Nothing is allocated; nothing panics.
//!
//! # Memory layout
//!
//! * State, per layer in order: `h[H]` (`h[P]` for an LSTM with projection) then, for an
//!   LSTM, `c[H]`. Integer models: `h` is the `i16` value in an `i32` word, `c` is Q16.15.
//!   f32 models: `f32::to_bits`.
//! * Then the pooling accumulators ([`Model::pool_words`]): `Max` one word per element
//!   (integer: the `i16` max, initially `i16::MIN`; f32: bits, initially `−∞`); `Sum` two
//!   words per element (`lo`, `hi` of an `i64` sum of the `i16` values, saturating — no
//!   overflow before 2^48 frames; f32: an `f64` sum); `Mean` the same plus a `u64` frame
//!   count (two words, saturating). The pooled vector is computed at output time: `Mean`
//!   `round(sum / n)` (ties up; exact for any length), `Sum` `sum` shifted to `pool_frac`
//!   (round to nearest, ties up) and saturated to `i16`; 0 before the first frame.
//! * Scratch, reused by every layer: the layer input `x` then `h_{t−1}`, each padded to a
//!   multiple of 4 elements (two `i16` per word on the integer paths, one `f32` per word on
//!   the f32 path), then `r ⊙ h` for a reset-before GRU or `m = o ⊙ tanh c` for a
//!   projected LSTM (`pad4(H)` values). A pre-net / hidden head op reads
//!   its input at the start of the scratch, writes its output after it, and moves it to
//!   the start (the next op's or layer 0's input, or the head's).
//! * A windowed model (a reverse / bidirectional layer, cargo feature `window`) keeps the
//!   same state words (one direction's `h`/`c` per layer, reused by the other direction at
//!   the decision point) and no pooling accumulators; its frames go into a caller-owned
//!   `Window` buffer (module `session::window`, cargo feature `window`: equations, RAM and
//!   latency; `step_window`, `output_window`, `classify_window`).
//!
//! # Input conversion (integer models)
//!
//! `x = (raw − offset)·scale` in f32 if the model has a normalization, then
//! [`quantize_f32`]`(x, layers[0].x_frac)`: IEEE basic operations
//! only, so bit-identical on every target.
//!
//! # Examples
//!
//! ```
//! # fn run(blob: &[u8]) -> tinyrnn::Result<()> {
//! use tinyrnn::{Model, Session};
//! let model = Model::from_blob(blob)?;
//! let mut s = Session::<'_, 64, 64>::new(&model)?;
//! for frame in [[0.1f32, 0.2], [0.3, -0.1]] {
//!     s.step(&frame)?;
//! }
//! let decision = s.classify()?;
//! # let _ = decision; Ok(()) }
//! ```

use crate::activation::F32Math;
#[cfg(feature = "f32")]
use crate::activation::{FastMath, Math};
#[cfg(any(feature = "int8", feature = "int16", feature = "f32"))]
use crate::cell::{self, Io};
use crate::dense;
use crate::error::{Buffer, Error, Result};
use crate::fxp::{dequantize, quantize_f32, round_shr, sat_i16};
#[cfg(feature = "int16")]
use crate::kernel::Int16;
#[cfg(feature = "int8")]
use crate::kernel::Int8;
use crate::kernel::{copy_words, le_i16, le_i32, pack_i16};
#[cfg(feature = "window")]
use crate::model::Direction;
use crate::model::{pad4, CellKind, LayerDesc, Model, NormDesc, OpDesc, Pool, Precision, RnnAct};
use crate::stream::Decision;

#[cfg(feature = "window")]
pub mod window;
#[cfg(feature = "window")]
pub use window::Window;

const STATE_CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Sets one layer's state words (`h`, then `c` for an LSTM) to its `h0`/`c0`, else zeros.
fn init_layer(l: &LayerDesc<'_>, words: &mut [i32], int: bool) {
    words.fill(0);
    let h = l.h_len();
    let (hs, cs) = words.split_at_mut(h.min(words.len()));
    if int {
        for (w, b) in hs.iter_mut().zip(l.h0.chunks_exact(2)) {
            *w = le_i16(b) as i32;
        }
    } else {
        for (w, b) in hs.iter_mut().zip(l.h0.chunks_exact(4)) {
            *w = le_i32(b);
        }
    }
    // c0: i32 Q16.15 (int) or f32 bits, 4 bytes either way.
    for (w, b) in cs.iter_mut().zip(l.c0.chunks_exact(4)) {
        *w = le_i32(b);
    }
}

/// State words of one layer: `h` ([`LayerDesc::h_size`]: `H`, or `P` for a projected
/// LSTM), then `c` (`H`) for an LSTM.
fn layer_words(l: &LayerDesc<'_>) -> usize {
    let h = l.hidden_size as usize;
    if matches!(l.cell, CellKind::Lstm { .. }) {
        l.h_len() + h
    } else {
        h
    }
}

/// Scratch elements after the packed `h_{t−1}` a layer's cell uses ([`cell::Io::rh`]):
/// `pad4(H)` (`r ⊙ h` of a reset-before GRU, `m` of a projected LSTM; unused otherwise).
fn rh_elems(l: &LayerDesc<'_>) -> usize {
    pad4(l.hidden_size as usize)
}

/// Elements per scratch word.
fn per_word(p: Precision) -> usize {
    if p.is_int() {
        2
    } else {
        1
    }
}

/// `raw`, normalized by `norm` if any.
fn normalized<'a>(frame: &'a [f32], norm: Option<&NormDesc<'a>>) -> impl Iterator<Item = f32> + 'a {
    let (off, sc) = norm.map_or((&[][..], &[][..]), |n| (n.offset, n.scale));
    let (mut off, mut sc) = (off.chunks_exact(4), sc.chunks_exact(4));
    frame.iter().map(move |&v| match (off.next(), sc.next()) {
        (Some(o), Some(s)) => (v - crate::kernel::le_f32(o)) * crate::kernel::le_f32(s),
        _ => v,
    })
}

/// `q` with `from` fractional bits re-expressed with `to` (round to nearest, ties up,
/// saturating).
pub(crate) fn rescale_q(q: i16, from: u32, to: u32) -> i16 {
    let (from, to) = (from & 15, to & 15);
    if to >= from {
        sat_i16((q as i32) << (to - from))
    } else {
        sat_i16(round_shr(q as i32, from - to))
    }
}

/// [`Error::TooLarge`] for a scratch of `capacity` words (out of line: never taken for a
/// session built by [`Session::new`]).
#[cfg(any(feature = "int8", feature = "int16"))]
#[cold]
#[inline(never)]
fn scratch_error(model: &Model<'_>, capacity: usize) -> Error {
    Error::TooLarge {
        buffer: Buffer::Scratch,
        needed: model.scratch_len(),
        capacity,
    }
}

/// Packs `i16` state words into scratch words (two per word, zero-padded). One
/// out-of-line copy for both calls of [`run_layers_int`]; the loop's three exits keep it
/// from being unrolled (it is a small share of a step).
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(never)]
fn pack_h(dst: &mut [u32], src: &[i32]) {
    let mut s = src.iter();
    let mut d = dst.iter_mut();
    for w in d.by_ref() {
        let Some(&lo) = s.next() else {
            *w = 0;
            break;
        };
        let lo = lo as u16 as u32;
        let Some(&hi) = s.next() else {
            *w = lo;
            break;
        };
        *w = lo | (hi as u16 as u32) << 16;
    }
    // the padding
    for w in d {
        *w = 0;
    }
}

/// Runs every layer of an integer model on `state` / `scratch`; layer 0's input is already
/// in the scratch. Only the int8 LSTM step without peepholes is called from here: every
/// other cell and precision goes through [`step_other`] (f32 models through
/// [`Session::run_layers_f32`]), so that the code an int8 LSTM step executes stays small.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(never)]
fn run_layers_int(
    model: &Model<'_>,
    layers: &[LayerDesc<'_>],
    state: &mut [i32],
    scratch: &mut [u32],
) -> Result<()> {
    let p = model.precision();
    let cap = scratch.len();
    let mut rest: &mut [i32] = state;
    let mut prev: Option<&[i32]> = None;
    for l in layers {
        let h = l.h_len();
        let Some((words, r)) = rest.split_at_mut_checked(layer_words(l)) else {
            return Err(scratch_error(model, cap));
        };
        rest = r;
        let (hs, cs) = words.split_at_mut(h.min(words.len()));
        let nx = pad4(l.input_size as usize) / 2;
        let nh = pad4(h) / 2;
        let Some((xw, sr)) = scratch.split_at_mut_checked(nx) else {
            return Err(scratch_error(model, cap));
        };
        let Some((hw, rh)) = sr.split_at_mut_checked(nh) else {
            return Err(scratch_error(model, cap));
        };
        if let Some(prev) = prev {
            pack_h(xw, prev);
        }
        pack_h(hw, hs);
        let rh_len = rh.len().min(rh_elems(l) / 2);
        let io = Io {
            x: xw,
            h: hw,
            rh: rh.get_mut(..rh_len).unwrap_or(&mut []),
            hs: &mut *hs,
            cs,
        };
        match (p, l.cell) {
            #[cfg(all(feature = "int8", feature = "lstm"))]
            (Precision::Int8, CellKind::Lstm { peepholes: false })
                if l.proj_size == 0 && l.cell_clip.is_empty() =>
            {
                cell::lstm::step_int_plain::<Int8>(l, io)
            }
            _ => step_other(p, l, io),
        }
        prev = Some(hs);
    }
    Ok(())
}

/// One integer layer step other than an int8 LSTM without peepholes, projection or clip (out of line of
/// [`run_layers_int`]). A precision whose feature is disabled does nothing: the loader
/// never accepts such a model.
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(never)]
fn step_other(p: Precision, l: &LayerDesc<'_>, io: Io<'_>) {
    match p {
        #[cfg(feature = "int8")]
        Precision::Int8 => cell::step_int::<Int8>(l, io),
        #[cfg(all(feature = "int16", not(feature = "f32")))]
        Precision::Int16 => cell::step_int::<Int16>(l, io),
        #[cfg(all(feature = "int16", feature = "f32"))]
        _ => cell::step_int::<Int16>(l, io),
        #[cfg(not(all(feature = "int16", feature = "f32")))]
        _ => {}
    }
}

/// [`Error::TooLarge`] for a scratch of `capacity` words (out of line).
#[cold]
#[inline(never)]
fn scratch_short(model: &Model<'_>, capacity: usize) -> Error {
    Error::TooLarge {
        buffer: Buffer::Scratch,
        needed: model.scratch_len(),
        capacity,
    }
}

/// One dense op on packed vectors (`x` → `y`) in the model's precision.
#[cfg(feature = "dense-net")]
#[allow(unused_variables)]
fn dense_op(
    p: Precision,
    math: F32Math,
    d: &crate::model::DenseOpDesc<'_>,
    x: &[u32],
    y: &mut [u32],
) {
    #[allow(unreachable_patterns)]
    match p {
        #[cfg(feature = "int8")]
        Precision::Int8 => dense::op_int::<Int8>(d, x, y),
        #[cfg(feature = "int16")]
        Precision::Int16 => dense::op_int::<Int16>(d, x, y),
        #[cfg(feature = "f32")]
        Precision::F32 => match math {
            #[cfg(feature = "libm")]
            F32Math::Accurate => dense::op_f32::<crate::activation::AccurateMath>(d, x, y),
            _ => dense::op_f32::<FastMath>(d, x, y),
        },
        // a disabled precision: never loaded
        _ => {}
    }
}

/// Runs `ops` in order on the vector at the start of `scratch` (packed in the model's
/// precision), leaving the result there: each op writes its output after its input, which
/// is then moved to the front.
#[cfg(feature = "dense-net")]
#[inline(never)]
fn run_ops(
    model: &Model<'_>,
    ops: &[OpDesc<'_>],
    scratch: &mut [u32],
    math: F32Math,
) -> Result<()> {
    let pw = per_word(model.precision());
    let cap = scratch.len();
    for op in ops {
        let (a, b) = (pad4(op.in_size()) / pw, pad4(op.out_size()) / pw);
        let Some((x, rest)) = scratch.split_at_mut_checked(a) else {
            return Err(scratch_short(model, cap));
        };
        let Some(y) = rest.get_mut(..b) else {
            return Err(scratch_short(model, cap));
        };
        match op {
            OpDesc::Dense(d) => dense_op(model.precision(), math, d, x, y),
        }
        // move the output to the front (a checked copy: `copy_within` links a panic path)
        for k in 0..b {
            let v = scratch.get(a + k).copied().unwrap_or(0);
            if let Some(d) = scratch.get_mut(k) {
                *d = v;
            }
        }
    }
    Ok(())
}

/// Without the `dense-net` feature the loader refuses models with ops (and
/// [`Model::pre`]/[`Model::mlp`] are empty), so there is nothing to run.
#[cfg(not(feature = "dense-net"))]
fn run_ops(
    _model: &Model<'_>,
    ops: &[OpDesc<'_>],
    _scratch: &mut [u32],
    _math: F32Math,
) -> Result<()> {
    match ops.first() {
        None => Ok(()),
        Some(_) => Err(Error::FeatureDisabled("dense-net")),
    }
}

/// State words of the recurrent layers (the pooling accumulators follow).
fn layers_words(model: &Model<'_>) -> usize {
    model.layers().iter().map(layer_words).sum()
}

/// Offset of the last layer's `h` in the state.
fn last_h_offset(model: &Model<'_>) -> usize {
    match model.layers().split_last() {
        Some((_, below)) => below.iter().map(layer_words).sum(),
        None => 0,
    }
}

/// A two-word (`lo`, `hi`) 64-bit state value.
fn get64(w: &[i32], i: usize) -> u64 {
    let lo = w.get(2 * i).map_or(0, |&v| v as u32 as u64);
    let hi = w.get(2 * i + 1).map_or(0, |&v| v as u32 as u64);
    lo | hi << 32
}

fn set64(w: &mut [i32], i: usize, v: u64) {
    if let Some(lo) = w.get_mut(2 * i) {
        *lo = v as u32 as i32;
    }
    if let Some(hi) = w.get_mut(2 * i + 1) {
        *hi = (v >> 32) as u32 as i32;
    }
}

/// The pooling accumulators' initial values (after `reset`): `Max` the lowest value
/// (`i16::MIN`, or `−∞` on the f32 path), sums and the count 0.
fn pool_reset(model: &Model<'_>, acc: &mut [i32]) {
    acc.fill(0);
    if model.pool() == Pool::Max {
        let low = if model.precision().is_int() {
            i16::MIN as i32
        } else {
            f32::NEG_INFINITY.to_bits() as i32
        };
        acc.fill(low);
    }
}

/// Folds the last layer's new `h` into the pooling accumulators (after every step):
/// `Max` element-wise maximum; `Sum`/`Mean` a saturating `i64` sum of the `i16` values (an
/// `f64` sum on the f32 path; exact for any length below 2^48 frames on the integer paths)
/// and, for `Mean`, a saturating `u64` frame count.
#[inline(never)]
fn pool_update(model: &Model<'_>, state: &mut [i32]) {
    let (off, w) = (last_h_offset(model), model.pooled_size());
    let int = model.precision().is_int();
    let (left, acc) = state.split_at_mut(layers_words(model).min(state.len()));
    let h = left.get(off..).unwrap_or(&[]);
    let h = h.get(..w).unwrap_or(&[]);
    match model.pool() {
        // FinalStates: refused at load until the window mode exists
        Pool::Last | Pool::FinalStates => {}
        Pool::Max => {
            for (a, &v) in acc.iter_mut().zip(h) {
                if int {
                    *a = (*a).max(v);
                } else if f32::from_bits(v as u32) > f32::from_bits(*a as u32) {
                    *a = v;
                }
            }
        }
        Pool::Sum | Pool::Mean => {
            for (j, &v) in h.iter().enumerate() {
                let s = get64(acc, j);
                let n = if int {
                    (s as i64).saturating_add(v as i64) as u64
                } else {
                    (f64::from_bits(s) + f32::from_bits(v as u32) as f64).to_bits()
                };
                set64(acc, j, n);
            }
            if model.pool() == Pool::Mean {
                let c = get64(acc, w).saturating_add(1);
                set64(acc, w, c);
            }
        }
    }
}

/// `round(s / n)` (ties up), for `n > 0` (0 otherwise).
fn round_div(s: i64, n: i64) -> i64 {
    if n <= 0 {
        return 0;
    }
    let (Some(q), Some(r)) = (s.checked_div_euclid(n), s.checked_rem_euclid(n)) else {
        return 0;
    };
    if r >= n - r {
        q + 1
    } else {
        q
    }
}

/// The pooled vector's values on the integer paths (`pool_frac`).
fn pooled_int<'s>(model: &'s Model<'_>, state: &'s [i32]) -> impl Iterator<Item = i16> + 's {
    let (off, w) = (last_h_offset(model), model.pooled_size());
    let h = state.get(off..).and_then(|s| s.get(..w)).unwrap_or(&[]);
    let acc = state.get(layers_words(model)..).unwrap_or(&[]);
    let hf = model.layers().last().map_or(0, |l| l.h_frac as u32);
    let shift = hf.saturating_sub(model.desc().pool_frac as u32).min(62);
    // `pool_frac` is only used by a sum
    let shift = if model.pool() == Pool::Sum { shift } else { 0 };
    let n = get64(acc, w).min(i64::MAX as u64) as i64;
    (0..w).map(move |j| match model.pool() {
        Pool::Last | Pool::FinalStates => h.get(j).map_or(0, |&v| v as i16),
        Pool::Max => acc.get(j).map_or(0, |&v| sat_i16(v)),
        Pool::Mean => {
            if n == 0 {
                0
            } else {
                sat_i16(
                    round_div(get64(acc, j) as i64, n).clamp(i32::MIN as i64, i32::MAX as i64)
                        as i32,
                )
            }
        }
        Pool::Sum => {
            let s = get64(acc, j) as i64;
            let v = if shift == 0 {
                s
            } else {
                (s >> shift) + ((s >> (shift - 1)) & 1)
            };
            sat_i16(v.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
        }
    })
}

/// The pooled vector's values on the f32 path.
fn pooled_f32<'s>(model: &'s Model<'_>, state: &'s [i32]) -> impl Iterator<Item = f32> + 's {
    let (off, w) = (last_h_offset(model), model.pooled_size());
    let h = state.get(off..).and_then(|s| s.get(..w)).unwrap_or(&[]);
    let acc = state.get(layers_words(model)..).unwrap_or(&[]);
    let n = get64(acc, w);
    (0..w).map(move |j| match model.pool() {
        Pool::Last | Pool::FinalStates => h.get(j).map_or(0.0, |&v| f32::from_bits(v as u32)),
        Pool::Max => acc.get(j).map_or(0.0, |&v| f32::from_bits(v as u32)),
        Pool::Mean => {
            if n == 0 {
                0.0
            } else {
                (f64::from_bits(get64(acc, j)) / n as f64) as f32
            }
        }
        Pool::Sum => f64::from_bits(get64(acc, j)) as f32,
    })
}

/// Writes the head's input for the current state to the start of `scratch` (the pooled
/// vector, then every hidden head op) and returns its width.
#[inline(never)]
fn head_input(
    model: &Model<'_>,
    state: &[i32],
    scratch: &mut [u32],
    math: F32Math,
) -> Result<usize> {
    let p = model.precision();
    let w = model.pooled_size();
    let cap = scratch.len();
    let xw = scratch
        .get_mut(..pad4(w) / per_word(p))
        .ok_or_else(|| scratch_short(model, cap))?;
    if p.is_int() {
        pack_i16(xw, pooled_int(model, state));
    } else {
        copy_words(xw, pooled_f32(model, state).map(f32::to_bits));
    }
    run_ops(model, model.mlp(), scratch, math)?;
    Ok(model.mlp().last().map_or(w, |op| op.out_size()))
}

/// Whether a model is format 1's shape at output time (last step, no hidden head ops).
fn plain_output(model: &Model<'_>) -> bool {
    model.pool() == Pool::Last && model.mlp().is_empty()
}

/// One model's recurrent state plus the scratch memory a step needs.
///
/// `STATE` and `SCRATCH` are capacities in 32-bit words; [`new`](Self::new) checks them
/// against [`Model::state_len`] and [`Model::scratch_len`].
#[derive(Debug, Clone)]
pub struct Session<'m, const STATE: usize, const SCRATCH: usize> {
    model: &'m Model<'m>,
    state: [i32; STATE],
    scratch: [u32; SCRATCH],
    state_len: usize,
    math: F32Math,
}

impl<'m, const STATE: usize, const SCRATCH: usize> Session<'m, STATE, SCRATCH> {
    /// A session in the model's initial state (`h0`/`c0` from the blob, else zeros), with
    /// [`F32Math::Fast`].
    ///
    /// # Errors
    /// [`Error::TooLarge`] if the model needs more than `STATE` state words or `SCRATCH`
    /// scratch words.
    pub fn new(model: &'m Model<'m>) -> Result<Self> {
        let (state_len, scratch_len) = (model.state_len(), model.scratch_len());
        if state_len > STATE {
            return Err(Error::TooLarge {
                buffer: Buffer::State,
                needed: state_len,
                capacity: STATE,
            });
        }
        if scratch_len > SCRATCH {
            return Err(Error::TooLarge {
                buffer: Buffer::Scratch,
                needed: scratch_len,
                capacity: SCRATCH,
            });
        }
        let mut s = Session {
            model,
            state: [0; STATE],
            scratch: [0; SCRATCH],
            state_len,
            math: F32Math::Fast,
        };
        s.reset();
        Ok(s)
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Back to the initial state: `h0`/`c0` from the blob where present, else zeros.
    pub fn reset(&mut self) {
        self.state.fill(0);
        let int = self.model.precision().is_int();
        let mut rest = self.state.as_mut_slice();
        for l in self.model.layers() {
            let Some((words, r)) = rest.split_at_mut_checked(layer_words(l)) else {
                return;
            };
            rest = r;
            init_layer(l, words, int);
        }
        let model = self.model;
        // the pooling accumulators (a windowed model's own words stay 0: no frame taken)
        let lw = layers_words(model);
        let acc = self.state.get_mut(lw..lw + model.pool_words());
        pool_reset(model, acc.unwrap_or(&mut []));
    }

    /// Selects the `f32` transcendental functions of the f32 path (ignored by integer
    /// models).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for [`F32Math::Accurate`] without the `libm` feature.
    pub fn set_f32_math(&mut self, m: F32Math) -> Result<()> {
        if m == F32Math::Accurate && !cfg!(feature = "libm") {
            return Err(Error::Unsupported);
        }
        self.math = m;
        Ok(())
    }

    /// The `f32` math mode in use.
    pub fn f32_math(&self) -> F32Math {
        self.math
    }

    /// The used part of the state: per layer `h[H]` (`h[P]` projected) then (LSTM) `c[H]`; integer models:
    /// `h` as `i16` values and `c` in Q16.15, f32 models: `f32::to_bits`.
    pub fn state(&self) -> &[i32] {
        self.state.get(..self.state_len).unwrap_or(&[])
    }

    fn expect_len(expected: usize, got: usize) -> Result<()> {
        if expected == got {
            Ok(())
        } else {
            Err(Error::LengthMismatch { expected, got })
        }
    }

    fn too_small(&self) -> Error {
        Error::TooLarge {
            buffer: Buffer::Scratch,
            needed: self.model.scratch_len(),
            capacity: SCRATCH,
        }
    }

    /// One time step on a raw input frame: normalization (if the model has one), then
    /// quantization (integer models), then every layer.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `frame.len()` is not the model's input size;
    /// [`Error::NonFinite`] if a value (or a normalized value) is NaN or infinite. On error
    /// the state is unchanged.
    pub fn step(&mut self, frame: &[f32]) -> Result<()> {
        let model = self.model;
        Self::expect_len(model.input_size(), frame.len())?;
        if !frame.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite);
        }
        let norm = model.desc().norm.as_ref();
        let mut finite = true;
        let values = normalized(frame, norm).inspect(|v| finite &= v.is_finite());
        self.load_f32(values)?;
        if !finite {
            return Err(Error::NonFinite);
        }
        self.run_layers()
    }

    /// One time step on an already quantized frame (integer models): `frame` in
    /// [`Model::input_frac`] fractional bits (the first pre-net op's `x_frac`, else
    /// `layers[0].x_frac`), no normalization.
    ///
    /// # Errors
    /// [`Error::PrecisionMismatch`] for an f32 model; [`Error::LengthMismatch`].
    pub fn step_q(&mut self, frame: &[i16]) -> Result<()> {
        let model = self.model;
        if !model.precision().is_int() {
            return Err(Error::PrecisionMismatch);
        }
        Self::expect_len(model.input_size(), frame.len())?;
        let nx = pad4(model.input_size()) / 2;
        let xw = self.scratch.get_mut(..nx).ok_or(Error::TooLarge {
            buffer: Buffer::Scratch,
            needed: nx,
            capacity: SCRATCH,
        })?;
        pack_i16(xw, frame.iter().copied());
        self.run_layers()
    }

    /// One step on a frame already in model space (no normalization): the generator's
    /// feedback. Integer models: `frame` holds exact dequantized outputs (`q / 2^output_frac`),
    /// requantized to `layers[0].x_frac`.
    pub(crate) fn step_feedback(&mut self, frame: &[f32]) -> Result<()> {
        let model = self.model;
        Self::expect_len(model.input_size(), frame.len())?;
        if !frame.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite);
        }
        if model.precision().is_int() {
            let of = model.desc().output_frac as u32;
            let xf = model.input_frac() as u32;
            let nx = pad4(model.input_size()) / 2;
            let xw = self.scratch.get_mut(..nx).ok_or(Error::TooLarge {
                buffer: Buffer::Scratch,
                needed: nx,
                capacity: SCRATCH,
            })?;
            // exact: v · 2^of is the integer output
            pack_i16(
                xw,
                frame
                    .iter()
                    .map(|&v| rescale_q(quantize_f32(v, of), of, xf)),
            );
        } else {
            self.load_f32(frame.iter().copied())?;
        }
        self.run_layers()
    }

    /// Writes a (normalized) f32 frame into the scratch input part of layer 0.
    fn load_f32(&mut self, values: impl Iterator<Item = f32>) -> Result<()> {
        let model = self.model;
        let p = model.precision();
        let nx = pad4(model.input_size()) / per_word(p);
        let err = self.too_small();
        let xw = self.scratch.get_mut(..nx).ok_or(err)?;
        if p.is_int() {
            let xf = model.input_frac() as u32;
            pack_i16(xw, values.map(|v| quantize_f32(v, xf)));
        } else {
            copy_words(xw, values.map(f32::to_bits));
        }
        Ok(())
    }

    /// Runs the pre-net, every layer and the pooling update; the (quantized) input frame is
    /// already in the scratch. A thin wrapper: the
    /// work of an integer model is in the non-generic [`run_layers_int`] (one copy for every
    /// `STATE`/`SCRATCH`).
    /// A precision whose feature is disabled gives [`Error::FeatureDisabled`] (never for a
    /// loaded model: the loader rejects it first).
    #[inline(always)]
    fn run_layers(&mut self) -> Result<()> {
        let model = self.model;
        if model.is_windowed() {
            return Err(Error::NeedsWindow);
        }
        if !model.pre().is_empty() {
            run_ops(model, model.pre(), &mut self.scratch, self.math)?;
        }
        self.run_stack()?;
        if model.pool() != Pool::Last {
            pool_update(model, &mut self.state);
        }
        Ok(())
    }

    /// The recurrent layers of [`run_layers`](Self::run_layers).
    #[inline(always)]
    fn run_stack(&mut self) -> Result<()> {
        if self.model.precision().is_int() {
            #[cfg(any(feature = "int8", feature = "int16"))]
            return run_layers_int(
                self.model,
                self.model.layers(),
                &mut self.state,
                &mut self.scratch,
            );
            #[cfg(not(any(feature = "int8", feature = "int16")))]
            return Err(Error::FeatureDisabled(self.model.precision().feature()));
        } else {
            #[cfg(feature = "f32")]
            return self.run_layers_f32();
            #[cfg(not(feature = "f32"))]
            return Err(Error::FeatureDisabled("f32"));
        }
    }

    /// [`run_layers`](Self::run_layers) for an f32 model: one `f32` per scratch word.
    #[cfg(feature = "f32")]
    #[inline(never)]
    fn run_layers_f32(&mut self) -> Result<()> {
        let err = self.too_small();
        let Session {
            model,
            state,
            scratch,
            math,
            ..
        } = self;
        let mut rest: &mut [i32] = state;
        let mut prev: Option<&[i32]> = None;
        for l in model.layers() {
            let h = l.h_len();
            let (words, r) = rest
                .split_at_mut_checked(layer_words(l))
                .ok_or(err.clone())?;
            rest = r;
            let (hs, cs) = words.split_at_mut(h.min(words.len()));
            let nx = pad4(l.input_size as usize);
            let nh = pad4(h);
            let (xw, sr) = scratch.split_at_mut_checked(nx).ok_or(err.clone())?;
            let (hw, rh) = sr.split_at_mut_checked(nh).ok_or(err.clone())?;
            if let Some(prev) = prev {
                copy_words(xw, prev.iter().map(|&v| v as u32));
            }
            copy_words(hw, hs.iter().map(|&v| v as u32));
            let rh_len = rh.len().min(rh_elems(l));
            let io = Io {
                x: xw,
                h: hw,
                rh: rh.get_mut(..rh_len).unwrap_or(&mut []),
                hs: &mut *hs,
                cs,
            };
            match *math {
                #[cfg(feature = "libm")]
                F32Math::Accurate => cell::step_f32::<crate::activation::AccurateMath>(l, io),
                _ => cell::step_f32::<FastMath>(l, io),
            }
            prev = Some(hs);
        }
        Ok(())
    }

    /// The last layer's `h` state words.
    fn last_h<'s>(model: &Model<'_>, state: &'s [i32]) -> Option<&'s [i32]> {
        let (last, below) = model.layers().split_last()?;
        let off: usize = below.iter().map(layer_words).sum();
        state.get(off..)?.get(..last.h_len())
    }

    /// Emits the integer outputs of the current state one by one; `ready: Some(n)`: the
    /// head's input (`n` values) is already at the start of the scratch (window mode).
    fn emit_q(&mut self, ready: Option<usize>, emit: impl FnMut(i16)) -> Result<()> {
        let err = self.too_small();
        let Session {
            model,
            state,
            scratch,
            math,
            ..
        } = self;
        let model: &Model<'_> = model;
        let p = model.precision();
        if !p.is_int() {
            return Err(Error::PrecisionMismatch);
        }
        let desc = model.desc();
        let n = if let Some(n) = ready {
            n
        } else if plain_output(model) {
            let h = Self::last_h(model, state).ok_or(err.clone())?;
            if desc.head.is_none() {
                h.iter().map(|&v| v as i16).for_each(emit);
                return Ok(());
            }
            let xw = scratch.get_mut(..pad4(h.len()) / 2).ok_or(err.clone())?;
            pack_i16(xw, h.iter().map(|&v| v as i16));
            h.len()
        } else {
            head_input(model, state, scratch, *math)?
        };
        let xw: &[u32] = scratch.get(..pad4(n) / 2).ok_or(err)?;
        match &desc.head {
            None => (0..n)
                .map(|j| {
                    let w = xw.get(j / 2).copied().unwrap_or(0);
                    (w >> (16 * (j % 2))) as u16 as i16
                })
                .for_each(emit),
            Some(d) => match p {
                #[cfg(feature = "int8")]
                Precision::Int8 => {
                    dense::emit_int(dense::int_logits::<Int8>(d, xw), desc.output_act, emit)
                }
                #[cfg(all(feature = "int16", not(feature = "f32")))]
                Precision::Int16 => {
                    dense::emit_int(dense::int_logits::<Int16>(d, xw), desc.output_act, emit)
                }
                #[cfg(all(feature = "int16", feature = "f32"))]
                _ => dense::emit_int(dense::int_logits::<Int16>(d, xw), desc.output_act, emit),
                // a disabled precision: never loaded
                #[cfg(not(all(feature = "int16", feature = "f32")))]
                _ => {
                    let _ = (d, xw, emit);
                    return Err(Error::FeatureDisabled(p.feature()));
                }
            },
        }
        Ok(())
    }

    /// Emits the f32 outputs of the current state (f32 models) one by one.
    #[cfg(feature = "f32")]
    fn emit_f32<M: Math>(&mut self, ready: Option<usize>, emit: impl FnMut(f32)) -> Result<()> {
        let err = self.too_small();
        let Session {
            model,
            state,
            scratch,
            math,
            ..
        } = self;
        let model: &Model<'_> = model;
        let desc = model.desc();
        let n = if let Some(n) = ready {
            n
        } else if plain_output(model) {
            let h = Self::last_h(model, state).ok_or(err.clone())?;
            if desc.head.is_none() {
                let h = h.iter().map(|&v| f32::from_bits(v as u32));
                dense::emit_f32::<M>(h, desc.output_act, emit);
                return Ok(());
            }
            let xw = scratch.get_mut(..pad4(h.len())).ok_or(err.clone())?;
            copy_words(xw, h.iter().map(|&v| v as u32));
            h.len()
        } else {
            head_input(model, state, scratch, *math)?
        };
        let xw: &[u32] = scratch.get(..pad4(n)).ok_or(err)?;
        match &desc.head {
            None => {
                let y = xw.iter().take(n).map(|&v| f32::from_bits(v));
                dense::emit_f32::<M>(y, desc.output_act, emit)
            }
            Some(d) => dense::emit_f32::<M>(dense::f32_logits(d, xw), desc.output_act, emit),
        }
        Ok(())
    }

    /// [`emit_f32`](Self::emit_f32) in the session's math mode; without the feature `f32`
    /// [`Error::FeatureDisabled`] (never for a loaded model).
    fn emit_any_f32(&mut self, ready: Option<usize>, emit: impl FnMut(f32)) -> Result<()> {
        #[cfg(not(feature = "f32"))]
        return {
            let _ = (emit, ready);
            Err(Error::FeatureDisabled("f32"))
        };
        #[cfg(feature = "f32")]
        return match self.math {
            #[cfg(feature = "libm")]
            F32Math::Accurate => self.emit_f32::<crate::activation::AccurateMath>(ready, emit),
            _ => self.emit_f32::<FastMath>(ready, emit),
        };
    }

    /// The integer output of the current state: head (+ output activation), or the last
    /// layer's `h` without a head; in `output_frac` fractional bits (Q0.15 after an output
    /// activation).
    ///
    /// # Errors
    /// [`Error::PrecisionMismatch`] for an f32 model; [`Error::LengthMismatch`] unless
    /// `out.len()` is the model's output size.
    pub fn output_q(&mut self, out: &mut [i16]) -> Result<()> {
        self.output_q_from(None, out)
    }

    /// [`output_q`](Self::output_q) from a head input already in the scratch (`Some`).
    fn output_q_from(&mut self, ready: Option<usize>, out: &mut [i16]) -> Result<()> {
        if ready.is_none() && self.model.is_windowed() {
            return Err(Error::NeedsWindow);
        }
        if !self.model.precision().is_int() {
            return Err(Error::PrecisionMismatch);
        }
        Self::expect_len(self.model.output_size(), out.len())?;
        let mut it = out.iter_mut();
        self.emit_q(ready, |v| {
            if let Some(o) = it.next() {
                *o = v;
            }
        })
    }

    /// The output of the current state as `f32`, for any model. Integer outputs are
    /// dequantized exactly (`q / 2^output_frac`).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `out.len()` is the model's output size.
    pub fn output(&mut self, out: &mut [f32]) -> Result<()> {
        self.output_from(None, out)
    }

    /// [`output`](Self::output) from a head input already in the scratch (`Some`).
    fn output_from(&mut self, ready: Option<usize>, out: &mut [f32]) -> Result<()> {
        let model = self.model;
        if ready.is_none() && model.is_windowed() {
            return Err(Error::NeedsWindow);
        }
        Self::expect_len(model.output_size(), out.len())?;
        let mut it = out.iter_mut();
        if model.precision().is_int() {
            let of = model.desc().output_frac as u32;
            self.emit_q(ready, |v| {
                if let Some(o) = it.next() {
                    *o = dequantize(v as i32, of);
                }
            })
        } else {
            self.emit_any_f32(ready, |v| {
                if let Some(o) = it.next() {
                    *o = v;
                }
            })
        }
    }

    /// The argmax of the current output (ties → lowest index). `score` is the output value
    /// (dequantized for integer models), `score_q` the raw integer output (0 for f32 models).
    ///
    /// # Errors
    /// None for a validated model (the `Result` is kept for uniformity).
    pub fn classify(&mut self) -> Result<Decision> {
        self.classify_from(None)
    }

    /// [`classify`](Self::classify) from a head input already in the scratch (`Some`).
    fn classify_from(&mut self, ready: Option<usize>) -> Result<Decision> {
        let model = self.model;
        if ready.is_none() && model.is_windowed() {
            return Err(Error::NeedsWindow);
        }
        let mut best = Decision {
            class: 0,
            score: f32::NAN,
            score_q: 0,
        };
        let mut idx = 0u16;
        let mut any = false;
        if model.precision().is_int() {
            let of = model.desc().output_frac as u32;
            self.emit_q(ready, |v| {
                if !any || v > best.score_q {
                    best = Decision {
                        class: idx,
                        score: dequantize(v as i32, of),
                        score_q: v,
                    };
                    any = true;
                }
                idx = idx.wrapping_add(1);
            })?;
        } else {
            self.emit_any_f32(ready, |v| {
                if !any || v > best.score {
                    best = Decision {
                        class: idx,
                        score: v,
                        score_q: 0,
                    };
                    any = true;
                }
                idx = idx.wrapping_add(1);
            })?;
        }
        Ok(best)
    }

    /// Bytes [`save_state`](Self::save_state) writes: 4 per state word plus a 4-byte tag.
    pub fn saved_len(&self) -> usize {
        self.state_len.saturating_mul(4).saturating_add(4)
    }

    /// CRC-32 of the model's shape (precision, dimensions, cells, formats) followed by the
    /// state bytes; the numbering is in [`save_state`](Self::save_state)'s docs and
    /// spelled out here, independent of the enums' declaration order.
    fn state_tag(&self, state_bytes: impl Iterator<Item = [u8; 4]>) -> u32 {
        let m = self.model;
        let mut d = STATE_CRC.digest();
        let precision = match m.precision() {
            Precision::Int8 => 0u8,
            Precision::Int16 => 1,
            Precision::F32 => 2,
        };
        d.update(&[precision]);
        d.update(&(m.input_size() as u16).to_le_bytes());
        for l in m.layers() {
            let kind = match l.cell {
                CellKind::Rnn(RnnAct::Tanh) => 0u8,
                CellKind::Rnn(RnnAct::Relu) => 1,
                CellKind::Gru {
                    linear_before_reset: true,
                } => 2,
                CellKind::Gru {
                    linear_before_reset: false,
                } => 3,
                CellKind::Lstm { peepholes: false } => 4,
                CellKind::Lstm { peepholes: true } => 5,
            };
            d.update(&[kind, l.x_frac, l.h_frac]);
            d.update(&l.input_size.to_le_bytes());
            d.update(&l.hidden_size.to_le_bytes());
            if l.proj_size != 0 {
                d.update(&l.proj_size.to_le_bytes());
            }
        }
        let pool = match m.pool() {
            Pool::Last => 0u8,
            Pool::Mean => 1,
            Pool::Max => 2,
            Pool::Sum => 3,
            Pool::FinalStates => 4,
        };
        if pool != 0 {
            d.update(&[pool, m.desc().pool_frac]);
        }
        for b in state_bytes {
            d.update(&b);
        }
        d.finalize()
    }

    /// Writes the state to `out` (see [`saved_len`](Self::saved_len)): the used state words
    /// little-endian, then a CRC-32 tag over the model's shape and those bytes. Returns the
    /// number of bytes written.
    ///
    /// The tag is the CRC-32/ISO-HDLC ([`crc32`](crate::model::crc32)) of, in order:
    ///
    /// | bytes | value |
    /// |---|---|
    /// | 1 | precision: `0` int8, `1` int16, `2` f32 |
    /// | 2 | the model's `input_size`, `u16` LE |
    /// | 7 per layer | cell (`0` RNN tanh, `1` RNN ReLU, `2` GRU `linear_before_reset`, `3` GRU reset before the product, `4` LSTM, `5` LSTM with peepholes), `x_frac`, `h_frac`, `input_size` `u16` LE, `hidden_size` `u16` LE |
    /// | 2 per projected LSTM layer | after its 7: `proj_size` `u16` LE (absent without a projection, so other tags are unchanged) |
    /// | 2 if pooling over time | pool (`1` mean, `2` max, `3` sum), `pool_frac`; absent for the last step (so a format-1 model's tag is unchanged) |
    /// | 4 per state word | the state words as written, `i32` LE |
    ///
    /// These numbers are the saved-state format: they are fixed here, not taken from the
    /// enums' order (`tests/blob_format.rs` pins them), so a state saved before an update
    /// restores after it as long as the model is the same.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `out` is shorter than [`saved_len`](Self::saved_len).
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize> {
        let n = self.saved_len();
        let got = out.len();
        let out = out
            .get_mut(..n)
            .ok_or(Error::LengthMismatch { expected: n, got })?;
        let (body, tail) = out.split_at_mut(n.saturating_sub(4));
        for (c, w) in body.chunks_exact_mut(4).zip(self.state()) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        let tag = self.state_tag(self.state().iter().map(|w| w.to_le_bytes()));
        if let Some(t) = tail.get_mut(..4) {
            t.copy_from_slice(&tag.to_le_bytes());
        }
        Ok(n)
    }

    /// Restores a state written by [`save_state`](Self::save_state) for the same model
    /// shape.
    ///
    /// # Errors
    /// [`Error::BadState`] if the length or the tag does not match, or a value is out of
    /// range (integer `h` beyond `i16`, non-finite f32); the state is then unchanged.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() != self.saved_len() {
            return Err(Error::BadState);
        }
        let (body, tail) = bytes.split_at(bytes.len().saturating_sub(4));
        let words = || body.chunks_exact(4).map(le_i32);
        let tag = self.state_tag(body.chunks_exact(4).map(|c| le_i32(c).to_le_bytes()));
        if tag != le_i32(tail) as u32 {
            return Err(Error::BadState);
        }
        // value ranges
        let int = self.model.precision().is_int();
        let mut w = words();
        // one layer's words: f32 finite; integer `h` (the first `h_len` words) within i16
        let layer_ok = |l: &LayerDesc<'_>, w: &mut dyn Iterator<Item = i32>| {
            let h = l.h_len();
            w.take(layer_words(l)).enumerate().all(|(k, v)| {
                if !int {
                    f32::from_bits(v as u32).is_finite()
                } else {
                    k >= h || (i16::MIN as i32..=i16::MAX as i32).contains(&v)
                }
            })
        };
        for l in self.model.layers() {
            if !layer_ok(l, &mut w) {
                return Err(Error::BadState);
            }
        }
        // pooling accumulators: an integer max within i16, f32 max not NaN, f64 sums finite
        let pw = self.model.pooled_size();
        // a windowed model: no accumulators; the backward direction's words (range as
        // the layer's, above) and the frame count (any value: checked against the window)
        #[cfg(feature = "window")]
        if let Some(l) = self
            .model
            .window_layer()
            .and_then(|k| self.model.layers().get(k))
            .filter(|_| self.model.window_state_words() > 0)
        {
            if !layer_ok(l, &mut w) {
                return Err(Error::BadState);
            }
        }
        let acc_ok = match self.model.pool() {
            _ if self.model.pool_words() == 0 => true,
            Pool::Last | Pool::FinalStates => true,
            Pool::Max => w.by_ref().take(pw).all(|v| {
                if int {
                    (i16::MIN as i32..=i16::MAX as i32).contains(&v)
                } else {
                    !f32::from_bits(v as u32).is_nan()
                }
            }),
            Pool::Sum | Pool::Mean => (0..pw).all(|_| {
                let lo = w.next().unwrap_or(0) as u32 as u64;
                let hi = w.next().unwrap_or(0) as u32 as u64;
                int || f64::from_bits(lo | hi << 32).is_finite()
            }),
        };
        if !acc_ok {
            return Err(Error::BadState);
        }
        let n = self.state_len;
        for (dst, v) in self.state.iter_mut().take(n).zip(words()) {
            *dst = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds_and_saturates() {
        assert_eq!(rescale_q(100, 12, 14), 400);
        assert_eq!(rescale_q(20000, 12, 14), i16::MAX);
        assert_eq!(rescale_q(-20000, 12, 14), i16::MIN);
        assert_eq!(rescale_q(6, 15, 13), 2); // 1.5 → 2 (ties up)
        assert_eq!(rescale_q(-6, 15, 13), -1); // −1.5 → −1
        assert_eq!(rescale_q(-7, 15, 13), -2);
        assert_eq!(rescale_q(i16::MIN, 15, 0), -1);
        assert_eq!(rescale_q(1234, 9, 9), 1234);
    }

    #[test]
    fn normalization() {
        let off: Vec<u8> = [1.0f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let sc: Vec<u8> = [0.5f32, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let n = NormDesc {
            offset: &off,
            scale: &sc,
        };
        let v: Vec<f32> = normalized(&[3.0, 1.0], Some(&n)).collect();
        assert_eq!(v, [1.0, 12.0]);
        let v: Vec<f32> = normalized(&[3.0, 1.0], None).collect();
        assert_eq!(v, [3.0, 1.0]);
    }
}

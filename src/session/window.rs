//! Window mode (cargo feature `window`): models with reverse or bidirectional layers.
//!
//! A reverse layer's output at frame `t` depends on every frame after `t`, so such a layer
//! cannot stream. Its input is kept in a caller-owned [`Window`] buffer and the layer runs
//! at the decision point; the forward direction of a bidirectional first windowed layer
//! still steps per frame:
//!
//! ```text
//! per frame (Session::step_window):
//!   x = pre(norm(raw))                       the pre-net, as Session::step
//!   x = layers[0..k](x)                      the forward layers before the first windowed
//!                                            layer k = Model::window_layer(), streaming
//!   IN[t] = x                                 packed like the scratch, t = frames so far
//!   layer k bidirectional:                    its forward direction, from h0/c0 at t = 0,
//!     h_t = cell(IN[t], h_{t−1}); OUT[t] = [h_t; 0]   in the layer's state words
//! at the decision (Session::output_window / classify_window), T = frames held:
//!   for each layer l ≥ k, from its h0/c0 (per direction; not layer k's forward
//!   direction when it ran per frame over all T frames of this window):
//!     forward:        h_t = cell(IN[t], h_{t−1})   t = 0 … T−1
//!     reverse:        h_t = cell(IN[t], h_{t+1})   t = T−1 … 0
//!     bidirectional:  OUT[t] = [fwd h_t; bwd h_t]  (the reverse weights: LayerDesc::backward)
//!     IN = OUT                                     (two output slots, alternating)
//!   v = pool(OUT[0..T])   Last: OUT[T−1]; FinalStates: [fwd h_{T−1}; bwd h_0] (reverse: h_0);
//!                         Mean/Sum/Max over t as the streaming reductions (same rounding)
//!   y = head(mlp(v)), output_act
//! ```
//!
//! Every step is the same cell step as the streaming path, so the integer paths are
//! bit-exact on every target and equal to running the model offline on the window
//! (`testutil::spec::run_window`). The concatenation needs no rescale: both directions
//! share the layer's `h_frac` (Q0.15 for bounded cells).
//!
//! The per-frame forward direction of layer `k` is the one a decision would compute, so
//! the results are unchanged. It counts the frames it has taken in a state word; the
//! decision uses it only if that count is the window's frame count and the window's
//! output slot still holds it, else it recomputes that direction from `h0` over the window
//! (as for the other layers) and steps on per frame from there. Recomputed: overlapping
//! windows (`Config::hop` < window: after [`Window::drop_front`] the held frames start
//! later than the state did, so every decision of a hop window costs `2T` steps of layer
//! `k`, as before), a [`reset`](Session::reset) or
//! [`restore_state`](Session::restore_state) of another point mid-window, and the decision
//! after one with three or more windowed layers (the third writes over layer `k`'s output
//! slot). A [`Window::clear`] starts the forward direction from `h0` at the next frame.
//!
//! # Cost
//!
//! * **RAM**: the window buffer, [`Model::window_words`]`(T)` =
//!   `T ·` [`Model::window_frame_words`] `u32` words: per frame the windowed layers' input
//!   (`pad4(I)` values) plus one output slot of `pad4(max out)` values, two slots if more
//!   than one layer runs over the window; two values per word on the integer paths, one on
//!   the f32 path. E.g. a bidirectional GRU with `I = 8`, `H = 32` first layer, int8:
//!   `(8 + 64) / 2 = 36` words (144 bytes) per frame, 9,216 bytes for a 64-frame window.
//!   The session's scratch is as for a forward model; its state as well, except for a
//!   bidirectional layer `k`: [`Model::window_state_words`] more, its backward direction's
//!   words (`H`, an LSTM `h_len + H`) and the frame count (1), e.g. `32 + 1` words for the
//!   GRU above. Later windowed layers reuse one direction's words for the other.
//! * **Latency**: a frame costs the pre-net and the forward layers before `k`, a copy and,
//!   for a bidirectional layer `k`, one cell step of its forward direction; the decision
//!   costs `T` steps per direction of each windowed layer — layer `k` bidirectional: `T`
//!   (its backward direction) instead of `2T`; with a hop, `2T` — the pooling over `T`
//!   frames, and the head, all at once.

use super::*;

/// The caller-owned window buffer of a windowed model: the windowed layers' input for
/// every frame of the current window, and their output sequences at the decision point.
///
/// Size it with [`Model::window_words`] for the longest window (a `codegen`'d module
/// writes it as `WINDOW_WORDS`). Nothing is allocated; a frame beyond its capacity is
/// [`Error::TooLarge`] with [`Buffer::Window`].
#[derive(Debug)]
pub struct Window<'b> {
    buf: &'b mut [u32],
    frames: usize,
    /// The first windowed layer's forward outputs in the output slot are those of a run
    /// from its `h0` at frame 0 (false after [`drop_front`](Self::drop_front): the
    /// decision recomputes them).
    fwd: bool,
}

impl<'b> Window<'b> {
    /// An empty window over `buf`.
    pub fn new(buf: &'b mut [u32]) -> Self {
        Window {
            buf,
            frames: 0,
            fwd: true,
        }
    }
    /// Frames held (pushed since the last [`clear`](Self::clear)).
    pub fn frames(&self) -> usize {
        self.frames
    }
    /// Forgets the frames held (the next frame is frame 0 of a new window).
    pub fn clear(&mut self) {
        self.frames = 0;
        self.fwd = true;
    }
    /// Drops the oldest `n` frames (all if `n ≥ frames`): the windowed layers' input of
    /// the frames after them moves to the front. Only meaningful when the first layer is
    /// the first windowed one (the held frames then depend on nothing before them): the
    /// overlapping windows of `Classifier::push_window`.
    pub fn drop_front(&mut self, model: &Model<'_>, n: usize) {
        let Some(k) = model.window_layer() else {
            return;
        };
        let pw = per_word(model.precision());
        let s_in = model
            .layers()
            .get(k)
            .map_or(0, |l| pad4(l.input_size as usize) / pw);
        let keep = self.frames.saturating_sub(n);
        let (from, len) = (n.saturating_mul(s_in), keep.saturating_mul(s_in));
        // a checked move (`copy_within` links a panic path)
        for i in 0..len {
            let v = self.buf.get(from + i).copied().unwrap_or(0);
            if let Some(d) = self.buf.get_mut(i) {
                *d = v;
            }
        }
        self.frames = keep;
        // the forward direction's outputs began at the dropped frames: recomputed
        self.fwd = keep == 0;
    }
    /// Words of the buffer.
    pub fn words(&self) -> usize {
        self.buf.len()
    }
    /// Frames this buffer holds for `model` (`usize::MAX` for a model that streams).
    pub fn capacity(&self, model: &Model<'_>) -> usize {
        self.buf
            .len()
            .checked_div(model.window_frame_words())
            .unwrap_or(usize::MAX)
    }
}

/// Value `j` of a packed `i16` vector.
fn get_q(words: &[u32], j: usize) -> i16 {
    words
        .get(j / 2)
        .map_or(0, |w| (w >> (16 * (j % 2))) as u16 as i16)
}

/// Sets value `j` of a packed `i16` vector.
fn set_q(words: &mut [u32], j: usize, v: i16) {
    if let Some(w) = words.get_mut(j / 2) {
        let sh = 16 * (j % 2);
        *w = (*w & !(0xffff << sh)) | (v as u16 as u32) << sh;
    }
}

/// Frame `t` (`stride` words) of a region.
fn frame(region: &[u32], t: usize, stride: usize) -> &[u32] {
    region
        .get(t.saturating_mul(stride)..)
        .and_then(|r| r.get(..stride))
        .unwrap_or(&[])
}

fn frame_mut(region: &mut [u32], t: usize, stride: usize) -> &mut [u32] {
    region
        .get_mut(t.saturating_mul(stride)..)
        .and_then(|r| r.get_mut(..stride))
        .unwrap_or(&mut [])
}

/// One cell step of one direction `l` on the input `x` (packed), state words `st`: `x`
/// goes to the start of the scratch, then the same out-of-line layer loop as a streaming
/// step runs this one layer (so every cell has one caller, as without the window mode).
fn step_dir(
    p: Precision,
    math: F32Math,
    l: &LayerDesc<'_>,
    st: &mut [i32],
    scratch: &mut [u32],
    x: &[u32],
    model: &Model<'_>,
) -> Result<()> {
    let _ = math;
    let nx = pad4(l.input_size as usize) / per_word(p);
    let cap = scratch.len();
    let Some(xw) = scratch.get_mut(..nx) else {
        return Err(scratch_short(model, cap));
    };
    copy_words(xw, x.iter().copied());
    let one = core::slice::from_ref(l);
    if p.is_int() {
        #[cfg(any(feature = "int8", feature = "int16"))]
        return run_layers_int(model, one, st, scratch);
    } else {
        #[cfg(feature = "f32")]
        return run_layers_f32(one, st, scratch, math, scratch_short(model, cap));
    }
    #[allow(unreachable_code)]
    Err(Error::FeatureDisabled(p.feature()))
}

/// Runs `layers` of an f32 model on `state` / `scratch` (one `f32` per scratch word), as
/// the streaming `Session::run_layers_f32` does; the first one's input is already in the
/// scratch. `err` is the error for a short buffer. The window mode's own copy, stepping the
/// cells with [`WinMath`]: the streaming path's f32 cells keep their single caller (and
/// their code: `cargo xtask bench` measured +2.5–8.8 % f32 instructions per step on the
/// M4F when both paths shared them).
#[cfg(feature = "f32")]
#[inline(never)]
fn run_layers_f32(
    layers: &[LayerDesc<'_>],
    state: &mut [i32],
    scratch: &mut [u32],
    math: F32Math,
    err: Error,
) -> Result<()> {
    let mut rest: &mut [i32] = state;
    let mut prev: Option<&[i32]> = None;
    for l in layers {
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
        let rh_len = rh.len().min(super::rh_elems(l));
        let io = Io {
            x: xw,
            h: hw,
            rh: rh.get_mut(..rh_len).unwrap_or(&mut []),
            hs: &mut *hs,
            cs,
        };
        match math {
            #[cfg(feature = "libm")]
            F32Math::Accurate => cell::step_f32::<WinMath<crate::activation::AccurateMath>>(l, io),
            _ => cell::step_f32::<WinMath<FastMath>>(l, io),
        }
        prev = Some(hs);
    }
    Ok(())
}

/// The f32 math `M` under another type: the window mode's cell steps are their own
/// instantiation (see [`run_layers_f32`]); the same functions, so the same bits.
#[cfg(feature = "f32")]
struct WinMath<M>(core::marker::PhantomData<M>);

#[cfg(feature = "f32")]
impl<M: Math> Math for WinMath<M> {
    #[inline]
    fn exp(x: f32) -> f32 {
        M::exp(x)
    }
    #[inline]
    fn sigmoid(x: f32) -> f32 {
        M::sigmoid(x)
    }
    #[inline]
    fn tanh(x: f32) -> f32 {
        M::tanh(x)
    }
}

/// Where a windowed model's own state words are (see [`Model::window_state_words`]):
/// the first windowed layer's state offset, its backward direction's words' offset and
/// the frame-count word's index; `None` unless that layer is bidirectional.
fn fwd_words(model: &Model<'_>, k: usize) -> Option<(usize, usize, usize)> {
    if model.window_state_words() == 0 {
        return None;
    }
    let l = model.layers().get(k)?;
    let off: usize = model.layers().iter().take(k).map(layer_words).sum();
    let bwd = layers_words(model);
    Some((off, bwd, bwd + layer_words(l)))
}

/// Writes direction `d`'s `h` (`hs`) into an output slot frame.
fn put_h(out: &mut [u32], hs: &[i32], d: usize, int: bool) {
    let h = hs.len();
    for (j, &v) in hs.iter().enumerate() {
        if int {
            set_q(out, d * h + j, v as i16);
        } else if let Some(o) = out.get_mut(d * h + j) {
            *o = v as u32;
        }
    }
}

/// `sum` (in `h_frac` bits) shifted right by `shift` to `pool_frac` (round to nearest,
/// ties up) and saturated, as the streaming `Sum`.
fn sum_q(s: i64, shift: u32) -> i16 {
    let v = if shift == 0 {
        s
    } else {
        (s >> shift) + ((s >> (shift - 1)) & 1)
    };
    sat_i16(v.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
}

impl<'m, const STATE: usize, const SCRATCH: usize> Session<'m, STATE, SCRATCH> {
    /// One frame of a windowed model: normalization, quantization, the pre-net and the
    /// forward layers before [`Model::window_layer`] as [`step`](Self::step) does, then
    /// the windowed layers' input is appended to `win`, and the forward direction of a
    /// bidirectional first windowed layer takes one step (its `h_t` into `win`; see the
    /// [module docs](crate::session::window)). For a model that streams this is
    /// [`step`](Self::step) (`win` is not touched).
    ///
    /// # Errors
    /// As [`step`](Self::step); [`Error::TooLarge`] with [`Buffer::Window`] if `win` holds
    /// no further frame (`needed` = [`Model::window_words`]`(frames + 1)`). On error
    /// neither the state nor `win` changes.
    ///
    /// # Examples
    /// A tumbling window of 64 frames (the buffer could be a `static` sized by the
    /// `WINDOW_WORDS` constant `tinyrnn codegen --window 64` writes):
    /// ```
    /// # fn run(blob: &[u8], frames: &[[f32; 3]]) -> tinyrnn::Result<()> {
    /// use tinyrnn::{Model, Session, Window};
    /// let model = Model::from_blob(blob)?;
    /// let mut buf = [0u32; 4096]; // ≥ model.window_words(64)
    /// let mut win = Window::new(&mut buf);
    /// let mut s = Session::<'_, 64, 64>::new(&model)?;
    /// for f in frames {
    ///     s.step_window(f, &mut win)?;
    ///     if win.frames() == 64 {
    ///         let d = s.classify_window(&mut win)?;
    ///         s.reset();
    ///         win.clear();
    /// #       let _ = d;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn step_window(&mut self, frame: &[f32], win: &mut Window<'_>) -> Result<()> {
        let model = self.model;
        let Some(k) = model.window_layer() else {
            return self.step(frame);
        };
        Self::expect_len(model.input_size(), frame.len())?;
        if !frame.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite);
        }
        let needed = model.window_words(win.frames.saturating_add(1));
        if needed > win.buf.len() {
            return Err(Error::TooLarge {
                buffer: Buffer::Window,
                needed,
                capacity: win.buf.len(),
            });
        }
        let norm = model.desc().norm.as_ref();
        let mut finite = true;
        let values = normalized(frame, norm).inspect(|v| finite &= v.is_finite());
        self.load_f32(values)?;
        if !finite {
            return Err(Error::NonFinite);
        }
        if !model.pre().is_empty() {
            run_ops(model, model.pre(), &mut self.scratch, self.math)?;
        }
        let stream = model.layers().get(..k).unwrap_or(&[]);
        if !stream.is_empty() {
            if model.precision().is_int() {
                #[cfg(any(feature = "int8", feature = "int16"))]
                run_layers_int(model, stream, &mut self.state, &mut self.scratch)?;
            } else {
                #[cfg(feature = "f32")]
                {
                    let err = self.too_small();
                    run_layers_f32(stream, &mut self.state, &mut self.scratch, self.math, err)?;
                }
            }
        }
        // the windowed layers' input: the scratch input (k = 0) or layer k−1's h
        let p = model.precision();
        let pw = per_word(p);
        let first = model.layers().get(k).ok_or(Error::BadDimension)?;
        let s_in = pad4(first.input_size as usize) / pw;
        let cap = win.capacity(model);
        let t = win.frames;
        let dst = frame_mut(
            win.buf
                .get_mut(..cap.saturating_mul(s_in))
                .unwrap_or(&mut []),
            t,
            s_in,
        );
        match stream.split_last() {
            None => copy_words(dst, self.scratch.iter().copied().take(s_in)),
            Some((last, below)) => {
                let off: usize = below.iter().map(layer_words).sum();
                let h = self
                    .state
                    .get(off..)
                    .and_then(|s| s.get(..last.h_len()))
                    .unwrap_or(&[]);
                if p.is_int() {
                    #[cfg(any(feature = "int8", feature = "int16"))]
                    pack_h(dst, h);
                } else {
                    copy_words(dst, h.iter().map(|&v| v as u32));
                }
            }
        }
        // a bidirectional first windowed layer: its forward direction steps now, its h_t
        // into frame t's output slot (first half; the backward half comes at the decision)
        if let Some((off, _, cnt_at)) = fwd_words(model, k) {
            let int = p.is_int();
            let words = layer_words(first);
            let s_out = model
                .layers()
                .get(k..)
                .unwrap_or(&[])
                .iter()
                .map(|l| pad4(l.out_size()))
                .max()
                .unwrap_or(0)
                / pw;
            let (inp, rest) = win
                .buf
                .split_at_mut_checked(cap.saturating_mul(s_in))
                .unwrap_or((&mut [], &mut []));
            let Session {
                state,
                scratch,
                math,
                ..
            } = self;
            if t == 0 {
                if let Some(st) = state.get_mut(off..).and_then(|s| s.get_mut(..words)) {
                    init_layer(first, st, int);
                }
                if let Some(c) = state.get_mut(cnt_at) {
                    *c = 0;
                }
                win.fwd = true;
            }
            let taken = state.get(cnt_at).map_or(-1, |&c| c as i64);
            if win.fwd && taken == t as i64 {
                let st = state
                    .get_mut(off..)
                    .and_then(|s| s.get_mut(..words))
                    .unwrap_or(&mut []);
                step_dir(
                    p,
                    *math,
                    first,
                    st,
                    scratch,
                    self::frame(inp, t, s_in),
                    model,
                )?;
                let out = frame_mut(rest, t, s_out);
                out.fill(0);
                put_h(out, st.get(..first.h_len()).unwrap_or(&[]), 0, int);
                if let Some(c) = state.get_mut(cnt_at) {
                    *c = t as i32 + 1;
                }
            }
        }
        win.frames = t + 1;
        Ok(())
    }

    /// Runs the windowed layers over the frames of `win`, pools their output and runs the
    /// hidden head ops: the head's input is left at the start of the scratch; returns its
    /// width. `None` for a model that streams.
    fn window_head_input(&mut self, win: &mut Window<'_>) -> Result<Option<usize>> {
        let model = self.model;
        let Some(k) = model.window_layer() else {
            return Ok(None);
        };
        let p = model.precision();
        let int = p.is_int();
        let pw = per_word(p);
        let layers = model.layers().get(k..).unwrap_or(&[]);
        let first = layers.first().ok_or(Error::BadDimension)?;
        let s_in = pad4(first.input_size as usize) / pw;
        let s_out = layers.iter().map(|l| pad4(l.out_size())).max().unwrap_or(0) / pw;
        let cap = win.capacity(model);
        let t_len = win.frames.min(cap);
        let (inp, rest) = win
            .buf
            .split_at_mut_checked(cap.saturating_mul(s_in))
            .unwrap_or((&mut [], &mut []));
        let (a, rest) = rest
            .split_at_mut_checked(cap.saturating_mul(s_out))
            .unwrap_or((&mut [], &mut []));
        let b = rest.get_mut(..cap.saturating_mul(s_out)).unwrap_or(&mut []);
        let Session {
            state,
            scratch,
            math,
            ..
        } = self;
        let mut off: usize = model.layers().iter().take(k).map(layer_words).sum();
        // a bidirectional first windowed layer whose forward direction ran per frame (from
        // h0 at frame 0, every frame held): only its backward direction runs now
        let own = fwd_words(model, k);
        let stepped = own.is_some_and(|(_, _, cnt_at)| {
            win.fwd && state.get(cnt_at).is_some_and(|&c| c as i64 == t_len as i64)
        });
        for (i, l) in layers.iter().enumerate() {
            let (src, stride, dst): (&[u32], usize, &mut [u32]) = if i == 0 {
                (&*inp, s_in, &mut *a)
            } else if i % 2 == 1 {
                (&*a, s_out, &mut *b)
            } else {
                (&*b, s_out, &mut *a)
            };
            let words = layer_words(l);
            let short = Error::TooLarge {
                buffer: Buffer::State,
                needed: model.state_len(),
                capacity: STATE,
            };
            let at = off;
            off += words;
            let h = l.h_len();
            let own_i = own.filter(|_| i == 0);
            if !(stepped && i == 0) {
                for t in 0..t_len {
                    frame_mut(dst, t, s_out).fill(0);
                }
            }
            for d in 0..l.direction.count() {
                if d == 0 && stepped && i == 0 {
                    continue;
                }
                // the backward direction of a per-frame one: its own words (the forward
                // direction's state stays as the frames left it)
                let from = match own_i {
                    Some((_, bwd, _)) if d == 1 => bwd,
                    _ => at,
                };
                let st = state
                    .get_mut(from..)
                    .and_then(|s| s.get_mut(..words))
                    .ok_or(short.clone())?;
                let (ld, rev) = match (l.direction, d) {
                    (Direction::Forward, _) => (*l, false),
                    (Direction::Reverse, _) => (*l, true),
                    (Direction::Bidirectional, 0) => (*l, false),
                    (Direction::Bidirectional, _) => {
                        (l.backward_layer().ok_or(Error::ShapeMismatch)?, true)
                    }
                };
                init_layer(&ld, st, int);
                for s in 0..t_len {
                    let t = if rev { t_len - 1 - s } else { s };
                    step_dir(p, *math, &ld, st, scratch, frame(src, t, stride), model)?;
                    put_h(frame_mut(dst, t, s_out), st.get(..h).unwrap_or(&[]), d, int);
                }
                // recomputed from h0 over every frame held: the per-frame state again
                if d == 0 {
                    if let Some(c) = own_i.and_then(|(_, _, cnt_at)| state.get_mut(cnt_at)) {
                        *c = t_len as i32;
                        win.fwd = true;
                    }
                }
            }
        }
        // a third windowed layer wrote over the first one's output slot: the next decision
        // recomputes its forward direction
        if layers.len() > 2 {
            win.fwd = false;
        }
        // the last layer's output sequence
        let last = layers.last().ok_or(Error::BadDimension)?;
        let seq: &[u32] = if layers.len() % 2 == 1 { a } else { b };
        let w = last.out_size();
        let lh = last.h_len();
        let cap_s = scratch.len();
        let v = scratch
            .get_mut(..pad4(w) / pw)
            .ok_or_else(|| scratch_short(model, cap_s))?;
        v.fill(0);
        let n = t_len as i64;
        let end = t_len.saturating_sub(1);
        // the frame FinalStates takes value j from: h_0 for a reverse direction
        let final_frame = |j: usize| match last.direction {
            Direction::Reverse => 0,
            Direction::Bidirectional if j >= lh => 0,
            _ => end,
        };
        let hf = last.h_frac as u32;
        let shift = hf.saturating_sub(model.desc().pool_frac as u32).min(62);
        for j in 0..w {
            let at = |t: usize| frame(seq, t, s_out);
            if int {
                let q = |t: usize| get_q(at(t), j);
                let val = if t_len == 0 {
                    0
                } else {
                    match model.pool() {
                        Pool::Last => q(end),
                        Pool::FinalStates => q(final_frame(j)),
                        Pool::Max => (0..t_len).map(q).max().unwrap_or(0),
                        Pool::Sum | Pool::Mean => {
                            let s = (0..t_len).fold(0i64, |s, t| s.saturating_add(q(t) as i64));
                            if model.pool() == Pool::Mean {
                                sat_i16(
                                    round_div(s, n).clamp(i32::MIN as i64, i32::MAX as i64) as i32
                                )
                            } else {
                                sum_q(s, shift)
                            }
                        }
                    }
                };
                set_q(v, j, val);
            } else {
                let f = |t: usize| f32::from_bits(at(t).get(j).copied().unwrap_or(0));
                let val = if t_len == 0 {
                    0.0
                } else {
                    match model.pool() {
                        Pool::Last => f(end),
                        Pool::FinalStates => f(final_frame(j)),
                        Pool::Max => {
                            (0..t_len).map(f).fold(
                                f32::NEG_INFINITY,
                                |m, x| {
                                    if x > m {
                                        x
                                    } else {
                                        m
                                    }
                                },
                            )
                        }
                        Pool::Sum | Pool::Mean => {
                            let s = (0..t_len).fold(0f64, |s, t| s + f(t) as f64);
                            if model.pool() == Pool::Mean {
                                (s / n as f64) as f32
                            } else {
                                s as f32
                            }
                        }
                    }
                };
                if let Some(o) = v.get_mut(j) {
                    *o = val.to_bits();
                }
            }
        }
        run_ops(model, model.mlp(), scratch, *math)?;
        Ok(Some(model.mlp().last().map_or(w, |op| op.out_size())))
    }

    /// The output over the frames of `win` (see the [module docs](crate::session::window)): the windowed
    /// layers run over the window, then pooling, the hidden head and the head. `win` and
    /// the streamed state are left as they are (call it again for the same result; clear
    /// both with [`reset`](Self::reset) and [`Window::clear`] to start the next window).
    /// For a model that streams this is [`output`](Self::output).
    ///
    /// # Errors
    /// As [`output`](Self::output).
    pub fn output_window(&mut self, win: &mut Window<'_>, out: &mut [f32]) -> Result<()> {
        Self::expect_len(self.model.output_size(), out.len())?;
        let ready = self.window_head_input(win)?;
        self.output_from(ready, out)
    }

    /// [`output_window`](Self::output_window) as integers (as [`output_q`](Self::output_q)).
    ///
    /// # Errors
    /// As [`output_q`](Self::output_q).
    pub fn output_window_q(&mut self, win: &mut Window<'_>, out: &mut [i16]) -> Result<()> {
        if !self.model.precision().is_int() {
            return Err(Error::PrecisionMismatch);
        }
        Self::expect_len(self.model.output_size(), out.len())?;
        let ready = self.window_head_input(win)?;
        self.output_q_from(ready, out)
    }

    /// The argmax of [`output_window`](Self::output_window) (as [`classify`](Self::classify)).
    ///
    /// # Errors
    /// As [`output_window`](Self::output_window).
    pub fn classify_window(&mut self, win: &mut Window<'_>) -> Result<Decision> {
        let ready = self.window_head_input(win)?;
        self.classify_from(ready)
    }
}

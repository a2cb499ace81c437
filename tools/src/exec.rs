//! Running a model over a batch of sequences: the f64 reference for imported float models,
//! and `tinyrnn::Session` (exactly the MCU's code path, input conversion included) for blobs.
//!
//! Sequences may be zero-padded: with `lengths`, sequence `i` is run for its first
//! `lengths[i]` frames only (the padding never reaches the state), its last-step output is
//! the one after frame `lengths[i] − 1`, and with [`Steps::All`] the outputs at padded steps
//! are zeros (like PyTorch's `pad_packed_sequence`).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tinyrnn::{F32Math, Model, Precision};

use crate::data::Sequences;
use crate::import::{self, FileKind, ImportOptions};
use crate::ir::{FloatModel, Norm};

/// A tinyrnn blob held in memory (validated by the library's loader).
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    /// The blob's bytes.
    pub bytes: Vec<u8>,
    /// Transcendental functions of the f32 path (`Fast` = rational tanh/sigmoid, the MCU default).
    pub f32_math: F32Math,
}

impl Blob {
    /// Validates `bytes` with [`Model::from_blob`].
    ///
    /// # Errors
    /// The loader's error, as text.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Model::from_blob(&bytes).map_err(|e| anyhow!("invalid blob: {e}"))?;
        Ok(Blob {
            bytes,
            f32_math: F32Math::Fast,
        })
    }

    /// The decoded model (borrows the bytes; cheap).
    pub fn model(&self) -> Model<'_> {
        // Validated in `from_bytes`; the bytes are immutable since.
        Model::from_blob(&self.bytes).expect("blob validated on load")
    }
}

/// Anything `run` / `eval` can execute.
#[derive(Debug, Clone, PartialEq)]
pub enum Runnable {
    /// An imported float model, run by the f64 reference.
    Float(Box<FloatModel>),
    /// A blob, run by `tinyrnn::Session`.
    Blob(Blob),
}

impl Runnable {
    /// Features per input frame.
    pub fn input_size(&self) -> usize {
        match self {
            Runnable::Float(m) => m.input_size,
            Runnable::Blob(b) => b.model().input_size(),
        }
    }

    /// Width of the output vector.
    pub fn output_size(&self) -> usize {
        match self {
            Runnable::Float(m) => m.output_size(),
            Runnable::Blob(b) => b.model().output_size(),
        }
    }

    /// Whether outputs are integers (an int8/int16 blob).
    pub fn is_int(&self) -> bool {
        match self {
            Runnable::Float(_) => false,
            Runnable::Blob(b) => b.model().precision().is_int(),
        }
    }

    /// Short description: `float model (f64 reference)` or `int8 blob` etc.
    pub fn kind(&self) -> &'static str {
        match self {
            Runnable::Float(_) => "float model (f64 reference)",
            Runnable::Blob(b) => match b.model().precision() {
                Precision::Int8 => "int8 blob",
                Precision::Int16 => "int16 blob",
                Precision::F32 => "float32 blob",
            },
        }
    }
}

impl Runnable {
    /// The input normalization `(raw − offset) · scale` the model applies, if any.
    pub fn norm(&self) -> Option<Norm> {
        match self {
            Runnable::Float(m) => m.norm.clone(),
            Runnable::Blob(b) => {
                let m = b.model();
                let n = m.desc().norm?;
                let f = |bytes: &[u8]| -> Vec<f32> {
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                };
                Some(Norm {
                    offset: f(n.offset),
                    scale: f(n.scale),
                })
            }
        }
    }
}

/// Normalized inputs beyond this many standard deviations make [`norm_warning`] speak:
/// statistics that fit the data put almost every value within a few (Chebyshev: at most
/// one value in 10^6 beyond 1000 for any distribution with that mean and std).
pub const NORM_LIMIT: f64 = 1e3;

/// A warning when `norm` takes input values (the frames in use) beyond ±[`NORM_LIMIT`]:
/// typically a `--normalize` std far too small for the data (the inputs then saturate an
/// integer blob's input format, or the cells). Names the count, the worst feature, its
/// raw and normalized value and the std it implies.
pub fn norm_warning(norm: &Norm, x: &Sequences, lengths: Option<&[usize]>) -> Option<String> {
    let (mut count, mut total) = (0u64, 0u64);
    let mut worst: Option<(f64, usize, f32)> = None;
    for i in 0..x.n {
        let len = lengths.map_or(x.t, |l| l[i]);
        for t in 0..len {
            for (k, &v) in x.frame(i, t).iter().enumerate() {
                let (Some(&o), Some(&s)) = (norm.offset.get(k), norm.scale.get(k)) else {
                    continue;
                };
                let z = ((v as f64 - o as f64) * s as f64).abs();
                total += 1;
                if z > NORM_LIMIT {
                    count += 1;
                    if worst.is_none_or(|(w, _, _)| z > w) {
                        worst = Some((z, k, v));
                    }
                }
            }
        }
    }
    let (z, k, v) = worst?;
    Some(format!(
        "after the input normalization {count} of {total} input values are beyond ±{NORM_LIMIT} \
         standard deviations (worst: feature {k}, value {v:.3e} becomes {z:.3e} with mean {:.3e} \
         and std {:.3e}): check the statistics (--normalize) against this data",
        norm.offset[k],
        1.0 / norm.scale[k]
    ))
}

/// Loads a blob, an ONNX or a safetensors model, judged by content.
///
/// Import options apply to ONNX/safetensors only; `--normalize` or `--rnn-activation` with a
/// blob is an error (a blob carries its own normalization and cells).
///
/// # Errors
/// As [`import::load_model`] and [`Blob::from_bytes`] (the message names the file).
pub fn load(path: &Path, opts: &ImportOptions) -> Result<Runnable> {
    let bytes = crate::data::read_file(path)?;
    if bytes.is_empty() {
        bail!("{}: the file is empty", path.display());
    }
    if tinyrnn::signed::is_envelope(&bytes) {
        bail!(
            "{}: a signed blob: check it with `tinyrnn verify`; this command takes the bare blob \
             that was signed",
            path.display()
        );
    }
    if import::sniff(&bytes) == FileKind::Blob {
        if opts.normalize.is_some() {
            bail!(
                "{}: --normalize applies to ONNX/safetensors models; a blob carries its own normalization",
                path.display()
            );
        }
        if opts.rnn_activation.is_some() || opts.output_act.is_some() || opts.pool.is_some() {
            bail!(
                "{}: --rnn-activation/--output-activation/--pool apply to safetensors models, not to a blob",
                path.display()
            );
        }
        let blob = Blob::from_bytes(bytes).with_context(|| format!("{}", path.display()))?;
        return Ok(Runnable::Blob(blob));
    }
    Ok(Runnable::Float(Box::new(import::load_model_bytes(
        &bytes, path, opts,
    )?)))
}

/// `--f32-math` values: the transcendental functions of a float32 blob's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum F32MathArg {
    /// Rational tanh/sigmoid (max abs error 4.1e-7): what the MCU runs by default.
    #[default]
    Fast,
    /// libm: matches PyTorch to about 1e-6.
    Accurate,
}

impl From<F32MathArg> for F32Math {
    fn from(a: F32MathArg) -> Self {
        match a {
            F32MathArg::Fast => F32Math::Fast,
            F32MathArg::Accurate => F32Math::Accurate,
        }
    }
}

/// Which outputs to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Steps {
    /// The output after each sequence's last (true) frame: `[N, C]`.
    Last,
    /// The output after every frame: `[N, T, C]` (zeros past a sequence's length).
    All,
}

/// Outputs of a batch run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// Which steps were kept.
    pub steps: Steps,
    /// Number of sequences `N`.
    pub n: usize,
    /// Steps kept per sequence: 1 for [`Steps::Last`], `T` for [`Steps::All`].
    pub t: usize,
    /// Output width `C`.
    pub c: usize,
    /// True length of each sequence.
    pub lengths: Vec<usize>,
    /// `[N, t, C]` values (dequantized for integer blobs).
    pub y: Vec<f64>,
    /// Integer blobs: the raw `i16` outputs (`Session::output_q`), same layout as `y`.
    pub y_q: Option<Vec<i16>>,
}

impl Outputs {
    /// Output of sequence `i` at kept step `t`.
    pub fn at(&self, i: usize, t: usize) -> &[f64] {
        let o = (i * self.t + t) * self.c;
        &self.y[o..o + self.c]
    }

    fn last_index(&self, i: usize) -> usize {
        match self.steps {
            Steps::Last => i * self.t,
            Steps::All => i * self.t + self.lengths[i] - 1,
        }
    }

    /// Output after the last true frame of sequence `i`.
    pub fn last(&self, i: usize) -> &[f64] {
        let o = self.last_index(i) * self.c;
        &self.y[o..o + self.c]
    }

    /// Integer output after the last true frame of sequence `i` (integer blobs).
    pub fn last_q(&self, i: usize) -> Option<&[i16]> {
        let o = self.last_index(i) * self.c;
        self.y_q.as_ref().map(|q| &q[o..o + self.c])
    }

    /// Predicted class of sequence `i`: argmax of its last output (integer outputs for an
    /// integer blob), ties to the lowest index.
    pub fn class(&self, i: usize) -> usize {
        match self.last_q(i) {
            Some(q) => argmax(q),
            None => argmax(self.last(i)),
        }
    }

    /// Shape to save: `[N, C]` or `[N, T, C]`.
    pub fn shape(&self) -> Vec<usize> {
        match self.steps {
            Steps::Last => vec![self.n, self.c],
            Steps::All => vec![self.n, self.t, self.c],
        }
    }

    /// Values as `f32` (for `.npy`).
    pub fn to_f32(&self) -> Vec<f32> {
        self.y.iter().map(|&v| v as f32).collect()
    }

    /// The `--raw` line of sequence `i`: `seq=<i> class=<c> logits=<v0>,<v1>,...` with the
    /// integer outputs of an integer blob, else the float outputs (`f32`, shortest form).
    pub fn raw_line(&self, i: usize) -> String {
        let vals: Vec<String> = match self.last_q(i) {
            Some(q) => q.iter().map(|v| v.to_string()).collect(),
            None => self
                .last(i)
                .iter()
                .map(|&v| format!("{}", v as f32))
                .collect(),
        };
        format!("seq={i} class={} logits={}", self.class(i), vals.join(","))
    }
}

/// Index of the largest value, ties to the lowest index (NaN never wins).
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate().skip(1) {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Checks `lengths` (or makes them all `T`).
fn resolve_lengths(x: &Sequences, lengths: Option<&[usize]>) -> Result<Vec<usize>> {
    match lengths {
        None => Ok(vec![x.t; x.n]),
        Some(l) => {
            if l.len() != x.n {
                bail!("{} lengths for {} sequences", l.len(), x.n);
            }
            if let Some((i, &v)) = l.iter().enumerate().find(|(_, &v)| v < 1 || v > x.t) {
                bail!("length {v} of sequence {i} is outside 1..={}", x.t);
            }
            Ok(l.to_vec())
        }
    }
}

/// Runs `m` over every sequence of `x` from its initial state.
///
/// # Errors
/// Feature-count mismatch (naming both), bad lengths, runtime errors of the blob path.
pub fn run(
    m: &Runnable,
    x: &Sequences,
    lengths: Option<&[usize]>,
    steps: Steps,
) -> Result<Outputs> {
    x.expect_features(m.input_size(), "the model")?;
    let lengths = resolve_lengths(x, lengths)?;
    let c = m.output_size();
    let t_keep = match steps {
        Steps::Last => 1,
        Steps::All => x.t,
    };
    let mut y = vec![0.0f64; x.n * t_keep * c];
    let mut y_q = if m.is_int() {
        Some(vec![0i16; x.n * t_keep * c])
    } else {
        None
    };
    match m {
        Runnable::Float(fm) if !fm.streams() => {
            // a reverse or bidirectional layer: one output per sequence, over all its frames
            if steps == Steps::All {
                bail!(
                    "the model has a reverse or bidirectional layer: it gives one output per \
                     sequence (after its last frame), not one per frame; use --steps last"
                );
            }
            for (i, &len) in lengths.iter().enumerate() {
                let frames: Vec<&[f32]> = (0..len).map(|t| x.frame(i, t)).collect();
                let out = fm.run_window(&frames, &mut ());
                y[i * c..(i + 1) * c].copy_from_slice(&out);
            }
        }
        Runnable::Float(fm) => {
            for (i, &len) in lengths.iter().enumerate() {
                let mut st = fm.initial_state();
                for t in 0..len {
                    fm.step(&mut st, x.frame(i, t), &mut ());
                    let keep = match steps {
                        Steps::Last => (t + 1 == len).then_some(0),
                        Steps::All => Some(t),
                    };
                    if let Some(k) = keep {
                        let out = fm.output(&st, &mut ());
                        let o = (i * t_keep + k) * c;
                        y[o..o + c].copy_from_slice(&out);
                    }
                }
            }
        }
        Runnable::Blob(b) => {
            run_blob(b, x, &lengths, steps, t_keep, c, &mut y, y_q.as_deref_mut())?;
        }
    }
    Ok(Outputs {
        steps,
        n: x.n,
        t: t_keep,
        c,
        lengths,
        y,
        y_q,
    })
}

/// Capacity of the host's sessions: enough for any blob the loader accepts (the layers'
/// `h`/`c`, then the pooling accumulators or a windowed model's `Model::window_state_words`,
/// at most `2 · MAX_DIM + 2`).
const STATE_WORDS: usize = 2 * tinyrnn::MAX_LAYERS * tinyrnn::MAX_DIM + 2 * tinyrnn::MAX_DIM + 2;
/// Scratch words: `[x; h]` plus `r ⊙ h`, one word per value (f32 path, the largest).
const SCRATCH_WORDS: usize = 3 * tinyrnn::MAX_DIM;

fn core_err(e: tinyrnn::Error) -> anyhow::Error {
    anyhow!("{e}")
}

/// The error of stepping `model` on `frame` (`what` says where: `sequence 3, frame 7`). For
/// [`tinyrnn::Error::NonFinite`] the message names the feature and says whether its value
/// is itself NaN/inf or a finite value that the blob's normalization `(x − offset)·scale`
/// takes out of the `f32` range.
pub fn step_error(
    e: tinyrnn::Error,
    model: &Model<'_>,
    frame: &[f32],
    what: &str,
) -> anyhow::Error {
    if e != tinyrnn::Error::NonFinite {
        return anyhow!("{what}: {e}");
    }
    let f32_at = |b: &[u8], k: usize| -> Option<f32> {
        let c = b.get(4 * k..4 * k + 4)?;
        Some(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    };
    let norm = model.desc().norm;
    for (k, &v) in frame.iter().enumerate() {
        if !v.is_finite() {
            return anyhow!("{what}, feature {k}: non-finite value {v}");
        }
        if let Some(n) = &norm {
            if let (Some(o), Some(sc)) = (f32_at(n.offset, k), f32_at(n.scale, k)) {
                let x = (v - o) * sc;
                if !x.is_finite() {
                    return anyhow!(
                        "{what}, feature {k}: value {v:e} is out of range: the blob's \
                         normalization (x − {o:e}) × {sc:e} overflows float32"
                    );
                }
            }
        }
    }
    anyhow!("{what}: {e}")
}

#[allow(clippy::too_many_arguments)]
fn run_blob(
    b: &Blob,
    x: &Sequences,
    lengths: &[usize],
    steps: Steps,
    t_keep: usize,
    c: usize,
    y: &mut [f64],
    mut y_q: Option<&mut [i16]>,
) -> Result<()> {
    let model = b.model();
    let mut s: Box<tinyrnn::Session<'_, STATE_WORDS, SCRATCH_WORDS>> =
        Box::new(tinyrnn::Session::new(&model).map_err(core_err)?);
    s.set_f32_math(b.f32_math).map_err(core_err)?;
    let mut out = vec![0f32; c];
    let mut out_q = vec![0i16; c];
    if model.is_windowed() {
        // a reverse or bidirectional layer: one output per sequence, over all its frames
        // (the window buffer sized for the longest sequence)
        if steps == Steps::All {
            bail!(
                "the blob has a reverse or bidirectional layer: it gives one output per \
                 sequence (after its last frame), not one per frame; use --steps last"
            );
        }
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let mut buf = vec![0u32; model.window_words(longest)];
        for (i, &len) in lengths.iter().enumerate() {
            s.reset();
            let mut win = tinyrnn::Window::new(&mut buf);
            for t in 0..len {
                let frame = x.frame(i, t);
                s.step_window(frame, &mut win).map_err(|e| {
                    step_error(e, &model, frame, &format!("sequence {i}, frame {t}"))
                })?;
            }
            let o = i * t_keep * c;
            s.output_window(&mut win, &mut out).map_err(core_err)?;
            for (d, v) in y[o..o + c].iter_mut().zip(&out) {
                *d = *v as f64;
            }
            if let Some(q) = y_q.as_deref_mut() {
                s.output_window_q(&mut win, &mut out_q).map_err(core_err)?;
                q[o..o + c].copy_from_slice(&out_q);
            }
        }
        return Ok(());
    }
    for (i, &len) in lengths.iter().enumerate() {
        s.reset();
        for t in 0..len {
            let frame = x.frame(i, t);
            s.step(frame)
                .map_err(|e| step_error(e, &model, frame, &format!("sequence {i}, frame {t}")))?;
            let keep = match steps {
                Steps::Last => (t + 1 == len).then_some(0),
                Steps::All => Some(t),
            };
            if let Some(k) = keep {
                let o = (i * t_keep + k) * c;
                s.output(&mut out).map_err(core_err)?;
                for (d, v) in y[o..o + c].iter_mut().zip(&out) {
                    *d = *v as f64;
                }
                if let Some(q) = y_q.as_deref_mut() {
                    s.output_q(&mut out_q).map_err(core_err)?;
                    q[o..o + c].copy_from_slice(&out_q);
                }
            }
        }
    }
    Ok(())
}

//! The recording loop.

use tinyrnn::{Classifier, Config, Model};

use crate::data::{self, Recording};
use crate::line::Line;

/// Why a run failed.
pub enum Failure {
    /// The library returned an error.
    Tinyrnn(tinyrnn::Error),
    /// The decision (`Classifier::end_sequence`, `Session::classify_window`) is not the
    /// argmax of the integer outputs (sequence index).
    Inconsistent(usize),
    /// A printed line did not fit its buffer.
    LineOverflow,
}

impl From<tinyrnn::Error> for Failure {
    fn from(e: tinyrnn::Error) -> Self {
        Failure::Tinyrnn(e)
    }
}

/// Index of the largest value, ties → the lowest index (`tinyrnn run --raw`'s `class`).
pub fn argmax(v: &[i16]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// A `seq=<i> class=<c> logits=<v0>,<v1>,...` line: room for `OUTPUT` values of up to 6 chars.
type SeqLine = Line<{ 40 + 7 * sizes::OUTPUT }>;

/// The buffer sizes: the largest over all embedded datasets, so that one `Classifier` type
/// (one copy of the runtime's code: `Session` is generic over its buffer sizes) and one set
/// of buffers serve them all.
mod sizes {
    #[cfg(all(not(feature = "graph-models"), feature = "window"))]
    pub use crate::data::WINDOW;
    #[cfg(not(feature = "graph-models"))]
    pub use crate::data::{INPUT, OUTPUT, SCRATCH, STATE};

    #[cfg(feature = "graph-models")]
    macro_rules! largest {
        ($($name:ident),*) => {$(
            pub const $name: usize = {
                use crate::data::{self, extra};
                let mut n = data::$name;
                // every module of `data::extra` (tinyrnn_host_npy::EXTRA_DATASETS)
                let all = [extra::mlp::$name, extra::pre::$name, extra::bidir::$name];
                let mut i = 0;
                while i < all.len() {
                    if all[i] > n {
                        n = all[i];
                    }
                    i += 1;
                }
                n
            };
        )*};
    }
    #[cfg(feature = "graph-models")]
    largest!(INPUT, OUTPUT, SCRATCH, STATE, WINDOW);
}

/// Validates the blob, then runs every sequence of the recording through a streaming
/// classifier, one frame at a time, printing one `seq=` line per sequence and the accuracy;
/// then the same for every further dataset (feature `graph-models`), each after a
/// `dataset=<name>` line.
#[inline(never)] // a stable symbol for profiling (start of the measured region)
pub fn run_recording() -> Result<(), Failure> {
    run_one(&data::RECORDING)?;
    #[cfg(feature = "graph-models")]
    {
        // The modules of `data::extra` (tinyrnn_host_npy::EXTRA_DATASETS), in its order
        // (`cargo xtask qemu` expects them so).
        use data::extra::{bidir, mlp, pre};
        for (name, rec, window) in [
            ("mlp", &mlp::RECORDING, mlp::WINDOW),
            ("pre", &pre::RECORDING, pre::WINDOW),
            ("bidir", &bidir::RECORDING, bidir::WINDOW),
        ] {
            defmt::println!(
                "dataset={=str} blob={=usize}B seqs={=usize} window={=usize}w",
                name,
                rec.blob.len(),
                rec.lengths.len(),
                window
            );
            run_one(rec)?;
        }
    }
    Ok(())
}

/// One embedded dataset. A streaming model goes through a [`Classifier`] frame by frame,
/// the outputs read at the end of each sequence (`Session::output_q`). A windowed model
/// (reverse/bidirectional layers) gets each frame through `Session::step_window` into the
/// window buffer (`sizes::WINDOW` words), and at the end of the sequence its output over the
/// whole window (`Session::output_window_q`), as `tinyrnn run` does (one output per sequence).
#[inline(never)]
fn run_one(rec: &Recording) -> Result<(), Failure> {
    // Filled in place (one copy of the 1.2 KB `Model` on the stack, not a `Result` too).
    let mut model = None;
    load(rec.blob, &mut model)?;
    match &model {
        Some(m) => run_model(m, rec),
        None => Ok(()),
    }
}

/// [`run_one`] after the blob is loaded. Not inlined: the classifier and the line buffers
/// are not on the stack while `load` runs (on the micro:bit's 16 KB that matters).
#[inline(never)]
fn run_model(model: &Model<'_>, rec: &Recording) -> Result<(), Failure> {
    defmt::println!(
        "model in={=usize} out={=usize} layers={=usize} state={=usize}w scratch={=usize}w weights={=usize}B",
        model.input_size(),
        model.output_size(),
        model.layers().len(),
        model.state_len(),
        model.scratch_len(),
        model.weight_bytes()
    );
    // Sized at compile time from the blobs by ../board-support/build.rs; `new` would say `TooLarge` otherwise.
    let mut clf: Clf<'_> = Classifier::new(model, Config::default())?;
    // Window mode needs this crate's feature `window` (on with `all-models` and
    // `graph-models`, and it turns on tinyrnn's); without it `load` refuses a windowed blob
    // (`FeatureDisabled(window)`).
    #[cfg(feature = "window")]
    let windowed = model.is_windowed();
    let mut logits_buf = [0i16; sizes::OUTPUT];
    let logits = &mut logits_buf[..model.output_size().min(sizes::OUTPUT)];
    let mut t = 0;
    let mut correct = 0usize;
    for (i, (&len, &label)) in rec.lengths.iter().zip(rec.labels.iter()).enumerate() {
        let frames = t..t + len as usize;
        t += len as usize;
        #[cfg(feature = "window")]
        let decision = if windowed {
            windowed_sequence(&mut clf, rec, frames, logits)?
        } else {
            streamed_sequence(&mut clf, rec, frames, logits)?
        };
        #[cfg(not(feature = "window"))]
        let decision = streamed_sequence(&mut clf, rec, frames, logits)?;
        let class = argmax(logits);
        if decision.class as usize != class {
            return Err(Failure::Inconsistent(i));
        }
        if class == label as usize {
            correct += 1;
        }
        let mut line = SeqLine::new();
        line.str("seq=")
            .int(i as i64)
            .str(" class=")
            .int(class as i64)
            .str(" logits=");
        for (k, &v) in logits.iter().enumerate() {
            if k > 0 {
                line.str(",");
            }
            line.int(v as i64);
        }
        if line.overflowed() {
            return Err(Failure::LineOverflow);
        }
        defmt::println!("{=str}", line.as_str());
    }
    let mut line = Line::<48>::new();
    line.str("accuracy=")
        .int(correct as i64)
        .str("/")
        .int(rec.lengths.len() as i64);
    defmt::println!("{=str}", line.as_str());
    Ok(())
}

/// The one classifier type (buffers sized for every embedded dataset).
type Clf<'m> = Classifier<'m, { sizes::STATE }, { sizes::SCRATCH }, 1>;

/// Streams `frames` of `rec` through `clf` one at a time, reads the outputs into `logits`
/// (`Session::output_q`) and ends the sequence (`Classifier::end_sequence`, which resets).
/// Not inlined, as [`windowed_sequence`]: only one of their frames is on the stack at a time.
#[inline(never)]
fn streamed_sequence(
    clf: &mut Clf<'_>,
    rec: &Recording,
    frames: core::ops::Range<usize>,
    logits: &mut [i16],
) -> Result<tinyrnn::Decision, Failure> {
    let mut buf = [0f32; sizes::INPUT];
    let frame = &mut buf[..rec.input];
    for t in frames {
        rec.frame(t, frame);
        // `window: None`: decisions come only from `end_sequence`.
        clf.push(frame)?;
    }
    clf.session().output_q(logits)?;
    Ok(clf.end_sequence()?)
}

/// Window mode: `frames` of `rec` go through `Session::step_window` into a window buffer
/// of `sizes::WINDOW` words (the longest sequence of any embedded windowed model, on the
/// stack), then the output over the whole window (`Session::output_window_q`) and its
/// decision; the state is reset for the next sequence.
#[cfg(feature = "window")]
#[inline(never)]
fn windowed_sequence(
    clf: &mut Clf<'_>,
    rec: &Recording,
    frames: core::ops::Range<usize>,
    logits: &mut [i16],
) -> Result<tinyrnn::Decision, Failure> {
    let mut win_buf = [0u32; sizes::WINDOW];
    let mut win = tinyrnn::Window::new(&mut win_buf);
    let mut buf = [0f32; sizes::INPUT];
    let frame = &mut buf[..rec.input];
    let s = clf.session();
    for t in frames {
        rec.frame(t, frame);
        s.step_window(frame, &mut win)?;
    }
    s.output_window_q(&mut win, logits)?;
    let d = s.classify_window(&mut win)?;
    clf.reset();
    Ok(d)
}

/// `Model::from_blob` into `out`, not inlined: its decoding temporaries (about 7 KB on the
/// Cortex-M0 with every blob format linked) leave the stack before the sequences run.
#[inline(never)]
fn load<'a>(blob: &'a [u8], out: &mut Option<Model<'a>>) -> Result<(), Failure> {
    *out = Some(Model::from_blob(blob)?);
    Ok(())
}

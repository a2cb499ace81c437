//! The recording loop.

use tinyrnn::{Classifier, Config, Model};

use crate::data::{self, INPUT, LABELS, LENGTHS, N_SEQ, OUTPUT, SCRATCH, STATE};
use crate::line::Line;

/// Why a run failed.
pub enum Failure {
    /// The library returned an error.
    Tinyrnn(tinyrnn::Error),
    /// `Classifier::end_sequence`'s class is not the argmax of `Session::output_q`
    /// (sequence index).
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

/// `seq=<i> class=<c> logits=<v0>,<v1>,...` plus room for `OUTPUT` values of up to 6 chars.
type SeqLine = Line<{ 40 + 7 * OUTPUT }>;

/// Validates the blob, then runs every sequence of the recording through a streaming
/// classifier, one frame at a time, printing one `seq=` line per sequence and the accuracy.
#[inline(never)] // a stable symbol for profiling (start of the measured region)
pub fn run_recording() -> Result<(), Failure> {
    let model = Model::from_blob(data::BLOB)?;
    defmt::println!(
        "model in={=usize} out={=usize} layers={=usize} state={=usize}w scratch={=usize}w weights={=usize}B",
        model.input_size(),
        model.output_size(),
        model.layers().len(),
        model.state_len(),
        model.scratch_len(),
        model.weight_bytes()
    );
    // Sized at compile time from the blob by ../board-support/build.rs; `new` would say `TooLarge` otherwise.
    let mut clf: Classifier<'_, STATE, SCRATCH, 1> = Classifier::new(&model, Config::default())?;
    let mut frame = [0f32; INPUT];
    let mut logits = [0i16; OUTPUT];
    let mut t = 0;
    let mut correct = 0usize;
    for (i, (&len, &label)) in LENGTHS.iter().zip(LABELS.iter()).enumerate() {
        for _ in 0..len {
            data::frame(t, &mut frame);
            t += 1;
            // `window: None`: decisions come only from `end_sequence`.
            clf.push(&frame)?;
        }
        clf.session().output_q(&mut logits)?;
        let class = argmax(&logits);
        if clf.end_sequence()?.class as usize != class {
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
        .int(N_SEQ as i64);
    defmt::println!("{=str}", line.as_str());
    Ok(())
}

//! The streaming loop: one frame per hardware-timer tick into a [`Classifier`].

use tinyrnn::{Classifier, Config, Model};

use crate::data::{self, INPUT, OUTPUT, SCRATCH, STATE};
use crate::line::Line;
use crate::source::{Frame, FrameSource};

/// Per-step decisions the classifier's smoothing keeps (its `K`).
pub const SMOOTHING: usize = 5;

/// The classifier type for the embedded model: buffers sized at build time from the blob.
pub type BoardClassifier<'m> = Classifier<'m, STATE, SCRATCH, SMOOTHING>;

/// The board's time base: a periodic hardware timer plus a free-running microsecond counter.
pub trait FrameClock {
    /// Blocks until the next period of the hardware timer begins. Periods are counted by the
    /// timer itself, so time spent between calls does not make the frame rate drift.
    fn wait_tick(&mut self);
    /// A free-running microsecond count (wraps at 2³²), used to time each step.
    fn now_us(&mut self) -> u32;
    /// The tick period in microseconds.
    fn period_us(&self) -> u32;
    /// Whether the next period has begun (consuming the tick if so); never blocks. The
    /// default blocks in [`wait_tick`](Self::wait_tick) and returns `true`, so a
    /// [`run_polled`] poll then runs once per tick instead of all the time the board waits.
    fn tick_ready(&mut self) -> bool {
        self.wait_tick();
        true
    }
}

/// What the `poll` of [`run_polled`] tells the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Control {
    /// Keep streaming.
    Continue,
    /// Return now (e.g. a new model was activated); the source keeps its position.
    Stop,
}

/// What went wrong in [`run`].
#[derive(Debug, defmt::Format)]
pub enum RunError<E> {
    /// The runtime rejected the model or a frame.
    Model(tinyrnn::Error),
    /// The frame source failed.
    Source(E),
}

impl<E> From<tinyrnn::Error> for RunError<E> {
    fn from(e: tinyrnn::Error) -> Self {
        RunError::Model(e)
    }
}

/// Totals of one [`run`].
#[derive(Clone, Copy, Debug, Default, defmt::Format)]
pub struct Report {
    /// Frames pushed.
    pub frames: u32,
    /// Sequences ended by the source ([`Frame::EndsSequence`]).
    pub sequences: u32,
    /// Sequences whose class matched the label (when labels were given).
    pub correct: u32,
    /// Decisions made by the classifier's `window`.
    pub windows: u32,
    /// Longest time from the tick to the end of its frame's work, in microseconds.
    pub max_step_us: u32,
    /// Ticks whose work took longer than the period (the next tick was late).
    pub late: u32,
}

/// Validates the embedded blob and logs its shape.
///
/// # Errors
/// Whatever [`Model::from_blob`] reports.
pub fn load_model() -> tinyrnn::Result<Model<'static>> {
    let model = Model::from_blob(data::BLOB)?;
    defmt::info!(
        "model: {=usize} B, in={=usize} out={=usize} layers={=usize} state={=usize}w scratch={=usize}w",
        data::BLOB.len(),
        model.input_size(),
        model.output_size(),
        model.layers().len(),
        model.state_len(),
        model.scratch_len()
    );
    Ok(model)
}

/// Streams `source` through `model`, one frame per tick of `clock`, until the source is
/// exhausted.
///
/// * At every [`Frame::EndsSequence`] logs `seq=<i> class=<c> logits=<v0>,<v1>,...`
///   (integer logits from `Session::output_q`, the host's `tinyrnn run --raw` format), then
///   resets the state. With `labels`, counts the matches and logs `accuracy=<ok>/<n>` at the end.
/// * With `cfg.window = Some(n)`, logs `win=<i> class=<c> score_q=<s>` every `n` frames
///   (plus `smoothed=<c>` with `cfg.smoothing`): the mode for a continuous sensor.
///
/// # Errors
/// The first error of the model or the source; the frames before it were processed.
pub fn run<S: FrameSource, C: FrameClock>(
    model: &Model<'_>,
    source: &mut S,
    clock: &mut C,
    cfg: Config,
    labels: Option<&[u16]>,
) -> Result<Report, RunError<S::Error>> {
    run_polled(model, source, clock, cfg, labels, &mut |_: &mut C| {
        Control::Continue
    })
}

/// [`run`] that calls `poll` while it waits for the next tick (all the time it waits when
/// the clock implements [`FrameClock::tick_ready`], else once per tick), e.g. to receive a
/// model update ([`ota`](crate::ota)). `poll` returning [`Control::Stop`] ends the run
/// before the next frame, with the totals so far (a partial sequence is dropped).
///
/// # Errors
/// Those of [`run`].
pub fn run_polled<S: FrameSource, C: FrameClock>(
    model: &Model<'_>,
    source: &mut S,
    clock: &mut C,
    cfg: Config,
    labels: Option<&[u16]>,
    poll: &mut dyn FnMut(&mut C) -> Control,
) -> Result<Report, RunError<S::Error>> {
    let mut clf = BoardClassifier::new(model, cfg)?;
    let mut frame = [0f32; INPUT];
    let mut logits = [0i16; OUTPUT];
    let mut r = Report::default();
    loop {
        let mut stop = false;
        while !clock.tick_ready() {
            if poll(clock) == Control::Stop {
                stop = true;
                break;
            }
        }
        if stop || poll(clock) == Control::Stop {
            break;
        }
        let start = clock.now_us();
        let Some(kind) = source.next_frame(&mut frame).map_err(RunError::Source)? else {
            break;
        };
        let windowed = clf.push(&frame)?;
        r.frames += 1;
        if let Some(d) = windowed {
            let mut line = Line::<64>::new();
            line.str("win=")
                .int(r.windows.into())
                .str(" class=")
                .int(d.class.into());
            line.str(" score_q=").int(d.score_q.into());
            if let Some(s) = clf.smoothed() {
                line.str(" smoothed=").int(s.class.into());
            }
            defmt::info!("{=str}", line.as_str());
            r.windows += 1;
        }
        if kind == Frame::EndsSequence {
            clf.session().output_q(&mut logits)?;
            let d = clf.end_sequence()?;
            let mut line = Line::<{ 32 + 8 * OUTPUT }>::new();
            line.str("seq=")
                .int(r.sequences.into())
                .str(" class=")
                .int(d.class.into());
            line.str(" logits=");
            for (i, v) in logits.iter().enumerate() {
                if i > 0 {
                    line.str(",");
                }
                line.int((*v).into());
            }
            defmt::info!("{=str}", line.as_str());
            if let Some(&label) = labels.and_then(|l| l.get(r.sequences as usize)) {
                r.correct += u32::from(label == d.class);
            }
            r.sequences += 1;
        }
        let took = clock.now_us().wrapping_sub(start);
        r.max_step_us = r.max_step_us.max(took);
        r.late += u32::from(took > clock.period_us());
    }
    if labels.is_some() {
        let mut line = Line::<48>::new();
        line.str("accuracy=")
            .int(r.correct.into())
            .str("/")
            .int(r.sequences.into());
        defmt::info!("{=str}", line.as_str());
    }
    defmt::info!(
        "frames={=u32} max_step_us={=u32} period_us={=u32} late={=u32}",
        r.frames,
        r.max_step_us,
        clock.period_us(),
        r.late
    );
    Ok(r)
}

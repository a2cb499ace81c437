//! Where frames come from.
//!
//! The streaming loop ([`crate::stream::run`]) pulls one frame per timer tick from a
//! [`FrameSource`]. [`Replay`] plays the embedded recording; a live sensor is another
//! implementation ([`crate::lis3dh::Lis3dh`] is one): read the sensor, write one frame of
//! `model.input_size()` values in the units the model was trained on (the blob's
//! normalization, if any, is applied by the runtime), and say whether it ends a sequence.

use crate::data::{self, INPUT, LENGTHS, N_SEQ};

/// What a frame means for the sequence it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Frame {
    /// More frames of the same sequence follow (a continuous sensor always returns this and
    /// leaves the segmentation to the classifier's `window`).
    Continues,
    /// The last frame of a sequence: the loop reports a decision and resets the state.
    EndsSequence,
}

/// A producer of input frames: a recording, or a sensor behind a bus.
pub trait FrameSource {
    /// What a failed read reports (a bus error, …).
    type Error: defmt::Format;

    /// Writes the next frame into `out` (`out.len()` is the model's input width).
    ///
    /// Returns `Ok(None)` when the source is exhausted. Called once per timer tick, so it
    /// must not block for longer than the frame period.
    fn next_frame(&mut self, out: &mut [f32]) -> Result<Option<Frame>, Self::Error>;
}

/// The embedded recording, frame by frame.
pub struct Replay {
    /// Sequence index.
    seq: usize,
    /// Frame within the sequence.
    t: usize,
    /// Global frame index into [`data::FRAMES`].
    pos: usize,
}

/// The replay was asked for a frame of another width than the recording's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct WidthMismatch {
    /// Values per recorded frame.
    pub recorded: usize,
    /// Values requested.
    pub requested: usize,
}

impl Replay {
    /// A replay from the first frame of the first sequence.
    pub const fn new() -> Self {
        Replay {
            seq: 0,
            t: 0,
            pos: 0,
        }
    }

    /// Index of the sequence the next frame belongs to.
    pub fn sequence(&self) -> usize {
        self.seq
    }
}

impl Default for Replay {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameSource for Replay {
    type Error = WidthMismatch;

    fn next_frame(&mut self, out: &mut [f32]) -> Result<Option<Frame>, WidthMismatch> {
        let requested = out.len();
        let out: &mut [f32; INPUT] = out.try_into().map_err(|_| WidthMismatch {
            recorded: INPUT,
            requested,
        })?;
        if self.seq >= N_SEQ {
            return Ok(None);
        }
        data::frame(self.pos, out);
        self.pos += 1;
        self.t += 1;
        if self.t < LENGTHS[self.seq] as usize {
            return Ok(Some(Frame::Continues));
        }
        self.seq += 1;
        self.t = 0;
        Ok(Some(Frame::EndsSequence))
    }
}

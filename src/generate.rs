//! One-to-many generation: [`Generator`] feeds each output back as the next input.
//!
//! After priming with `x_1 … x_T`, successive [`next`](Generator::next) calls produce
//! `y_T, y_{T+1}, …` where `y_T` is the output after `x_T` and `y_{t+1}` the output after
//! feeding `y_t` (PyTorch's usual autoregressive loop). Fed-back outputs are already in
//! model space: no normalization. On integer models the output (`output_frac`) is
//! requantized to `layers[0].x_frac` (round to nearest, ties up, saturating).
//!
//! # Examples
//!
//! ```
//! # fn run(blob: &[u8]) -> tinyrnn::Result<()> {
//! use tinyrnn::{Generator, Model};
//! let model = Model::from_blob(blob)?;
//! let mut g = Generator::<'_, 64, 64>::new(&model)?;
//! g.prime(&[0.5, -0.5])?;
//! let mut y = [0.0f32; 2];
//! for _ in 0..10 {
//!     g.next(&mut y)?;
//! }
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::model::Model;
use crate::session::Session;

/// Autoregressive generator over a [`Session`].
#[derive(Debug, Clone)]
pub struct Generator<'m, const STATE: usize, const SCRATCH: usize> {
    session: Session<'m, STATE, SCRATCH>,
}

impl<'m, const STATE: usize, const SCRATCH: usize> Generator<'m, STATE, SCRATCH> {
    /// A generator in the model's initial state.
    ///
    /// # Errors
    /// [`Error::WidthMismatch`] unless the output width equals the input width; as
    /// [`Session::new`].
    pub fn new(model: &'m Model<'m>) -> Result<Self> {
        let (input, output) = (model.input_size(), model.output_size());
        if input != output {
            return Err(Error::WidthMismatch { input, output });
        }
        Ok(Generator {
            session: Session::new(model)?,
        })
    }

    /// Steps on one raw priming frame (normalized like [`Session::step`]).
    ///
    /// # Errors
    /// As [`Session::step`].
    pub fn prime(&mut self, frame: &[f32]) -> Result<()> {
        self.session.step(frame)
    }

    /// Writes the output of the current state into `out`, then steps on it.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `out.len()` is the model's width;
    /// [`Error::NonFinite`] if an f32 model produced a non-finite output (not fed back).
    pub fn next(&mut self, out: &mut [f32]) -> Result<()> {
        self.session.output(out)?;
        self.session.step_feedback(out)
    }

    /// The underlying session (e.g. to [`reset`](Session::reset) it).
    pub fn session(&mut self) -> &mut Session<'m, STATE, SCRATCH> {
        &mut self.session
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{CellKind, Precision, RnnAct};

    /// No head: the output is h and is fed back as the next input.
    #[test]
    fn feeds_h_back() {
        let mut rng = Rng(21);
        let m = single_layer(FLayer::random(
            &mut rng,
            CellKind::Rnn(RnnAct::Tanh),
            3,
            3,
            2.0,
        ));
        for p in [Precision::F32, Precision::Int16] {
            let b = blob(&m, p, &frames(&mut rng, 20, 3, 1.0));
            let model = Model::from_blob(&b).unwrap();
            let mut g = Generator::<4, 8>::new(&model).unwrap();
            let mut s = Session::<4, 8>::new(&model).unwrap();
            g.prime(&[0.5, -0.25, 1.0]).unwrap();
            s.step(&[0.5, -0.25, 1.0]).unwrap();
            let mut prev = [9.0f32; 3];
            for _ in 0..5 {
                let mut y = [0.0f32; 3];
                g.next(&mut y).unwrap();
                let mut want = [0.0f32; 3];
                s.output(&mut want).unwrap();
                assert_eq!(y, want, "{p:?}");
                assert_ne!(y, prev, "the sequence moves");
                if p.is_int() {
                    // requantized Q0.15 → x_frac, ties up
                    let (of, xf) = (15, model.layers()[0].x_frac as u32);
                    let mut q = [0i16; 3];
                    s.output_q(&mut q).unwrap();
                    s.step_q(&q.map(|v| crate::session::rescale_q(v, of, xf)))
                        .unwrap();
                } else {
                    s.step(&want).unwrap(); // no normalization in this model
                }
                prev = y;
            }
            g.session().reset();
            assert_eq!(g.session().state(), [0; 3]);
        }
    }
}

//! tinyrnn: `no_std`, allocation-free fixed-point RNN / GRU / LSTM inference.
//!
//! A model is a blob ([`model`]) produced by the host tool; [`Model::from_blob`] validates it
//! without copying, and a [`Session`] runs it with caller-sized, statically allocated state
//! and scratch. [`Classifier`] (many-to-one streaming) and [`Generator`] (one-to-many) are
//! built on a session.
//!
//! Numerics: integer models use the Q formats of [`fxp`] and the activations of
//! [`activation`]; f32 models use micromath ([`F32Math::Fast`]) or libm
//! ([`F32Math::Accurate`], feature `libm`).
#![cfg_attr(not(test), no_std)]
// `unsafe` is denied everywhere but in `kernel::dsp` (the Cortex-M DSP assembly kernels),
// which allows it for itself and documents every block.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate self as tinyrnn;

pub mod activation;
mod cell;
mod dense;
pub mod error;
pub mod fxp;
pub mod generate;
pub mod kernel;
pub mod model;
pub mod session;
pub mod stream;
#[cfg(test)]
mod testutil;

pub use activation::F32Math;
pub use dense::softmax_q;
pub use error::{Error, Result};
pub use generate::Generator;
pub use model::{CellKind, Model, OutputAct, Precision, RnnAct};
pub use session::Session;
pub use stream::{Classifier, Config, Decision};

/// Largest input, hidden or output width a blob may declare (the int8 accumulator's
/// overflow proof in [`fxp`] relies on it).
pub const MAX_DIM: usize = 256;
/// Most recurrent layers in one model.
pub const MAX_LAYERS: usize = 4;

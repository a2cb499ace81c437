//! tinyrnn: `no_std`, allocation-free fixed-point RNN / GRU / LSTM inference.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod fxp;
pub mod model;

pub use error::{Error, Result};
pub use model::{CellKind, Model, OutputAct, Precision, RnnAct};

/// Largest input, hidden or output width a blob may declare (the int8 accumulator's
/// overflow proof in [`fxp`] relies on it).
pub const MAX_DIM: usize = 256;
/// Most recurrent layers in one model.
pub const MAX_LAYERS: usize = 4;

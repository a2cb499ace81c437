//! tinyrnn: `no_std`, allocation-free fixed-point RNN / GRU / LSTM inference.
//!
//! A model is a blob ([`model`]) produced by the host tool; [`Model::from_blob`] validates it
//! without copying, and a [`Session`] runs it with caller-sized, statically allocated state
//! and scratch. [`Classifier`] (many-to-one streaming) and [`Generator`] (one-to-many) are
//! built on a session.
//!
//! Numerics: integer models use the Q formats of [`fxp`] and the activations of
//! [`activation`]; f32 models use a rational tanh / sigmoid ([`F32Math::Fast`], max abs error
//! 4.1e-7) or libm ([`F32Math::Accurate`], feature `libm`).
//!
//! # Cargo features
//!
//! A blob is run-time data, so by default every cell kind and precision is compiled in and
//! linked. Firmware that knows its model can leave the rest out: depend on tinyrnn with
//! `default-features = false` and name what the model needs, which `tinyrnn inspect BLOB`
//! prints (`features: lstm, int8`) and `tinyrnn codegen` writes into the generated module:
//!
//! ```toml
//! tinyrnn = { path = "../tinyrnn", default-features = false, features = ["lstm", "int8", "defmt"] }
//! ```
//!
//! | feature | compiles | default |
//! |---|---|---|
//! | `rnn` | Elman RNN layers, tanh and ReLU | ✓ |
//! | `gru` | GRU layers, both reset variants | ✓ |
//! | `lstm` | LSTM layers without peepholes (PyTorch `nn.LSTM`) | ✓ |
//! | `lstm-peephole` | LSTM layers with ONNX peepholes `P` (implies `lstm`) | ✓ |
//! | `lstm-proj` | LSTM layers with a projection `h = W_hr·(o ⊙ tanh c)` (PyTorch `proj_size`; implies `lstm`) | ✓ |
//! | `lstm-clip` | LSTM layers with a cell clip (TFLite `cell_clip`, which its converter sets on every Keras LSTM; implies `lstm`; its own copy of the integer step) | ✓ |
//! | `dense-net` | blob format 2's dense ops: the per-frame pre-net and the hidden head layers | ✓ |
//! | `pool` | blob format 2's pooling over time: mean, max, sum (streamed in O(1) state), final states | ✓ |
//! | `window` | blob format 3's reverse and bidirectional layers over a caller-owned window buffer (`Session::step_window`, `Window`, `Classifier::push_window`; RAM [`Model::window_words`]) | ✓ |
//! | `int8` | int8 models (int8 weights, i32 accumulators; the Cortex-M DSP kernels) | ✓ |
//! | `int16` | int16 models (int16 weights, i64 accumulators) | ✓ |
//! | `f32` | f32 models (micromath for the softmax's `exp`, libm's `fmaf` off the FPU targets; optional dependencies) | ✓ |
//! | `libm` | [`F32Math::Accurate`] for the f32 path (only with `f32`) | |
//! | `signed` | Ed25519-signed blobs with anti-rollback versions (module `signed`, `Model::from_signed_blob`; `ed25519-compact`, see `src/SIGNING.md`) | |
//! | `defmt` | `defmt::Format` for the public types | |
//! | `store` | `store::ModelStore` (module `store`): power-fail-safe A/B model slots on NOR flash (`embedded-storage`) | |
//!
//! At least one cell feature and one precision feature must be enabled (`compile_error!`
//! otherwise). A disabled feature's code is not compiled at all (`#[cfg]`), and the loader
//! still parses and validates every blob: a valid blob that needs a disabled cell or
//! precision is rejected by [`Model::from_blob`] with [`Error::FeatureDisabled`] naming the
//! feature ([`ModelDesc::required_features`](model::ModelDesc::required_features) lists
//! them), so a model that loads always runs. The blob format does not depend on the
//! features. Peepholes have their own feature because they are rare (ONNX only) and their
//! step is a separate copy of the LSTM kernel; the two GRU reset variants and the two RNN
//! activations share one function each, so splitting them would save little.
//!
//! Measured on the Cortex-M4F QEMU firmware (`boards/mps2-an386`, the bundled int8 LSTM,
//! release, LTO): `.text` 69,836 B with every feature, 35,596 B with only `lstm,int8`
//! (`cargo xtask size [--features minimal] mps2-an386`; README, "Cargo features").
#![cfg_attr(not(test), no_std)]
// `unsafe` is denied everywhere but in `kernel::dsp` (the Cortex-M assembly kernels: DSP
// extension, FPU, Cortex-M0), which allows it for itself and documents every block.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(any(feature = "rnn", feature = "gru", feature = "lstm")))]
compile_error!(
    "tinyrnn: enable at least one cell feature: `rnn`, `gru`, `lstm` (or `lstm-peephole`); \
     `tinyrnn inspect BLOB` lists the features a model needs"
);
#[cfg(not(any(feature = "int8", feature = "int16", feature = "f32")))]
compile_error!(
    "tinyrnn: enable at least one precision feature: `int8`, `int16`, `f32`; \
     `tinyrnn inspect BLOB` lists the features a model needs"
);

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
#[cfg(feature = "signed")]
pub mod signed;
#[cfg(feature = "store")]
pub mod store;
pub mod stream;
#[cfg(test)]
mod testutil;

pub use activation::F32Math;
pub use dense::softmax_q;
pub use error::{Buffer, Error, Result};
pub use generate::Generator;
pub use model::{CellKind, DenseAct, Direction, Model, OutputAct, Pool, Precision, RnnAct};
pub use session::Session;
#[cfg(feature = "window")]
pub use session::Window;
pub use stream::{Classifier, Config, Decision};

/// Largest input, hidden or output width a blob may declare (the int8 accumulator's
/// overflow proof in [`fxp`] relies on it).
pub const MAX_DIM: usize = 256;
/// Most recurrent layers in one model.
pub const MAX_LAYERS: usize = 4;

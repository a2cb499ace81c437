//! The model blob: format, decoding and validation.
//!
//! A blob is a fixed 16-byte header followed by a [postcard] payload holding a
//! [`ModelDesc`]. Weights are borrowed little-endian byte slices, so a [`Model`] reads
//! them straight from flash: no copy, no alignment requirement, no `unsafe`.
//!
//! # Header (16 bytes, fixed width, little-endian)
//!
//! | offset | bytes | field | value |
//! |---|---|---|---|
//! | 0 | 4 | magic | `b"TRNN"` |
//! | 4 | 2 | format version | `u16`, currently [`FORMAT_VERSION`] |
//! | 6 | 2 | flags | `u16`, must be 0 |
//! | 8 | 4 | payload length | `u32`, bytes after the header; the blob must end exactly there |
//! | 12 | 4 | CRC-32 | `u32`, CRC-32/ISO-HDLC (the zlib/PNG CRC) of the payload bytes |
//!
//! # Payload (postcard)
//!
//! postcard encodes `u8` as one byte, `bool` as one byte (0 or 1), other integers as
//! varints (`u16`: 1–3 bytes, zig-zag for signed), enums as a varint variant index followed
//! by the variant's fields, `Option` as a tag byte (0 = None, 1 = Some) then the value,
//! byte slices and `str` as a varint length then the bytes (borrowed), sequences as a varint
//! length then the elements. Fields appear in declaration order:
//!
//! | field of [`ModelDesc`] | postcard type | meaning |
//! |---|---|---|
//! | `precision` | enum [`Precision`] (varint) | `0` int8, `1` int16, `2` f32 |
//! | `input_size` | `u16` (varint) | features per frame |
//! | `norm` | `Option<`[`NormDesc`]`>` | per-feature input normalization |
//! | `pre` | seq of [`OpDesc`] (0..=[`MAX_OPS`]) | per-frame pre-net before layer 0; a count above [`MAX_OPS`] is [`Error::TooManyOps`] |
//! | `layers` | seq of [`LayerDesc`] (1..=[`MAX_LAYERS`]) | the recurrent stack, input first; a count above [`MAX_LAYERS`] is [`Error::TooManyLayers`] |
//! | `pool` | enum [`Pool`] | reduction of the last layer's `h` over time |
//! | `pool_frac` | `u8` | int paths with `Sum`: fractional bits of the pooled sum (≤ the last `h_frac`); else 0 |
//! | `mlp` | seq of [`OpDesc`] (0..=[`MAX_OPS`]) | hidden head ops on the pooled vector |
//! | `head` | `Option<`[`DenseDesc`]`>` | dense output layer |
//! | `output_act` | enum [`OutputAct`] | activation on the final output |
//! | `output_frac` | `u8` | int paths: fractional bits of the final output |
//! | `name` | `str` | free text (source model), ≤ [`MAX_NAME`] bytes |
//!
//! | field of [`NormDesc`] | postcard type | meaning |
//! |---|---|---|
//! | `offset` | bytes | `input_size` × `f32` LE |
//! | `scale` | bytes | `input_size` × `f32` LE |
//!
//! | field of [`LayerDesc`] | postcard type | meaning |
//! |---|---|---|
//! | `cell` | enum [`CellKind`] | cell and variant (indices below) |
//! | `input_size` | `u16` (varint) | width of this layer's input |
//! | `hidden_size` | `u16` (varint) | hidden size `H` |
//! | `x_frac` | `u8` | int paths: fractional bits of the input |
//! | `h_frac` | `u8` | int paths: fractional bits of `h` (15 for tanh/sigmoid-bounded cells, except a projected LSTM's calibrated one) |
//! | `w_ih` | bytes | `gates·H` rows × `pad4(input_size)` weights |
//! | `w_hh` | bytes | `gates·H` rows × `pad4(H)` weights (`pad4(P)` with a projection) |
//! | `b_ih` | bytes | `gates·H` biases |
//! | `b_hh` | bytes | `gates·H` biases |
//! | `rq_ih` | bytes | int paths: `gates·H` [`Requant`] records (5 bytes: `i32` LE multiplier, `u8` shift); f32: empty |
//! | `rq_hh` | bytes | the same for the hidden product |
//! | `peephole` | bytes | LSTM with peepholes: `3·H` values `i, f, o`; else empty |
//! | `p_frac` | `u8` | int paths: fractional bits of the peepholes |
//! | `h0` | bytes | `H` (`P` with a projection) values in `h` format, or empty (zeros) |
//! | `c0` | bytes | LSTM: `H` values (int: `i32` Q16.15, f32: `f32`), or empty (zeros) |
//! | `proj_size` | `u16` (varint) | format 3: LSTM projection width `P` (`h = W_hr·(o ⊙ tanh c)`), 0 = none |
//! | `w_hr` | bytes | format 3: `P` rows × `pad4(H)` weights, or empty |
//! | `rq_hr` | bytes | format 3: int paths `P` [`Requant`] records (`W_hr·m`, `m` in Q0.15, to `h_frac`; no bias), else empty |
//! | `cell_clip` | bytes | format 3: LSTM cell clip, empty or 4 bytes (int: `i32` LE Q16.15, f32: `f32` LE), positive (finite) |
//! | `direction` | enum [`Direction`] | format 3: `0` forward, `1` reverse, `2` bidirectional |
//! | `backward` | `Option<`[`DirWeights`]`>` | format 3: the reverse direction's tensors, `Some` exactly for bidirectional |
//!
//! [`DirWeights`] holds `w_ih, w_hh, b_ih, b_hh, rq_ih, rq_hh, peephole, h0, c0, w_hr, rq_hr`
//! in that order, each as the [`LayerDesc`] field of the same name (bytes).
//!
//! | field of [`DenseOpDesc`] (inside [`OpDesc`]`::Dense`) | postcard type | meaning |
//! |---|---|---|
//! | `act` | enum [`DenseAct`] | activation (indices below; `Clip` and `LeakyRelu` carry `f32` LE fields) |
//! | `x_frac` | `u8` | int paths: fractional bits of the input (the previous op's `y_frac`, the pooled format, or the quantized input for pre-net op 0); f32: 0 |
//! | `y_frac` | `u8` | int paths: fractional bits of the output (15 after tanh/sigmoid; calibrated after GELU); f32: 0 |
//! | `dense` | [`DenseDesc`] | weights, biases, requant records (to `y_frac`, or Q19.12 before tanh/sigmoid/GELU) |
//!
//! | field of [`DenseDesc`] | postcard type | meaning |
//! |---|---|---|
//! | `out_size` | `u16` (varint) | output width `C` |
//! | `in_size` | `u16` (varint) | the last layer's `H` |
//! | `weight` | bytes | `C` rows × `pad4(in_size)` weights |
//! | `bias` | bytes | `C` biases |
//! | `rq` | bytes | int paths: `C` [`Requant`] records; f32: empty |
//!
//! ## Enum indices
//!
//! An enum is its variant index (a varint, one byte for all of these) followed by the
//! variant's fields. The index is the variant's position in its declaration, so the order
//! of the variants below *is* the format: reordering or inserting a variant changes every
//! blob and needs a new [`FORMAT_VERSION`] (`tests/blob_format.rs` pins each index).
//!
//! | enum | index: variant (then its fields) |
//! |---|---|
//! | [`Precision`] | `0` `Int8`, `1` `Int16`, `2` `F32` |
//! | [`CellKind`] | `0` `Rnn` then an [`RnnAct`]; `1` `Gru` then `linear_before_reset: bool`; `2` `Lstm` then `peepholes: bool` |
//! | [`RnnAct`] | `0` `Tanh`, `1` `Relu` |
//! | [`OutputAct`] | `0` `Identity`, `1` `Sigmoid`, `2` `Tanh`, `3` `Softmax` |
//! | [`OpDesc`] | `0` `Dense` then a [`DenseOpDesc`] |
//! | [`DenseAct`] | `0` `Identity`, `1` `Relu`, `2` `Clip` then `lo: f32`, `hi: f32`; `3` `LeakyRelu` then `alpha: f32`; `4` `Tanh`, `5` `Sigmoid`, `6` `Gelu`, `7` `GeluTanh` (every precision since this crate version; older readers refuse both on the int paths and `Gelu` on f32 with `Unsupported`) |
//! | [`Pool`] | `0` `Last`, `1` `Mean`, `2` `Max`, `3` `Sum`, `4` `FinalStates` (format 3) |
//! | [`Direction`] | `0` `Forward`, `1` `Reverse`, `2` `Bidirectional` |
//! | `Option` | `0` `None`, `1` `Some` then the value |
//!
//! So a layer's `cell` is two bytes: `00 00` RNN tanh, `00 01` RNN ReLU, `01 01` GRU with
//! `linear_before_reset` (PyTorch), `01 00` GRU resetting before the product, `02 00` LSTM,
//! `02 01` LSTM with peepholes. Any other index fails to decode ([`Error::Decode`]).
//!
//! ## Tensor layout
//!
//! A weight matrix of `rows × cols` is stored row-major with every row padded with zeros to
//! `cols_pad = ⌈cols/4⌉·4` columns ([`pad4`]). Element encoding by precision:
//!
//! * **int8**: one `i8` per weight; within each block of four columns the bytes are stored
//!   in the order `c0, c2, c1, c3`, so that one 32-bit load followed by `SXTB16` and
//!   `SXTB16 ROR 8` yields the pairs `(c0, c1)` and `(c2, c3)` that `SMLAD` multiplies with
//!   two packed `i16` activations. Biases are `i32` (accumulator scale).
//! * **int16**: `i16` little-endian per weight, natural order. Biases are `i64`.
//! * **f32**: `f32` little-endian per weight, natural order. Biases are `f32`.
//!
//! Rows stack the gates in PyTorch order: LSTM `i, f, g, o`; GRU `r, z, n`; RNN one gate.
//! Integer models carry a [`Requant`] record (5 bytes) per row for the
//! input-to-hidden and for the hidden-to-hidden product; f32 models carry none.
//!
//! # Stability
//!
//! The header layout is fixed for all versions. Any change to the payload bumps
//! [`FORMAT_VERSION`]. The host tool writes format 3; [`Model::from_blob`] reads formats
//! [`MIN_FORMAT_VERSION`] (1) to [`FORMAT_VERSION`] (3) and rejects any other version with
//! [`Error::UnsupportedVersion`] instead of guessing. A format-2 payload is the format-3
//! one with layer records that end at `c0` (forward, no projection, no clip); a format-1
//! payload is the format-2 one without `pre`, `pool`, `pool_frac` and `mlp`. Both are
//! decoded as such and converted (no pre-net, `Last`, no hidden head ops for format 1).
//!
//! # The graph and its integer formats (format 2)
//!
//! ```text
//! x = norm(raw), quantized to pre[0].x_frac (else layers[0].x_frac)
//! x = pre[i](x)            per frame; op i reads pre[i−1].y_frac; layer 0 reads the last y_frac
//! h = layers(x)
//! acc = pool(acc, h_last)  per frame, in the session state (Session docs: words, rounding)
//! v = pooled(acc)          Last/Mean/Max: h_last's format; Sum: pool_frac
//! v = mlp[i](v)            at output time only; op 0 reads the pooled format
//! y = head(v), output_act  head requant from the last format
//! ```
//!
//! Format 3: a reverse or bidirectional layer (and every layer after it) runs over a whole
//! window at the decision point instead of per frame (cargo feature `window`; equations,
//! RAM and latency in `Session::step_window`'s module, `src/session/window.rs`). A
//! bidirectional layer's output is `[fwd h; bwd h]` (`2H` values, one `h_frac` for both
//! directions), the next layer's input width; [`Pool::FinalStates`] pools
//! `[fwd h_{T−1}; bwd h_0]`.
//!
//! # What loading checks
//!
//! [`Model::from_blob`] checks, before any weight is read: the magic, version, flags,
//! declared length (no trailing bytes), the CRC, that the payload declares at most
//! [`MAX_LAYERS`] layers ([`Error::TooManyLayers`]) and decodes with nothing left over,
//! that every dimension is in `1..=`[`MAX_DIM`] and layers chain
//! (`layers[k].input_size` is the width of `layers[k-1]`'s `h`: its `proj_size` if
//! projected, else `hidden_size`), that a projection and a cell clip sit on an LSTM
//! ([`Error::Unsupported`] otherwise), that a cell clip is positive ([`Error::BadQuantization`];
//! f32: finite, [`Error::NonFinite`]), that every tensor has exactly the
//! byte length its dimensions and precision imply, and that every fixed-point parameter is
//! in the range the kernels' overflow proofs assume (the projection's `rq_hr` as the gates'
//! records); then, for a blob that passed all of
//! that, that this build has the code for its precision, every layer's cell and a cell
//! clip (`lstm-clip`) (a
//! projection without `lstm-proj`, like pre-net/head ops without `dense-net` and pooling
//! without `pool`, is refused first, so that its checks are compiled out) (cargo
//! features, [`Error::FeatureDisabled`] naming the missing one). The CRC detects accidental corruption
//! (every single-bit error, every burst ≤ 32 bits); it is not a signature and does not
//! authenticate the sender.
//!
//! # Signed blobs
//!
//! With the cargo feature `signed`, a blob can travel inside an Ed25519 envelope that adds a
//! key id, an anti-rollback model version and a signature; its byte table and checks are in
//! the `signed` module (`src/signed.rs`), loaded by `Model::from_signed_blob`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fxp::{Requant, ACT_FRAC};
use crate::{MAX_DIM, MAX_LAYERS};

/// The four bytes every blob starts with.
pub const MAGIC: [u8; 4] = *b"TRNN";
/// The payload format version this build reads and writes.
pub const FORMAT_VERSION: u16 = 3;
/// The oldest payload format version this build still reads (decoded and converted to a
/// format-2 [`ModelDesc`]: no pre-net, [`Pool::Last`], no hidden head ops).
pub const MIN_FORMAT_VERSION: u16 = 1;
/// Most dense ops in the per-frame pre-net, and most hidden ops in the head.
pub const MAX_OPS: usize = 4;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 16;
/// Longest `name` accepted.
pub const MAX_NAME: usize = 64;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32/ISO-HDLC of `bytes` (the checksum stored in the header).
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC.checksum(bytes)
}

/// `cols` rounded up to a multiple of 4 (the padded row length of every weight matrix).
pub const fn pad4(cols: usize) -> usize {
    (cols + 3) & !3
}

/// Number format of weights and activations, for the whole model.
///
/// The variant order is the blob format (see [Enum indices](crate::model#enum-indices)): never
/// reorder or insert variants without a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Precision {
    /// int8 weights (per-row scale), int16 activations, `i32` accumulators.
    Int8,
    /// int16 weights (per-row scale), int16 activations, `i64` accumulators.
    Int16,
    /// `f32` everywhere.
    F32,
}

impl Precision {
    /// Bytes per weight.
    pub const fn weight_bytes(self) -> usize {
        match self {
            Precision::Int8 => 1,
            Precision::Int16 => 2,
            Precision::F32 => 4,
        }
    }
    /// Bytes per bias (accumulator type).
    pub const fn bias_bytes(self) -> usize {
        match self {
            Precision::Int8 => 4,
            Precision::Int16 => 8,
            Precision::F32 => 4,
        }
    }
    /// Bytes per activation-format value (`h0`, peepholes).
    pub const fn act_bytes(self) -> usize {
        match self {
            Precision::Int8 | Precision::Int16 => 2,
            Precision::F32 => 4,
        }
    }
    /// Whether this is an integer path.
    pub const fn is_int(self) -> bool {
        !matches!(self, Precision::F32)
    }
    /// The precision's name where tools print or take one (`tinyrnn quantize --precision`,
    /// `inspect`, `codegen`): `"int8"`, `"int16"` or `"float32"`.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Int16 => "int16",
            Precision::F32 => "float32",
        }
    }
    /// The cargo feature of this crate that compiles this precision's code: `"int8"`,
    /// `"int16"` or `"f32"`.
    pub const fn feature(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Int16 => "int16",
            Precision::F32 => "f32",
        }
    }
    /// Whether this build of the crate has the code for this precision (its
    /// [`feature`](Self::feature) is enabled).
    pub const fn enabled(self) -> bool {
        match self {
            Precision::Int8 => cfg!(feature = "int8"),
            Precision::Int16 => cfg!(feature = "int16"),
            Precision::F32 => cfg!(feature = "f32"),
        }
    }
}

/// Non-linearity of an Elman RNN layer.
///
/// The variant order is the blob format (see [Enum indices](crate::model#enum-indices)): never
/// reorder or insert variants without a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RnnAct {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `max(0, x)`.
    Relu,
}

/// The recurrent cell of a layer and its variant.
///
/// The variant order is the blob format (see [Enum indices](crate::model#enum-indices)): never
/// reorder or insert variants without a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CellKind {
    /// Elman RNN, one gate.
    Rnn(RnnAct),
    /// GRU, gates `r, z, n`.
    Gru {
        /// `true`: PyTorch / ONNX `linear_before_reset=1` / Keras `reset_after=True`
        /// (`r ⊙ (W_hn·h + b_hn)`); `false`: reset before the product (`W_hn·(r ⊙ h) + b_hn`).
        linear_before_reset: bool,
    },
    /// LSTM, gates `i, f, g, o`.
    Lstm {
        /// ONNX peephole weights `P` present (stored in order `i, f, o`).
        peepholes: bool,
    },
}

impl CellKind {
    /// Number of gates (rows per hidden unit).
    pub const fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Gru { .. } => 3,
            CellKind::Lstm { .. } => 4,
        }
    }
    /// Whether the hidden state is bounded by tanh/sigmoid (format [`Act`](crate::fxp::Act)).
    pub const fn bounded(self) -> bool {
        !matches!(self, CellKind::Rnn(RnnAct::Relu))
    }
    /// The cell and its variant in words, as tools print it: `"rnn(tanh)"`, `"rnn(relu)"`,
    /// `"gru"` (`linear_before_reset`), `"gru(reset-before)"`, `"lstm"`, `"lstm(peepholes)"`.
    pub const fn name(self) -> &'static str {
        match self {
            CellKind::Rnn(RnnAct::Tanh) => "rnn(tanh)",
            CellKind::Rnn(RnnAct::Relu) => "rnn(relu)",
            CellKind::Gru {
                linear_before_reset: true,
            } => "gru",
            CellKind::Gru {
                linear_before_reset: false,
            } => "gru(reset-before)",
            CellKind::Lstm { peepholes: false } => "lstm",
            CellKind::Lstm { peepholes: true } => "lstm(peepholes)",
        }
    }
    /// The cargo feature of this crate that compiles this cell's code: `"rnn"`, `"gru"`,
    /// `"lstm"`, or `"lstm-peephole"` for an LSTM with peepholes (which implies `"lstm"`).
    pub const fn feature(self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "rnn",
            CellKind::Gru { .. } => "gru",
            CellKind::Lstm { peepholes: false } => "lstm",
            CellKind::Lstm { peepholes: true } => "lstm-peephole",
        }
    }
    /// Whether this build of the crate has the code for this cell (its
    /// [`feature`](Self::feature) is enabled).
    pub const fn enabled(self) -> bool {
        match self {
            CellKind::Rnn(_) => cfg!(feature = "rnn"),
            CellKind::Gru { .. } => cfg!(feature = "gru"),
            CellKind::Lstm { peepholes: false } => cfg!(feature = "lstm"),
            CellKind::Lstm { peepholes: true } => cfg!(feature = "lstm-peephole"),
        }
    }
}

/// Activation applied to the model's final output vector.
///
/// The variant order is the blob format (see [Enum indices](crate::model#enum-indices)): never
/// reorder or insert variants without a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OutputAct {
    /// None: raw logits / values.
    Identity,
    /// Element-wise logistic sigmoid.
    Sigmoid,
    /// Element-wise tanh.
    Tanh,
    /// Softmax over the output vector.
    Softmax,
}

/// Activation after a dense layer of the per-frame pre-net or of the head (blob format 2).
///
/// The variant order is the blob format (see [Enum indices](crate::model#enum-indices)):
/// never reorder or insert variants without a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DenseAct {
    /// None (a plain `Linear`).
    Identity,
    /// `max(0, x)`.
    Relu,
    /// `min(max(x, lo), hi)`: ReLU6 is `(0, 6)`, PyTorch `Hardtanh` / ONNX `Clip` any bounds.
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `x` for `x ≥ 0`, else `alpha·x`.
    LeakyRelu {
        /// Slope for negative inputs (PyTorch default 0.01, Keras 0.2/0.3).
        alpha: f32,
    },
    /// `tanh(x)`.
    Tanh,
    /// Logistic `1 / (1 + e^−x)`.
    Sigmoid,
    /// Exact GELU `x·Φ(x)` (PyTorch `nn.GELU()` default, ONNX `Gelu` without approximation).
    Gelu,
    /// GELU, tanh approximation `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`
    /// (PyTorch `approximate="tanh"`, Keras `gelu(approximate=True)`).
    GeluTanh,
}

impl DenseAct {
    /// The activation in words, as tools print it.
    pub const fn name(self) -> &'static str {
        match self {
            DenseAct::Identity => "identity",
            DenseAct::Relu => "relu",
            DenseAct::Clip { .. } => "clip",
            DenseAct::LeakyRelu { .. } => "leaky_relu",
            DenseAct::Tanh => "tanh",
            DenseAct::Sigmoid => "sigmoid",
            DenseAct::Gelu => "gelu",
            DenseAct::GeluTanh => "gelu(tanh)",
        }
    }
}

/// How the recurrent output sequence becomes one vector for the head (blob format 2).
///
/// The variant order is the blob format (see [Enum indices](crate::model#enum-indices)):
/// never reorder or insert variants without a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Pool {
    /// The last layer's `h` after the latest frame (PyTorch `out[:, -1]`, `h_n[-1]` of a
    /// forward stack, Keras `return_sequences=False`). Format 1's only mode.
    Last,
    /// Mean over every frame since the last reset (`out.mean(dim=1)`,
    /// `GlobalAveragePooling1D`).
    Mean,
    /// Element-wise maximum over every frame since the last reset.
    Max,
    /// Element-wise sum over every frame since the last reset.
    Sum,
    /// The last layer's final states `h_n` (format 3): for a forward layer the same as
    /// [`Last`](Pool::Last); for a reverse layer its state after the whole window (at frame
    /// 0); for a bidirectional one `cat(h_n fwd, h_n bwd)` (PyTorch
    /// `torch.cat((h_n[-2], h_n[-1]), 1)`, Keras `Bidirectional(return_sequences=False)`).
    FinalStates,
}

impl Pool {
    /// The reduction in words, as tools print it (`"last"`, `"mean"`, `"max"`, `"sum"`).
    pub const fn name(self) -> &'static str {
        match self {
            Pool::Last => "last",
            Pool::Mean => "mean",
            Pool::Max => "max",
            Pool::Sum => "sum",
            Pool::FinalStates => "hn",
        }
    }
}

/// The direction a recurrent layer runs over time (format 3).
///
/// The variant order is the blob format (see [Enum indices](crate::model#enum-indices)):
/// never reorder or insert variants without a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Direction {
    /// Frame 0 first: streams, one step per frame. Formats 1 and 2 have only this.
    Forward,
    /// The last frame of the window first (PyTorch/ONNX `direction=reverse`, Keras
    /// `go_backwards=True`); output `t` is the state after frames `T−1 … t`. Needs the
    /// whole window: runs at the decision point.
    Reverse,
    /// A forward and a reverse pass with their own weights, outputs concatenated per frame
    /// `[fwd; bwd]` (PyTorch `bidirectional=True`, ONNX `bidirectional`, Keras
    /// `Bidirectional(merge_mode="concat")`); the reverse weights are in
    /// [`LayerDesc::backward`].
    Bidirectional,
}

impl Direction {
    /// The direction in words, as tools print it.
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Bidirectional => "bidirectional",
        }
    }
    /// Number of directions (1, or 2 for bidirectional): the layer's output is this many
    /// times its per-direction output width.
    pub const fn count(self) -> usize {
        match self {
            Direction::Bidirectional => 2,
            _ => 1,
        }
    }
}

/// The weights of the reverse direction of a bidirectional layer (format 3): the same
/// tensors, shapes and formats as the forward ones in its [`LayerDesc`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DirWeights<'a> {
    /// As [`LayerDesc::w_ih`].
    #[serde(borrow)]
    pub w_ih: &'a [u8],
    /// As [`LayerDesc::w_hh`].
    #[serde(borrow)]
    pub w_hh: &'a [u8],
    /// As [`LayerDesc::b_ih`].
    #[serde(borrow)]
    pub b_ih: &'a [u8],
    /// As [`LayerDesc::b_hh`].
    #[serde(borrow)]
    pub b_hh: &'a [u8],
    /// As [`LayerDesc::rq_ih`].
    #[serde(borrow)]
    pub rq_ih: &'a [u8],
    /// As [`LayerDesc::rq_hh`].
    #[serde(borrow)]
    pub rq_hh: &'a [u8],
    /// As [`LayerDesc::peephole`].
    #[serde(borrow)]
    pub peephole: &'a [u8],
    /// As [`LayerDesc::h0`].
    #[serde(borrow)]
    pub h0: &'a [u8],
    /// As [`LayerDesc::c0`].
    #[serde(borrow)]
    pub c0: &'a [u8],
    /// As [`LayerDesc::w_hr`].
    #[serde(borrow)]
    pub w_hr: &'a [u8],
    /// As [`LayerDesc::rq_hr`].
    #[serde(borrow)]
    pub rq_hr: &'a [u8],
}

/// Per-feature input normalization `x = (raw − offset) · scale`, in `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormDesc<'a> {
    /// `input_size` × `f32` LE.
    #[serde(borrow)]
    pub offset: &'a [u8],
    /// `input_size` × `f32` LE.
    #[serde(borrow)]
    pub scale: &'a [u8],
}

/// One recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerDesc<'a> {
    /// Cell and variant.
    pub cell: CellKind,
    /// Width of this layer's input.
    pub input_size: u16,
    /// Hidden size `H`.
    pub hidden_size: u16,
    /// Int paths: fractional bits of this layer's input (`h_frac` of the layer below).
    pub x_frac: u8,
    /// Int paths: fractional bits of `h` (15 for bounded cells, calibrated for a projected
    /// LSTM).
    pub h_frac: u8,
    /// `gates·H` rows × `pad4(input_size)` weights.
    #[serde(borrow)]
    pub w_ih: &'a [u8],
    /// `gates·H` rows × `pad4(H)` weights (`pad4(P)` for a projected LSTM).
    #[serde(borrow)]
    pub w_hh: &'a [u8],
    /// `gates·H` biases of the input product.
    #[serde(borrow)]
    pub b_ih: &'a [u8],
    /// `gates·H` biases of the hidden product.
    #[serde(borrow)]
    pub b_hh: &'a [u8],
    /// Int paths: `gates·H` [`Requant`] records for `W_ih·x + b_ih` → pre-activation.
    #[serde(borrow)]
    pub rq_ih: &'a [u8],
    /// Int paths: `gates·H` [`Requant`] records for `W_hh·h + b_hh` → pre-activation.
    #[serde(borrow)]
    pub rq_hh: &'a [u8],
    /// LSTM peepholes `3·H` values, order `i, f, o` (int: `i16` with `p_frac`), or empty.
    #[serde(borrow)]
    pub peephole: &'a [u8],
    /// Int paths: fractional bits of the peephole weights.
    pub p_frac: u8,
    /// Initial hidden state, `H` (`P` for a projected LSTM) values in `h` format, or empty
    /// for zeros.
    #[serde(borrow)]
    pub h0: &'a [u8],
    /// LSTM initial cell state, `H` values (int: `i32` Q16.15), or empty for zeros.
    #[serde(borrow)]
    pub c0: &'a [u8],
    /// LSTM with projection (format 3; PyTorch `proj_size`): the width `P` of
    /// `h = W_hr·(o ⊙ tanh c)`, the layer's output and recurrent input; 0 = no projection
    /// (`h` is `H` wide).
    pub proj_size: u16,
    /// Projection weights `P` rows × `pad4(H)` (empty without projection).
    #[serde(borrow)]
    pub w_hr: &'a [u8],
    /// Int paths: `P` [`Requant`] records for `W_hr·m` → `h` (empty without projection).
    #[serde(borrow)]
    pub rq_hr: &'a [u8],
    /// LSTM cell-state clipping (format 3; TFLite `cell_clip`): `c` is clamped to
    /// `[−clip, clip]` after each update. Empty = none; else 4 bytes: int paths `i32` LE in
    /// `c`'s Q16.15, f32 `f32` LE; positive.
    #[serde(borrow)]
    pub cell_clip: &'a [u8],
    /// Direction over time (format 3).
    pub direction: Direction,
    /// The reverse direction's weights: present exactly when `direction` is
    /// [`Direction::Bidirectional`].
    #[serde(borrow)]
    pub backward: Option<DirWeights<'a>>,
}

impl<'a> LayerDesc<'a> {
    /// Width of `h` (the recurrent state, the hidden product's input and one direction's
    /// output): the projection's `P` for a projected LSTM, else `H`.
    pub const fn h_size(&self) -> usize {
        if self.proj_size != 0 {
            self.proj_size as usize
        } else {
            self.hidden_size as usize
        }
    }
    /// [`h_size`](Self::h_size) for the runtime: `H` in a build without `lstm-proj`, whose
    /// loader refuses a projection (so the compiler drops the projection's sizing).
    pub(crate) const fn h_len(&self) -> usize {
        if cfg!(feature = "lstm-proj") {
            self.h_size()
        } else {
            self.hidden_size as usize
        }
    }
    /// The reverse direction of a bidirectional layer as a layer of its own: this record
    /// with the [`backward`](Self::backward) tensors in place of the forward ones (same
    /// cell, sizes and formats), direction [`Direction::Forward`] and no `backward`. `None`
    /// for any other direction. The runtime steps a direction's cell with it.
    pub fn backward_layer(&self) -> Option<LayerDesc<'a>> {
        let b = self.backward?;
        Some(LayerDesc {
            w_ih: b.w_ih,
            w_hh: b.w_hh,
            b_ih: b.b_ih,
            b_hh: b.b_hh,
            rq_ih: b.rq_ih,
            rq_hh: b.rq_hh,
            peephole: b.peephole,
            h0: b.h0,
            c0: b.c0,
            w_hr: b.w_hr,
            rq_hr: b.rq_hr,
            direction: Direction::Forward,
            backward: None,
            ..*self
        })
    }
    /// Bytes of flash this layer's tensors take: both directions' weights, biases, requant
    /// records, peepholes, initial state and projection, and the cell clip.
    pub fn weight_bytes(&self) -> usize {
        let mut n = self.cell_clip.len();
        for d in core::iter::once(*self).chain(self.backward_layer()) {
            n += d.w_ih.len() + d.w_hh.len() + d.b_ih.len() + d.b_hh.len();
            n += d.rq_ih.len() + d.rq_hh.len() + d.peephole.len() + d.h0.len() + d.c0.len();
            n += d.w_hr.len() + d.rq_hr.len();
        }
        n
    }
    /// Width of this layer's output per frame: `h`'s width ([`h_size`](Self::h_size), `H`
    /// in a build without `lstm-proj`) times the number of directions
    /// ([`Direction::count`]).
    pub fn out_size(&self) -> usize {
        self.h_len() * self.direction.count()
    }
}

/// One recurrent layer as formats 1 and 2 store it (forward, no projection, no clip).
#[derive(Deserialize)]
struct LayerDescV2<'a> {
    cell: CellKind,
    input_size: u16,
    hidden_size: u16,
    x_frac: u8,
    h_frac: u8,
    #[serde(borrow)]
    w_ih: &'a [u8],
    #[serde(borrow)]
    w_hh: &'a [u8],
    #[serde(borrow)]
    b_ih: &'a [u8],
    #[serde(borrow)]
    b_hh: &'a [u8],
    #[serde(borrow)]
    rq_ih: &'a [u8],
    #[serde(borrow)]
    rq_hh: &'a [u8],
    #[serde(borrow)]
    peephole: &'a [u8],
    p_frac: u8,
    #[serde(borrow)]
    h0: &'a [u8],
    #[serde(borrow)]
    c0: &'a [u8],
}

impl<'a> From<LayerDescV2<'a>> for LayerDesc<'a> {
    fn from(l: LayerDescV2<'a>) -> Self {
        LayerDesc {
            cell: l.cell,
            input_size: l.input_size,
            hidden_size: l.hidden_size,
            x_frac: l.x_frac,
            h_frac: l.h_frac,
            w_ih: l.w_ih,
            w_hh: l.w_hh,
            b_ih: l.b_ih,
            b_hh: l.b_hh,
            rq_ih: l.rq_ih,
            rq_hh: l.rq_hh,
            peephole: l.peephole,
            p_frac: l.p_frac,
            h0: l.h0,
            c0: l.c0,
            proj_size: 0,
            w_hr: &[],
            rq_hr: &[],
            cell_clip: &[],
            direction: Direction::Forward,
            backward: None,
        }
    }
}

fn layers_from_v2<'a>(
    v: heapless::Vec<LayerDescV2<'a>, MAX_LAYERS>,
) -> heapless::Vec<LayerDesc<'a>, MAX_LAYERS> {
    let mut out = heapless::Vec::new();
    for l in v {
        // same capacity: never full (`push`, not `collect`: no panic path)
        let _ = out.push(LayerDesc::from(l));
    }
    out
}

/// The dense output head `y = W·h + b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DenseDesc<'a> {
    /// Output width `C`.
    pub out_size: u16,
    /// Input width (the last layer's `H`).
    pub in_size: u16,
    /// `C` rows × `pad4(in_size)` weights.
    #[serde(borrow)]
    pub weight: &'a [u8],
    /// `C` biases.
    #[serde(borrow)]
    pub bias: &'a [u8],
    /// Int paths: `C` [`Requant`] records to the output format (Q19.12 if an output
    /// activation follows, else `output_frac`).
    #[serde(borrow)]
    pub rq: &'a [u8],
}

/// A dense layer of the per-frame pre-net or of the hidden head (format 2):
/// `y = act(W·x + b)`.
///
/// Integer paths: the input is `i16` in `x_frac` fractional bits, the output `i16` in
/// `y_frac`. The requant records of `dense` target `y_frac` (then the activation acts on the
/// saturated `i16`) for Identity / ReLU / Clip / LeakyReLU, and Q19.12 for Tanh / Sigmoid,
/// whose output is Q0.15 (`y_frac` = 15). See `src/DESIGN.md`, "Dense ops".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DenseOpDesc<'a> {
    /// Activation on the result.
    pub act: DenseAct,
    /// Int paths: fractional bits of the input; f32: 0.
    pub x_frac: u8,
    /// Int paths: fractional bits of the output; f32: 0.
    pub y_frac: u8,
    /// Weights, biases and requant records (`out_size` rows × `pad4(in_size)`).
    #[serde(borrow)]
    pub dense: DenseDesc<'a>,
}

/// One per-frame op of the pre-net or of the hidden head (format 2).
///
/// The variant order is the blob format (see [Enum indices](crate::model#enum-indices)): never
/// reorder or insert variants without a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OpDesc<'a> {
    /// A dense layer with its activation.
    #[serde(borrow)]
    Dense(DenseOpDesc<'a>),
}

impl<'a> OpDesc<'a> {
    /// Output width.
    pub fn out_size(&self) -> usize {
        match self {
            OpDesc::Dense(d) => d.dense.out_size as usize,
        }
    }
    /// Input width.
    pub fn in_size(&self) -> usize {
        match self {
            OpDesc::Dense(d) => d.dense.in_size as usize,
        }
    }
    /// Int paths: fractional bits of the input.
    pub fn x_frac(&self) -> u8 {
        match self {
            OpDesc::Dense(d) => d.x_frac,
        }
    }
    /// Int paths: fractional bits of the output.
    pub fn y_frac(&self) -> u8 {
        match self {
            OpDesc::Dense(d) => d.y_frac,
        }
    }
    /// Bytes of flash of its tensors.
    pub fn weight_bytes(&self) -> usize {
        match self {
            OpDesc::Dense(d) => d.dense.weight.len() + d.dense.bias.len() + d.dense.rq.len(),
        }
    }
    /// Parameters (weights and biases, unpadded).
    pub fn params(&self) -> usize {
        match self {
            OpDesc::Dense(d) => {
                let (o, i) = (d.dense.out_size as usize, d.dense.in_size as usize);
                o * i + o
            }
        }
    }
    /// The op in words, as tools print it: `"dense(relu)"`.
    pub fn name(&self) -> &'static str {
        match self {
            OpDesc::Dense(d) => match d.act {
                DenseAct::Identity => "dense",
                DenseAct::Relu => "dense(relu)",
                DenseAct::Clip { .. } => "dense(clip)",
                DenseAct::LeakyRelu { .. } => "dense(leaky_relu)",
                DenseAct::Tanh => "dense(tanh)",
                DenseAct::Sigmoid => "dense(sigmoid)",
                DenseAct::Gelu => "dense(gelu)",
                DenseAct::GeluTanh => "dense(gelu(tanh))",
            },
        }
    }
}

/// The payload of a format-1 blob (decoded and converted by [`Model::from_blob`]).
#[derive(Deserialize)]
struct ModelDescV1<'a> {
    precision: Precision,
    input_size: u16,
    #[serde(borrow)]
    norm: Option<NormDesc<'a>>,
    #[serde(borrow)]
    layers: heapless::Vec<LayerDescV2<'a>, MAX_LAYERS>,
    #[serde(borrow)]
    head: Option<DenseDesc<'a>>,
    output_act: OutputAct,
    output_frac: u8,
    #[serde(borrow)]
    name: &'a str,
}

impl<'a> From<ModelDescV1<'a>> for ModelDesc<'a> {
    fn from(v: ModelDescV1<'a>) -> Self {
        ModelDesc {
            precision: v.precision,
            input_size: v.input_size,
            norm: v.norm,
            pre: heapless::Vec::new(),
            layers: layers_from_v2(v.layers),
            pool: Pool::Last,
            pool_frac: 0,
            mlp: heapless::Vec::new(),
            head: v.head,
            output_act: v.output_act,
            output_frac: v.output_frac,
            name: v.name,
        }
    }
}

/// The payload of a format-2 blob: format 3's with format-2 layers (decoded and converted by
/// [`Model::from_blob`]).
#[derive(Deserialize)]
struct ModelDescV2<'a> {
    precision: Precision,
    input_size: u16,
    #[serde(borrow)]
    norm: Option<NormDesc<'a>>,
    #[serde(borrow)]
    pre: heapless::Vec<OpDesc<'a>, MAX_OPS>,
    #[serde(borrow)]
    layers: heapless::Vec<LayerDescV2<'a>, MAX_LAYERS>,
    pool: Pool,
    pool_frac: u8,
    #[serde(borrow)]
    mlp: heapless::Vec<OpDesc<'a>, MAX_OPS>,
    #[serde(borrow)]
    head: Option<DenseDesc<'a>>,
    output_act: OutputAct,
    output_frac: u8,
    #[serde(borrow)]
    name: &'a str,
}

impl<'a> From<ModelDescV2<'a>> for ModelDesc<'a> {
    fn from(v: ModelDescV2<'a>) -> Self {
        ModelDesc {
            precision: v.precision,
            input_size: v.input_size,
            norm: v.norm,
            pre: v.pre,
            layers: layers_from_v2(v.layers),
            pool: v.pool,
            pool_frac: v.pool_frac,
            mlp: v.mlp,
            head: v.head,
            output_act: v.output_act,
            output_frac: v.output_frac,
            name: v.name,
        }
    }
}

/// The whole model description (the blob's payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDesc<'a> {
    /// Number format.
    pub precision: Precision,
    /// Features per input frame.
    pub input_size: u16,
    /// Optional input normalization.
    #[serde(borrow)]
    pub norm: Option<NormDesc<'a>>,
    /// The per-frame pre-net between the (normalized) input and layer 0 (format 2).
    #[serde(borrow)]
    pub pre: heapless::Vec<OpDesc<'a>, MAX_OPS>,
    /// The recurrent layers, input first.
    #[serde(borrow)]
    pub layers: heapless::Vec<LayerDesc<'a>, MAX_LAYERS>,
    /// Reduction of the last layer's `h` over time (format 2).
    pub pool: Pool,
    /// Int paths with [`Pool::Sum`]: fractional bits of the pooled sum (≤ the last layer's
    /// `h_frac`); 0 otherwise (the pooled vector keeps `h`'s format).
    pub pool_frac: u8,
    /// Hidden head ops between the pooled vector and `head` (format 2).
    #[serde(borrow)]
    pub mlp: heapless::Vec<OpDesc<'a>, MAX_OPS>,
    /// Optional dense head.
    #[serde(borrow)]
    pub head: Option<DenseDesc<'a>>,
    /// Activation on the final output.
    pub output_act: OutputAct,
    /// Int paths: fractional bits of the final output values.
    pub output_frac: u8,
    /// Free text, e.g. the source model's file name.
    #[serde(borrow)]
    pub name: &'a str,
}

/// Every cargo feature that selects model code, in the order
/// [`ModelDesc::required_features`] lists them.
pub const MODEL_FEATURES: [&str; 12] = [
    "rnn",
    "gru",
    "lstm",
    "lstm-peephole",
    "lstm-proj",
    "lstm-clip",
    "dense-net",
    "pool",
    "window",
    "int8",
    "int16",
    "f32",
];

impl ModelDesc<'_> {
    /// The cargo features of this crate a build needs to run this model: the cells of its
    /// layers (`"lstm-peephole"`, `"lstm-proj"` and `"lstm-clip"` come with `"lstm"`, which
    /// they imply; `"lstm-proj"` for an LSTM with projection, `"lstm-clip"` with a cell
    /// clip), `"dense-net"` if it has pre-net or hidden head ops, `"pool"` if it pools over
    /// time (mean/max/sum/final states), `"window"` if a layer is reverse or bidirectional,
    /// then its precision,
    /// in the order of [`MODEL_FEATURES`], each once. A build without one of them rejects
    /// the blob in [`Model::from_blob`] with [`Error::FeatureDisabled`].
    ///
    /// # Examples
    /// ```
    /// # fn f(blob: &[u8]) -> tinyrnn::Result<()> {
    /// let model = tinyrnn::Model::from_blob(blob)?;
    /// let features = model.desc().required_features(); // e.g. ["lstm", "int8"]
    /// # let _ = features; Ok(()) }
    /// ```
    pub fn required_features(&self) -> heapless::Vec<&'static str, 12> {
        let mut need = [false; 12];
        for l in self.layers.iter() {
            match l.cell {
                CellKind::Rnn(_) => need[0] = true,
                CellKind::Gru { .. } => need[1] = true,
                CellKind::Lstm { peepholes } => {
                    need[2] = true;
                    need[3] |= peepholes;
                    need[4] |= l.proj_size != 0;
                    need[5] |= !l.cell_clip.is_empty();
                }
            }
        }
        need[6] = !self.pre.is_empty() || !self.mlp.is_empty();
        need[7] = self.pool != Pool::Last;
        need[8] = self
            .layers
            .iter()
            .any(|l| l.direction != Direction::Forward);
        match self.precision {
            Precision::Int8 => need[9] = true,
            Precision::Int16 => need[10] = true,
            Precision::F32 => need[11] = true,
        }
        let mut out = heapless::Vec::new();
        for (&f, _) in MODEL_FEATURES.iter().zip(need).filter(|(_, n)| *n) {
            // at most 12 entries: never full
            let _ = out.push(f);
        }
        out
    }
}

/// Writes `desc` as a complete blob (header + payload) into `buf`, returning its length.
///
/// The host tool uses this function, so writer and reader share one definition.
///
/// # Errors
/// [`Error::Decode`] if `buf` is too small.
pub fn write_blob(desc: &ModelDesc<'_>, buf: &mut [u8]) -> Result<usize> {
    if buf.len() < HEADER_LEN {
        return Err(Error::Decode(postcard::Error::SerializeBufferFull));
    }
    let (head, body) = buf.split_at_mut(HEADER_LEN);
    let n = postcard::to_slice(desc, body)?.len();
    let payload = &body[..n];
    let crc = crc32(payload);
    head[0..4].copy_from_slice(&MAGIC);
    head[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    head[6..8].copy_from_slice(&0u16.to_le_bytes());
    head[8..12].copy_from_slice(&(n as u32).to_le_bytes());
    head[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(HEADER_LEN + n)
}

/// A validated model borrowing its weights from a blob.
#[derive(Debug, Clone, PartialEq)]
pub struct Model<'a> {
    desc: ModelDesc<'a>,
    /// Index of the first reverse / bidirectional layer (the layers before it stream);
    /// the layer count for a model that streams entirely.
    window_from: u8,
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn check_len(bytes: &[u8], count: usize, elem: usize) -> Result<()> {
    match count.checked_mul(elem) {
        Some(n) if n == bytes.len() => Ok(()),
        _ => Err(Error::ShapeMismatch),
    }
}

fn check_dim(d: u16) -> Result<usize> {
    let d = d as usize;
    if d == 0 || d > MAX_DIM {
        Err(Error::BadDimension)
    } else {
        Ok(d)
    }
}

fn check_requant(table: &[u8], rows: usize, max_shift: u8) -> Result<()> {
    check_len(table, rows, Requant::BYTES)?;
    for rec in table.chunks_exact(Requant::BYTES) {
        let mult = i32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let shift = rec[4];
        if mult <= 0 || shift == 0 || shift > max_shift {
            return Err(Error::BadQuantization);
        }
    }
    Ok(())
}

fn check_f32s(bytes: &[u8]) -> Result<()> {
    // a slice pattern, not `chunks_exact` + indexing: no bounds check to prove
    let mut rest = bytes;
    while let [a, b, c, d, tail @ ..] = rest {
        if !f32::from_le_bytes([*a, *b, *c, *d]).is_finite() {
            return Err(Error::NonFinite);
        }
        rest = tail;
    }
    Ok(())
}

/// The fields of a format-1 payload up to the layer count, which postcard writes before
/// the layers: a sequence length is a varint, encoded as a `u64` is.
#[derive(Deserialize)]
struct LayerCountV1<'a> {
    _precision: Precision,
    _input_size: u16,
    #[serde(borrow)]
    _norm: Option<NormDesc<'a>>,
    layers: u64,
}

/// The fields of a format-2 payload up to the pre-net op count.
#[derive(Deserialize)]
struct OpCount<'a> {
    _precision: Precision,
    _input_size: u16,
    #[serde(borrow)]
    _norm: Option<NormDesc<'a>>,
    pre: u64,
}

/// The fields of a format-2 payload up to the layer count (the pre-net decoded).
#[derive(Deserialize)]
struct LayerCountV2<'a> {
    _precision: Precision,
    _input_size: u16,
    #[serde(borrow)]
    _norm: Option<NormDesc<'a>>,
    #[serde(borrow)]
    _pre: heapless::Vec<OpDesc<'a>, MAX_OPS>,
    layers: u64,
}

/// Why `payload` did not decode: [`Error::TooManyLayers`] if it declares more than
/// [`MAX_LAYERS`] layers, [`Error::TooManyOps`] if its pre-net declares more than
/// [`MAX_OPS`] ops (a bounded vector refuses the extra element, which postcard reports as
/// an anonymous serde error), else [`Error::Decode`] with `e`. (A head with too many ops is
/// reported as [`Error::Decode`].)
#[cold]
#[inline(never)]
fn decode_error(payload: &[u8], version: u16, e: postcard::Error) -> Error {
    if version == 1 {
        return match postcard::take_from_bytes::<LayerCountV1<'_>>(payload) {
            Ok((prefix, _)) if prefix.layers > MAX_LAYERS as u64 => Error::TooManyLayers,
            _ => Error::Decode(e),
        };
    }
    if let Ok((prefix, _)) = postcard::take_from_bytes::<OpCount<'_>>(payload) {
        if prefix.pre > MAX_OPS as u64 {
            return Error::TooManyOps;
        }
    }
    match postcard::take_from_bytes::<LayerCountV2<'_>>(payload) {
        Ok((prefix, _)) if prefix.layers > MAX_LAYERS as u64 => Error::TooManyLayers,
        _ => Error::Decode(e),
    }
}

/// Checks one pre-net / head op reading `width` values in `frac` fractional bits; returns
/// its output width and format.
fn check_op(
    op: &OpDesc<'_>,
    p: Precision,
    width: usize,
    frac: Option<u8>,
    max_shift: u8,
) -> Result<(usize, u8)> {
    match op {
        OpDesc::Dense(d) => {
            let c = check_dim(d.dense.out_size)?;
            let i = check_dim(d.dense.in_size)?;
            if i != width {
                return Err(Error::BadDimension);
            }
            check_len(d.dense.weight, c * pad4(i), p.weight_bytes())?;
            check_len(d.dense.bias, c, p.bias_bytes())?;
            match d.act {
                DenseAct::Clip { lo, hi } if !(lo.is_finite() && hi.is_finite() && lo <= hi) => {
                    return Err(Error::Unsupported);
                }
                DenseAct::LeakyRelu { alpha } => {
                    let ok = if p.is_int() {
                        (0.0..=1.0).contains(&alpha)
                    } else {
                        alpha.is_finite()
                    };
                    if !ok {
                        return Err(Error::Unsupported);
                    }
                }
                _ => {}
            }
            if p.is_int() {
                check_requant(d.dense.rq, c, max_shift)?;
                if d.x_frac > 15 || frac.is_some_and(|f| f != d.x_frac) || d.y_frac > 15 {
                    return Err(Error::BadQuantization);
                }
                if matches!(d.act, DenseAct::Tanh | DenseAct::Sigmoid)
                    && d.y_frac as u32 != ACT_FRAC
                {
                    return Err(Error::BadQuantization);
                }
            } else {
                check_len(d.dense.rq, 0, 1)?;
                check_f32s(d.dense.weight)?;
                check_f32s(d.dense.bias)?;
            }
            Ok((c, d.y_frac))
        }
    }
}

/// Checks the tensors of one direction of a layer (`i` inputs, `h` hidden units): lengths,
/// requant records, formats, finiteness.
fn check_direction(
    l: &LayerDesc<'_>,
    p: Precision,
    i: usize,
    h: usize,
    hw: usize,
    max_shift: u8,
) -> Result<()> {
    let rows = l.cell.gates() * h;
    check_len(l.w_ih, rows * pad4(i), p.weight_bytes())?;
    check_len(l.w_hh, rows * pad4(hw), p.weight_bytes())?;
    check_len(l.b_ih, rows, p.bias_bytes())?;
    check_len(l.b_hh, rows, p.bias_bytes())?;
    match l.cell {
        CellKind::Lstm { peepholes: true } => check_len(l.peephole, 3 * h, p.act_bytes())?,
        _ => check_len(l.peephole, 0, 1)?,
    }
    if !l.h0.is_empty() {
        check_len(l.h0, hw, p.act_bytes())?;
    }
    if !l.c0.is_empty() {
        if !matches!(l.cell, CellKind::Lstm { .. }) {
            return Err(Error::ShapeMismatch);
        }
        check_len(l.c0, h, 4)?;
    }
    // format 3: the projection's tensors (`hw` is its `P` when `proj_size` is set)
    let projected = cfg!(feature = "lstm-proj") && l.proj_size != 0;
    if projected {
        check_len(l.w_hr, hw * pad4(h), p.weight_bytes())?;
        if p.is_int() {
            check_requant(l.rq_hr, hw, max_shift)?;
        } else {
            check_len(l.rq_hr, 0, 1)?;
            check_f32s(l.w_hr)?;
        }
    } else {
        check_len(l.w_hr, 0, 1)?;
        check_len(l.rq_hr, 0, 1)?;
    }
    if p.is_int() {
        check_requant(l.rq_ih, rows, max_shift)?;
        check_requant(l.rq_hh, rows, max_shift)?;
        if l.x_frac > 15 || l.h_frac > 15 || l.p_frac > 15 {
            return Err(Error::BadQuantization);
        }
        // a projected LSTM's h is W_hr·m, not bounded by 1: calibrated h_frac
        if l.cell.bounded() && !projected && l.h_frac as u32 != ACT_FRAC {
            return Err(Error::BadQuantization);
        }
    } else {
        check_len(l.rq_ih, 0, 1)?;
        check_len(l.rq_hh, 0, 1)?;
        for t in [l.w_ih, l.w_hh, l.b_ih, l.b_hh, l.peephole, l.h0, l.c0] {
            check_f32s(t)?;
        }
    }
    Ok(())
}

impl<'a> Model<'a> {
    /// Decodes and validates a blob. Nothing is copied: the model borrows `blob`.
    ///
    /// # Errors
    /// Every violation of the format listed in the [module docs](self) gives its own
    /// [`Error`] variant; no input makes this function panic.
    pub fn from_blob(blob: &'a [u8]) -> Result<Self> {
        if blob.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if blob[0..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = le_u16(&blob[4..6]);
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion(version));
        }
        if le_u16(&blob[6..8]) != 0 {
            return Err(Error::Unsupported);
        }
        let len = le_u32(&blob[8..12]) as usize;
        let payload = &blob[HEADER_LEN..];
        if payload.len() < len {
            return Err(Error::Truncated);
        }
        if payload.len() > len {
            return Err(Error::TrailingBytes);
        }
        if crc32(payload) != le_u32(&blob[12..16]) {
            return Err(Error::BadChecksum);
        }
        let (desc, rest): (ModelDesc<'a>, _) = if version == 1 {
            let (v1, rest): (ModelDescV1<'a>, _) = postcard::take_from_bytes(payload)
                .map_err(|e| decode_error(payload, version, e))?;
            (v1.into(), rest)
        } else if version == 2 {
            let (v2, rest): (ModelDescV2<'a>, _) = postcard::take_from_bytes(payload)
                .map_err(|e| decode_error(payload, version, e))?;
            (v2.into(), rest)
        } else {
            postcard::take_from_bytes(payload).map_err(|e| decode_error(payload, version, e))?
        };
        if !rest.is_empty() {
            return Err(Error::TrailingBytes);
        }
        Self::from_desc(desc)
    }

    /// Validates an already decoded description (what [`from_blob`](Self::from_blob) does
    /// after the header and CRC checks).
    ///
    /// # Errors
    /// As [`from_blob`](Self::from_blob).
    pub fn from_desc(desc: ModelDesc<'a>) -> Result<Self> {
        let p = desc.precision;
        if desc.name.len() > MAX_NAME {
            return Err(Error::Unsupported);
        }
        // Ops and reductions this build has no code for: refused before anything else, so
        // that below (and in `pre`/`mlp`/`pool`) the compiler can drop their checks.
        let dense_net = !(desc.pre.is_empty() && desc.mlp.is_empty());
        if dense_net && !cfg!(feature = "dense-net") {
            return Err(Error::FeatureDisabled("dense-net"));
        }
        if desc.pool != Pool::Last && !cfg!(feature = "pool") {
            return Err(Error::FeatureDisabled("pool"));
        }
        if !cfg!(feature = "window")
            && desc
                .layers
                .iter()
                .any(|l| l.direction != Direction::Forward)
        {
            return Err(Error::FeatureDisabled("window"));
        }
        let (pre, mlp): (&[OpDesc<'a>], &[OpDesc<'a>]) = if cfg!(feature = "dense-net") {
            (&desc.pre, &desc.mlp)
        } else {
            (&[], &[])
        };
        let pool = if cfg!(feature = "pool") {
            desc.pool
        } else {
            Pool::Last
        };
        // the same for a projection: refused first, its checks compiled out
        if !cfg!(feature = "lstm-proj") && desc.layers.iter().any(|l| l.proj_size != 0) {
            return Err(Error::FeatureDisabled("lstm-proj"));
        }
        let input = check_dim(desc.input_size)?;
        if let Some(norm) = &desc.norm {
            check_len(norm.offset, input, 4)?;
            check_len(norm.scale, input, 4)?;
            check_f32s(norm.offset)?;
            check_f32s(norm.scale)?;
        }
        if desc.layers.is_empty() {
            return Err(Error::BadDimension);
        }
        // int8: i32 accumulator; int16: i64 accumulator (see fxp overflow notes).
        let max_shift = if p == Precision::Int16 { 94 } else { 62 };
        let mut prev = input;
        let mut prev_frac = None::<u8>;
        for op in pre {
            let (w, f) = check_op(op, p, prev, prev_frac, max_shift)?;
            prev = w;
            prev_frac = p.is_int().then_some(f);
        }
        for l in desc.layers.iter() {
            let i = check_dim(l.input_size)?;
            let h = check_dim(l.hidden_size)?;
            if i != prev {
                return Err(Error::BadDimension);
            }
            let lstm = matches!(l.cell, CellKind::Lstm { .. });
            // format 3: the projection (LSTM only) makes h `P` wide
            let hw = if cfg!(feature = "lstm-proj") && l.proj_size != 0 {
                if !lstm {
                    return Err(Error::Unsupported);
                }
                check_dim(l.proj_size)?
            } else {
                h
            };
            // format 3: the cell clip (LSTM only), positive and finite
            if !l.cell_clip.is_empty() {
                if !lstm {
                    return Err(Error::Unsupported);
                }
                let Ok(b) = <[u8; 4]>::try_from(l.cell_clip) else {
                    return Err(Error::ShapeMismatch);
                };
                let ok = if p.is_int() {
                    i32::from_le_bytes(b) > 0
                } else {
                    let v = f32::from_le_bytes(b);
                    if !v.is_finite() {
                        return Err(Error::NonFinite);
                    }
                    v > 0.0
                };
                if !ok {
                    return Err(Error::BadQuantization);
                }
            }
            // format 3: the reverse weights come exactly with a bidirectional layer
            if l.backward.is_some() != (l.direction == Direction::Bidirectional) {
                return Err(Error::ShapeMismatch);
            }
            check_direction(l, p, i, h, hw, max_shift)?;
            // without `window` every layer is forward (refused above): no reverse weights
            if cfg!(feature = "window") {
                if let Some(b) = l.backward_layer() {
                    check_direction(&b, p, i, h, hw, max_shift)?;
                }
            }
            if p.is_int() {
                if let Some(pf) = prev_frac {
                    if pf != l.x_frac {
                        return Err(Error::BadQuantization);
                    }
                }
                prev_frac = Some(l.h_frac);
            }
            prev = l.out_size();
        }
        // the pooled vector: the last layer's h format, fewer bits for a sum
        match (p.is_int(), pool) {
            (true, Pool::Sum) => {
                if desc.pool_frac > prev_frac.unwrap_or(0) {
                    return Err(Error::BadQuantization);
                }
                prev_frac = Some(desc.pool_frac);
            }
            _ if desc.pool_frac != 0 => return Err(Error::BadQuantization),
            _ => {}
        }
        for op in mlp {
            let (w, f) = check_op(op, p, prev, prev_frac, max_shift)?;
            prev = w;
            prev_frac = p.is_int().then_some(f);
        }
        if let Some(head) = &desc.head {
            let c = check_dim(head.out_size)?;
            let i = check_dim(head.in_size)?;
            if i != prev {
                return Err(Error::BadDimension);
            }
            check_len(head.weight, c * pad4(i), p.weight_bytes())?;
            check_len(head.bias, c, p.bias_bytes())?;
            if p.is_int() {
                check_requant(head.rq, c, max_shift)?;
            } else {
                check_len(head.rq, 0, 1)?;
                check_f32s(head.weight)?;
                check_f32s(head.bias)?;
            }
        }
        if p.is_int() {
            if desc.output_frac > 15 {
                return Err(Error::BadQuantization);
            }
            // After sigmoid / tanh / softmax the output is Q0.15.
            if desc.output_act != OutputAct::Identity && desc.output_frac as u32 != ACT_FRAC {
                return Err(Error::BadQuantization);
            }
            // With no head, the output is the last layer's h: no output activation.
            if desc.head.is_none() && desc.output_act != OutputAct::Identity {
                return Err(Error::Unsupported);
            }
            if desc.head.is_none() && prev_frac != Some(desc.output_frac) {
                return Err(Error::BadQuantization);
            }
        }
        // Last, so that only a valid blob gets this error: its cells and precision must be
        // compiled in (cargo features, see the crate docs).
        if !p.enabled() {
            return Err(Error::FeatureDisabled(p.feature()));
        }
        for l in desc.layers.iter() {
            if !l.cell.enabled() {
                return Err(Error::FeatureDisabled(l.cell.feature()));
            }
            if !l.cell_clip.is_empty() && !cfg!(feature = "lstm-clip") {
                return Err(Error::FeatureDisabled("lstm-clip"));
            }
        }
        let window_from = desc
            .layers
            .iter()
            .position(|l| l.direction != Direction::Forward)
            .unwrap_or(desc.layers.len());
        Ok(Model {
            window_from: window_from as u8,
            desc,
        })
    }

    /// The decoded description.
    pub fn desc(&self) -> &ModelDesc<'a> {
        &self.desc
    }
    /// Number format.
    pub fn precision(&self) -> Precision {
        self.desc.precision
    }
    /// Features per input frame.
    pub fn input_size(&self) -> usize {
        self.desc.input_size as usize
    }
    /// Width of the output vector: the head's `C`, else the last hidden head op's width,
    /// else the last layer's `H`.
    pub fn output_size(&self) -> usize {
        match &self.desc.head {
            Some(h) => h.out_size as usize,
            None => match self.desc.mlp.last() {
                Some(op) => op.out_size(),
                None => self.pooled_size(),
            },
        }
    }
    /// Width of the pooled vector: the last layer's output width (`h`'s width — `H`, or `P`
    /// with a projection — times 2 for a bidirectional layer).
    pub fn pooled_size(&self) -> usize {
        self.desc.layers.last().map_or(0, LayerDesc::out_size)
    }
    /// Index of the first reverse or bidirectional layer: the layers before it (and the
    /// pre-net) stream frame by frame, it and the layers after it run over the window
    /// (`Session::step_window`). `None` for a model that streams entirely (every layer
    /// forward), which is the only kind a build without the `window` feature loads.
    pub fn window_layer(&self) -> Option<usize> {
        let k = self.window_from as usize;
        (cfg!(feature = "window") && k < self.desc.layers.len()).then_some(k)
    }
    /// Whether the model needs a window buffer ([`window_layer`](Self::window_layer) is
    /// `Some`).
    pub fn is_windowed(&self) -> bool {
        self.window_layer().is_some()
    }
    /// `u32` words of window buffer one frame takes (0 for a model that streams): the
    /// input of the first windowed layer, packed like the scratch (`pad4(width)` values,
    /// two `i16` per word on the integer paths, one `f32` per word on the f32 path), plus
    /// one output sequence slot of `pad4(max out width)` values for the first windowed
    /// layer and a second one when more than one layer runs over the window (the layers
    /// alternate between the two). See `Session::step_window`.
    pub fn window_frame_words(&self) -> usize {
        let Some(k) = self.window_layer() else {
            return 0;
        };
        let per_word = if self.desc.precision.is_int() { 2 } else { 1 };
        let layers = self.desc.layers.get(k..).unwrap_or(&[]);
        let input = layers.first().map_or(0, |l| pad4(l.input_size as usize));
        let out = layers.iter().map(|l| pad4(l.out_size())).max().unwrap_or(0);
        let slots = if layers.len() > 1 { 2 } else { 1 };
        (input + slots * out) / per_word
    }
    /// `u32` words of window buffer for `frames` frames:
    /// `frames ·` [`window_frame_words`](Self::window_frame_words) (saturating).
    pub fn window_words(&self, frames: usize) -> usize {
        frames.saturating_mul(self.window_frame_words())
    }
    /// Int paths: fractional bits of the (normalized) input frame that [`Session::step_q`]
    /// takes: the first pre-net op's `x_frac`, else layer 0's.
    ///
    /// [`Session::step_q`]: crate::Session::step_q
    pub fn input_frac(&self) -> u8 {
        match self.desc.pre.first() {
            Some(op) => op.x_frac(),
            None => self.desc.layers.first().map_or(0, |l| l.x_frac),
        }
    }
    /// The per-frame pre-net ops.
    ///
    /// Empty in a build without the `dense-net` feature: [`from_desc`](Self::from_desc)
    /// refuses a model with ops there, so the compiler can drop the ops' code.
    pub fn pre(&self) -> &[OpDesc<'a>] {
        if cfg!(feature = "dense-net") {
            &self.desc.pre
        } else {
            &[]
        }
    }
    /// The hidden head ops (empty without the `dense-net` feature, as [`pre`](Self::pre)).
    pub fn mlp(&self) -> &[OpDesc<'a>] {
        if cfg!(feature = "dense-net") {
            &self.desc.mlp
        } else {
            &[]
        }
    }
    /// The reduction over time.
    ///
    /// Always [`Pool::Last`] in a build without the `pool` feature:
    /// [`from_desc`](Self::from_desc) refuses any other mode there, so the compiler can drop
    /// the reductions (and their 64-bit and soft-float arithmetic) from firmware that does
    /// not need them.
    pub fn pool(&self) -> Pool {
        if cfg!(feature = "pool") {
            self.desc.pool
        } else {
            Pool::Last
        }
    }
    /// State words of the pooling accumulators (after the layers' words): `Max` one per
    /// element, `Sum` two (`i64` / `f64`), `Mean` two per element plus two for the frame
    /// count (`u64`); `Last` and `FinalStates` none. A windowed model pools over the
    /// window buffer at the decision point: none either.
    pub fn pool_words(&self) -> usize {
        let w = self.pooled_size();
        if self.is_windowed() {
            return 0;
        }
        match self.pool() {
            Pool::Last | Pool::FinalStates => 0,
            Pool::Max => w,
            Pool::Sum => 2 * w,
            Pool::Mean => 2 * w + 2,
        }
    }
    /// The recurrent layers.
    pub fn layers(&self) -> &[LayerDesc<'a>] {
        &self.desc.layers
    }
    /// State words a windowed model adds after the layers' words when its first windowed
    /// layer is bidirectional: that layer's forward direction runs per frame in its own
    /// words, so its backward direction gets its own at the decision (`h`, and `c` for an
    /// LSTM), plus one word counting the frames the forward direction has taken (see
    /// `Session::step_window`). 0 otherwise.
    pub fn window_state_words(&self) -> usize {
        match self.window_layer().and_then(|k| self.desc.layers.get(k)) {
            Some(l) if l.direction == Direction::Bidirectional => {
                let h = l.hidden_size as usize;
                let words = if matches!(l.cell, CellKind::Lstm { .. }) {
                    l.h_len() + h
                } else {
                    h
                };
                words + 1
            }
            _ => 0,
        }
    }
    /// `i32` words of recurrent state: per layer its `h` ([`LayerDesc::h_size`]: `H`, or
    /// `P` for a projected LSTM) and, for an LSTM, `c` (`H`), plus the pooling accumulators
    /// ([`pool_words`](Self::pool_words)) or, for a windowed model, its
    /// [`window_state_words`](Self::window_state_words).
    pub fn state_len(&self) -> usize {
        self.pool_words()
            + self.window_state_words()
            + self
                .desc
                .layers
                .iter()
                .map(|l| {
                    let h = l.hidden_size as usize;
                    if matches!(l.cell, CellKind::Lstm { .. }) {
                        l.h_len() + h
                    } else {
                        h
                    }
                })
                .sum::<usize>()
    }
    /// `u32` words of scratch a step needs: the packed layer input `[x; h]` (two `i16` per
    /// word on the int paths, one `f32` per word on the f32 path), plus `r ⊙ h` for a
    /// reset-before GRU or `m = o ⊙ tanh c` (`pad4(H)` values) for a projected LSTM; for each pre-net / hidden head op its input and output
    /// (`pad4(in) + pad4(out)` values); the pooled vector.
    pub fn scratch_len(&self) -> usize {
        let per_word = if self.desc.precision.is_int() { 2 } else { 1 };
        let mut need = pad4(self.pooled_size()) / per_word;
        for op in self.pre().iter().chain(self.mlp()) {
            need = need.max((pad4(op.in_size()) + pad4(op.out_size())) / per_word);
        }
        for l in self.desc.layers.iter() {
            let (i, h) = (pad4(l.input_size as usize), pad4(l.hidden_size as usize));
            let mut n = (i + pad4(l.h_len())) / per_word;
            if (cfg!(feature = "lstm-proj") && l.proj_size != 0)
                || matches!(
                    l.cell,
                    CellKind::Gru {
                        linear_before_reset: false
                    }
                )
            {
                n += h / per_word;
            }
            need = need.max(n);
        }
        need
    }
    /// Bytes of flash the weight, bias and requant tensors take.
    pub fn weight_bytes(&self) -> usize {
        let mut n: usize = self.desc.layers.iter().map(LayerDesc::weight_bytes).sum();
        if let Some(h) = &self.desc.head {
            n += h.weight.len() + h.bias.len() + h.rq.len();
        }
        for op in self.desc.pre.iter().chain(self.desc.mlp.iter()) {
            n += op.weight_bytes();
        }
        n
    }
}

//! The crate's one error type.

use core::fmt;

/// Everything that can go wrong when loading a blob or running a model.
///
/// Every fallible operation in tinyrnn returns this type; nothing panics on user data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The blob is shorter than its fixed 16-byte header, or than the payload length it declares.
    Truncated,
    /// The blob does not start with `b"TRNN"`.
    BadMagic,
    /// The blob's format version is not the one this build reads.
    UnsupportedVersion(u16),
    /// The CRC-32 stored in the header does not match the payload.
    BadChecksum,
    /// Bytes follow the payload (or follow the model description inside the payload).
    TrailingBytes,
    /// The payload is not a valid postcard model description.
    Decode(postcard::Error),
    /// A dimension is zero, larger than [`MAX_DIM`](crate::MAX_DIM), or inconsistent between layers.
    BadDimension,
    /// A tensor's byte length does not match the dimensions declared for it.
    ShapeMismatch,
    /// A fixed-point parameter (fractional bits, requantization shift or multiplier) is out of range.
    BadQuantization,
    /// A field holds a combination this runtime does not support (e.g. a float tensor in an integer model).
    Unsupported,
    /// The payload declares more layers than [`MAX_LAYERS`](crate::MAX_LAYERS).
    TooManyLayers,
    /// The payload's pre-net declares more ops than [`MAX_OPS`](crate::model::MAX_OPS).
    TooManyOps,
    /// One of a [`Session`](crate::Session)'s buffers is smaller than the model needs.
    TooLarge {
        /// The buffer that is short: the `STATE` or the `SCRATCH` const parameter.
        buffer: Buffer,
        /// Words the model needs ([`Model::state_len`](crate::Model::state_len) or
        /// [`Model::scratch_len`](crate::Model::scratch_len)).
        needed: usize,
        /// Words the `Session` type provides (the value of that const parameter).
        capacity: usize,
    },
    /// An input frame or output buffer has the wrong length for this model.
    LengthMismatch {
        /// The length the model expects.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// The operation needs an integer model but the model is `f32`, or the other way round.
    PrecisionMismatch,
    /// A value passed in is NaN or infinite.
    NonFinite,
    /// Generation needs a model whose output width equals its input width.
    WidthMismatch {
        /// The model's input width.
        input: usize,
        /// The model's output width.
        output: usize,
    },
    /// A saved state does not belong to this model (wrong length or tag).
    BadState,
    /// The blob is valid but needs code this build of tinyrnn leaves out: the cargo feature
    /// named here (`"rnn"`, `"gru"`, `"lstm"`, `"lstm-peephole"`, `"dense-net"`, `"pool"`,
    /// `"window"`, `"int8"`, `"int16"` or `"f32"`) is disabled. Only [`Model::from_blob`](crate::Model::from_blob) and
    /// [`Model::from_desc`](crate::Model::from_desc) return it, after every format check.
    FeatureDisabled(&'static str),
    /// A signed envelope (module `signed`, feature `signed`) has a wrong magic,
    /// envelope version or flags, a length that does not fit, or bytes after its signature.
    BadEnvelope,
    /// The envelope's key id is not the id of any trusted public key.
    UnknownKey {
        /// The key id the envelope names (first 8 bytes of SHA-512 of the signer's key).
        key_id: [u8; 8],
    },
    /// A trusted public key is not a valid Ed25519 point encoding (or is a small-order point).
    BadKey,
    /// The Ed25519 signature does not match the envelope: forged or altered.
    BadSignature,
    /// The envelope is authentic but its model version is below the lowest one accepted.
    RolledBack {
        /// The envelope's model version.
        version: u32,
        /// The lowest version accepted.
        min: u32,
    },
    /// [`Config::window`](crate::Config::window) is `Some(0)`: a window holds at least one
    /// frame (`None` decides only at [`end_sequence`](crate::Classifier::end_sequence)).
    ZeroWindow,
    /// [`Config::hop`](crate::Config::hop) is 0, larger than the window, or set without a
    /// window: overlapping windows need `1 ≤ hop ≤ window`.
    BadHop,
    /// [`Config::smoothing`](crate::Config::smoothing) is on but the
    /// [`Classifier`](crate::Classifier)'s history length `K` is 0: smoothing needs `K ≥ 1`.
    SmoothingWithoutHistory,
    /// The model has a reverse or bidirectional layer (it cannot stream): run it with a
    /// window buffer (`Session::step_window` / `Classifier::push_window`, cargo feature
    /// `window`), not with [`Session::step`](crate::Session::step).
    NeedsWindow,
}

/// The buffer of a [`Session`](crate::Session) that [`Error::TooLarge`] found too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Buffer {
    /// The recurrent state, `STATE` `i32` words ([`Model::state_len`](crate::Model::state_len)).
    State,
    /// The scratch memory of a step, `SCRATCH` `u32` words
    /// ([`Model::scratch_len`](crate::Model::scratch_len)).
    Scratch,
    /// The caller-owned window buffer of a windowed model, `u32` words
    /// ([`Model::window_words`](crate::Model::window_words)): full (more frames than it
    /// holds) or smaller than one window.
    Window,
}

impl Buffer {
    /// The name of the const parameter sizing this buffer: `"STATE"`, `"SCRATCH"`, or
    /// `"WINDOW"` (the caller's window buffer, e.g. the `WINDOW_WORDS` `codegen` writes).
    pub const fn param(self) -> &'static str {
        match self {
            Buffer::State => "STATE",
            Buffer::Scratch => "SCRATCH",
            Buffer::Window => "WINDOW",
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        Error::Decode(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("the blob is truncated"),
            Error::BadMagic => f.write_str("the blob does not start with b\"TRNN\""),
            Error::UnsupportedVersion(v) => write!(f, "unsupported blob format version {v}"),
            Error::BadChecksum => f.write_str("the blob's CRC-32 does not match its payload"),
            Error::TrailingBytes => f.write_str("trailing bytes after the model description"),
            Error::Decode(e) => write!(f, "the model description does not decode: {e}"),
            Error::BadDimension => f.write_str("a dimension is zero, too large or inconsistent"),
            Error::ShapeMismatch => f.write_str("a tensor's length does not match its dimensions"),
            Error::BadQuantization => f.write_str("a fixed-point parameter is out of range"),
            Error::Unsupported => {
                f.write_str("the model uses a feature this runtime does not support")
            }
            Error::TooManyLayers => write!(
                f,
                "the model has more layers than MAX_LAYERS = {}",
                crate::MAX_LAYERS
            ),
            Error::TooManyOps => write!(
                f,
                "the model's pre-net has more ops than MAX_OPS = {}",
                crate::model::MAX_OPS
            ),
            Error::TooLarge {
                buffer,
                needed,
                capacity,
            } => {
                let p = buffer.param();
                if *buffer == Buffer::Window {
                    return write!(
                        f,
                        "the window buffer holds {capacity} words but the window needs \
                         {needed} (Model::window_words)"
                    );
                }
                write!(
                    f,
                    "the session's {p} buffer holds {capacity} words but the model needs \
                     {needed} (raise the {p} const parameter)"
                )
            }
            Error::LengthMismatch { expected, got } => {
                write!(f, "expected a slice of length {expected}, got {got}")
            }
            Error::PrecisionMismatch => {
                f.write_str("the operation does not fit the model's precision")
            }
            Error::NonFinite => f.write_str("an input value is NaN or infinite"),
            Error::WidthMismatch { input, output } => write!(
                f,
                "generation needs output width == input width (input {input}, output {output})"
            ),
            Error::BadState => f.write_str("the saved state does not belong to this model"),
            Error::FeatureDisabled(feat) => write!(
                f,
                "the model needs the cargo feature `{feat}` of tinyrnn, disabled in this build"
            ),
            Error::BadEnvelope => f.write_str(
                "the signed envelope is malformed (magic, version, flags, length or trailing bytes)",
            ),
            Error::UnknownKey { key_id } => {
                f.write_str("the blob is signed by key id ")?;
                for b in key_id {
                    write!(f, "{b:02x}")?;
                }
                f.write_str(", which is not a trusted key")
            }
            Error::BadKey => f.write_str("a trusted public key is not a valid Ed25519 key"),
            Error::BadSignature => {
                f.write_str("the signature does not match: the blob is forged or altered")
            }
            Error::RolledBack { version, min } => write!(
                f,
                "the blob's model version {version} is below the lowest accepted version {min}"
            ),
            Error::ZeroWindow => f.write_str(
                "Config::window is Some(0): a window holds at least one frame \
                 (None decides only at end_sequence)",
            ),
            Error::BadHop => f.write_str(
                "Config::hop is 0, larger than Config::window, or set without a window \
                 (overlapping windows need 1 <= hop <= window)",
            ),
            Error::SmoothingWithoutHistory => f.write_str(
                "Config::smoothing is on but the classifier's history length K is 0 \
                 (smoothing needs K >= 1)",
            ),
            Error::NeedsWindow => f.write_str(
                "the model has a reverse or bidirectional layer: it runs over a window buffer \
                 (Session::step_window), not frame by frame",
            ),
        }
    }
}

impl core::error::Error for Error {}

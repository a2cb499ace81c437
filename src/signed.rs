//! Signed blobs (cargo feature `signed`): an Ed25519 envelope around an ordinary blob.
//!
//! A [model blob](crate::model) carries a CRC-32, which catches corruption but not an
//! attacker. The envelope adds who made the blob (a key id), which model release it is (a
//! monotonic **model version**, for anti-rollback) and an Ed25519 signature (RFC 8032, pure
//! Ed25519, no pre-hash) over every byte before it, so the key id and the version are
//! authenticated together with the blob. The host tool writes envelopes (`tinyrnn sign`,
//! `tinyrnn quantize --sign-key`); firmware checks them with [`verify`] or
//! [`Model::from_signed_blob`](crate::Model::from_signed_blob) against the public keys it
//! trusts (compiled in, e.g. by `tinyrnn codegen --trusted-key`) and the lowest version it
//! still accepts (kept by the firmware, e.g. in flash). The threat model (what the signature
//! covers and what it does not, key rotation) is in `src/SIGNING.md`.
//!
//! # Envelope (fixed width, little-endian)
//!
//! | offset | bytes | field | value |
//! |---|---|---|---|
//! | 0 | 4 | magic | `b"TRNS"` ([`MAGIC`]) |
//! | 4 | 2 | envelope version | `u16`, currently [`ENVELOPE_VERSION`] |
//! | 6 | 2 | flags | `u16`, must be 0 |
//! | 8 | 8 | key id | first 8 bytes of SHA-512 of the signer's 32-byte public key ([`key_id`]) |
//! | 16 | 4 | model version | `u32`, chosen by the signer; anti-rollback counter |
//! | 20 | 4 | blob length `n` | `u32`, bytes of the inner blob |
//! | 24 | `n` | inner blob | an ordinary blob, starting with `b"TRNN"` ([`model`](crate::model)) |
//! | 24 + `n` | 64 | signature | Ed25519 signature of bytes `0 .. 24 + n` |
//!
//! The envelope is exactly `24 + n + 64` bytes: anything shorter is
//! [`Error::Truncated`], anything longer (trailing bytes) is [`Error::BadEnvelope`]. The
//! signed message is the whole envelope but the signature itself, so changing the key id,
//! the version, the length or any blob byte invalidates it. The inner blob keeps its own
//! header and CRC and is checked by [`Model::from_blob`](crate::Model::from_blob) after the
//! signature.
//!
//! # What [`verify`] checks, in order
//!
//! 1. the fixed header: length ≥ 24 ([`Error::Truncated`]), magic, envelope version, flags
//!    ([`Error::BadEnvelope`]); then that the envelope is exactly `24 + n + 64` bytes;
//! 2. that the key id is the id of one of the trusted keys ([`Error::UnknownKey`]);
//! 3. the Ed25519 signature with that key ([`Error::BadSignature`]; a trusted key that is
//!    not a valid curve point is [`Error::BadKey`]);
//! 4. only then the (now authenticated) model version against `min_version`
//!    ([`Error::RolledBack`]), so a forged envelope is always reported as a bad signature.
//!
//! [`StreamVerifier`] runs the same checks on a blob fed in chunks (e.g. read from a flash
//! slot), given the header and the signature first.
//!
//! Verification borrows the envelope, allocates nothing, uses a fixed amount of stack
//! (independent of the blob length) and has no panic path of its own (the host tests flip
//! every bit and cut every length; the link-time no-panic proof still stops at bounds checks
//! inside the verifier crate, see `tests/no_panic/README.md`). The verifier is
//! `ed25519-compact` with its `opt_size` feature: pure Rust, no dependencies, its only
//! `unsafe` a volatile wipe of secrets; `src/SIGNING.md` compares it with `ed25519-dalek` and
//! `salty` on code size and instructions per verification on Cortex-M0 and Cortex-M4F.

use crate::error::{Error, Result};

/// The four bytes every envelope starts with.
pub const MAGIC: [u8; 4] = *b"TRNS";
/// The envelope format version this build reads and writes.
pub const ENVELOPE_VERSION: u16 = 1;
/// Length of the fixed envelope header (before the inner blob).
pub const HEADER_LEN: usize = 24;
/// Length of the Ed25519 signature at the end.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes the envelope adds to a blob.
pub const OVERHEAD: usize = HEADER_LEN + SIGNATURE_LEN;

/// An Ed25519 public key (RFC 8032 encoding, 32 bytes).
pub type PublicKey = [u8; 32];
/// A key id: the first 8 bytes of SHA-512 of the public key.
pub type KeyId = [u8; 8];

/// The key id of `public`: the first 8 bytes of SHA-512(`public`).
///
/// A key id only selects which trusted key to try; the signature is always checked with the
/// full key, so an id collision can only cause a [`Error::BadSignature`], never an accept.
pub fn key_id(public: &PublicKey) -> KeyId {
    let h = ed25519_compact::sha512::Hash::hash(public);
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[..8]);
    id
}

/// The fixed header of an envelope for a blob of `blob_len` bytes (the host tool writes it,
/// the blob, then the signature of both: writer and reader share this layout).
///
/// Fails with [`Error::BadEnvelope`] if `blob_len` or the whole envelope does not fit a `u32`.
pub fn header(key: KeyId, version: u32, blob_len: usize) -> Result<[u8; HEADER_LEN]> {
    let n = u32::try_from(blob_len).map_err(|_| Error::BadEnvelope)?;
    n.checked_add(OVERHEAD as u32).ok_or(Error::BadEnvelope)?;
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&ENVELOPE_VERSION.to_le_bytes());
    // 6..8: flags, 0
    h[8..16].copy_from_slice(&key);
    h[16..20].copy_from_slice(&version.to_le_bytes());
    h[20..24].copy_from_slice(&n.to_le_bytes());
    Ok(h)
}

/// An envelope split into its fields, not yet verified ([`parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Id of the key that claims to have signed it.
    pub key_id: KeyId,
    /// The model version it claims.
    pub version: u32,
    /// The inner blob.
    pub blob: &'a [u8],
    /// The signed bytes: the header and the inner blob.
    pub signed: &'a [u8],
    /// The signature.
    pub signature: &'a [u8; SIGNATURE_LEN],
}

/// A verified envelope ([`verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Verified<'a> {
    /// The inner blob, authenticated (its own header and CRC are not checked yet).
    pub blob: &'a [u8],
    /// The authenticated model version (≥ the `min_version` given).
    pub version: u32,
    /// Index in the trusted-key slice of the key that signed it.
    pub key_index: usize,
}

/// Whether `bytes` starts like an envelope (the magic `b"TRNS"`), as opposed to a bare blob.
pub fn is_envelope(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&MAGIC[..])
}

fn le_u32(b: &[u8], at: usize) -> Result<u32> {
    let s = b.get(at..at + 4).ok_or(Error::Truncated)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Ok(u32::from_le_bytes(a))
}

/// Checks an envelope's fixed header (its first [`HEADER_LEN`] bytes) before the rest has
/// arrived: the layout, a key id among `trusted`, and a declared blob length that makes the
/// envelope exactly `total_len` bytes. Returns the model version the header declares, **not
/// authenticated**: compare it with the version running to refuse a rolled-back update early,
/// but activate only what [`verify`] (the signature over every byte) accepts.
///
/// Firmware that stores an update as it arrives calls this on the first bytes, so that an
/// envelope that can never verify (unknown key, wrong length, an older version) is refused
/// before anything is erased.
///
/// # Errors
/// [`Error::Truncated`] (fewer than [`HEADER_LEN`] bytes in `head`, or `total_len` shorter
/// than the header declares), [`Error::BadEnvelope`] (layout, or `total_len` longer),
/// [`Error::UnknownKey`].
pub fn check_header(head: &[u8], trusted: &[PublicKey], total_len: usize) -> Result<u32> {
    let head = head.get(..HEADER_LEN).ok_or(Error::Truncated)?;
    if head[0..4] != MAGIC || head[4..6] != ENVELOPE_VERSION.to_le_bytes() || head[6..8] != [0, 0] {
        return Err(Error::BadEnvelope);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[8..16]);
    let version = le_u32(head, 16)?;
    let n = usize::try_from(le_u32(head, 20)?).map_err(|_| Error::BadEnvelope)?;
    let total = HEADER_LEN
        .checked_add(n)
        .and_then(|e| e.checked_add(SIGNATURE_LEN))
        .ok_or(Error::BadEnvelope)?;
    if total_len < total {
        return Err(Error::Truncated);
    }
    if total_len > total {
        return Err(Error::BadEnvelope);
    }
    if !trusted.iter().any(|k| key_id(k) == id) {
        return Err(Error::UnknownKey { key_id: id });
    }
    Ok(version)
}

/// Splits an envelope into its fields after checking its layout (step 1 of [`verify`]),
/// without any cryptography: for tools that display an envelope. Nothing it returns is
/// authenticated.
pub fn parse(bytes: &[u8]) -> Result<Envelope<'_>> {
    let head = bytes.get(..HEADER_LEN).ok_or(Error::Truncated)?;
    if head[0..4] != MAGIC {
        return Err(Error::BadEnvelope);
    }
    if head[4..6] != ENVELOPE_VERSION.to_le_bytes() || head[6..8] != [0, 0] {
        return Err(Error::BadEnvelope);
    }
    let mut key_id = [0u8; 8];
    key_id.copy_from_slice(&head[8..16]);
    let version = le_u32(head, 16)?;
    let n = usize::try_from(le_u32(head, 20)?).map_err(|_| Error::BadEnvelope)?;
    let end = HEADER_LEN.checked_add(n).ok_or(Error::BadEnvelope)?;
    let total = end.checked_add(SIGNATURE_LEN).ok_or(Error::BadEnvelope)?;
    if bytes.len() < total {
        return Err(Error::Truncated);
    }
    if bytes.len() > total {
        return Err(Error::BadEnvelope);
    }
    let signed = bytes.get(..end).ok_or(Error::Truncated)?;
    let blob = bytes.get(HEADER_LEN..end).ok_or(Error::Truncated)?;
    let signature = bytes
        .get(end..total)
        .and_then(|s| <&[u8; SIGNATURE_LEN]>::try_from(s).ok())
        .ok_or(Error::Truncated)?;
    Ok(Envelope {
        key_id,
        version,
        blob,
        signed,
        signature,
    })
}

/// Checks an Ed25519 signature (RFC 8032 Ed25519, cofactored check, non-canonical `S`
/// rejected) of `message` by `public`: the primitive under [`verify`], independent of the
/// envelope.
///
/// [`Error::BadKey`] if `public` is not a valid point encoding (or has small order),
/// [`Error::BadSignature`] if the signature does not match.
pub fn verify_detached(
    public: &PublicKey,
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<()> {
    let pk = ed25519_compact::PublicKey::new(*public);
    let sig = ed25519_compact::Signature::new(*signature);
    match pk.verify(message, &sig) {
        Ok(()) => Ok(()),
        Err(ed25519_compact::Error::WeakPublicKey | ed25519_compact::Error::InvalidPublicKey) => {
            Err(Error::BadKey)
        }
        Err(_) => Err(Error::BadSignature),
    }
}

/// Verifies an envelope against the `trusted` public keys and the lowest model version the
/// firmware accepts; returns the authenticated inner blob and version.
///
/// The checks and their order are listed in the [module docs](self). Constant memory, no
/// allocation, no panic. A caller that keeps the highest version it activated passes it (or
/// it + 1, to refuse re-installing the same release) as `min_version`.
pub fn verify<'a>(
    envelope: &'a [u8],
    trusted: &[PublicKey],
    min_version: u32,
) -> Result<Verified<'a>> {
    let env = parse(envelope)?;
    let key_index = trusted
        .iter()
        .position(|k| key_id(k) == env.key_id)
        .ok_or(Error::UnknownKey { key_id: env.key_id })?;
    let key = trusted
        .get(key_index)
        .ok_or(Error::UnknownKey { key_id: env.key_id })?;
    verify_detached(key, env.signed, env.signature)?;
    if env.version < min_version {
        return Err(Error::RolledBack {
            version: env.version,
            min: min_version,
        });
    }
    Ok(Verified {
        blob: env.blob,
        version: env.version,
        key_index,
    })
}

impl<'a> crate::Model<'a> {
    /// Verifies a signed envelope ([`signed::verify`](verify): layout, trusted key,
    /// signature, `version ≥ min_version`) and then loads its inner blob with
    /// [`Model::from_blob`](crate::Model::from_blob). Feature `signed`.
    ///
    /// The model borrows `envelope`. Use [`signed::verify`](verify) directly to also get the
    /// authenticated version (to store it as the new minimum).
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BadEnvelope`], [`Error::UnknownKey`], [`Error::BadKey`],
    /// [`Error::BadSignature`], [`Error::RolledBack`], then every error of
    /// [`Model::from_blob`](crate::Model::from_blob); never a panic.
    pub fn from_signed_blob(
        envelope: &'a [u8],
        trusted: &[PublicKey],
        min_version: u32,
    ) -> Result<Self> {
        let v = verify(envelope, trusted, min_version)?;
        Self::from_blob(v.blob)
    }
}

/// Verifies an envelope whose blob is read in chunks (e.g. from a flash slot, without a RAM
/// copy): the same checks and errors as [`verify`], in constant memory.
///
/// Ed25519 hashes the signature's `R` before the message, so the signature is needed first:
/// read the fixed header (bytes `0..24`) and the signature (the last 64 bytes, at
/// `24 + n`), call [`new`](Self::new), feed the `n` blob bytes in order with
/// [`absorb`](Self::absorb), then [`finish`](Self::finish).
pub struct StreamVerifier {
    state: ed25519_compact::VerifyingState,
    version: u32,
    min_version: u32,
    key_index: usize,
    remaining: usize,
}

impl StreamVerifier {
    /// Checks the header (magic, envelope version, flags), finds the trusted key and starts
    /// the signature check. Returns the verifier and the blob length `n` the header
    /// declares (the caller reads exactly that many bytes).
    ///
    /// # Errors
    /// [`Error::BadEnvelope`], [`Error::UnknownKey`], [`Error::BadKey`],
    /// [`Error::BadSignature`] (a signature that is malformed before any hashing).
    pub fn new(
        header: &[u8; HEADER_LEN],
        signature: &[u8; SIGNATURE_LEN],
        trusted: &[PublicKey],
        min_version: u32,
    ) -> Result<(Self, usize)> {
        if header[0..4] != MAGIC
            || header[4..6] != ENVELOPE_VERSION.to_le_bytes()
            || header[6..8] != [0, 0]
        {
            return Err(Error::BadEnvelope);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&header[8..16]);
        let version = le_u32(header, 16)?;
        let n = usize::try_from(le_u32(header, 20)?).map_err(|_| Error::BadEnvelope)?;
        HEADER_LEN
            .checked_add(n)
            .and_then(|e| e.checked_add(SIGNATURE_LEN))
            .ok_or(Error::BadEnvelope)?;
        let key_index = trusted
            .iter()
            .position(|k| key_id(k) == id)
            .ok_or(Error::UnknownKey { key_id: id })?;
        let key = trusted
            .get(key_index)
            .ok_or(Error::UnknownKey { key_id: id })?;
        let pk = ed25519_compact::PublicKey::new(*key);
        let sig = ed25519_compact::Signature::new(*signature);
        let mut state = pk.verify_incremental(&sig).map_err(|e| match e {
            ed25519_compact::Error::WeakPublicKey | ed25519_compact::Error::InvalidPublicKey => {
                Error::BadKey
            }
            _ => Error::BadSignature,
        })?;
        state.absorb(header);
        Ok((
            StreamVerifier {
                state,
                version,
                min_version,
                key_index,
                remaining: n,
            },
            n,
        ))
    }

    /// Feeds the next blob bytes.
    ///
    /// # Errors
    /// [`Error::BadEnvelope`] if more bytes arrive than the header declared (nothing of
    /// `chunk` is absorbed then).
    pub fn absorb(&mut self, chunk: &[u8]) -> Result<()> {
        self.remaining = self
            .remaining
            .checked_sub(chunk.len())
            .ok_or(Error::BadEnvelope)?;
        self.state.absorb(chunk);
        Ok(())
    }

    /// Completes the check: every declared byte absorbed, signature valid, version ≥ the
    /// minimum. Returns `(version, key_index)`.
    ///
    /// # Errors
    /// [`Error::Truncated`] if fewer bytes than declared were absorbed,
    /// [`Error::BadSignature`], [`Error::RolledBack`].
    pub fn finish(self) -> Result<(u32, usize)> {
        if self.remaining != 0 {
            return Err(Error::Truncated);
        }
        self.state.verify().map_err(|_| Error::BadSignature)?;
        if self.version < self.min_version {
            return Err(Error::RolledBack {
                version: self.version,
                min: self.min_version,
            });
        }
        Ok((self.version, self.key_index))
    }
}

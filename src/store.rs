//! Power-fail-safe model storage on NOR flash (feature `store`).
//!
//! A [`ModelStore`] keeps two model slots (A and B) and a small commit journal in a NOR
//! flash reached through the [`embedded_storage::nor_flash`] traits, which every embedded
//! HAL implements (nRF NVMC, RP2040, STM32, ESP32 …). A new blob is written in chunks as
//! it arrives ([`ModelStore::begin_update`], [`Update::write_chunk`]) into the slot that
//! is *not* running, read back and verified ([`Update::finish`]: length, CRC, the
//! [`Verifier`] — model format and the firmware's buffers by default, a signature when
//! the firmware plugs one in — and anti-rollback) and only then activated by appending
//! one commit record to the journal. At boot [`ModelStore::new`] scans the journal: the
//! newest committed slot whose bytes still match their record wins.
//!
//! Nothing is allocated and no whole blob is buffered while receiving: [`Update`] holds
//! one flash write unit (at most [`MAX_WRITE_SIZE`] bytes) and a running CRC (about
//! 300 bytes in all), and the commit writes from a [`MAX_WRITE_SIZE`]-byte stack buffer.
//! Opening the store reads the journal and computes the CRC of the active slot once. To load the
//! active model, firmware either reads it into RAM ([`ModelStore::read_active`]) or, on
//! an MCU whose flash is memory-mapped, borrows it in place from the address
//! [`Active::offset`] (plus the flash's base address) for [`Active::len`] bytes and hands
//! that slice to [`Model::from_blob`].
//!
//! [`StateStore`] keeps a [`Session`](crate::Session)'s state across deep sleep in its own
//! wear-levelled ring of erase units, bound to the model it came from ([`state`] docs).
//!
//! # Flash layout
//!
//! A [`Layout`] names three non-overlapping regions, each aligned to the flash's erase
//! unit `E` (`NorFlash::ERASE_SIZE`); [`Layout::contiguous`] puts them one after the other:
//!
//! | region | offset | bytes | holds |
//! |---|---|---|---|
//! | slot A | `slot_a` | `slot_size` (multiple of `E`) | a blob, from its first byte; the rest is unspecified |
//! | slot B | `slot_b` | `slot_size` | the same |
//! | journal | `journal` | `journal_size` (≥ 2·`E`, multiple of `E`) | commit records, a ring of erase units |
//!
//! The journal is a ring of `journal_size / E` erase units, each an array of record
//! positions of `R = max(32, WRITE_SIZE)` bytes ([`record_len`]). A position is *free*
//! when all its bytes read `0xFF`. One commit record (32 bytes, little-endian; the rest
//! of a position, when `WRITE_SIZE > 32`, stays `0xFF`):
//!
//! | offset | bytes | field | value |
//! |---|---|---|---|
//! | 0 | 4 | magic | `b"TRSC"` ([`RECORD_MAGIC`]) |
//! | 4 | 4 | sequence | `u32`, one more than the newest record before it |
//! | 8 | 1 | slot | `0` = A, `1` = B |
//! | 9 | 3 | reserved | `0` |
//! | 12 | 4 | length | `u32`, bytes of the blob in the slot |
//! | 16 | 4 | blob CRC | `u32`, CRC-32/ISO-HDLC of those `length` bytes |
//! | 20 | 4 | model version | `u32`, from the [`Verifier`] |
//! | 24 | 4 | record CRC | `u32`, CRC-32/ISO-HDLC of bytes 0..24 |
//! | 28 | 4 | zero count | `u32`, the number of `0` bits in bytes 0..28 (a Berger code) |
//!
//! A record is *valid* when its magic, reserved bytes, slot, record CRC and zero count
//! are all right.
//!
//! # The commit protocol
//!
//! An update of slot `T` (the slot that is not active, A on a blank flash):
//!
//! 1. [`begin_update`](ModelStore::begin_update) checks the length against the slot size
//!    and erases nothing yet.
//! 2. [`write_chunk`](Update::write_chunk) erases `T` one erase unit at a time, just ahead
//!    of the data, and programs the bytes as they come (a CRC-32 runs along).
//! 3. [`finish`](Update::finish) reads the whole slot back and compares it with the CRC of
//!    what was received, then runs the [`Verifier`] on those bytes and checks the
//!    returned version against the highest version in the journal (anti-rollback).
//! 4. Only then does it append one record `(seq+1, T, length, CRC, version)` at the next
//!    free position of the journal's current erase unit; when that unit is full it
//!    first erases the next unit of the ring and writes there. The record is read back.
//!
//! At boot [`ModelStore::new`] reads every position of the journal, keeps the valid
//! record with the highest sequence number for each slot, and tries the two slots newest
//! first: the first whose `length` bytes have the recorded CRC is active. The anti-rollback
//! floor is the highest version of any valid record.
//!
//! # Why a power cut cannot break it
//!
//! * **Steps 1–3 never touch the active slot or its record.** They erase and program
//!   only `T`, which is not active. Power lost there leaves the journal as it was, so the
//!   next boot picks the same record and the same, untouched bytes.
//! * **The record is the one atomic step.** A NOR program can only clear bits (1 → 0) and
//!   an erase can only set them (0 → 1). An interrupted program of a record leaves some
//!   of its 0 bits still at 1; an interrupted erase (or charge loss over the years) turns
//!   some 0 bits into 1. Either way every changed bit went 0 → 1, so the body (bytes
//!   0..28) has *fewer* zeros than when it was written, while the zero-count field, whose
//!   own bits can also only have gone 0 → 1, holds a value *at least* as large as the one
//!   written. They agree only if no bit changed: an interrupted write can never produce
//!   a valid record, with certainty, not just with the 2⁻³² odds of the CRC (which
//!   covers the other direction, bit flips 1 → 0, and random corruption). So after a cut
//!   during step 4 either the new record is complete and valid (the new model is active)
//!   or it is not valid and the previous record still decides (the old model is).
//! * **The journal erase only loses records older than the newest.** The unit erased in
//!   step 4 is the next one of the ring, never the one holding the newest record, and a
//!   cut during that erase leaves the newest record where it was.
//! * **The record is written only after the slot was read back and verified**, so a
//!   valid record never points at bytes that were not completely written.
//! * **Positions are written in order and never twice.** The writer only programs a
//!   position that reads all `0xFF`, skipping any left half-written by an earlier cut.
//!
//! The tests in `tests/store_faults.rs` simulate a NOR flash with these semantics, cut
//! the power at every erase and page program of an update (leaving the interrupted
//! operation's bits half-changed), reboot, and check that the store comes up with exactly
//! the old or exactly the new blob.
//!
//! The anti-rollback floor cannot be lowered by a cut either: versions only grow, so the
//! newest record carries the highest version, and it is never erased. (If that record
//! itself rots, the floor falls back to the previous record's version.)
//!
//! What it does not cover: two faults at once. If the newest slot rots *and* the
//! journal's ring must erase the unit holding the fallback slot's record in the same
//! update, a cut in between leaves no valid model. And a cell left half-programmed may,
//! on real silicon, read differently on different days; the zero count still rejects
//! every reading that differs from the written record.
//!
//! # Example
//!
//! ```
//! use tinyrnn::store::{Layout, ModelCheck, ModelStore};
//! use tinyrnn::{Model, Session};
//! # use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
//! # struct Ram(Vec<u8>);
//! # impl ErrorType for Ram { type Error = NorFlashErrorKind; }
//! # impl ReadNorFlash for Ram {
//! #     const READ_SIZE: usize = 1;
//! #     fn read(&mut self, o: u32, b: &mut [u8]) -> Result<(), Self::Error> {
//! #         b.copy_from_slice(&self.0[o as usize..o as usize + b.len()]); Ok(())
//! #     }
//! #     fn capacity(&self) -> usize { self.0.len() }
//! # }
//! # impl NorFlash for Ram {
//! #     const WRITE_SIZE: usize = 4;
//! #     const ERASE_SIZE: usize = 4096;
//! #     fn erase(&mut self, f: u32, t: u32) -> Result<(), Self::Error> {
//! #         self.0[f as usize..t as usize].fill(0xFF); Ok(())
//! #     }
//! #     fn write(&mut self, o: u32, b: &[u8]) -> Result<(), Self::Error> {
//! #         for (d, s) in self.0[o as usize..].iter_mut().zip(b) { *d &= s; } Ok(())
//! #     }
//! # }
//! # let flash = Ram(vec![0xFF; 64 * 1024]);
//! # let blob = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/blobs/vowels_lstm_int8.trnn")).unwrap();
//! # let uart = blob.chunks(100);
//! // The firmware's buffers: a Session<'_, 128, 64> and a RAM copy of the model (on
//! // memory-mapped flash, `finish_mapped` and a slice at `Active::offset` instead).
//! let mut ram = [0u8; 16 * 1024];
//! // Two 24 KiB slots and an 8 KiB journal from offset 0 of the flash.
//! let mut store = ModelStore::new(flash, Layout::contiguous(0, 24 * 1024, 8 * 1024))?;
//! assert!(store.active().is_none());
//!
//! // An update arrives in chunks: nothing runs on it before `finish` verified it.
//! let mut up = store.begin_update(blob.len())?;
//! for chunk in uart {
//!     up.write_chunk(chunk)?;
//! }
//! let active = up.finish(&ModelCheck::for_session::<128, 64>(1), &mut ram)?;
//! assert_eq!(active.version, 1);
//!
//! // At the next boot: the active model, read into RAM and run.
//! let blob = store.read_active(&mut ram)?;
//! let model = Model::from_blob(blob)?;
//! let session = Session::<128, 64>::new(&model)?;
//! # let _ = session;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;

use embedded_storage::nor_flash::{NorFlash, NorFlashError};

use crate::error::{Buffer, Error};
use crate::Model;

pub mod state;
pub use state::{StateRegion, StateStore, STATE_MAGIC};

static CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The four bytes every commit record starts with.
pub const RECORD_MAGIC: [u8; 4] = *b"TRSC";
/// Bytes of a commit record's content (a position may be longer, see [`record_len`]).
pub const RECORD_LEN: usize = 32;
/// Largest `NorFlash::WRITE_SIZE` the store supports (RP2040-class page writes).
pub const MAX_WRITE_SIZE: usize = 256;
/// Bytes read from flash at a time when checking a slot.
const READ_CHUNK: usize = 64;

/// Bytes one journal position takes on a flash with write unit `write_size`:
/// `max(RECORD_LEN, write_size)`.
pub const fn record_len(write_size: usize) -> usize {
    if write_size > RECORD_LEN {
        write_size
    } else {
        RECORD_LEN
    }
}

/// One of the two model slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Slot {
    /// Slot A (`Layout::slot_a`).
    A,
    /// Slot B (`Layout::slot_b`).
    B,
}

impl Slot {
    /// The other slot.
    pub const fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    const fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }
}

/// Where the two slots and the journal live in the flash (byte offsets as the
/// `NorFlash` traits take them). See the [module docs](self) for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Layout {
    /// Offset of slot A.
    pub slot_a: u32,
    /// Offset of slot B.
    pub slot_b: u32,
    /// Bytes of each slot: the largest blob the store can hold.
    pub slot_size: u32,
    /// Offset of the commit journal.
    pub journal: u32,
    /// Bytes of the journal: at least two erase units.
    pub journal_size: u32,
}

impl Layout {
    /// Slot A at `base`, slot B right after it, then the journal.
    pub const fn contiguous(base: u32, slot_size: u32, journal_size: u32) -> Self {
        Layout {
            slot_a: base,
            slot_b: base.saturating_add(slot_size),
            slot_size,
            journal: base.saturating_add(slot_size).saturating_add(slot_size),
            journal_size,
        }
    }

    /// Offset of `slot`.
    pub const fn slot_offset(&self, slot: Slot) -> u32 {
        match slot {
            Slot::A => self.slot_a,
            Slot::B => self.slot_b,
        }
    }

    /// Checks the layout against a flash's geometry; `Err` names the rule broken.
    fn check(
        &self,
        write: usize,
        read: usize,
        erase: usize,
        capacity: usize,
    ) -> Result<(), &'static str> {
        if !write.is_power_of_two() || write > MAX_WRITE_SIZE {
            return Err("the flash's write size is not a power of two up to 256");
        }
        if !read.is_power_of_two() || read > RECORD_LEN {
            return Err("the flash's read size is not a power of two up to 32");
        }
        let rl = record_len(write);
        if erase == 0 || !erase.is_multiple_of(rl) {
            return Err("the flash's erase size is not a multiple of the record length");
        }
        let e = erase as u64;
        let regions = [
            (self.slot_a as u64, self.slot_size as u64),
            (self.slot_b as u64, self.slot_size as u64),
            (self.journal as u64, self.journal_size as u64),
        ];
        if self.slot_size == 0 || !(self.slot_size as u64).is_multiple_of(e) {
            return Err("the slot size is not a non-zero multiple of the erase size");
        }
        if (self.journal_size as u64) < 2 * e || !(self.journal_size as u64).is_multiple_of(e) {
            return Err("the journal is not a multiple of the erase size of at least two units");
        }
        for (k, &(off, len)) in regions.iter().enumerate() {
            if !off.is_multiple_of(e) {
                return Err("a region does not start on an erase unit");
            }
            if off + len > capacity as u64 {
                return Err("a region ends beyond the flash's capacity");
            }
            for &(o2, l2) in &regions[k + 1..] {
                if off < o2 + l2 && o2 < off + len {
                    return Err("two regions overlap");
                }
            }
        }
        Ok(())
    }
}

/// Decides whether a received blob may become the active model, and its version.
///
/// [`Update::finish`] calls it on the complete blob as read back from flash, before
/// anything is activated. It returns the blob's model version, which must be higher than
/// every version committed before (anti-rollback); any `Err` rejects the blob and leaves
/// the running model active. [`ModelCheck`] is the default; with the feature `signed`,
/// `SignedCheck` checks an Ed25519 envelope first and returns its authenticated version.
/// Closures `Fn(&[u8]) -> Result<u32, Error>` are verifiers too.
pub trait Verifier {
    /// Checks `blob` and returns its model version.
    ///
    /// # Errors
    /// Whatever makes the blob unacceptable.
    fn verify(&self, blob: &[u8]) -> Result<u32, Error>;
}

impl<T: Fn(&[u8]) -> Result<u32, Error>> Verifier for T {
    fn verify(&self, blob: &[u8]) -> Result<u32, Error> {
        self(blob)
    }
}

/// The default [`Verifier`]: the blob loads with [`Model::from_blob`] (header, CRC,
/// shapes, quantization, cargo features) and fits the firmware's compile-time session
/// buffers. The version is the one the firmware was told (for example by its update
/// protocol); it is not authenticated, a signature verifier reads it from signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelCheck {
    /// Version returned for an accepted blob.
    pub version: u32,
    /// State words the firmware's `Session` provides.
    pub state_words: usize,
    /// Scratch words the firmware's `Session` provides.
    pub scratch_words: usize,
}

impl ModelCheck {
    /// Checks against a `Session<'_, STATE, SCRATCH>`.
    pub const fn for_session<const STATE: usize, const SCRATCH: usize>(version: u32) -> Self {
        ModelCheck {
            version,
            state_words: STATE,
            scratch_words: SCRATCH,
        }
    }
}

impl Verifier for ModelCheck {
    fn verify(&self, blob: &[u8]) -> Result<u32, Error> {
        let m = Model::from_blob(blob)?;
        for (buffer, needed, capacity) in [
            (Buffer::State, m.state_len(), self.state_words),
            (Buffer::Scratch, m.scratch_len(), self.scratch_words),
        ] {
            if needed > capacity {
                return Err(Error::TooLarge {
                    buffer,
                    needed,
                    capacity,
                });
            }
        }
        Ok(self.version)
    }
}

/// The [`Verifier`] for signed blobs (features `store` **and** `signed`): the slot holds a
/// whole [envelope](crate::signed); it is accepted only if [`signed::verify`] accepts it
/// against `trusted` (layout, known key id, Ed25519 signature) and its inner blob passes
/// [`ModelCheck`] (loads with [`Model::from_blob`], fits the session buffers). The version
/// it returns, which the store checks against its anti-rollback floor, is the
/// **authenticated** model version from the envelope, never one the update protocol claims.
///
/// The active slot then holds the envelope: the firmware runs
/// [`signed::parse`]`(bytes)?.blob` (the signature was checked when the blob was
/// committed, and the store re-checks its CRC at boot and in [`ModelStore::read_active`];
/// or [`Model::from_signed_blob`] to verify again at every boot).
///
/// ```
/// use tinyrnn::store::SignedCheck;
/// # static TRUSTED_KEYS: [[u8; 32]; 1] = [[0; 32]];
/// // `TRUSTED_KEYS` as written by `tinyrnn codegen --trusted-key release.key.pub`.
/// let check = SignedCheck::for_session::<128, 64>(&TRUSTED_KEYS);
/// // up.finish(&check, &mut ram)?;
/// # let _ = check;
/// ```
///
/// [`signed::verify`]: crate::signed::verify
/// [`signed::parse`]: crate::signed::parse
/// [`Model::from_signed_blob`]: crate::Model::from_signed_blob
#[cfg(feature = "signed")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SignedCheck<'k> {
    /// The public keys whose signatures are accepted.
    pub trusted: &'k [crate::signed::PublicKey],
    /// State words the firmware's `Session` provides.
    pub state_words: usize,
    /// Scratch words the firmware's `Session` provides.
    pub scratch_words: usize,
}

#[cfg(feature = "signed")]
impl<'k> SignedCheck<'k> {
    /// Checks signatures against `trusted` and capacity against a
    /// `Session<'_, STATE, SCRATCH>`.
    pub const fn for_session<const STATE: usize, const SCRATCH: usize>(
        trusted: &'k [crate::signed::PublicKey],
    ) -> Self {
        SignedCheck {
            trusted,
            state_words: STATE,
            scratch_words: SCRATCH,
        }
    }
}

#[cfg(feature = "signed")]
impl Verifier for SignedCheck<'_> {
    /// [`signed::verify`](crate::signed::verify) with `min_version` 0 (the store's floor
    /// does the anti-rollback, as [`StoreError::RolledBack`]), then [`ModelCheck`] on the
    /// inner blob.
    ///
    /// # Errors
    /// Those of [`signed::verify`](crate::signed::verify) (`Truncated`, `BadEnvelope`,
    /// `UnknownKey`, `BadKey`, `BadSignature`), then those of [`ModelCheck`].
    fn verify(&self, blob: &[u8]) -> Result<u32, Error> {
        let v = crate::signed::verify(blob, self.trusted, 0)?;
        ModelCheck {
            version: v.version,
            state_words: self.state_words,
            scratch_words: self.scratch_words,
        }
        .verify(v.blob)
    }
}

/// Everything that can go wrong in the store. `E` is the flash driver's error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError<E> {
    /// The flash driver failed (or the power went).
    Flash(E),
    /// The [`Layout`] does not fit the flash; the text names the rule.
    BadLayout(&'static str),
    /// The blob is larger than a slot (refused before anything is erased).
    TooLarge {
        /// Bytes announced.
        len: usize,
        /// Bytes of a slot.
        capacity: usize,
    },
    /// [`Update::write_chunk`] got more bytes than [`ModelStore::begin_update`] announced.
    Overflow {
        /// Bytes announced.
        expected: usize,
    },
    /// [`Update::finish`] before all announced bytes arrived.
    Incomplete {
        /// Bytes announced.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// An earlier call of this [`Update`] failed; start again with `begin_update`.
    Aborted,
    /// The RAM buffer is shorter than the blob.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The flash does not read back the bytes that were written to it.
    ReadBack,
    /// The active slot no longer holds the bytes its commit record describes.
    Corrupt,
    /// There is no committed model.
    NoModel,
    /// [`StateStore`] holds no intact state saved for this model.
    NoState,
    /// The [`Verifier`] refused the blob.
    Rejected(Error),
    /// The blob's version is not higher than the highest committed one.
    RolledBack {
        /// Version of the refused blob.
        version: u32,
        /// Highest version committed so far.
        current: u32,
    },
    /// The journal's sequence number reached `u32::MAX`.
    SequenceExhausted,
}

impl<E: NorFlashError> fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Flash(e) => write!(f, "the flash operation failed: {}", e.kind()),
            StoreError::BadLayout(why) => write!(f, "bad flash layout: {why}"),
            StoreError::TooLarge { len, capacity } => write!(
                f,
                "the blob of {len} bytes does not fit a slot of {capacity} bytes"
            ),
            StoreError::Overflow { expected } => {
                write!(f, "more bytes arrived than the {expected} announced")
            }
            StoreError::Incomplete { expected, got } => write!(
                f,
                "the update ended after {got} of the {expected} announced bytes"
            ),
            StoreError::Aborted => {
                f.write_str("the update failed earlier and must be started again")
            }
            StoreError::BufferTooSmall { needed, got } => {
                write!(f, "the buffer holds {got} bytes but the blob has {needed}")
            }
            StoreError::ReadBack => {
                f.write_str("the flash does not read back the bytes written to it")
            }
            StoreError::Corrupt => {
                f.write_str("the active slot no longer matches its commit record")
            }
            StoreError::NoModel => f.write_str("no model has been committed"),
            StoreError::NoState => f.write_str("no saved state belongs to this model"),
            StoreError::Rejected(e) => write!(f, "the blob was refused: {e}"),
            StoreError::RolledBack { version, current } => write!(
                f,
                "model version {version} is not newer than the committed version {current}"
            ),
            StoreError::SequenceExhausted => {
                f.write_str("the commit journal's sequence number is exhausted")
            }
        }
    }
}

impl<E: NorFlashError> core::error::Error for StoreError<E> {}

/// The same text as `Debug` (`Rejected(BadSignature)`, `RolledBack { version: 1, current:
/// 2 }`, …), with the flash driver's error by its [`NorFlashErrorKind`] (drivers' error types
/// need not implement `defmt::Format`).
///
/// [`NorFlashErrorKind`]: embedded_storage::nor_flash::NorFlashErrorKind
#[cfg(feature = "defmt")]
impl<E: NorFlashError> defmt::Format for StoreError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        use embedded_storage::nor_flash::NorFlashErrorKind as K;
        match self {
            StoreError::Flash(e) => {
                let kind = match e.kind() {
                    K::NotAligned => "NotAligned",
                    K::OutOfBounds => "OutOfBounds",
                    _ => "Other",
                };
                defmt::write!(f, "Flash({=str})", kind)
            }
            StoreError::BadLayout(why) => defmt::write!(f, "BadLayout({=str})", why),
            StoreError::TooLarge { len, capacity } => defmt::write!(
                f,
                "TooLarge {{ len: {=usize}, capacity: {=usize} }}",
                len,
                capacity
            ),
            StoreError::Overflow { expected } => {
                defmt::write!(f, "Overflow {{ expected: {=usize} }}", expected)
            }
            StoreError::Incomplete { expected, got } => defmt::write!(
                f,
                "Incomplete {{ expected: {=usize}, got: {=usize} }}",
                expected,
                got
            ),
            StoreError::Aborted => defmt::write!(f, "Aborted"),
            StoreError::BufferTooSmall { needed, got } => defmt::write!(
                f,
                "BufferTooSmall {{ needed: {=usize}, got: {=usize} }}",
                needed,
                got
            ),
            StoreError::ReadBack => defmt::write!(f, "ReadBack"),
            StoreError::Corrupt => defmt::write!(f, "Corrupt"),
            StoreError::NoModel => defmt::write!(f, "NoModel"),
            StoreError::NoState => defmt::write!(f, "NoState"),
            StoreError::Rejected(e) => defmt::write!(f, "Rejected({})", e),
            StoreError::RolledBack { version, current } => defmt::write!(
                f,
                "RolledBack {{ version: {=u32}, current: {=u32} }}",
                version,
                current
            ),
            StoreError::SequenceExhausted => defmt::write!(f, "SequenceExhausted"),
        }
    }
}

/// The model the store runs: which slot, where, how long, which version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Active {
    /// The slot holding it.
    pub slot: Slot,
    /// Flash offset of its first byte (the slot's offset).
    pub offset: u32,
    /// Its length in bytes.
    pub len: u32,
    /// Its model version.
    pub version: u32,
    /// CRC-32/ISO-HDLC of its bytes (what [`StateStore`] binds a saved state to).
    pub crc: u32,
    /// The sequence number of its commit record.
    pub seq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    seq: u32,
    slot: Slot,
    len: u32,
    crc: u32,
    version: u32,
}

fn zeros(bytes: &[u8]) -> u32 {
    bytes.iter().map(|b| b.count_zeros()).sum()
}

fn le(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// `magic`, five `u32` fields, the CRC-32 of those 24 bytes and the zero count of the
/// 28 bytes before it: the sealed 32-byte record format of the journal and the state ring.
fn seal(magic: [u8; 4], fields: [u32; 5]) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    b[0..4].copy_from_slice(&magic);
    for (k, v) in fields.iter().enumerate() {
        b[4 + 4 * k..8 + 4 * k].copy_from_slice(&v.to_le_bytes());
    }
    let crc = CRC.checksum(&b[0..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    let z = zeros(&b[0..28]);
    b[28..32].copy_from_slice(&z.to_le_bytes());
    b
}

/// The fields of a sealed record, if it is intact (see [`seal`]).
fn unseal(magic: [u8; 4], b: &[u8; RECORD_LEN]) -> Option<[u32; 5]> {
    if b[0..4] != magic || CRC.checksum(&b[0..24]) != le(b, 24) || zeros(&b[0..28]) != le(b, 28) {
        return None;
    }
    Some([le(b, 4), le(b, 8), le(b, 12), le(b, 16), le(b, 20)])
}

impl Record {
    fn encode(&self) -> [u8; RECORD_LEN] {
        seal(
            RECORD_MAGIC,
            [
                self.seq,
                self.slot.index() as u32,
                self.len,
                self.crc,
                self.version,
            ],
        )
    }

    fn decode(b: &[u8; RECORD_LEN]) -> Option<Record> {
        let [seq, slot, len, crc, version] = unseal(RECORD_MAGIC, b)?;
        let slot = match slot {
            0 => Slot::A,
            1 => Slot::B,
            _ => return None,
        };
        Some(Record {
            seq,
            slot,
            len,
            crc,
            version,
        })
    }
}

/// Reads `out.len()` bytes at `offset` (aligned to `READ_SIZE`), whatever `out.len()`.
fn read_exact<F: NorFlash>(
    flash: &mut F,
    offset: u32,
    out: &mut [u8],
) -> Result<(), StoreError<F::Error>> {
    let r = F::READ_SIZE;
    let whole = out.len() / r * r;
    let (head, tail) = out.split_at_mut(whole);
    if !head.is_empty() {
        flash.read(offset, head).map_err(StoreError::Flash)?;
    }
    if !tail.is_empty() {
        let mut tmp = [0u8; RECORD_LEN];
        let t = tmp.get_mut(..r).ok_or(StoreError::BadLayout("read size"))?;
        flash
            .read(offset + whole as u32, t)
            .map_err(StoreError::Flash)?;
        tail.copy_from_slice(&t[..tail.len()]);
    }
    Ok(())
}

/// CRC-32 of `len` bytes at `offset`, read in small pieces.
fn crc_at<F: NorFlash>(flash: &mut F, offset: u32, len: u32) -> Result<u32, StoreError<F::Error>> {
    let mut d = CRC.digest();
    let mut buf = [0u8; READ_CHUNK];
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(READ_CHUNK as u32) as usize;
        read_exact(flash, offset + done, &mut buf[..n])?;
        d.update(&buf[..n]);
        done += n as u32;
    }
    Ok(d.finalize())
}

/// Whether the `len` bytes at `offset` all read `0xFF`.
fn is_free<F: NorFlash>(
    flash: &mut F,
    offset: u32,
    len: u32,
) -> Result<bool, StoreError<F::Error>> {
    let mut buf = [0u8; READ_CHUNK];
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(READ_CHUNK as u32) as usize;
        read_exact(flash, offset + done, &mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0xFF) {
            return Ok(false);
        }
        done += n as u32;
    }
    Ok(true)
}

/// A journal position: erase unit `sector`, record `index` within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    sector: u32,
    index: u32,
}

/// A/B model slots with a power-fail-safe commit journal on a NOR flash. See the
/// [module docs](self).
#[derive(Debug)]
pub struct ModelStore<F> {
    flash: F,
    layout: Layout,
    /// The newest valid record for each slot.
    best: [Option<Record>; 2],
    /// The newest valid record and where it is.
    newest: Option<(Record, Pos)>,
    /// Highest version of any valid record.
    floor: Option<u32>,
    active: Option<Active>,
}

impl<F: NorFlash> ModelStore<F> {
    /// Opens the store (at boot): checks `layout` against the flash and reads the journal
    /// to find the active model. Writes nothing.
    ///
    /// # Errors
    /// [`StoreError::BadLayout`], or [`StoreError::Flash`] if a read fails.
    pub fn new(flash: F, layout: Layout) -> Result<Self, StoreError<F::Error>> {
        layout
            .check(F::WRITE_SIZE, F::READ_SIZE, F::ERASE_SIZE, flash.capacity())
            .map_err(StoreError::BadLayout)?;
        let mut s = ModelStore {
            flash,
            layout,
            best: [None, None],
            newest: None,
            floor: None,
            active: None,
        };
        s.scan()?;
        Ok(s)
    }

    /// The active model, if any: the newest committed slot whose bytes match their record.
    pub fn active(&self) -> Option<Active> {
        self.active
    }

    /// The highest model version committed so far (a new blob must be higher), if any.
    pub fn version_floor(&self) -> Option<u32> {
        self.floor
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The flash, for other uses of its other regions.
    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Reads the active model into `buf` and returns it, checked against its record
    /// again (so a slot that rotted since boot is not handed out).
    ///
    /// # Errors
    /// [`StoreError::NoModel`], [`StoreError::BufferTooSmall`], [`StoreError::Corrupt`],
    /// [`StoreError::Flash`].
    pub fn read_active<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8], StoreError<F::Error>> {
        let a = self.active.ok_or(StoreError::NoModel)?;
        let len = a.len as usize;
        let got = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(StoreError::BufferTooSmall { needed: len, got })?;
        self.read_exact(a.offset, out)?;
        let want = self.best[a.slot.index()].map(|r| r.crc);
        if Some(CRC.checksum(out)) != want {
            return Err(StoreError::Corrupt);
        }
        Ok(out)
    }

    /// Starts writing a blob of `total_len` bytes into the slot that is not active.
    /// Nothing is erased until data arrives.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] if the blob is larger than a slot;
    /// [`StoreError::Rejected`] with [`Error::Truncated`] for an empty blob.
    pub fn begin_update(
        &mut self,
        total_len: usize,
    ) -> Result<Update<'_, F>, StoreError<F::Error>> {
        let capacity = self.layout.slot_size as usize;
        if total_len > capacity {
            return Err(StoreError::TooLarge {
                len: total_len,
                capacity,
            });
        }
        if total_len == 0 {
            return Err(StoreError::Rejected(Error::Truncated));
        }
        let slot = self.active.map_or(Slot::A, |a| a.slot.other());
        Ok(Update {
            base: self.layout.slot_offset(slot),
            store: self,
            slot,
            total: total_len,
            received: 0,
            programmed: 0,
            erased: 0,
            digest: CRC.digest(),
            pending: [0xFF; MAX_WRITE_SIZE],
            pending_len: 0,
            failed: false,
        })
    }

    fn sectors(&self) -> u32 {
        self.layout.journal_size / F::ERASE_SIZE as u32
    }

    fn per_sector(&self) -> u32 {
        (F::ERASE_SIZE / record_len(F::WRITE_SIZE)) as u32
    }

    fn pos_offset(&self, p: Pos) -> u32 {
        self.layout.journal
            + p.sector * F::ERASE_SIZE as u32
            + p.index * record_len(F::WRITE_SIZE) as u32
    }

    fn read_exact(&mut self, offset: u32, out: &mut [u8]) -> Result<(), StoreError<F::Error>> {
        read_exact(&mut self.flash, offset, out)
    }

    fn crc_of(&mut self, offset: u32, len: u32) -> Result<u32, StoreError<F::Error>> {
        crc_at(&mut self.flash, offset, len)
    }

    fn read_pos(&mut self, p: Pos) -> Result<(Option<Record>, bool), StoreError<F::Error>> {
        let off = self.pos_offset(p);
        let mut b = [0u8; RECORD_LEN];
        self.read_exact(off, &mut b)?;
        let free = is_free(&mut self.flash, off, record_len(F::WRITE_SIZE) as u32)?;
        Ok((Record::decode(&b), free))
    }

    fn scan(&mut self) -> Result<(), StoreError<F::Error>> {
        self.best = [None, None];
        self.newest = None;
        self.floor = None;
        for sector in 0..self.sectors() {
            for index in 0..self.per_sector() {
                let p = Pos { sector, index };
                if let (Some(r), _) = self.read_pos(p)? {
                    self.note(r, p);
                }
            }
        }
        self.pick_active()
    }

    fn note(&mut self, r: Record, p: Pos) {
        let b = &mut self.best[r.slot.index()];
        if b.is_none_or(|old| r.seq > old.seq) {
            *b = Some(r);
        }
        if self.newest.is_none_or(|(old, _)| r.seq > old.seq) {
            self.newest = Some((r, p));
        }
        self.floor = Some(self.floor.map_or(r.version, |f| f.max(r.version)));
    }

    fn pick_active(&mut self) -> Result<(), StoreError<F::Error>> {
        let mut cands = self.best;
        if let [Some(a), Some(b)] = cands {
            if b.seq > a.seq {
                cands = [Some(b), Some(a)];
            }
        }
        self.active = None;
        for r in cands.into_iter().flatten() {
            if r.len == 0 || r.len > self.layout.slot_size {
                continue;
            }
            let offset = self.layout.slot_offset(r.slot);
            if self.crc_of(offset, r.len)? == r.crc {
                self.active = Some(Active {
                    slot: r.slot,
                    offset,
                    len: r.len,
                    version: r.version,
                    crc: r.crc,
                    seq: r.seq,
                });
                return Ok(());
            }
        }
        Ok(())
    }

    /// Appends `r` to the journal (the atomic activation step) and reads it back.
    fn commit(&mut self, r: Record) -> Result<(), StoreError<F::Error>> {
        let e = F::ERASE_SIZE as u32;
        let mut target = None;
        if let Some((_, p)) = self.newest {
            for index in p.index + 1..self.per_sector() {
                let q = Pos {
                    sector: p.sector,
                    index,
                };
                if self.read_pos(q)?.1 {
                    target = Some(q);
                    break;
                }
            }
        }
        let target = match target {
            Some(q) => q,
            None => {
                let sector = self
                    .newest
                    .and_then(|(_, p)| (p.sector + 1).checked_rem(self.sectors()))
                    .unwrap_or(0);
                let from = self.layout.journal + sector * e;
                self.flash
                    .erase(from, from + e)
                    .map_err(StoreError::Flash)?;
                Pos { sector, index: 0 }
            }
        };
        let mut buf = [0xFFu8; MAX_WRITE_SIZE];
        buf[..RECORD_LEN].copy_from_slice(&r.encode());
        let off = self.pos_offset(target);
        self.flash
            .write(off, &buf[..record_len(F::WRITE_SIZE)])
            .map_err(StoreError::Flash)?;
        if self.read_pos(target)?.0 != Some(r) {
            return Err(StoreError::ReadBack);
        }
        self.note(r, target);
        self.active = Some(Active {
            slot: r.slot,
            offset: self.layout.slot_offset(r.slot),
            len: r.len,
            version: r.version,
            crc: r.crc,
            seq: r.seq,
        });
        Ok(())
    }
}

/// A blob being written into the inactive slot; see [`ModelStore::begin_update`].
///
/// Dropping it without [`finish`](Self::finish) leaves the active model as it was.
pub struct Update<'s, F: NorFlash> {
    store: &'s mut ModelStore<F>,
    slot: Slot,
    base: u32,
    total: usize,
    received: usize,
    /// Bytes of the slot programmed (a multiple of `WRITE_SIZE`).
    programmed: u32,
    /// Bytes of the slot erased (a multiple of `ERASE_SIZE`).
    erased: u32,
    digest: crc::Digest<'static, u32>,
    /// Bytes received but not yet programmed (less than `WRITE_SIZE`).
    pending: [u8; MAX_WRITE_SIZE],
    pending_len: usize,
    failed: bool,
}

impl<F: NorFlash> fmt::Debug for Update<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Update")
            .field("slot", &self.slot)
            .field("total", &self.total)
            .field("received", &self.received)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<F: NorFlash> Update<'_, F> {
    /// The slot being written.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Programs the next bytes of the blob, erasing the slot ahead of them as needed.
    /// Chunks may have any length; at most `WRITE_SIZE - 1` bytes are held back until
    /// the next chunk or [`finish`](Self::finish).
    ///
    /// # Errors
    /// [`StoreError::Overflow`] past the announced length, [`StoreError::Flash`], and
    /// [`StoreError::Aborted`] once any call of this update has failed.
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<(), StoreError<F::Error>> {
        if self.failed {
            return Err(StoreError::Aborted);
        }
        let r = self.write_inner(data);
        self.failed = r.is_err();
        r
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<(), StoreError<F::Error>> {
        let w = F::WRITE_SIZE;
        if data.len() > self.total - self.received {
            return Err(StoreError::Overflow {
                expected: self.total,
            });
        }
        self.received += data.len();
        self.digest.update(data);
        if self.pending_len > 0 {
            let dst = self
                .pending
                .get_mut(self.pending_len..w)
                .ok_or(StoreError::Aborted)?;
            let take = dst.len().min(data.len());
            let (now, rest) = data.split_at(take);
            dst[..take].copy_from_slice(now);
            self.pending_len += take;
            data = rest;
            if self.pending_len < w {
                return Ok(());
            }
            self.pending_len = 0;
            let unit = self.pending;
            self.program(&unit[..w])?;
        }
        let whole = data.len() / w * w;
        let (now, rest) = data.split_at(whole);
        if !now.is_empty() {
            self.program(now)?;
        }
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
        Ok(())
    }

    /// Programs `bytes` (a multiple of `WRITE_SIZE`) at the end of what is programmed,
    /// erasing erase units first as needed.
    fn program(&mut self, bytes: &[u8]) -> Result<(), StoreError<F::Error>> {
        let e = F::ERASE_SIZE as u32;
        let end = self.programmed + bytes.len() as u32;
        while self.erased < end {
            let from = self.base + self.erased;
            self.store
                .flash
                .erase(from, from + e)
                .map_err(StoreError::Flash)?;
            self.erased += e;
        }
        self.store
            .flash
            .write(self.base + self.programmed, bytes)
            .map_err(StoreError::Flash)?;
        self.programmed = end;
        Ok(())
    }

    /// Programs the held-back tail (padded with `0xFF`) and returns the received CRC.
    fn complete(&mut self) -> Result<u32, StoreError<F::Error>> {
        if self.failed {
            return Err(StoreError::Aborted);
        }
        if self.received != self.total {
            return Err(StoreError::Incomplete {
                expected: self.total,
                got: self.received,
            });
        }
        if self.pending_len > 0 {
            let w = F::WRITE_SIZE;
            let mut unit = self.pending;
            if let Some(tail) = unit.get_mut(self.pending_len..w) {
                tail.fill(0xFF);
            }
            self.pending_len = 0;
            self.failed = true;
            self.program(&unit[..w])?;
            self.failed = false;
        }
        Ok(self.digest.clone().finalize())
    }

    /// Completes the update: reads the slot back into `buf` (at least the blob's length),
    /// checks it against what was received, runs `verifier` on it and the version against
    /// [`ModelStore::version_floor`], and only then activates it with one commit record.
    /// On success `buf` holds the new active blob.
    ///
    /// # Errors
    /// [`StoreError::Incomplete`], [`StoreError::BufferTooSmall`], [`StoreError::ReadBack`],
    /// [`StoreError::Rejected`], [`StoreError::RolledBack`], [`StoreError::Flash`]. On any
    /// error the previously active model stays active.
    pub fn finish<V: Verifier + ?Sized>(
        mut self,
        verifier: &V,
        buf: &mut [u8],
    ) -> Result<Active, StoreError<F::Error>> {
        let crc = self.complete()?;
        let got = buf.len();
        let blob = buf
            .get_mut(..self.total)
            .ok_or(StoreError::BufferTooSmall {
                needed: self.total,
                got,
            })?;
        self.store.read_exact(self.base, blob)?;
        if CRC.checksum(blob) != crc {
            return Err(StoreError::ReadBack);
        }
        self.activate(verifier, blob, crc)
    }

    /// [`finish`](Self::finish) for memory-mapped flash: `mapped` is the slot as the CPU
    /// sees it (the bytes at [`Active::offset`]-to-be, `total_len` long). The flash is
    /// read back through the driver in small pieces; both views must match what was
    /// received before `verifier` sees `mapped`.
    ///
    /// # Errors
    /// As [`finish`](Self::finish); a `mapped` of the wrong length or content is
    /// [`StoreError::ReadBack`].
    pub fn finish_mapped<V: Verifier + ?Sized>(
        mut self,
        verifier: &V,
        mapped: &[u8],
    ) -> Result<Active, StoreError<F::Error>> {
        let crc = self.complete()?;
        if self.store.crc_of(self.base, self.total as u32)? != crc
            || mapped.len() != self.total
            || CRC.checksum(mapped) != crc
        {
            return Err(StoreError::ReadBack);
        }
        self.activate(verifier, mapped, crc)
    }

    fn activate<V: Verifier + ?Sized>(
        self,
        verifier: &V,
        blob: &[u8],
        crc: u32,
    ) -> Result<Active, StoreError<F::Error>> {
        let version = verifier.verify(blob).map_err(StoreError::Rejected)?;
        if let Some(current) = self.store.floor {
            if version <= current {
                return Err(StoreError::RolledBack { version, current });
            }
        }
        let seq = match self.store.newest {
            Some((r, _)) => r.seq.checked_add(1).ok_or(StoreError::SequenceExhausted)?,
            None => 0,
        };
        let rec = Record {
            seq,
            slot: self.slot,
            len: self.total as u32,
            crc,
            version,
        };
        self.store.commit(rec)?;
        self.store.active.ok_or(StoreError::NoModel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64
    fn next(s: &mut u64) -> u64 {
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn record(s: &mut u64) -> Record {
        Record {
            seq: next(s) as u32,
            slot: if next(s) & 1 == 0 { Slot::A } else { Slot::B },
            len: next(s) as u32,
            crc: next(s) as u32,
            version: next(s) as u32,
        }
    }

    #[test]
    fn records_round_trip() {
        let mut s = 1;
        for _ in 0..1000 {
            let r = record(&mut s);
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
        assert_eq!(Record::decode(&[0xFF; RECORD_LEN]), None);
        assert_eq!(Record::decode(&[0; RECORD_LEN]), None);
    }

    /// The power-safety argument of the module docs, checked: any non-empty set of bits
    /// turned 0 → 1 (an interrupted program or erase, charge loss) makes a record invalid,
    /// whatever the CRC says; the zero count alone decides it.
    #[test]
    fn any_bits_gone_zero_to_one_invalidate_a_record() {
        let mut s = 2;
        for _ in 0..200 {
            let good = record(&mut s).encode();
            // Every single bit, then random subsets of the zero bits.
            for bit in 0..8 * RECORD_LEN {
                let mut b = good;
                b[bit / 8] |= 1 << (bit % 8);
                if b != good {
                    assert_eq!(Record::decode(&b), None);
                    assert!(zeros(&b[0..28]) != le(&b, 28));
                }
            }
            for _ in 0..200 {
                let mut b = good;
                for byte in b.iter_mut() {
                    *byte |= next(&mut s) as u8 & next(&mut s) as u8;
                }
                if b != good {
                    assert!(zeros(&b[0..28]) != le(&b, 28));
                    assert_eq!(Record::decode(&b), None);
                }
            }
        }
    }

    /// The other direction (1 → 0, e.g. a disturbed erased cell) is the CRC's: every
    /// single-bit change is caught.
    #[test]
    fn any_single_bit_one_to_zero_invalidates_a_record() {
        let mut s = 3;
        for _ in 0..200 {
            let good = record(&mut s).encode();
            for bit in 0..8 * RECORD_LEN {
                let mut b = good;
                b[bit / 8] &= !(1 << (bit % 8));
                if b != good {
                    assert_eq!(Record::decode(&b), None, "bit {bit}");
                }
            }
        }
    }

    #[test]
    fn layout_rules() {
        let l = Layout::contiguous(0, 8192, 8192);
        assert_eq!(l.check(4, 1, 4096, 24576), Ok(()));
        assert!(l.check(4, 1, 4096, 24575).is_err());
        assert!(l.check(3, 1, 4096, 24576).is_err());
        assert!(l.check(512, 1, 4096, 24576).is_err());
        assert!(l.check(4, 64, 4096, 24576).is_err());
        assert!(l.check(4, 1, 4000, 24576).is_err());
        assert_eq!(record_len(4), 32);
        assert_eq!(record_len(256), 256);
    }
}

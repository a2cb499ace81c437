//! A [`Session`]'s state in flash across deep sleep: [`StateStore`].
//!
//! The state region (its own erase units, not shared with the model store's) is a ring of
//! erase units, each filled front to back with *entries*; nothing is ever overwritten in
//! place, so each unit is erased once per trip round the ring (wear levelling). An entry
//! is a sealed header of `H = max(32, WRITE_SIZE)` bytes followed by the state bytes of
//! [`Session::save_state`], padded with `0xFF` to a multiple of `WRITE_SIZE`:
//!
//! | offset | bytes | field | value |
//! |---|---|---|---|
//! | 0 | 4 | magic | `b"TRST"` ([`STATE_MAGIC`]) |
//! | 4 | 4 | sequence | `u32`, one more than the newest entry before it |
//! | 8 | 4 | length | `u32`, state bytes after the header |
//! | 12 | 4 | model CRC | `u32`, CRC-32 of the blob the state belongs to ([`Active::crc`](super::Active::crc)) |
//! | 16 | 4 | state CRC | `u32`, CRC-32 of the state bytes |
//! | 20 | 4 | reserved | `0` |
//! | 24 | 4 | header CRC | CRC-32 of bytes 0..24 |
//! | 28 | 4 | zero count | `0` bits in bytes 0..28 (see the store's argument) |
//! | `H` | length | state | [`Session::save_state`] bytes, then `0xFF` padding |
//!
//! [`StateStore::save`] writes the header, then the state, then reads both back. An entry
//! counts only if its header is intact and its state bytes have the state CRC, so a cut
//! anywhere in a save leaves the previous entry the newest valid one. When the current
//! unit has no room the next unit of the ring is erased first; it never holds the newest
//! entry. [`StateStore::restore`] takes the newest valid entry for the given model and
//! hands it to [`Session::restore_state`], which checks it once more against the model's
//! shape.
//!
//! `sequential-storage` (a well-kept wear-levelling key-value/queue crate) was considered:
//! its API is async over `embedded-storage-async`, and the model store is blocking on
//! `embedded-storage`, so it would add a second trait family and an executor to firmware
//! that needs neither; the ring here is ~200 lines on the same traits and proofs.

use core::marker::PhantomData;

use embedded_storage::nor_flash::NorFlash;

use super::{
    crc_at, is_free, read_exact, record_len, seal, unseal, StoreError, CRC, MAX_WRITE_SIZE,
    RECORD_LEN,
};
use crate::Session;

/// The four bytes every state entry starts with.
pub const STATE_MAGIC: [u8; 4] = *b"TRST";

/// The flash region of a [`StateStore`]: at least two erase units, unit-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StateRegion {
    /// Offset of the region.
    pub offset: u32,
    /// Bytes of the region.
    pub size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    seq: u32,
    len: u32,
    model: u32,
    crc: u32,
}

/// Saves and restores session state in a wear-levelled ring of flash erase units; see
/// the [module docs](self). It holds no flash: every call takes it, so it can share one
/// with a [`ModelStore`](super::ModelStore) (through [`ModelStore::flash`](super::ModelStore::flash)).
#[derive(Debug)]
pub struct StateStore<F> {
    region: StateRegion,
    /// Newest entry's sequence number.
    seq: Option<u32>,
    /// Where the next entry may go: (unit, byte offset in the unit).
    cursor: Option<(u32, u32)>,
    _flash: PhantomData<fn() -> F>,
}

fn pad(n: usize, w: usize) -> usize {
    n.div_ceil(w) * w
}

impl<F: NorFlash> StateStore<F> {
    /// Opens the ring: checks the region against the flash and finds where the next
    /// entry goes. Writes nothing.
    ///
    /// # Errors
    /// [`StoreError::BadLayout`], [`StoreError::Flash`].
    pub fn new(flash: &mut F, region: StateRegion) -> Result<Self, StoreError<F::Error>> {
        let e = F::ERASE_SIZE as u64;
        if !F::WRITE_SIZE.is_power_of_two()
            || F::WRITE_SIZE > MAX_WRITE_SIZE
            || !F::READ_SIZE.is_power_of_two()
            || F::READ_SIZE > RECORD_LEN
            || F::READ_SIZE > F::WRITE_SIZE
            || e == 0
            || !e.is_multiple_of(record_len(F::WRITE_SIZE) as u64)
        {
            return Err(StoreError::BadLayout(
                "the flash's geometry is not supported",
            ));
        }
        if !(region.offset as u64).is_multiple_of(e)
            || !(region.size as u64).is_multiple_of(e)
            || (region.size as u64) < 2 * e
            || region.offset as u64 + region.size as u64 > flash.capacity() as u64
        {
            return Err(StoreError::BadLayout(
                "the state region is not at least two whole erase units inside the flash",
            ));
        }
        let mut s = StateStore {
            region,
            seq: None,
            cursor: None,
            _flash: PhantomData,
        };
        s.scan(flash, |_, _| ())?;
        Ok(s)
    }

    fn units(&self) -> u32 {
        self.region.size / F::ERASE_SIZE as u32
    }

    fn unit_offset(&self, unit: u32) -> u32 {
        self.region.offset + unit * F::ERASE_SIZE as u32
    }

    /// Walks every entry header; calls `f` on each intact one (with its absolute offset)
    /// and keeps the newest sequence number and the end of its unit.
    fn scan(
        &mut self,
        flash: &mut F,
        mut f: impl FnMut(Header, u32),
    ) -> Result<(), StoreError<F::Error>> {
        let (h, w, e) = (
            record_len(F::WRITE_SIZE) as u32,
            F::WRITE_SIZE,
            F::ERASE_SIZE as u32,
        );
        self.seq = None;
        self.cursor = None;
        for unit in 0..self.units() {
            let base = self.unit_offset(unit);
            let mut p = 0u32;
            let mut newest_here = false;
            while p + h <= e {
                let (hdr, free) = read_header::<F>(flash, base + p)?;
                match hdr {
                    Some(x) if p + h + pad(x.len as usize, w) as u32 <= e => {
                        f(x, base + p);
                        if self.seq.is_none_or(|s| x.seq > s) {
                            self.seq = Some(x.seq);
                            newest_here = true;
                        }
                        p += h + pad(x.len as usize, w) as u32;
                    }
                    _ if free => break,
                    _ => p += h,
                }
            }
            if newest_here {
                self.cursor = Some((unit, p));
            }
        }
        Ok(())
    }

    /// Saves `session`'s state, bound to the model whose blob has CRC-32 `model_crc`
    /// (e.g. [`Active::crc`](super::Active::crc)). `buf` holds the state bytes on the way
    /// ([`Session::saved_len`] bytes).
    ///
    /// # Errors
    /// [`StoreError::BufferTooSmall`], [`StoreError::TooLarge`] if an entry does not fit
    /// an erase unit, [`StoreError::ReadBack`], [`StoreError::SequenceExhausted`],
    /// [`StoreError::Flash`]. The previous entry stays valid on any error.
    pub fn save<const STATE: usize, const SCRATCH: usize>(
        &mut self,
        flash: &mut F,
        session: &Session<'_, STATE, SCRATCH>,
        model_crc: u32,
        buf: &mut [u8],
    ) -> Result<(), StoreError<F::Error>> {
        let (h, w, e) = (
            record_len(F::WRITE_SIZE),
            F::WRITE_SIZE,
            F::ERASE_SIZE as u32,
        );
        let needed = session.saved_len();
        let got = buf.len();
        let too_small = || StoreError::BufferTooSmall { needed, got };
        let n = session.save_state(buf).map_err(|_| too_small())?;
        let data = buf.get(..n).ok_or_else(too_small)?;
        let size = (h + pad(n, w)) as u32;
        if size > e {
            return Err(StoreError::TooLarge {
                len: size as usize,
                capacity: e as usize,
            });
        }
        let seq = match self.seq {
            Some(s) => s.checked_add(1).ok_or(StoreError::SequenceExhausted)?,
            None => 0,
        };
        // The current unit if the entry fits in free space there, else the next unit.
        let mut at = None;
        if let Some((unit, p)) = self.cursor {
            if p + size <= e && is_free(flash, self.unit_offset(unit) + p, size)? {
                at = Some((unit, p));
            }
        }
        let (unit, p) = match at {
            Some(x) => x,
            None => {
                let unit = self
                    .cursor
                    .and_then(|(u, _)| (u + 1).checked_rem(self.units()))
                    .unwrap_or(0);
                let from = self.unit_offset(unit);
                flash.erase(from, from + e).map_err(StoreError::Flash)?;
                (unit, 0)
            }
        };
        let off = self.unit_offset(unit) + p;
        let hdr = Header {
            seq,
            len: n as u32,
            model: model_crc,
            crc: CRC.checksum(data),
        };
        let mut unit_buf = [0xFFu8; MAX_WRITE_SIZE];
        unit_buf[..RECORD_LEN]
            .copy_from_slice(&seal(STATE_MAGIC, [seq, hdr.len, hdr.model, hdr.crc, 0]));
        flash
            .write(off, &unit_buf[..h])
            .map_err(StoreError::Flash)?;
        let whole = n / w * w;
        if whole > 0 {
            flash
                .write(off + h as u32, &data[..whole])
                .map_err(StoreError::Flash)?;
        }
        if whole < n {
            unit_buf[..w].fill(0xFF);
            unit_buf[..n - whole].copy_from_slice(&data[whole..]);
            flash
                .write(off + (h + whole) as u32, &unit_buf[..w])
                .map_err(StoreError::Flash)?;
        }
        if read_header::<F>(flash, off)?.0 != Some(hdr)
            || crc_at(flash, off + h as u32, n as u32)? != hdr.crc
        {
            return Err(StoreError::ReadBack);
        }
        self.seq = Some(seq);
        self.cursor = Some((unit, p + size));
        Ok(())
    }

    /// Restores into `session` the newest intact state saved for the model with CRC-32
    /// `model_crc`, read through `buf` (at least [`Session::saved_len`] bytes).
    ///
    /// # Errors
    /// [`StoreError::NoState`] if there is none, [`StoreError::BufferTooSmall`],
    /// [`StoreError::Rejected`] if [`Session::restore_state`] refuses it,
    /// [`StoreError::Flash`]. The session is unchanged on any error.
    pub fn restore<const STATE: usize, const SCRATCH: usize>(
        &mut self,
        flash: &mut F,
        session: &mut Session<'_, STATE, SCRATCH>,
        model_crc: u32,
        buf: &mut [u8],
    ) -> Result<(), StoreError<F::Error>> {
        let n = session.saved_len();
        let h = record_len(F::WRITE_SIZE) as u32;
        let got = buf.len();
        let out = buf
            .get_mut(..n)
            .ok_or(StoreError::BufferTooSmall { needed: n, got })?;
        // Newest matching entry first; one whose state bytes do not match their CRC is
        // passed over for the next older one.
        let mut below: Option<u32> = None;
        loop {
            let mut best: Option<Header> = None;
            let mut at = 0;
            self.scan(flash, |x, off| {
                if x.model == model_crc
                    && x.len as usize == n
                    && below.is_none_or(|b| x.seq < b)
                    && best.is_none_or(|b| x.seq > b.seq)
                {
                    best = Some(x);
                    at = off;
                }
            })?;
            let x = best.ok_or(StoreError::NoState)?;
            read_exact(flash, at + h, out)?;
            if CRC.checksum(out) == x.crc {
                break;
            }
            below = Some(x.seq);
        }
        session.restore_state(out).map_err(StoreError::Rejected)
    }
}

/// The header at `off` if intact, and whether its bytes are all `0xFF`.
fn read_header<F: NorFlash>(
    flash: &mut F,
    off: u32,
) -> Result<(Option<Header>, bool), StoreError<F::Error>> {
    let mut b = [0u8; RECORD_LEN];
    read_exact(flash, off, &mut b)?;
    let free = is_free(flash, off, record_len(F::WRITE_SIZE) as u32)?;
    let hdr = match unseal(STATE_MAGIC, &b) {
        Some([seq, len, model, crc, 0]) => Some(Header {
            seq,
            len,
            model,
            crc,
        }),
        _ => None,
    };
    Ok((hdr, free))
}

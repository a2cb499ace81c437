//! The STM32F411's internal flash as the model store's `embedded-storage` [`NorFlash`].
//!
//! stm32f4xx-hal's own `NorFlash` (`UnlockedFlash`) declares one erase size for the whole
//! chip, 128 KiB (the largest sector): a store on it would need four 128 KiB sectors, i.e.
//! all of a 512 KiB F411's flash but sector 0-4. This wrapper presents the four small
//! sectors 1-4 (16, 16, 16 and 64 KiB, from 0x0800_4000) as four 16 KiB erase units: unit `k`
//! is the first 16 KiB of sector `k + 1`, and erasing it erases that whole sector (for
//! sector 4, its upper 48 KiB are unused, so nothing else is lost). Reads and programs go
//! through the HAL (`LockedFlash`, and `UnlockedFlash` for as long as one operation lasts,
//! which locks the flash again when dropped).
//!
//! Programming and erasing stall the CPU's flash reads (the bus waits, no RAM code needed),
//! so the stream stops while a sector is erased (16 KiB: about 0.25-0.5 s, 64 KiB: up to
//! 1.1 s, datasheet typ./max.); the frames of that time come late.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use stm32f4xx_hal::flash::{FlashExt, LockedFlash};

use crate::board::{STORE_LEN, STORE_OFFSET};

/// Bytes of one erase unit.
pub const UNIT: usize = 16 * 1024;
/// Sector number of unit 0.
const FIRST_SECTOR: u8 = 1;

/// A refused or failed flash operation.
#[derive(Debug, Clone, Copy)]
pub enum FlashError {
    /// Outside the model store, or misaligned.
    Refused(NorFlashErrorKind),
    /// The flash controller reported an error.
    Hal(stm32f4xx_hal::flash::Error),
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::Refused(k) => *k,
            FlashError::Hal(_) => NorFlashErrorKind::Other,
        }
    }
}

/// The model store's sectors (offsets relative to [`STORE_OFFSET`]).
pub struct StoreFlash {
    flash: LockedFlash,
}

impl StoreFlash {
    /// Takes the flash peripheral.
    pub fn new(flash: stm32f4xx_hal::pac::FLASH) -> Self {
        StoreFlash {
            flash: LockedFlash::new(flash),
        }
    }

    fn check(offset: u32, len: usize) -> Result<u32, FlashError> {
        if (offset as usize)
            .checked_add(len)
            .is_none_or(|e| e > STORE_LEN)
        {
            return Err(FlashError::Refused(NorFlashErrorKind::OutOfBounds));
        }
        Ok(STORE_OFFSET + offset)
    }
}

impl ErrorType for StoreFlash {
    type Error = FlashError;
}

impl ReadNorFlash for StoreFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let abs = Self::check(offset, bytes.len())?;
        ReadNorFlash::read(&mut self.flash, abs, bytes).map_err(FlashError::Hal)
    }

    fn capacity(&self) -> usize {
        STORE_LEN
    }
}

impl NorFlash for StoreFlash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = UNIT;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if !(from as usize).is_multiple_of(UNIT) || !(to as usize).is_multiple_of(UNIT) || to < from
        {
            return Err(FlashError::Refused(NorFlashErrorKind::NotAligned));
        }
        Self::check(from, (to - from) as usize)?;
        let mut unlocked = self.flash.unlocked();
        for unit in from as usize / UNIT..to as usize / UNIT {
            // `check` bounds `unit` to 0..4.
            let sector = FIRST_SECTOR + unit as u8;
            unlocked.erase(sector).map_err(FlashError::Hal)?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let abs = Self::check(offset, bytes.len())?;
        let mut unlocked = self.flash.unlocked();
        NorFlash::write(&mut unlocked, abs, bytes).map_err(FlashError::Hal)
    }
}

//! A NOR flash emulated in RAM for the store (QEMU's mps2-an386 has no writable flash):
//! erase sets a whole 4 KiB unit to `0xFF`, program only clears bits (`old & new`), writes
//! are 4-byte aligned. The contents are lost when QEMU exits.

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

/// The emulated flash over a RAM buffer (erased: all `0xFF`).
pub struct RamFlash<'a>(&'a mut [u8]);

impl<'a> RamFlash<'a> {
    /// `mem` is the flash; fill it with `0xFF` for a blank one.
    pub fn new(mem: &'a mut [u8]) -> Self {
        RamFlash(mem)
    }

    fn range(&mut self, offset: u32, len: usize) -> Result<&mut [u8], NorFlashErrorKind> {
        let start = offset as usize;
        let end = start
            .checked_add(len)
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        self.0
            .get_mut(start..end)
            .ok_or(NorFlashErrorKind::OutOfBounds)
    }
}

impl ErrorType for RamFlash<'_> {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamFlash<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        bytes.copy_from_slice(self.range(offset, bytes.len())?);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.0.len()
    }
}

impl NorFlash for RamFlash<'_> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let e = Self::ERASE_SIZE as u32;
        if !from.is_multiple_of(e) || !to.is_multiple_of(e) || to < from {
            return Err(NorFlashErrorKind::NotAligned);
        }
        self.range(from, (to - from) as usize)?.fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let w = Self::WRITE_SIZE;
        if !(offset as usize).is_multiple_of(w) || !bytes.len().is_multiple_of(w) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        for (d, s) in self.range(offset, bytes.len())?.iter_mut().zip(bytes) {
            *d &= s;
        }
        Ok(())
    }
}

//! The Pico's QSPI flash as an `embedded-storage` [`NorFlash`], over the RP2040 boot ROM's
//! flash routines, for tinyrnn's model store.
//!
//! rp2040-hal 0.12 has no flash driver; the `rp2040-flash` crate (0.6) that wraps the same
//! ROM routines depends on rp2040-hal 0.11, so this module carries its ~40-line core (its
//! RAM-resident call sequence, MIT/Apache-2.0) on rp2040-hal 0.12's `rom_data`.
//!
//! # What writing the RP2040's flash needs, and why this module is sound
//!
//! The firmware executes in place (XIP) from the same flash chip, and the chip cannot be read
//! while it erases or programs. So, for every erase and program:
//!
//! 1. **The code that runs while XIP is off is in RAM.** [`write_flash_inner`] is placed in
//!    `.data.ram_func`, which cortex-m-rt's `.data` copies to RAM at reset; it calls only ROM
//!    functions, through pointers looked up *before* XIP is switched off, and its data (the
//!    bytes to program) is copied into a RAM buffer first ([`PAGE`] bytes on the stack).
//! 2. **Nothing else touches flash meanwhile.** Interrupts are masked for the whole sequence
//!    (`cortex_m::interrupt::free`), so no handler (whose code is in flash) can run; this
//!    firmware never starts core 1 and uses no DMA. A firmware that starts core 1 must park
//!    it in RAM (or use the SIO FIFO lockout) around these calls.
//! 3. **XIP is restored afterwards.** The sequence is the ROM's: `connect_internal_flash`,
//!    `flash_exit_xip`, erase/program, `flash_flush_cache` (so reads after it see the new
//!    bytes, not the XIP cache's old ones), then XIP re-entered by running a RAM copy of
//!    the 256-byte second-stage bootloader (boot2, W25Q080), which restores the fast QSPI
//!    read mode (the ROM's `flash_enter_cmd_xip` would leave the slow 03h mode).
//! 4. **Only the model store is ever written.** Every offset is checked against
//!    [`crate::board::STORE_LEN`] and made absolute from [`crate::board::STORE_OFFSET`], which
//!    memory.x keeps out of FLASH: no code or constant can be erased from under the CPU.
//!
//! Reads are plain memory reads of the XIP window (`0x1000_0000 + offset`).
//!
//! Geometry: erase unit 4 KiB (a sector), write unit 256 bytes (a page); both the ROM's.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use rp2040_hal::rom_data;

/// XIP base address of the flash.
const XIP_BASE: usize = 0x1000_0000;
/// The ROM's program unit.
pub const PAGE: usize = 256;
/// The ROM's smallest erase unit.
pub const SECTOR: usize = 4096;

/// A flash operation was refused (out of the store, or misaligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashError(NorFlashErrorKind);

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

/// The model store's part of the flash ([`crate::board::STORE_OFFSET`],
/// [`crate::board::STORE_LEN`] bytes); offsets are relative to its start.
pub struct StoreFlash {
    _private: (),
}

impl StoreFlash {
    /// The driver. Take it once; see the module docs for the conditions (core 1 idle or in
    /// RAM, no DMA from flash).
    pub fn new() -> Self {
        StoreFlash { _private: () }
    }

    fn check(offset: u32, len: usize, align: usize) -> Result<u32, FlashError> {
        let off = offset as usize;
        if !off.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FlashError(NorFlashErrorKind::NotAligned));
        }
        if off
            .checked_add(len)
            .is_none_or(|e| e > crate::board::STORE_LEN)
        {
            return Err(FlashError(NorFlashErrorKind::OutOfBounds));
        }
        Ok((crate::board::STORE_OFFSET + off) as u32)
    }
}

impl Default for StoreFlash {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorType for StoreFlash {
    type Error = FlashError;
}

impl ReadNorFlash for StoreFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let abs = Self::check(offset, bytes.len(), 1)?;
        let src = (XIP_BASE + abs as usize) as *const u8;
        // SAFETY: `check` keeps the range inside the model store, which lies inside the
        // always-mapped 2 MiB XIP window; flash is only written with interrupts masked by this
        // driver (which `&mut self` excludes here), so the bytes do not change while copied.
        unsafe { core::ptr::copy_nonoverlapping(src, bytes.as_mut_ptr(), bytes.len()) };
        Ok(())
    }

    fn capacity(&self) -> usize {
        crate::board::STORE_LEN
    }
}

impl NorFlash for StoreFlash {
    const WRITE_SIZE: usize = PAGE;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = to
            .checked_sub(from)
            .ok_or(FlashError(NorFlashErrorKind::OutOfBounds))?;
        let abs = Self::check(from, len as usize, SECTOR)?;
        // SAFETY: see the module docs: range inside the store (checked), interrupts masked,
        // core 1 and DMA idle, the call sequence runs from RAM.
        cortex_m::interrupt::free(|_| unsafe { run(abs, len, None) });
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let abs = Self::check(offset, bytes.len(), PAGE)?;
        for (i, page) in bytes.chunks_exact(PAGE).enumerate() {
            // The source must not be in flash (unreadable while programming): copy to RAM.
            let mut ram = [0u8; PAGE];
            ram.copy_from_slice(page);
            let at = abs + (i * PAGE) as u32;
            // SAFETY: as for `erase`; `ram` is on the stack, in RAM.
            cortex_m::interrupt::free(|_| unsafe { run(at, PAGE as u32, Some(&ram)) });
        }
        Ok(())
    }
}

/// ROM function pointers, looked up while XIP still works.
#[repr(C)]
struct Ptrs {
    connect_internal_flash: unsafe extern "C" fn(),
    flash_exit_xip: unsafe extern "C" fn(),
    flash_range_erase: Option<unsafe extern "C" fn(u32, usize, u32, u8)>,
    flash_range_program: Option<unsafe extern "C" fn(u32, *const u8, usize)>,
    flash_flush_cache: unsafe extern "C" fn(),
    flash_enter_cmd_xip: unsafe extern "C" fn(),
}

/// Erases (`data == None`) or programs `len` bytes at flash offset `addr`.
///
/// # Safety
/// Interrupts masked, core 1 and DMA not using flash, `addr`/`len` aligned and inside the
/// model store, `data` in RAM.
unsafe fn run(addr: u32, len: u32, data: Option<&[u8; PAGE]>) {
    // A RAM copy of boot2 re-enters the fast XIP mode at the end (module docs, step 3).
    let mut boot2 = [0u32; 64];
    // SAFETY: copies the 256 bytes of boot2 from the start of flash (XIP still on) into RAM.
    unsafe { rom_data::memcpy44(boot2.as_mut_ptr(), XIP_BASE as *const u32, 256) };
    // SAFETY: boot2 is Thumb code; its entry is its first byte, the +1 marks Thumb state.
    let boot2_fn: unsafe extern "C" fn() =
        unsafe { core::mem::transmute((boot2.as_ptr() as *const u8).wrapping_add(1)) };
    let ptrs = Ptrs {
        connect_internal_flash: rom_data::connect_internal_flash::ptr(),
        flash_exit_xip: rom_data::flash_exit_xip::ptr(),
        flash_range_erase: data.is_none().then(rom_data::flash_range_erase::ptr),
        flash_range_program: data.is_some().then(rom_data::flash_range_program::ptr),
        flash_flush_cache: rom_data::flash_flush_cache::ptr(),
        flash_enter_cmd_xip: boot2_fn,
    };
    let src = data.map_or(core::ptr::null(), |d| d.as_ptr());
    // SAFETY: the caller's conditions; `ptrs` and `boot2` live on the stack until it returns.
    unsafe { write_flash_inner(addr, len, src, &ptrs) };
    core::hint::black_box(&boot2);
}

/// The call sequence with XIP off: in RAM, ROM calls only (from `rp2040-flash` 0.6).
///
/// # Safety
/// As [`run`].
#[inline(never)]
#[link_section = ".data.ram_func"]
unsafe fn write_flash_inner(addr: u32, len: u32, data: *const u8, ptrs: *const Ptrs) {
    // SAFETY: the caller's conditions; only registers and the ROM are used.
    unsafe {
        core::arch::asm!(
            "mov r8, r0",
            "mov r9, r2",
            "mov r10, r1",
            "ldr r4, [{ptrs}, #0]",
            "blx r4", // connect_internal_flash()
            "ldr r4, [{ptrs}, #4]",
            "blx r4", // flash_exit_xip()
            "mov r0, r8", // r0 = addr
            "mov r1, r10", // r1 = len
            "movs r2, #1",
            "lsls r2, r2, #31", // r2 = 1 << 31: no block erase, sectors only
            "movs r3, #0",
            "ldr r4, [{ptrs}, #8]",
            "cmp r4, #0",
            "beq 1f",
            "blx r4", // flash_range_erase(addr, len, 1 << 31, 0)
            "1:",
            "mov r0, r8", // r0 = addr
            "mov r1, r9", // r1 = data
            "mov r2, r10", // r2 = len
            "ldr r4, [{ptrs}, #12]",
            "cmp r4, #0",
            "beq 1f",
            "blx r4", // flash_range_program(addr, data, len)
            "1:",
            "ldr r4, [{ptrs}, #16]",
            "blx r4", // flash_flush_cache()
            "ldr r4, [{ptrs}, #20]",
            "blx r4", // boot2: back to fast XIP
            ptrs = in(reg) ptrs,
            in("r0") addr,
            in("r2") data,
            in("r1") len,
            out("r3") _,
            out("r4") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            clobber_abi("C"),
        );
    }
}

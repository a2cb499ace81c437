//! UART0 of the MPS2 AN386 (Arm CMSDK APB UART at 0x4000_4000), receive side only.
//! QEMU connects it to its first `-serial` (`cargo xtask ota`: `-serial stdio`, a pipe).

const BASE: usize = 0x4000_4000;
const DATA: usize = BASE;
const STATE: usize = BASE + 0x04;
const CTRL: usize = BASE + 0x08;
const BAUDDIV: usize = BASE + 0x10;
/// `STATE` bit: a received byte waits in `DATA`.
const RX_FULL: u32 = 1 << 1;
/// `CTRL` bit: receiver enabled.
const RX_EN: u32 = 1 << 1;

/// The receiver (polled; the CMSDK UART holds one byte, QEMU holds back the rest).
pub struct Uart(());

impl Uart {
    /// Enables the receiver.
    pub fn new() -> Self {
        // SAFETY: the CMSDK UART0 registers, word-aligned MMIO on this machine; nothing else
        // in the firmware touches them.
        unsafe {
            core::ptr::write_volatile(BAUDDIV as *mut u32, 16);
            core::ptr::write_volatile(CTRL as *mut u32, RX_EN);
        }
        Uart(())
    }

    /// The next received byte, if one is waiting.
    pub fn read(&mut self) -> Option<u8> {
        // SAFETY: as in `new`; reading `DATA` clears `RX_FULL`.
        unsafe {
            if core::ptr::read_volatile(STATE as *const u32) & RX_FULL == 0 {
                return None;
            }
            Some(core::ptr::read_volatile(DATA as *const u32) as u8)
        }
    }
}

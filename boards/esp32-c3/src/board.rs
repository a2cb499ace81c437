//! ESP32-C3 specifics: 160 MHz CPU clock, TIMG0 and the SYSTIMER.
//!
//! This is the only module that differs between the real-board crates.

use esp_hal::time::{Duration, Instant};
use esp_hal::timer::PeriodicTimer;
use esp_hal::Blocking;

use crate::stream::FrameClock;

/// Name printed at start-up.
pub const BOARD: &str = "esp32-c3";

/// TIMG0's timer 0 in periodic (auto-reload) mode ticks the frame period, so the rate does
/// not drift; `esp_hal::time::Instant` (the SYSTIMER, 16 MHz) is the microsecond counter.
pub struct EspClock {
    tick: PeriodicTimer<'static, Blocking>,
    period_us: u32,
}

impl EspClock {
    /// Starts the periodic timer; the first tick comes `period_us` from now.
    ///
    /// # Panics
    /// If the timer rejects the period.
    pub fn new(mut tick: PeriodicTimer<'static, Blocking>, period_us: u32) -> Self {
        if let Err(e) = tick.start(Duration::from_micros(period_us.into())) {
            defmt::panic!("timer: {}", e);
        }
        EspClock { tick, period_us }
    }
}

impl FrameClock for EspClock {
    fn wait_tick(&mut self) {
        // Polls the timer's interrupt status. For low power, register a handler with
        // `set_interrupt_handler`, `listen()` and sleep in `riscv::asm::wfi()`.
        self.tick.wait();
    }

    fn now_us(&mut self) -> u32 {
        // Truncation intended: a wrapping 32-bit microsecond count, like the other boards'.
        Instant::now().duration_since_epoch().as_micros() as u32
    }

    fn period_us(&self) -> u32 {
        self.period_us
    }
}

// ---- Model updates (binary `esp32-c3-ota`) ----

use esp_hal::peripherals::FLASH;
use esp_hal::uart::Uart;
use esp_storage::FlashStorage;
use tinyrnn::store::Layout;

/// Flash offset of the model store: the `tinyrnn` data partition of partitions.csv (which
/// keeps the 1 MiB app partition below it, so the app image cannot overlap it).
pub const STORE_ADDR: u32 = 0x11_0000;
/// Bytes of the model store (the partition's size).
pub const STORE_LEN: u32 = 48 * 1024;
/// Two 16 KiB slots and a 16 KiB journal (4 KiB sectors), at absolute flash offsets as
/// `FlashStorage` takes them.
pub const STORE_LAYOUT: Layout = Layout::contiguous(STORE_ADDR, 16 * 1024, 16 * 1024);

/// esp-storage's driver of the SPI flash (a `NorFlash`: 4-byte words, 4 KiB sectors; it
/// runs its ROM calls with the cache handled and interrupts masked, as the chip needs).
pub fn model_flash(flash: FLASH<'static>) -> FlashStorage<'static> {
    FlashStorage::new(flash)
}

/// The update link: a blocking UART (UART1 in the binary, with a USB-serial adapter on
/// GPIO4 = RX, GPIO5 = TX; UART0 / USB-Serial-JTAG carry the defmt log). The 128-byte RX
/// FIFO holds a whole 64-byte block while a frame is computed.
pub struct EspLink {
    uart: Uart<'static, esp_hal::Blocking>,
}

impl EspLink {
    /// Wraps a configured UART.
    pub fn new(uart: Uart<'static, esp_hal::Blocking>) -> Self {
        EspLink { uart }
    }
}

impl crate::ota::Link for EspLink {
    fn try_read(&mut self) -> Option<u8> {
        if !self.uart.read_ready() {
            return None;
        }
        let mut b = [0u8; 1];
        match self.uart.read(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.uart.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(_) => return,
            }
        }
        let _ = self.uart.flush();
    }
}

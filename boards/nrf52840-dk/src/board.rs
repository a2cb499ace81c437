//! nRF52840-DK specifics: the 64 MHz crystal and two TIMER peripherals.
//!
//! This is the only module that differs between the real-board crates.

use nrf52840_hal::clocks::Clocks;
use nrf52840_hal::pac::{CLOCK, TIMER0, TIMER1};
use nrf52840_hal::timer::{Periodic, Timer};

use crate::stream::FrameClock;

/// Name printed at start-up.
pub const BOARD: &str = "nrf52840-dk";

/// Switches HFCLK to the DK's 32 MHz crystal (the timers' clock; the RC oscillator would
/// make the frame period drift by up to ±1.5 %).
pub fn init_clocks(clock: CLOCK) {
    let _ = Clocks::new(clock).enable_ext_hfosc();
}

/// TIMER0 in periodic mode ticks the frame period (its compare event clears the counter in
/// hardware, so the period does not drift); TIMER1 free-runs as the microsecond counter.
/// Both count at 1 MHz.
pub struct NrfClock {
    tick: Timer<TIMER0, Periodic>,
    free: Timer<TIMER1, Periodic>,
    period_us: u32,
}

impl NrfClock {
    /// Starts both timers; the first tick comes `period_us` from now.
    pub fn new(timer0: TIMER0, timer1: TIMER1, period_us: u32) -> Self {
        let mut tick = Timer::periodic(timer0);
        tick.start(period_us);
        let mut free = Timer::periodic(timer1);
        free.start(u32::MAX);
        NrfClock {
            tick,
            free,
            period_us,
        }
    }
}

impl FrameClock for NrfClock {
    fn wait_tick(&mut self) {
        // Polls TIMER0's COMPARE[0] event. For low power, enable the TIMER0 interrupt
        // (`self.tick.enable_interrupt()` + NVIC unmask) and sleep in `cortex_m::asm::wfi()`.
        while !self.tick.reset_if_finished() {
            core::hint::spin_loop();
        }
    }

    fn now_us(&mut self) -> u32 {
        self.free.read()
    }

    fn period_us(&self) -> u32 {
        self.period_us
    }

    fn tick_ready(&mut self) -> bool {
        self.tick.reset_if_finished()
    }
}

// ---- Model updates (binary `nrf52840-dk-ota`) ----

use embedded_io::{Read as _, ReadReady as _, Write as _};
use nrf52840_hal::gpio::{p0, Level};
use nrf52840_hal::nvmc::Nvmc;
use nrf52840_hal::pac::{NVMC, P0, UARTE0};
use nrf52840_hal::uarte::{Baudrate, Parity, Pins, Uarte, UarteRx, UarteTx};
use tinyrnn::store::Layout;

/// First byte of the model store in flash (`MODEL_STORE` in memory.x).
pub const STORE_ADDR: usize = 0x000F_0000;
/// Bytes of the model store: two 16 KiB slots and a 16 KiB journal (4 NVMC pages of 4 KiB).
pub const STORE_LEN: usize = 48 * 1024;
/// The store inside it (offsets relative to [`STORE_ADDR`], as `Nvmc` takes them).
pub const STORE_LAYOUT: Layout = Layout::contiguous(0, 16 * 1024, 16 * 1024);

/// nrf52840-hal's NVMC driver (a `NorFlash`: 4-byte words, 4 KiB pages) over the model
/// store's 48 KiB.
pub fn model_flash(nvmc: NVMC) -> Nvmc<NVMC> {
    // SAFETY: 0xF0000..0xFC000 is flash that memory.x keeps out of FLASH (its ASSERT fails
    // the link otherwise), so no code, constant or other `static` lives there, and this is
    // the only slice made of it (called once, with the NVMC peripheral that `take()` gave
    // out once). Nvmc only reads it through this slice and writes it through the NVMC,
    // so no other reference aliases it.
    let storage = unsafe { core::slice::from_raw_parts_mut(STORE_ADDR as *mut u8, STORE_LEN) };
    Nvmc::new(nvmc, storage)
}

/// The DK's virtual COM port (the J-Link's USB serial): UARTE0, TX P0.06, RX P0.08,
/// 115 200 Bd, no parity, no flow control.
pub struct NrfLink {
    tx: UarteTx<UARTE0>,
    rx: UarteRx<UARTE0>,
}

impl NrfLink {
    /// Configures UARTE0 on the VCOM pins (takes port 0).
    pub fn new(uarte: UARTE0, p0: P0) -> Self {
        let port = p0::Parts::new(p0);
        let pins = Pins {
            txd: port.p0_06.into_push_pull_output(Level::High).degrade(),
            rxd: port.p0_08.into_floating_input().degrade(),
            cts: None,
            rts: None,
        };
        let uarte = Uarte::new(uarte, pins, Parity::EXCLUDED, Baudrate::BAUD115200);
        let tx_buf = cortex_m::singleton!(: [u8; 64] = [0; 64]).unwrap();
        let rx_buf = cortex_m::singleton!(: [u8; 1] = [0; 1]).unwrap();
        let (tx, rx) = match uarte.split(tx_buf, rx_buf) {
            Ok(p) => p,
            Err(_) => defmt::panic!("UARTE0 split"),
        };
        NrfLink { tx, rx }
    }
}

impl crate::ota::Link for NrfLink {
    fn try_read(&mut self) -> Option<u8> {
        // read_ready starts a one-byte DMA receive when none runs and reports its end.
        if !self.rx.read_ready().unwrap_or(false) {
            return None;
        }
        let mut b = [0u8; 1];
        match self.rx.read(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let _ = self.tx.write_all(bytes);
    }
}

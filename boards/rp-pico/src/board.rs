//! Raspberry Pi Pico specifics: the 12 MHz crystal, PLLs and the RP2040 TIMER.
//!
//! This is the only module that differs between the real-board crates.

use rp2040_hal::clocks::{init_clocks_and_plls, ClocksManager};
use rp2040_hal::fugit::MicrosDurationU64;
use rp2040_hal::pac::{CLOCKS, PLL_SYS, PLL_USB, RESETS, TIMER, WATCHDOG, XOSC};
use rp2040_hal::timer::{Alarm, Alarm0, Instant, Timer};
use rp2040_hal::Watchdog;

use crate::stream::FrameClock;

/// Name printed at start-up.
pub const BOARD: &str = "rp-pico";

/// The Pico's crystal.
pub const XOSC_HZ: u32 = 12_000_000;

/// 125 MHz system clock from the crystal; the watchdog tick feeds the 1 MHz TIMER.
///
/// # Panics
/// If the crystal or a PLL does not start.
pub fn init_clocks(
    xosc: XOSC,
    clocks: CLOCKS,
    pll_sys: PLL_SYS,
    pll_usb: PLL_USB,
    resets: &mut RESETS,
    watchdog: WATCHDOG,
) -> ClocksManager {
    let mut watchdog = Watchdog::new(watchdog);
    match init_clocks_and_plls(
        XOSC_HZ,
        xosc,
        clocks,
        pll_sys,
        pll_usb,
        resets,
        &mut watchdog,
    ) {
        Ok(c) => c,
        Err(_) => defmt::panic!("clock init failed"),
    }
}

/// ALARM0 of the 64-bit, 1 MHz TIMER ticks the frame period: each tick re-arms it at the
/// previous deadline plus one period (absolute deadlines, so the rate does not drift). The
/// same counter's low word is the microsecond clock.
pub struct PicoClock {
    timer: Timer,
    alarm: Alarm0,
    next: Instant,
    period: MicrosDurationU64,
}

impl PicoClock {
    /// Starts the timer; the first tick comes `period_us` from now.
    ///
    /// # Panics
    /// If ALARM0 is already taken.
    pub fn new(timer: TIMER, resets: &mut RESETS, clocks: &ClocksManager, period_us: u32) -> Self {
        let timer = Timer::new(timer, resets, clocks);
        let mut timer_copy = timer;
        let Some(mut alarm) = timer_copy.alarm_0() else {
            defmt::panic!("ALARM0 already in use");
        };
        let period = MicrosDurationU64::micros(period_us.into());
        let next = timer.get_counter() + period;
        // Fails only for deadlines more than 2³² µs (71 min) ahead.
        let _ = alarm.schedule_at(next);
        PicoClock {
            timer,
            alarm,
            next,
            period,
        }
    }
}

impl FrameClock for PicoClock {
    fn wait_tick(&mut self) {
        // Polls the alarm's ARMED bit. For low power, `self.alarm.enable_interrupt()`, unmask
        // TIMER_IRQ_0 and sleep in `cortex_m::asm::wfi()`.
        while !self.alarm.finished() {
            core::hint::spin_loop();
        }
        self.next += self.period;
        // A deadline already in the past (an overrun) fires at once.
        let _ = self.alarm.schedule_at(self.next);
    }

    fn tick_ready(&mut self) -> bool {
        if !self.alarm.finished() {
            return false;
        }
        self.next += self.period;
        let _ = self.alarm.schedule_at(self.next);
        true
    }

    fn now_us(&mut self) -> u32 {
        self.timer.get_counter_low()
    }

    fn period_us(&self) -> u32 {
        self.period.ticks() as u32
    }
}

// ---- Model updates (binary `rp-pico-ota`) ----

/// Offset in flash of the model store (`MODEL_STORE` in memory.x: the top 48 KiB of 2 MiB).
pub const STORE_OFFSET: usize = 0x1F_4000;
/// Bytes of the model store.
pub const STORE_LEN: usize = 48 * 1024;
/// Two 16 KiB slots and a 16 KiB journal (4 KiB sectors), offsets relative to
/// [`STORE_OFFSET`] as [`crate::flash::StoreFlash`] takes them.
pub const STORE_LAYOUT: tinyrnn::store::Layout =
    tinyrnn::store::Layout::contiguous(0, 16 * 1024, 16 * 1024);

/// The update link: UART0 on GP0 (TX) / GP1 (RX), 115 200 Bd, 8N1 (a USB-serial adapter, or
/// a Debug Probe's UART pins). Its 32-byte RX FIFO is read between frames.
pub struct PicoLink<D: rp2040_hal::uart::UartDevice, P: rp2040_hal::uart::ValidUartPinout<D>> {
    uart: rp2040_hal::uart::UartPeripheral<rp2040_hal::uart::Enabled, D, P>,
}

impl<D: rp2040_hal::uart::UartDevice, P: rp2040_hal::uart::ValidUartPinout<D>> PicoLink<D, P> {
    /// Wraps an enabled UART.
    pub fn new(uart: rp2040_hal::uart::UartPeripheral<rp2040_hal::uart::Enabled, D, P>) -> Self {
        PicoLink { uart }
    }
}

impl<D: rp2040_hal::uart::UartDevice, P: rp2040_hal::uart::ValidUartPinout<D>> crate::ota::Link
    for PicoLink<D, P>
{
    fn try_read(&mut self) -> Option<u8> {
        if !self.uart.uart_is_readable() {
            return None;
        }
        let mut b = [0u8; 1];
        match self.uart.read_raw(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.uart.write_full_blocking(bytes);
    }
}

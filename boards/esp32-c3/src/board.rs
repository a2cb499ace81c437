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

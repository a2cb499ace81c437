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
}

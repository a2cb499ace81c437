//! WeAct Black Pill (STM32F411CE) specifics: the 25 MHz crystal, PLL, TIM2 and TIM5.
//!
//! This is the only module that differs between the real-board crates.

use stm32f4xx_hal::pac::{RCC, TIM2, TIM5};
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::{Config, Rcc};
use stm32f4xx_hal::timer::CounterUs;

use crate::stream::FrameClock;

/// Name printed at start-up.
pub const BOARD: &str = "stm32f411-blackpill";

/// 100 MHz SYSCLK from the Black Pill's 25 MHz HSE crystal (APB1 50 MHz, timers 100 MHz).
/// TODO(clock): boards without an HSE crystal: `Config::hsi()`.
pub fn init_clocks(rcc: RCC) -> Rcc {
    rcc.freeze(Config::hse(25.MHz()).sysclk(100.MHz()))
}

/// TIM2 (32-bit) ticks the frame period: its update event comes from auto-reload in hardware,
/// so the period does not drift. TIM5 (32-bit) free-runs as the microsecond counter.
pub struct BlackPillClock {
    tick: CounterUs<TIM2>,
    free: CounterUs<TIM5>,
    period_us: u32,
}

impl BlackPillClock {
    /// Starts both timers; the first tick comes `period_us` from now.
    ///
    /// # Panics
    /// If `period_us` is below 2.
    pub fn new(tim2: TIM2, tim5: TIM5, rcc: &mut Rcc, period_us: u32) -> Self {
        let mut tick = tim2.counter_us(rcc);
        let mut free = tim5.counter_us(rcc);
        if tick.start(period_us.micros()).is_err() || free.start(u32::MAX.micros()).is_err() {
            defmt::panic!("timer period out of range");
        }
        BlackPillClock {
            tick,
            free,
            period_us,
        }
    }
}

impl FrameClock for BlackPillClock {
    fn wait_tick(&mut self) {
        // Polls TIM2's update flag. For low power, `self.tick.listen(Event::Update)`, unmask
        // TIM2 in the NVIC and sleep in `cortex_m::asm::wfi()`.
        let _ = nb::block!(self.tick.wait());
    }

    fn now_us(&mut self) -> u32 {
        self.free.now().ticks()
    }

    fn period_us(&self) -> u32 {
        self.period_us
    }
}

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

    fn tick_ready(&mut self) -> bool {
        self.tick.wait().is_ok()
    }

    fn now_us(&mut self) -> u32 {
        self.free.now().ticks()
    }

    fn period_us(&self) -> u32 {
        self.period_us
    }
}

// ---- Model updates (binary `stm32f411-blackpill-ota`) ----

/// Offset in flash of the model store (sector 1; memory.x keeps sectors 1-4 free).
pub const STORE_OFFSET: u32 = 0x4000;
/// Bytes of the store as the store sees them: four 16 KiB units (sectors 1, 2, 3 and the
/// first 16 KiB of sector 4).
pub const STORE_LEN: usize = 64 * 1024;
/// Slot A = sector 1, slot B = sector 2, journal = sector 3 + sector 4 (offsets relative
/// to [`STORE_OFFSET`], as [`crate::flash::StoreFlash`] takes them).
pub const STORE_LAYOUT: tinyrnn::store::Layout =
    tinyrnn::store::Layout::contiguous(0, 16 * 1024, 32 * 1024);

/// The update link: USART1 on PA9 (TX) / PA10 (RX), 115 200 Bd, 8N1 (a USB-serial adapter).
/// It has a one-byte receive register: the block protocol of `ota` reads each block at once.
pub struct BlackPillLink {
    serial: stm32f4xx_hal::serial::Serial<stm32f4xx_hal::pac::USART1>,
}

impl BlackPillLink {
    /// Wraps a configured USART1.
    pub fn new(serial: stm32f4xx_hal::serial::Serial<stm32f4xx_hal::pac::USART1>) -> Self {
        BlackPillLink { serial }
    }
}

impl crate::ota::Link for BlackPillLink {
    fn try_read(&mut self) -> Option<u8> {
        embedded_hal_nb::serial::Read::read(&mut self.serial).ok()
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let _ = nb::block!(embedded_hal_nb::serial::Write::write(&mut self.serial, b));
        }
        let _ = nb::block!(embedded_hal_nb::serial::Write::flush(&mut self.serial));
    }
}

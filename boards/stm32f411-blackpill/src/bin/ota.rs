//! The update firmware: runs the newest valid model of the flash model store (or the built-in
//! one) on the recording, replayed over and over, and receives signed model updates over
//! USART1 (PA9 = TX, PA10 = RX, 115 200 Bd) while it streams; a verified update is committed
//! to the inactive slot and the stream restarts on it.
//!
//! `cargo run --release --bin stm32f411-blackpill-ota`; how to send a blob:
//! boards/REAL_BOARDS.md.
#![no_std]
#![no_main]

use defmt_rtt as _; // global logger
use panic_probe as _; // panic handler: prints the message over defmt, then halts
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::serial::{Config, Serial};

use stm32f411_blackpill::board::{self, BlackPillClock, BlackPillLink};
use stm32f411_blackpill::flash::StoreFlash;
use stm32f411_blackpill::{ota, FRAME_PERIOD_US};

#[cortex_m_rt::entry]
fn main() -> ! {
    let dp = pac::Peripherals::take().unwrap();
    let mut rcc = board::init_clocks(dp.RCC);
    defmt::info!("board={=str} (model updates)", board::BOARD);
    let mut store = match ota::open(StoreFlash::new(dp.FLASH), board::STORE_LAYOUT) {
        Ok(s) => s,
        Err(e) => defmt::panic!("model store: {=str}", ota::reason(&e)),
    };
    let gpioa = dp.GPIOA.split(&mut rcc);
    let serial = match Serial::new(
        dp.USART1,
        (gpioa.pa9, gpioa.pa10),
        Config::default().baudrate(115_200.bps()),
        &mut rcc,
    ) {
        Ok(s) => s,
        Err(_) => defmt::panic!("USART1 configuration"),
    };
    let mut link = BlackPillLink::new(serial);
    let bufs = cortex_m::singleton!(: ota::Buffers = ota::Buffers::new()).unwrap();
    let mut clock = BlackPillClock::new(dp.TIM2, dp.TIM5, &mut rcc, FRAME_PERIOD_US);
    ota::serve(&mut store, bufs, &mut link, &mut clock)
}

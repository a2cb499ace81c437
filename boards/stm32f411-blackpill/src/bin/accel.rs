//! Live-sensor variant: an LIS3DH accelerometer on I2C1 (SCL = PB6, SDA = PB7) sampled every
//! 10 ms by TIM2, classified in windows.
//!
//! The embedded model must take 3 features per frame (X/Y/Z counts, see
//! `../board-support/src/lis3dh.rs`); build with `TINYRNN_DATASET=/path/to/your/dataset.txt` (an
//! absolute path) to embed such a model. With the default JapaneseVowels model (12 features) this binary stops at start-up with
//! `model takes 12 features per frame, the LIS3DH gives 3`.
//!
//! `cargo run --release --bin stm32f411-blackpill-accel`
#![no_std]
#![no_main]

use defmt_rtt as _;
use panic_probe as _;
use stm32f4xx_hal::i2c::I2c;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;

use stm32f411_blackpill::board::{self, BlackPillClock};
use stm32f411_blackpill::lis3dh::{self, Lis3dh};
use stm32f411_blackpill::stream;

/// Sample period: 100 Hz, the rate the LIS3DH is configured for.
const SAMPLE_PERIOD_US: u32 = 10_000;
/// Frames per decision: 1.28 s of motion at 100 Hz. Match what the model was trained on.
const WINDOW: u32 = 128;

#[cortex_m_rt::entry]
fn main() -> ! {
    let dp = pac::Peripherals::take().unwrap();
    let mut rcc = board::init_clocks(dp.RCC);
    defmt::info!("board={=str} source=lis3dh", board::BOARD);

    let model = match stream::load_model() {
        Ok(m) => m,
        Err(e) => defmt::panic!("invalid model blob: {}", e),
    };
    if model.input_size() != lis3dh::AXES {
        defmt::panic!(
            "model takes {=usize} features per frame, the LIS3DH gives {=usize}",
            model.input_size(),
            lis3dh::AXES
        );
    }

    // TODO(wiring): change the pins if your sensor is elsewhere (I2C1 also maps to PB8/PB9).
    let gpiob = dp.GPIOB.split(&mut rcc);
    let i2c = I2c::new(dp.I2C1, (gpiob.pb6, gpiob.pb7), 400.kHz(), &mut rcc);
    let mut sensor = match Lis3dh::new(i2c, lis3dh::ADDR_SDO_LOW) {
        Ok(s) => s,
        Err(e) => defmt::panic!("LIS3DH not found: {}", e),
    };

    let mut clock = BlackPillClock::new(dp.TIM2, dp.TIM5, &mut rcc, SAMPLE_PERIOD_US);
    let mut cfg = tinyrnn::Config::default();
    cfg.window = Some(WINDOW);
    cfg.smoothing = true;
    // Runs until the sensor fails (a continuous source is never exhausted).
    if let Err(e) = stream::run(&model, &mut sensor, &mut clock, cfg, None) {
        defmt::error!("stopped: {}", e);
    }
    loop {
        cortex_m::asm::wfi();
    }
}

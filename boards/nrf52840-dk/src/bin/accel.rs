//! Live-sensor variant: an LIS3DH accelerometer on TWIM0 (SCL = P0.27, SDA = P0.26, the
//! DK's Arduino-header I²C pins) sampled every 10 ms by TIMER0, classified in windows.
//!
//! The embedded model must take 3 features per frame (X/Y/Z counts, see
//! `../board-support/src/lis3dh.rs`); build with `TINYRNN_DATASET=/path/to/your/dataset.txt` (an
//! absolute path) to embed such a model. With the default JapaneseVowels model (12 features) this binary stops at start-up with
//! `model takes 12 features per frame, the LIS3DH gives 3`.
//!
//! `cargo run --release --bin nrf52840-dk-accel`
#![no_std]
#![no_main]

use defmt_rtt as _;
use nrf52840_hal::gpio::p0;
use nrf52840_hal::pac;
use nrf52840_hal::twim::{self, Twim};
use panic_probe as _;

use nrf52840_dk::board::{self, NrfClock};
use nrf52840_dk::lis3dh::{self, Lis3dh};
use nrf52840_dk::stream;

/// Sample period: 100 Hz, the rate the LIS3DH is configured for.
const SAMPLE_PERIOD_US: u32 = 10_000;
/// Frames per decision: 1.28 s of motion at 100 Hz. Match what the model was trained on.
const WINDOW: u32 = 128;

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = pac::Peripherals::take().unwrap();
    board::init_clocks(p.CLOCK);
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

    // TODO(wiring): change the pins if your sensor is elsewhere.
    let port0 = p0::Parts::new(p.P0);
    let pins = twim::Pins {
        scl: port0.p0_27.into_floating_input().degrade(),
        sda: port0.p0_26.into_floating_input().degrade(),
    };
    let i2c = Twim::new(p.TWIM0, pins, twim::Frequency::K400);
    let mut sensor = match Lis3dh::new(i2c, lis3dh::ADDR_SDO_LOW) {
        Ok(s) => s,
        Err(e) => defmt::panic!("LIS3DH not found: {}", e),
    };

    let mut clock = NrfClock::new(p.TIMER0, p.TIMER1, SAMPLE_PERIOD_US);
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

//! Replays the embedded recording through the embedded model at the recording's real frame
//! rate (one frame per TIM2 update) and logs one decision per sequence over defmt-RTT.
//!
//! `cargo run --release` (see README.md for the expected output).
#![no_std]
#![no_main]

use defmt_rtt as _; // global logger
use panic_probe as _; // panic handler: prints the message over defmt, then halts
use stm32f4xx_hal::pac;

use stm32f411_blackpill::board::{self, BlackPillClock};
use stm32f411_blackpill::{data, stream, Replay, FRAME_PERIOD_US};

#[cortex_m_rt::entry]
fn main() -> ! {
    let dp = pac::Peripherals::take().unwrap();
    let mut rcc = board::init_clocks(dp.RCC);
    defmt::info!(
        "board={=str} seqs={=usize} frames={=usize}",
        board::BOARD,
        data::N_SEQ,
        data::N_FRAMES
    );

    // The blob is validated here, once; a corrupt or foreign blob stops the firmware.
    let model = match stream::load_model() {
        Ok(m) => m,
        Err(e) => defmt::panic!("invalid model blob: {}", e),
    };

    let mut clock = BlackPillClock::new(dp.TIM2, dp.TIM5, &mut rcc, FRAME_PERIOD_US);
    let mut source = Replay::new();
    let cfg = tinyrnn::Config::default(); // sequences end where the recording says
    match stream::run(&model, &mut source, &mut clock, cfg, Some(&data::LABELS)) {
        Ok(_) => defmt::info!("done"),
        Err(e) => defmt::error!("stopped: {}", e),
    }
    loop {
        cortex_m::asm::wfi();
    }
}

//! Replays the embedded recording through the embedded model at the recording's real frame
//! rate (one frame per TIMER0 tick) and logs one decision per sequence over defmt-RTT.
//!
//! `cargo run --release` (see README.md for the expected output).
#![no_std]
#![no_main]

use defmt_rtt as _; // global logger
use nrf52840_hal::pac;
use panic_probe as _; // panic handler: prints the message over defmt, then halts

use nrf52840_dk::board::{self, NrfClock};
use nrf52840_dk::{data, stream, Replay, FRAME_PERIOD_US};

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = pac::Peripherals::take().unwrap();
    board::init_clocks(p.CLOCK);
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

    let mut clock = NrfClock::new(p.TIMER0, p.TIMER1, FRAME_PERIOD_US);
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

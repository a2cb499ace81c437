//! Replays the embedded recording through the embedded model at the recording's real frame
//! rate (one frame per TIMG0 period) and logs one decision per sequence over defmt
//! (esp-println, decoded by `espflash monitor --log-format defmt`).
//!
//! `cargo run --release` (see README.md for the expected output).
#![no_std]
#![no_main]

use esp_backtrace as _; // panic handler
use esp_hal::clock::CpuClock;
use esp_hal::timer::timg::TimerGroup;
use esp_hal::timer::PeriodicTimer;
use esp_println as _; // defmt global logger

use esp32_c3::board::{self, EspClock};
use esp32_c3::{data, stream, Replay, FRAME_PERIOD_US};

// The app descriptor the ESP-IDF bootloader checks (espflash refuses images without it).
esp_bootloader_esp_idf::esp_app_desc!();

#[esp_hal::main]
fn main() -> ! {
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
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

    let timg0 = TimerGroup::new(p.TIMG0);
    let mut clock = EspClock::new(PeriodicTimer::new(timg0.timer0), FRAME_PERIOD_US);
    let mut source = Replay::new();
    let cfg = tinyrnn::Config::default(); // sequences end where the recording says
    match stream::run(&model, &mut source, &mut clock, cfg, Some(&data::LABELS)) {
        Ok(_) => defmt::info!("done"),
        Err(e) => defmt::error!("stopped: {}", e),
    }
    loop {
        core::hint::spin_loop();
    }
}

//! Replays the embedded recording through the embedded model at the recording's real frame
//! rate (one frame per TIMER alarm) and logs one decision per sequence over defmt-RTT.
//!
//! `cargo run --release` (see README.md for the expected output).
#![no_std]
#![no_main]

use defmt_rtt as _; // global logger
use panic_probe as _; // panic handler: prints the message over defmt, then halts
use rp2040_hal::pac;

use rp_pico::board::{self, PicoClock};
use rp_pico::{data, stream, Replay, FRAME_PERIOD_US};

/// Second-stage bootloader for the Pico's W25Q080 flash, placed at 0x1000_0000 by memory.x.
/// TODO(flash): other RP2040 boards may need another one (`rp2040_boot2::BOOT_LOADER_*`).
#[link_section = ".boot2"]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

#[rp2040_hal::entry]
fn main() -> ! {
    let mut p = pac::Peripherals::take().unwrap();
    let clocks = board::init_clocks(
        p.XOSC,
        p.CLOCKS,
        p.PLL_SYS,
        p.PLL_USB,
        &mut p.RESETS,
        p.WATCHDOG,
    );
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

    let mut clock = PicoClock::new(p.TIMER, &mut p.RESETS, &clocks, FRAME_PERIOD_US);
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

//! The update firmware: runs the newest valid model of the flash model store (or the built-in
//! one) on the recording, replayed over and over, and receives signed model updates over
//! UART0 (GP0 = TX, GP1 = RX, 115 200 Bd) while it streams; a verified update is committed to
//! the inactive slot and the stream restarts on it.
//!
//! `cargo run --release --bin rp-pico-ota`; how to send a blob: boards/REAL_BOARDS.md.
#![no_std]
#![no_main]

use defmt_rtt as _; // global logger
use panic_probe as _; // panic handler: prints the message over defmt, then halts
use rp2040_hal::fugit::RateExtU32;
use rp2040_hal::gpio::{FunctionUart, Pins};
use rp2040_hal::uart::{DataBits, StopBits, UartConfig, UartPeripheral};
use rp2040_hal::{pac, Clock, Sio};

use rp_pico::board::{self, PicoClock, PicoLink};
use rp_pico::flash::StoreFlash;
use rp_pico::{ota, FRAME_PERIOD_US};

/// The second-stage bootloader for the Pico's W25Q080 flash (placed by memory.x).
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
    defmt::info!("board={=str} (model updates)", board::BOARD);
    // Core 1 is never started and no DMA channel is used: the conditions of StoreFlash.
    let mut store = match ota::open(StoreFlash::new(), board::STORE_LAYOUT) {
        Ok(s) => s,
        Err(e) => defmt::panic!("model store: {=str}", ota::reason(&e)),
    };
    let sio = Sio::new(p.SIO);
    let pins = Pins::new(p.IO_BANK0, p.PADS_BANK0, sio.gpio_bank0, &mut p.RESETS);
    let uart_pins = (
        pins.gpio0.into_function::<FunctionUart>(),
        pins.gpio1.into_function::<FunctionUart>(),
    );
    let uart = match UartPeripheral::new(p.UART0, uart_pins, &mut p.RESETS).enable(
        UartConfig::new(115_200.Hz(), DataBits::Eight, None, StopBits::One),
        clocks.peripheral_clock.freq(),
    ) {
        Ok(u) => u,
        Err(_) => defmt::panic!("UART0 configuration"),
    };
    let mut link = PicoLink::new(uart);
    let bufs = cortex_m::singleton!(: ota::Buffers = ota::Buffers::new()).unwrap();
    let mut clock = PicoClock::new(p.TIMER, &mut p.RESETS, &clocks, FRAME_PERIOD_US);
    ota::serve(&mut store, bufs, &mut link, &mut clock)
}

//! The update firmware: runs the newest valid model of the flash model store (or the built-in
//! one) on the recording, replayed over and over, and receives signed model updates over
//! UART1 (GPIO4 = RX, GPIO5 = TX, 115 200 Bd) while it streams; a verified update is committed
//! to the inactive slot and the stream restarts on it.
//!
//! `cargo run --release --bin esp32-c3-ota`; how to send a blob: boards/REAL_BOARDS.md.
#![no_std]
#![no_main]

use esp_backtrace as _; // panic handler
use esp_hal::clock::CpuClock;
use esp_hal::timer::timg::TimerGroup;
use esp_hal::timer::PeriodicTimer;
use esp_hal::uart::{Config, Uart};
use esp_println as _; // defmt global logger

use esp32_c3::board::{self, EspClock, EspLink};
use esp32_c3::{ota, FRAME_PERIOD_US};

// The app descriptor the ESP-IDF bootloader checks (espflash refuses images without it).
esp_bootloader_esp_idf::esp_app_desc!();

#[esp_hal::main]
fn main() -> ! {
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    defmt::info!("board={=str} (model updates)", board::BOARD);
    let mut store = match ota::open(board::model_flash(p.FLASH), board::STORE_LAYOUT) {
        Ok(s) => s,
        Err(e) => defmt::panic!("model store: {=str}", ota::reason(&e)),
    };
    let uart = match Uart::new(p.UART1, Config::default().with_baudrate(115_200)) {
        Ok(u) => u.with_rx(p.GPIO4).with_tx(p.GPIO5),
        Err(e) => defmt::panic!("UART1: {}", e),
    };
    let mut link = EspLink::new(uart);
    // 32 KiB of buffers: static, not on the stack.
    static BUFS: static_cell::ConstStaticCell<ota::Buffers> =
        static_cell::ConstStaticCell::new(ota::Buffers::new());
    let bufs = BUFS.take();
    let timg0 = TimerGroup::new(p.TIMG0);
    let mut clock = EspClock::new(PeriodicTimer::new(timg0.timer0), FRAME_PERIOD_US);
    ota::serve(&mut store, bufs, &mut link, &mut clock)
}

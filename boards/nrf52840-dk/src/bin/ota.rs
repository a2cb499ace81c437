//! The update firmware: runs the newest valid model of the flash model store (or the built-in
//! one) on the recording, replayed over and over, and receives signed model updates over the
//! DK's virtual COM port (UARTE0, 115 200 Bd) while it streams; a verified update is
//! committed to the inactive slot and the stream restarts on it.
//!
//! `cargo run --release --bin nrf52840-dk-ota`; how to send a blob: boards/REAL_BOARDS.md.
#![no_std]
#![no_main]

use defmt_rtt as _; // global logger
use nrf52840_hal::pac;
use panic_probe as _; // panic handler: prints the message over defmt, then halts

use nrf52840_dk::board::{self, NrfClock, NrfLink};
use nrf52840_dk::{ota, FRAME_PERIOD_US};

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = pac::Peripherals::take().unwrap();
    board::init_clocks(p.CLOCK);
    defmt::info!("board={=str} (model updates)", board::BOARD);
    let mut store = match ota::open(board::model_flash(p.NVMC), board::STORE_LAYOUT) {
        Ok(s) => s,
        Err(e) => defmt::panic!("model store: {=str}", ota::reason(&e)),
    };
    let bufs = cortex_m::singleton!(: ota::Buffers = ota::Buffers::new()).unwrap();
    let mut link = NrfLink::new(p.UARTE0, p.P0);
    let mut clock = NrfClock::new(p.TIMER0, p.TIMER1, FRAME_PERIOD_US);
    ota::serve(&mut store, bufs, &mut link, &mut clock)
}

//! Board-independent part of the tinyrnn board firmware.
//!
//! One copy for the four real-board crates (`boards/nrf52840-dk`, `boards/rp-pico`,
//! `boards/stm32f411-blackpill`, `boards/esp32-c3`), which re-export it from their own
//! `lib.rs`, and for the QEMU boards' `boards/qemu-common` (the data and [`line`] only). A board
//! supplies only what differs: clocks, the hardware timer ([`FrameClock`]) and, for a live
//! sensor, the bus behind a [`FrameSource`]. It brings no global logger, panic handler or
//! link script: those are the board's.
//!
//! * [`data`]: the model blob and recording embedded by `build.rs`.
//! * [`source`]: where frames come from: [`FrameSource`], the recording [`Replay`].
//! * `lis3dh` (feature `lis3dh`, on by default): a live-sensor [`FrameSource`] (LIS3DH
//!   accelerometer over any `embedded-hal` 1.0 I²C bus).
//! * [`stream`]: the loop: one frame per timer tick into a [`tinyrnn::Classifier`],
//!   one `seq=<i> class=<c> logits=<v0>,<v1>,...` line per sequence.
//! * [`line`]: the result lines, formatted without `core::fmt`.
//! * `ota` (feature `ota`): model updates over a serial link into a
//!   [`tinyrnn::store::ModelStore`] on the board's flash, verified (signature, version,
//!   fit) before they are activated.
#![no_std]

pub mod data;
pub mod line;
#[cfg(feature = "lis3dh")]
pub mod lis3dh;
#[cfg(feature = "ota")]
pub mod ota;
pub mod source;
pub mod stream;

pub use source::{Frame, FrameSource, Replay};
pub use stream::{run, run_polled, Control, FrameClock, Report};

/// Frame period of the bundled recording, in microseconds.
///
/// The recording is JapaneseVowels (UCI): 12 LPC cepstrum coefficients per frame, computed
/// from 10 kHz speech with 25.6 ms analysis windows every **6.4 ms**, so a frame arrives
/// every 6.4 ms (156.25 frames/s). Replaying at this rate reproduces the real-time load of
/// a live front end. Change it here if you embed another recording.
pub const FRAME_PERIOD_US: u32 = 6_400;

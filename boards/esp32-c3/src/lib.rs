//! Board-independent part of the tinyrnn real-board examples.
//!
//! This file and its modules are identical in `boards/nrf52840-dk`, `boards/rp-pico`,
//! `boards/stm32f411-blackpill` and `boards/esp32-c3` (`boards/REAL_BOARDS.md` has the check),
//! so each board crate stays self-contained and can be copied out on its own. The board's
//! binary supplies only what differs: clocks, the hardware timer ([`FrameClock`]) and, for a
//! live sensor, a [`FrameSource`].
//!
//! * [`board`]: **the only board-specific module**: clocks and the hardware timers behind
//!   [`FrameClock`].
//! * [`data`]: the model blob and recording embedded by `build.rs`.
//! * [`source`]: where frames come from: [`FrameSource`], the recording [`Replay`].
//! * [`lis3dh`]: a live-sensor [`FrameSource`] (LIS3DH accelerometer over any
//!   `embedded-hal` 1.0 I²C bus).
//! * [`stream`]: the loop: one frame per timer tick into a [`tinyrnn::Classifier`],
//!   one `seq=<i> class=<c> logits=<v0>,<v1>,...` line per sequence.
#![no_std]

pub mod board;
pub mod data;
pub mod line;
pub mod lis3dh;
pub mod source;
pub mod stream;

pub use source::{Frame, FrameSource, Replay};
pub use stream::{run, FrameClock, Report};

/// Frame period of the bundled recording, in microseconds.
///
/// The recording is JapaneseVowels (UCI): 12 LPC cepstrum coefficients per frame, computed
/// from 10 kHz speech with 25.6 ms analysis windows every **6.4 ms**, so a frame arrives
/// every 6.4 ms (156.25 frames/s). Replaying at this rate reproduces the real-time load of
/// a live front end. Change it here if you embed another recording.
pub const FRAME_PERIOD_US: u32 = 6_400;

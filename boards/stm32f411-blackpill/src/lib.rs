//! tinyrnn on the STM32F411 Black Pill: the board-specific module [`board`] (clocks, the hardware
//! timers behind [`FrameClock`]) plus everything of `tinyrnn-board-support`
//! (`../board-support`), re-exported so the binaries say
//! `stm32f411_blackpill::{data, stream, Replay, ...}`.
//!
//! * [`data`]: the model blob and recording embedded by the support crate's `build.rs`.
//! * [`source`]: where frames come from: [`FrameSource`], the recording [`Replay`].
//! * [`lis3dh`]: a live-sensor [`FrameSource`] (LIS3DH accelerometer over any
//!   `embedded-hal` 1.0 I²C bus).
//! * [`stream`]: the loop: one frame per timer tick into a [`tinyrnn::Classifier`],
//!   one `seq=<i> class=<c> logits=<v0>,<v1>,...` line per sequence.
#![no_std]

pub mod board;
pub mod flash;

pub use tinyrnn_board_support::*;

//! A live-sensor [`FrameSource`]: an ST LIS3DH accelerometer on any `embedded-hal` 1.0 I²C bus.
//!
//! Each call to [`FrameSource::next_frame`] reads one X/Y/Z sample (6 bytes from `OUT_X_L`,
//! auto-increment) and writes the three raw counts, as `f32`, into the frame. With the
//! configuration below (100 Hz, ±2 g, high-resolution 12-bit) one count is 1 mg. The model
//! must have been trained on the same units: raw counts, with the blob's normalization
//! (`tinyrnn quantize --normalize`) mapping them to model space.
//!
//! Wiring (Adafruit LIS3DH breakout or similar): VIN→3V3, GND→GND, SCL/SDA to the board's
//! I²C pins (pull-ups are on the breakout), SDO→GND for address `0x18` ([`ADDR_SDO_LOW`])
//! or SDO→3V3 for `0x19`.
//!
//! To plug in another sensor, copy this file: `new` checks the chip ID and configures it,
//! `next_frame` reads one sample into the frame.

use embedded_hal::i2c::{ErrorKind, I2c};

use crate::source::{Frame, FrameSource};

/// I²C address with SDO/SA0 tied low.
pub const ADDR_SDO_LOW: u8 = 0x18;
/// I²C address with SDO/SA0 tied high.
pub const ADDR_SDO_HIGH: u8 = 0x19;
/// Values per frame: X, Y, Z.
pub const AXES: usize = 3;

const WHO_AM_I: u8 = 0x0F;
const WHO_AM_I_VALUE: u8 = 0x33;
const CTRL_REG1: u8 = 0x20;
const CTRL_REG4: u8 = 0x23;
const OUT_X_L: u8 = 0x28;
/// Sub-address bit 7: auto-increment over consecutive registers.
const AUTO_INCREMENT: u8 = 0x80;
/// ODR = 100 Hz (0101), normal power, X/Y/Z enabled.
const CTRL_REG1_100HZ_XYZ: u8 = 0b0101_0111;
/// BDU = 1 (no torn samples), ±2 g, HR = 1 (12-bit).
const CTRL_REG4_BDU_2G_HR: u8 = 0b1000_1000;

/// What can go wrong talking to the sensor.
#[derive(Debug, defmt::Format)]
pub enum Lis3dhError {
    /// The bus reported an error (NACK, arbitration loss, …).
    Bus(ErrorKind),
    /// `WHO_AM_I` did not read `0x33`: wrong address or not a LIS3DH.
    WrongChip(u8),
    /// The frame is not [`AXES`] wide: the model was not trained on this sensor.
    Width(usize),
}

fn bus<E: embedded_hal::i2c::Error>(e: E) -> Lis3dhError {
    Lis3dhError::Bus(e.kind())
}

/// An LIS3DH streaming X/Y/Z frames.
pub struct Lis3dh<I> {
    i2c: I,
    addr: u8,
}

impl<I: I2c> Lis3dh<I> {
    /// Checks the chip ID and starts 100 Hz, ±2 g, 12-bit sampling.
    ///
    /// # Errors
    /// [`Lis3dhError::Bus`] or [`Lis3dhError::WrongChip`].
    pub fn new(mut i2c: I, addr: u8) -> Result<Self, Lis3dhError> {
        let mut id = [0u8];
        i2c.write_read(addr, &[WHO_AM_I], &mut id).map_err(bus)?;
        if id[0] != WHO_AM_I_VALUE {
            return Err(Lis3dhError::WrongChip(id[0]));
        }
        i2c.write(addr, &[CTRL_REG1, CTRL_REG1_100HZ_XYZ])
            .map_err(bus)?;
        i2c.write(addr, &[CTRL_REG4, CTRL_REG4_BDU_2G_HR])
            .map_err(bus)?;
        Ok(Lis3dh { i2c, addr })
    }

    /// One sample in counts (1 mg each in this configuration).
    ///
    /// # Errors
    /// [`Lis3dhError::Bus`].
    pub fn read_counts(&mut self) -> Result<[i16; AXES], Lis3dhError> {
        let mut raw = [0u8; 2 * AXES];
        self.i2c
            .write_read(self.addr, &[OUT_X_L | AUTO_INCREMENT], &mut raw)
            .map_err(bus)?;
        // Left-justified 12-bit two's complement, little-endian per axis.
        Ok([0, 1, 2].map(|a| i16::from_le_bytes([raw[2 * a], raw[2 * a + 1]]) >> 4))
    }

    /// Gives the bus back.
    pub fn release(self) -> I {
        self.i2c
    }
}

impl<I: I2c> FrameSource for Lis3dh<I> {
    type Error = Lis3dhError;

    /// Never exhausted, never ends a sequence: use the classifier's `window`.
    fn next_frame(&mut self, out: &mut [f32]) -> Result<Option<Frame>, Self::Error> {
        if out.len() != AXES {
            return Err(Lis3dhError::Width(out.len()));
        }
        let xyz = self.read_counts()?;
        for (o, v) in out.iter_mut().zip(xyz) {
            *o = f32::from(v);
        }
        Ok(Some(Frame::Continues))
    }
}

//! The smallest useful tinyrnn firmware: the int8 JapaneseVowels LSTM (boards/template's blob,
//! embedded) classifies utterances streamed from a sensor, with only the `lstm` and `int8`
//! features, no logging, no semihosting and `panic-halt`. `cargo xtask size minimal` builds it
//! for the Cortex-M0 (`thumbv6m-none-eabi`) and the Cortex-M4F (`thumbv7em-none-eabihf`) and
//! prints its sections with a per-symbol breakdown: the footprint a product pays for
//! tinyrnn, everything but the blob (`.rodata`) included.
//!
//! It is built, not run: the "sensor" and the "output pin" are stand-ins read and written
//! with volatile accesses, so the compiler can fold nothing away (the QEMU boards and
//! `boards/template` run the same model and check its output).
#![no_std]
#![no_main]

use core::ptr;

use cortex_m_rt::entry;
use panic_halt as _;
use tinyrnn::{Classifier, Config};

#[path = "../../template/src/model.rs"]
mod model; // the template's generated module: dims, the blob, sized types

/// Frames per utterance the stand-in sensor delivers.
const FRAMES: usize = 16;

/// The stand-in sensor's sample buffer (a DMA target on a real board).
static SAMPLES: [f32; model::INPUT] = [0.0; model::INPUT];

/// One raw frame from the sensor.
fn read_frame() -> [f32; model::INPUT] {
    core::array::from_fn(|j| {
        // SAFETY: a valid, aligned reference to an element of a static.
        unsafe { ptr::read_volatile(&SAMPLES[j]) }
    })
}

/// Where the decision goes (a GPIO output register on a real board).
fn emit(value: u32) {
    static mut OUT: u32 = 0;
    // SAFETY: single-threaded firmware; a raw pointer to a static, no reference is formed.
    unsafe { ptr::write_volatile(ptr::addr_of_mut!(OUT), value) }
}

/// Classifies forever; returns only on an error.
fn run() -> tinyrnn::Result<core::convert::Infallible> {
    let model = model::model()?;
    let mut clf: model::Classifier<'_, 1> = Classifier::new(&model, Config::default())?;
    loop {
        for _ in 0..FRAMES {
            clf.push(&read_frame())?;
        }
        let d = clf.end_sequence()?;
        emit(u32::from(d.class));
    }
}

#[entry]
fn main() -> ! {
    let Err(_) = run();
    emit(u32::MAX);
    loop {
        core::hint::spin_loop();
    }
}

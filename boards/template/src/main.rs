//! A complete tinyrnn firmware, to copy: the int8 JapaneseVowels LSTM classifies utterances
//! frame by frame as they arrive. The top-level README.md ("Your own firmware") explains each
//! part; `cargo xtask template` builds it for the Cortex-M4F and the Cortex-M0, runs both
//! under QEMU and compares what they print with `tinyrnn run --raw` on the PC.
#![no_std]
#![no_main]

// ANCHOR: runtime
// The critical-section implementation (Cargo.toml: feature critical-section-single-core).
use cortex_m as _;
// Start-up code: `#[entry]` marks `main`.
use cortex_m_rt::entry;
// The defmt global logger.
use defmt_semihosting as _;
// ANCHOR_END: runtime

// ANCHOR: snippet
use tinyrnn::{Classifier, Config};

mod model; // written by `tinyrnn codegen`: dims as consts, the blob, types sized for it
mod sensor; // your sensor driver (here: a stand-in replaying 8 recorded utterances)

fn run() -> tinyrnn::Result<()> {
    let model = model::model()?; // Model::from_blob(&BLOB.0): checks header, CRC, every shape
    let mut clf: model::Classifier<'_, 1> = Classifier::new(&model, Config::default())?;
    for (seq, utterance) in sensor::utterances().enumerate() {
        for frame in utterance {
            clf.push(&frame)?; // raw sensor values, [f32; model::INPUT]: one step, in place
        }
        let d = clf.end_sequence()?; // many-to-one decision, then reset
        defmt::info!(
            "seq={=usize} class={=u16} score_q={=i16}",
            seq,
            d.class,
            d.score_q
        );
    }
    Ok(())
}
// ANCHOR_END: snippet

#[entry]
fn main() -> ! {
    let status = match run() {
        Ok(()) => 0,
        Err(e) => {
            defmt::error!("tinyrnn: {}", e);
            1
        }
    };
    semihosting::process::exit(status)
}

// ANCHOR: panic
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Some(at) = info.location() {
        defmt::error!("panic at {=str}:{=u32}", at.file(), at.line());
    }
    semihosting::process::exit(101) // under QEMU; on a board: reset, or halt for the debugger
}
// ANCHOR_END: panic

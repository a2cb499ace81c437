//! Shared firmware logic of the tinyrnn QEMU boards.
//!
//! A board's `main` calls [`run`] with its name. [`run`]:
//!
//! 1. paints the free stack ([`stack::paint`]);
//! 2. validates the embedded blob with [`tinyrnn::Model::from_blob`];
//! 3. feeds every recorded sequence through a [`tinyrnn`] session **one frame at a time**
//!    (buffers sized at compile time from the blob: [`data::STATE`], [`data::SCRATCH`]), reads
//!    the integer outputs with `Session::output_q` and prints
//!    `seq=<i> class=<c> logits=<v0>,<v1>,...` (`class` = argmax, ties → lowest index),
//!    the same line format as the host's `tinyrnn run --raw`;
//! 4. prints `accuracy=<correct>/<n>`; with the feature `graph-models` (default) steps 2–4
//!    repeat for each further dataset (`data::extra`: an MLP head, a pre-net, a windowed
//!    bidirectional GRU), each after a `dataset=<name>` line; a windowed model runs through
//!    `Session::step_window` and gives one output per sequence
//!    (`Session::output_window_q`), as `tinyrnn run` does; then `stack_used=<bytes>`
//!    (high-water mark);
//! 5. exits through semihosting with status 0, or 1 after any error (a panic exits 101).
//!
//! Output goes through defmt (`defmt-semihosting`); the host decodes it with the ELF
//! (`cargo xtask qemu`). The `seq=` / `accuracy=` lines are formatted on the target (no
//! `core::fmt`) and sent as `{=str}`, so the host compares them byte for byte.
#![no_std]

mod run;
pub mod stack;

/// The embedded model and recording (from `dataset.txt`), and the result-line formatter: the
/// real boards' code, from `tinyrnn-board-support` (`../board-support`).
pub use tinyrnn_board_support::{data, line};

use defmt_semihosting as _; // the global logger

pub use run::{argmax, run_recording};

/// Exit status for a run that failed with an error.
pub const EXIT_ERROR: i32 = 1;
/// Exit status after a panic.
pub const EXIT_PANIC: i32 = 101;

/// The whole firmware: paint the stack, run the recording, report, exit.
pub fn run(board: &str) -> ! {
    stack::paint();
    defmt::println!(
        "board={=str} blob={=usize}B seqs={=usize}",
        board,
        data::BLOB.len(),
        data::N_SEQ
    );
    let status = match run_recording() {
        Ok(()) => 0,
        Err(run::Failure::Tinyrnn(e)) => {
            report_error(&e);
            EXIT_ERROR
        }
        Err(run::Failure::Inconsistent(i)) => {
            defmt::println!(
                "error: seq {=usize}: Classifier decision != argmax(output_q)",
                i
            );
            EXIT_ERROR
        }
        Err(run::Failure::LineOverflow) => {
            defmt::println!("error: output line too long");
            EXIT_ERROR
        }
    };
    let used = stack::used();
    let mut line = line::Line::<48>::new();
    line.str("stack_used=").int(used as i64);
    defmt::println!("{=str}", line.as_str());
    defmt::println!("stack_size={=usize}", stack::size());
    exit(status)
}

/// Prints `error: <variant>` (by name: no `core::fmt`, and only `{=str}`/integer
/// parameters, which is what xtask's defmt decoder reads).
fn report_error(e: &tinyrnn::Error) {
    use tinyrnn::Error as E;
    let mut line = line::Line::<80>::new();
    line.str("error: ");
    match e {
        E::Truncated => line.str("Truncated"),
        E::BadMagic => line.str("BadMagic"),
        E::UnsupportedVersion(v) => line.str("UnsupportedVersion(").int(*v as i64).str(")"),
        E::BadChecksum => line.str("BadChecksum"),
        E::TrailingBytes => line.str("TrailingBytes"),
        E::Decode(_) => line.str("Decode"),
        E::BadDimension => line.str("BadDimension"),
        E::ShapeMismatch => line.str("ShapeMismatch"),
        E::BadQuantization => line.str("BadQuantization"),
        E::Unsupported => line.str("Unsupported"),
        E::TooManyLayers => line.str("TooManyLayers"),
        E::TooLarge {
            buffer,
            needed,
            capacity,
        } => {
            line.str("TooLarge { buffer: ").str(buffer.param());
            line.str(", needed: ").int(*needed as i64);
            line.str(", capacity: ").int(*capacity as i64).str(" }")
        }
        E::LengthMismatch { expected, got } => {
            line.str("LengthMismatch { expected: ")
                .int(*expected as i64);
            line.str(", got: ").int(*got as i64).str(" }")
        }
        E::PrecisionMismatch => line.str("PrecisionMismatch"),
        E::NonFinite => line.str("NonFinite"),
        E::WidthMismatch { .. } => line.str("WidthMismatch"),
        E::BadState => line.str("BadState"),
        // a feature left out of this firmware (boards/qemu-common/README.md, "Features")
        E::FeatureDisabled(f) => line.str("FeatureDisabled(").str(f).str(")"),
        E::ZeroWindow => line.str("ZeroWindow"),
        E::SmoothingWithoutHistory => line.str("SmoothingWithoutHistory"),
        _ => line.str("(a tinyrnn::Error this firmware does not name)"),
    };
    defmt::println!("{=str}", line.as_str());
}

/// Ends the QEMU process through semihosting (`SYS_EXIT_EXTENDED`) with `status`.
pub fn exit(status: i32) -> ! {
    semihosting::process::exit(status)
}

/// Reports a CPU fault and exits with [`EXIT_ERROR`]; boards call it from their fault handler.
pub fn fault(what: &str) -> ! {
    defmt::println!("error: {=str}", what);
    exit(EXIT_ERROR)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(l) => defmt::println!("panic at {=str}:{=u32}", l.file(), l.line()),
        None => defmt::println!("panic"),
    }
    exit(EXIT_PANIC)
}

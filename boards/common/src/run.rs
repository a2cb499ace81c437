//! The recording loop.

use tinyrnn::{Model, Result};

use crate::data::{self, INPUT, LABELS, LENGTHS, N_SEQ, OUTPUT};

/// Validates the blob, then runs every sequence of the recording.
pub fn run_recording() -> Result<()> {
    let model = Model::from_blob(data::BLOB)?;
    defmt::println!(
        "model in={=usize} out={=usize} layers={=usize} state={=usize}w scratch={=usize}w",
        model.input_size(),
        model.output_size(),
        model.layers().len(),
        model.state_len(),
        model.scratch_len()
    );
    let _ = (INPUT, OUTPUT, LABELS, LENGTHS, N_SEQ);
    // The streaming session (src/session.rs) is not in the library yet.
    Err(tinyrnn::Error::Unsupported)
}

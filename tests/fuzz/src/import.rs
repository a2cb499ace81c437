//! The importer targets (`keras`, `h5`, `tflite`, `onnx`): arbitrary bytes through one of
//! the host tool's file readers — the `.keras` zip + config + HDF5 weights, a legacy
//! tf.keras `.h5`, the hand-written TFLite flatbuffer reader, the ONNX protobuf reader —
//! must give a typed error (`anyhow::Error`, one printable message) or a model. A model
//! that comes out goes through `FloatModel::validate` (what every command checks next: a
//! model it refuses is refused with a message), and a valid one must run two frames through the f64 reference (step by step, or as one window for a model
//! with reverse or bidirectional layers) without panicking.
//!
//! Inputs are given to the format's importer directly, not through content sniffing, so
//! mutations that break the magic bytes still reach the reader.

use std::path::Path;

use anyhow::Result;
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::ir::FloatModel;

/// Which reader a target feeds.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// `.keras` (Keras 3): zip → `config.json` + `model.weights.h5`.
    Keras,
    /// Legacy tf.keras full-model `.h5`.
    H5,
    /// `.tflite` flatbuffer.
    Tflite,
    /// ONNX protobuf (external data would be read next to a folder that does not exist).
    Onnx,
}

/// Larger inputs are skipped: the committed fixtures are at most a few hundred KB, and a
/// bigger input only slows the fuzzer down.
pub const MAX_INPUT: usize = 1 << 20;

/// Runs `data` through the importer of `format` and checks the outcome (module docs).
pub fn import(format: Format, data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let r: Result<FloatModel> = match format {
        Format::Keras => import::keras::import(data),
        Format::H5 => import::keras::import_legacy_h5(data),
        Format::Tflite => import::tflite::import(data),
        Format::Onnx => import::onnx::import(
            data,
            &ImportOptions::default(),
            Path::new("/nonexistent-tinyrnn-fuzz/model.onnx"),
        ),
    };
    match r {
        Err(e) => {
            // The message must format (the CLI prints it as one `error:` line).
            let msg = format!("{e:#}");
            assert!(!msg.is_empty(), "empty error message");
        }
        Ok(m) => {
            if m.validate().is_err() {
                // load_model_bytes refuses such a model with a message; nothing runs it.
                return;
            }
            let frame = vec![0.5f32; m.input_size];
            let frames: Vec<&[f32]> = vec![&frame, &frame];
            if m.streams() {
                let out = m.run(&frames, &mut ());
                assert_eq!(out.len(), 2, "one output per frame");
            } else {
                // reverse / bidirectional layers: the whole window at once
                let out = m.run_window(&frames, &mut ());
                assert_eq!(out.len(), m.output_size(), "one output vector");
            }
        }
    }
}

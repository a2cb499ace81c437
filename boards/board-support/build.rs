//! Build script: the embedded model and recording.
//!
//! Embeds the model blob and the recording named in `boards/qemu-common/dataset.txt` (the same
//! files for every board, QEMU and real, so they all switch data together), or in the file
//! that the environment variable `TINYRNN_DATASET` names (an absolute path; a relative one is
//! resolved from this directory, where cargo runs the script). `TINYRNN_BLOB`, if set,
//! replaces the model named there (`boards/host-npy`, `Dataset::read`). The blob is validated
//! here with `tinyrnn::Model::from_blob` (and again by the firmware at start-up); its
//! dimensions become the compile-time buffer sizes. The recording (`.npy`, shape `(N, T, F)`,
//! plus `(N,)` lengths and labels) becomes `$OUT_DIR/frames.bin`: the first `lengths[i]`
//! frames of each sequence, back to back, every value an `f32` little-endian.
//! `$OUT_DIR/data.rs` holds the constants (see `src/data.rs`).
//!
//! With the feature `graph-models` (the QEMU boards) the datasets of
//! `tinyrnn_host_npy::EXTRA_DATASETS` (`boards/qemu-common/dataset-<name>.txt`, not subject
//! to `TINYRNN_BLOB`) are embedded the same way as `$OUT_DIR/<name>-model.trnn`,
//! `<name>-frames.bin` (a recording equal to an earlier one's is embedded once) and one
//! module each in `$OUT_DIR/extra.rs` (`data::extra::<name>`).
//!
//! Link arguments are not here: `cargo:rustc-link-arg*` applies only to the package's own
//! targets, so each board's `build.rs` gives its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

// The `.npy` reader `xtask` uses too (boards/host-npy), so every consumer reads the
// recording the same way.
use tinyrnn_host_npy as npy;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TINYRNN_DATASET");
    println!("cargo:rerun-if-env-changed=TINYRNN_BLOB");
    let manifest = match env::var_os("TINYRNN_DATASET") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => root.join("../qemu-common/dataset.txt"),
    };
    println!("cargo:rerun-if-changed={}", manifest.display());
    let ds = npy::Dataset::read(&manifest).unwrap_or_else(|e| panic!("{e}"));
    let mut rs = String::new();
    embed_data(&manifest, &ds, &out, "", &mut rs, &mut Vec::new());
    ota_keys(&mut rs);
    fs::write(out.join("data.rs"), rs).unwrap();

    // Feature `graph-models` (the QEMU boards): the further datasets, one module each in
    // `$OUT_DIR/extra.rs` (`src/data.rs`, `extra`). Not subject to `TINYRNN_BLOB`.
    if env::var_os("CARGO_FEATURE_GRAPH_MODELS").is_some() {
        let mut rs = String::new();
        // Recordings already embedded (frames, module): a dataset with the same frames
        // refers to the earlier module's `FRAMES` instead of a second copy in flash.
        let mut shared = Vec::new();
        for (name, file) in npy::EXTRA_DATASETS {
            let manifest = root.join("../qemu-common").join(file);
            println!("cargo:rerun-if-changed={}", manifest.display());
            let ds = npy::Dataset::read_file(&manifest).unwrap_or_else(|e| panic!("{e}"));
            writeln!(
                rs,
                "/// The `{name}` dataset (`boards/qemu-common/{file}`)."
            )
            .unwrap();
            writeln!(rs, "pub mod {name} {{").unwrap();
            writeln!(rs, "use super::Recording;").unwrap();
            embed_data(&manifest, &ds, &out, name, &mut rs, &mut shared);
            writeln!(rs, "}}").unwrap();
        }
        fs::write(out.join("extra.rs"), rs).unwrap();
    }
}

/// Writes `{name}-frames.bin` and `{name}-model.trnn` (`name` empty: `frames.bin`,
/// `model.trnn`) to `out` and appends the constants that describe them (see `src/data.rs`)
/// to `w`. `shared` lists the frames embedded so far and by which sibling module; identical
/// frames are not embedded twice.
fn embed_data(
    manifest: &Path,
    ds: &npy::Dataset,
    out: &Path,
    name: &str,
    w: &mut String,
    shared: &mut Vec<(Vec<u8>, String)>,
) {
    let prefix = if name.is_empty() {
        String::new()
    } else {
        format!("{name}-")
    };
    for p in [&ds.model, &ds.input, &ds.lengths, &ds.labels] {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let blob = fs::read(&ds.model).unwrap_or_else(|e| panic!("{}: {e}", ds.model.display()));
    let model = tinyrnn::Model::from_blob(&blob)
        .unwrap_or_else(|e| panic!("{}: invalid blob: {e}", ds.model.display()));
    assert!(
        model.precision().is_int(),
        "the boards print integer logits (Session::output_q): the blob must be int8 or int16"
    );

    let input = npy::Npy::read(&ds.input).unwrap_or_else(|e| panic!("{e}"));
    let lengths = npy::Npy::read(&ds.lengths)
        .and_then(|a| a.ints())
        .unwrap_or_else(|e| panic!("{e}"));
    let labels = npy::Npy::read(&ds.labels)
        .and_then(|a| a.ints())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        input.shape.len(),
        3,
        "{}: expected shape (N, T, F)",
        ds.input.display()
    );
    let (n, t, f) = (input.shape[0], input.shape[1], input.shape[2]);
    assert_eq!(
        f,
        model.input_size(),
        "recording features != model input size"
    );
    assert_eq!(lengths.len(), n, "lengths: expected {n} values");
    assert_eq!(labels.len(), n, "labels: expected {n} values");
    let values = input.floats().unwrap_or_else(|e| panic!("{e}"));
    let mut frames = Vec::new();
    let mut total = 0usize;
    for (i, &len) in lengths.iter().enumerate() {
        assert!(
            len >= 1 && len as usize <= t,
            "lengths[{i}] = {len} not in 1..={t}"
        );
        let start = i * t * f;
        for v in &values[start..start + len as usize * f] {
            frames.extend_from_slice(&v.to_le_bytes());
        }
        total += len as usize;
    }
    fs::write(out.join(format!("{prefix}frames.bin")), &frames).unwrap();
    let frames_static = match shared.iter().find(|(f, _)| *f == frames) {
        Some((_, module)) => format!("pub use super::{module}::FRAMES;"),
        None => {
            shared.push((frames, name.to_string()));
            format!("pub static FRAMES: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{prefix}frames.bin\"));")
        }
    };
    fs::write(out.join(format!("{prefix}model.trnn")), &blob).unwrap();
    let max_len = lengths.iter().copied().max().unwrap_or(0) as usize;
    // Window mode (reverse/bidirectional layers): the buffer for the longest sequence.
    let window = if model.is_windowed() {
        model.window_words(max_len)
    } else {
        0
    };

    let list = |v: &[i64]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(
        w,
        "// @generated by boards/board-support/build.rs from {}",
        manifest.display()
    )
    .unwrap();
    writeln!(
        w,
        "/// The model blob (validated at build time and again at start-up)."
    )
    .unwrap();
    writeln!(
        w,
        "pub static BLOB: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{prefix}model.trnn\"));"
    )
    .unwrap();
    writeln!(w, "/// Features per frame (the model's input width).").unwrap();
    writeln!(w, "pub const INPUT: usize = {};", model.input_size()).unwrap();
    writeln!(w, "/// Width of the model's output vector (the logits).").unwrap();
    writeln!(w, "pub const OUTPUT: usize = {};", model.output_size()).unwrap();
    writeln!(
        w,
        "/// `i32` state words the model needs (`Model::state_len`)."
    )
    .unwrap();
    writeln!(w, "pub const STATE: usize = {};", model.state_len()).unwrap();
    writeln!(
        w,
        "/// `u32` scratch words the model needs (`Model::scratch_len`)."
    )
    .unwrap();
    writeln!(w, "pub const SCRATCH: usize = {};", model.scratch_len()).unwrap();
    writeln!(w, "/// Number of recorded sequences.").unwrap();
    writeln!(w, "pub const N_SEQ: usize = {n};").unwrap();
    writeln!(w, "/// Frames in all sequences together.").unwrap();
    writeln!(w, "pub const N_FRAMES: usize = {total};").unwrap();
    writeln!(w, "/// True length of each sequence, in frames.").unwrap();
    writeln!(
        w,
        "pub static LENGTHS: [u16; N_SEQ] = [{}];",
        list(&lengths)
    )
    .unwrap();
    writeln!(w, "/// True class of each sequence.").unwrap();
    writeln!(w, "pub static LABELS: [u16; N_SEQ] = [{}];", list(&labels)).unwrap();
    writeln!(
        w,
        "/// `N_FRAMES × INPUT` `f32` little-endian, sequences back to back."
    )
    .unwrap();
    writeln!(w, "{frames_static}").unwrap();
    writeln!(
        w,
        "/// `u32` window words for the longest sequence (`Model::window_words`; 0: the model streams)."
    )
    .unwrap();
    writeln!(w, "pub const WINDOW: usize = {window};").unwrap();
    writeln!(
        w,
        "/// All of the above, for code that runs any embedded dataset."
    )
    .unwrap();
    writeln!(
        w,
        "pub static RECORDING: Recording = Recording {{ blob: BLOB, input: INPUT, lengths: &LENGTHS, labels: &LABELS, frames: FRAMES }};"
    )
    .unwrap();
}

/// Appends `OTA_KEYS` to `w`.
fn ota_keys(w: &mut String) {
    // The update path's trusted keys (feature `ota`): `TINYRNN_OTA_PUBKEYS` names one or more
    // `tinyrnn keygen` public key files (`tinyrnn-ed25519-public <64 hex digits>`), separated
    // by `:`; without it the list is empty and every update is refused (`UnknownKey`).
    println!("cargo:rerun-if-env-changed=TINYRNN_OTA_PUBKEYS");
    let mut keys = Vec::new();
    if let Ok(list) = env::var("TINYRNN_OTA_PUBKEYS") {
        for path in list.split(':').filter(|p| !p.is_empty()) {
            println!("cargo:rerun-if-changed={path}");
            let text = fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("TINYRNN_OTA_PUBKEYS: cannot read {path}: {e}"));
            let mut words = text.split_whitespace();
            let (Some("tinyrnn-ed25519-public"), Some(hex), None) =
                (words.next(), words.next(), words.next())
            else {
                panic!("TINYRNN_OTA_PUBKEYS: {path} is not a `tinyrnn keygen` public key file");
            };
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|_| panic!("TINYRNN_OTA_PUBKEYS: {path}: bad hex"));
            assert!(
                bytes.len() == 32 && hex.len() == 64,
                "TINYRNN_OTA_PUBKEYS: {path}: not 32 bytes"
            );
            keys.push(format!("[{}]", list_u8(&bytes)));
        }
    }
    writeln!(
        w,
        "/// Ed25519 public keys trusted for model updates (`TINYRNN_OTA_PUBKEYS` at build time)."
    )
    .unwrap();
    writeln!(
        w,
        "pub const OTA_KEYS: &[[u8; 32]] = &[{}];",
        keys.join(", ")
    )
    .unwrap();
}

fn list_u8(v: &[u8]) -> String {
    v.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

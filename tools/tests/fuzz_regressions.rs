//! Inputs the fuzz targets of `tests/fuzz` (`import_keras`, `import_h5`, `import_tflite`,
//! `import_onnx`) found crashing an importer, kept in `tests/data/fuzz/TARGET/`: each must
//! now give an error (one line through the CLI), never a panic.
//!
//! | file | was |
//! |---|---|
//! | `import_onnx/loop_slice_axes.onnx` | a Keras GRU `Loop` export with one bit flipped: a `Slice` in the loop body with fewer `axes` than `starts` indexed past the axes (`shape.rs`, index out of bounds) |
//! | `import_onnx/loop_state_width.onnx` | a Keras GRU `Loop` export whose zero initial state got a huge last dimension: the body's `[h, h]` identity was allocated before any check (`loops.rs`, out of memory) |
//! | `import_onnx/loop_gather_no_output.onnx` | a Keras `Loop` export whose body `Gather` lost its output: indexed without a check (`loops.rs`, index out of bounds; the same fix covers a `Gather` or `Identity` without inputs and two states without a scan output) |
//! | `import_onnx/loop_add_one_operand.onnx` | a Keras LSTM `Loop` export whose body `Add` lost an operand (`loops.rs`, index out of bounds; found by the fuzzer on the build before the fix, which reading the code had found too) |
//! | `import_onnx/slice_default_axes.onnx` | a Keras `Loop` export with two bits flipped: a body `Slice` without `axes` and with more `starts` than its constant operand has axes indexed past the dims (`shape.rs`, index out of bounds; the CI fuzz smoke of d567107 failed on this target) |

use std::ffi::OsStr;
use std::path::Path;

use tinyrnn_cli::import::{self, ImportOptions};

mod common;

fn cases() -> Vec<(String, std::path::PathBuf)> {
    let root = common::data_dir().join("fuzz");
    let mut v = Vec::new();
    for t in std::fs::read_dir(&root).unwrap() {
        let t = t.unwrap().path();
        for f in std::fs::read_dir(&t).unwrap() {
            let target = t.file_name().unwrap().to_string_lossy().into_owned();
            v.push((target, f.unwrap().path()));
        }
    }
    v.sort();
    v
}

#[test]
fn fuzz_crashes_are_errors() {
    let cases = cases();
    assert!(!cases.is_empty());
    for (target, f) in cases {
        let bytes = std::fs::read(&f).unwrap();
        // What the fuzz target calls (the importer of its format, no sniffing)…
        let r = match target.as_str() {
            "import_keras" => import::keras::import(&bytes),
            "import_h5" => import::keras::import_legacy_h5(&bytes),
            "import_tflite" => import::tflite::import(&bytes),
            "import_onnx" => import::onnx::import(
                &bytes,
                &ImportOptions::default(),
                Path::new("/nonexistent-tinyrnn-fuzz/model.onnx"),
            ),
            t => panic!("unknown fuzz target folder {t}"),
        };
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{}: imported", f.display()));
        eprintln!("{}: {e:#}", f.display());
        // …and the CLI: one `error:` line, exit 1.
        let (code, _, err) = common::cli(&[OsStr::new("inspect"), f.as_os_str()]);
        assert_eq!(code, 1, "{}: {err}", f.display());
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

/// The class of the `import_onnx` findings, exhaustively on the committed Keras `Loop`
/// exports (GRU, GRU reset-before, SimpleRNN, unfused LSTM): every loop body node with its
/// inputs cut to 0, 1 or 2 and with no outputs. Each import must give an error or a model,
/// never a panic; the error is one line.
#[test]
fn loop_body_nodes_with_missing_operands() {
    let mut cases = 0;
    for f in ["gru", "gru_rb", "rnn", "lstm_rd"] {
        let path = common::data_dir().join(format!("keras/{f}.onnx"));
        let m = common::load_onnx(&path);
        let graph = m.graph.as_ref().unwrap();
        let (li, ai) = graph
            .node
            .iter()
            .enumerate()
            .find_map(|(k, n)| {
                (n.op_type == "Loop")
                    .then(|| n.attribute.iter().position(|a| a.name == "body"))
                    .flatten()
                    .map(|a| (k, a))
            })
            .unwrap_or_else(|| panic!("{f}: no Loop"));
        let body_len = graph.node[li].attribute[ai].g.as_ref().unwrap().node.len();
        for bn in 0..body_len {
            for cut in [Some(0), Some(1), Some(2), None] {
                let mut mm = m.clone();
                let node = &mut mm.graph.as_mut().unwrap().node[li].attribute[ai]
                    .g
                    .as_mut()
                    .unwrap()
                    .node[bn];
                match cut {
                    Some(k) if node.input.len() > k => node.input.truncate(k),
                    Some(_) => continue,
                    None => node.output.clear(),
                }
                let bytes = common::encode(&mm);
                let r = std::panic::catch_unwind(|| {
                    import::load_model_bytes(&bytes, &path, &ImportOptions::default())
                });
                let r = r.unwrap_or_else(|_| panic!("{f}: body node {bn}, cut {cut:?}: panic"));
                if let Err(e) = r {
                    assert_eq!(format!("{e:#}").lines().count(), 1, "{e:#}");
                }
                cases += 1;
            }
        }
    }
    eprintln!("{cases} mutated Loop bodies, no panic");
    assert!(cases > 100, "{cases}");
}

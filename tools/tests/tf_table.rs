//! The per-model table of issue #11: every Keras model of the issue (LSTM, GRU with both
//! `reset_after`, SimpleRNN, stacked LSTM, Bidirectional(GRU), a Dense(relu) head,
//! GlobalAveragePooling1D) in every format it ships as (`.keras`, Keras's ONNX export,
//! `.tflite` float and int8, legacy tf.keras `.h5`), imported through the library API as the
//! CLI does, against Keras's own `model.predict` and the TFLite interpreter's outputs, then
//! quantized by tinyrnn (int16, int8). `cargo test -p tinyrnn-cli --test tf_table --
//! --nocapture` prints the table as Markdown.
//!
//! Fixtures (all JapaneseVowels, tests/data/vowels; 370 test sequences, each run to its own
//! length): tests/data/keras (make_keras.py, make_keras_onnx.py), tests/data/keras_bidir
//! (make_keras_bidir.py), tests/data/tflite (make_tflite.py: tf_keras models, whose
//! converter output is fused `UNIDIRECTIONAL_SEQUENCE_LSTM`), tests/data/keras_table
//! (make_keras_table.py: the trained Keras 3 `Bidirectional(GRU(16))` `bigru_v`, the
//! `unroll=True` `.tflite` twins of bigru_v, mlp and gap, and the legacy `.h5`
//! Bidirectional models), tests/data/tflite_unroll (make_tflite_unroll.py: the
//! `unroll=True` `.tflite` twins of the trained Keras 3 lstm, gru, gru_rb, rnn and lstm2).
//!
//! An unrolled `.tflite` has a fixed length. The tflite_unroll twins (T = 7) take features
//! normalized with vowels/norm.json, and their rows run the 370 test sequences cut to their
//! first 7 frames, against Keras's predict of the twin and the interpreter on the same
//! frames (accuracies on 7 frames are lower). The keras_table twins (T = 14) leave out the
//! model's leading Normalization layer (`keras_table/NAME_norm.json`, that layer's
//! statistics, is folded in at import as `--normalize` does, so they take raw features like
//! the `.keras` file); the interpreter's outputs exist for the 45 test sequences of length 14
//! only (keras_table/info.json `unroll_rows`): the float model imported from them is
//! compared with Keras's `model.predict` on all 370 (the same weights) and with the
//! interpreter on those 45.
//!
//! Asserted for every row that imports:
//! * float (f64 reference) max error ≤ 1e-5 against Keras's predict and, for a float
//!   `.tflite`, against the interpreter. An int8 `.tflite` is imported dequantized and run in
//!   float where the interpreter runs int8 kernels: no 1e-5 reference exists; its argmax
//!   agreement with the interpreter's int8 run must be ≥ 99 % of the 370 test sequences,
//!   at most 3 of them differing (the bound of tests/tflite.rs
//!   `tflite_int8_dequantized_agrees_with_interpreter`: only sequences whose top two
//!   probabilities are closer than the int8 kernels' error may flip); on the unrolled
//!   length's 45 sequences, a subset of those 370, the same at most 3. The tflite_unroll
//!   rows (7 frames) take the bound of tests/tflite_unroll.rs
//!   `tflite_unrolled_int8_dequantized_agrees_with_interpreter`: at most 7 of 370 (98 %;
//!   7-frame models are less sure of their classes, more sequences are near-ties).
//! * quantized by tinyrnn (calibrated on tests/data/vowels/calib_raw.npy; models taking
//!   normalized features are imported with `--normalize norm.json` so they take raw
//!   features), against the float model: the bounds of tests/keras.rs
//!   `keras_quantized_accuracy` — int16 at most one of 370 classes changed and at most one
//!   sequence of accuracy lost; int8 at most 1 % disagreement and 1 pp accuracy drop (on the
//!   7-frame tflite_unroll rows at most 5 of 370 classes changed, the bound of
//!   tests/tflite_unroll.rs `tflite_unrolled_quantized_accuracy`, for the same reason).

mod common;

use std::path::PathBuf;

use common::*;
use tinyrnn::Precision;
use tinyrnn_cli::data::{self, Sequences};
use tinyrnn_cli::exec::{self, Blob, Outputs, Runnable, Steps};
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::quantize::calib::{calibrate, Batch};
use tinyrnn_cli::quantize::{quantize, QuantOptions};

/// What the file's model takes.
#[derive(Clone, Copy, PartialEq)]
enum Input {
    /// Raw features (it starts with a Normalization layer): test_raw.npy.
    Raw,
    /// Standardized features: test_norm.npy.
    Norm,
}

/// The TFLite interpreter's recorded outputs for the row's file.
enum Interp {
    No,
    /// On all 370 test sequences (`.npy` under tests/data).
    All(String),
    /// On the test sequences of the unrolled length only (keras_table/info.json `unroll_rows`).
    Unrolled(String),
}

struct Row {
    model: &'static str,
    format: &'static str,
    /// Under tests/data.
    file: String,
    input: Input,
    /// Keras's `model.predict` on the 370 test sequences (`.npy` under tests/data).
    keras: Option<String>,
    interp: Interp,
    /// Input statistics folded in at import (`--normalize`, under tests/data): the
    /// `unroll=True` twins of models that start with a Normalization layer take normalized
    /// features, and this file holds that layer's mean and std.
    normalize: Option<String>,
    /// Every test sequence cut to its first `T` frames (the tests/data/tflite_unroll files,
    /// unrolled for T = 7, and their Keras/interpreter outputs on those frames).
    cut: Option<usize>,
}

fn row(
    model: &'static str,
    format: &'static str,
    file: &str,
    input: Input,
    keras: Option<&str>,
    interp: Interp,
) -> Row {
    Row {
        model,
        format,
        file: file.into(),
        input,
        keras: keras.map(Into::into),
        interp,
        normalize: None,
        cut: None,
    }
}

/// Keras 3 models with `unroll=True` `.tflite` twins in tests/data/tflite_unroll
/// (make_tflite_unroll.py: T = 7, normalized features, the test sequences cut to 7 frames).
const TFLITE_UNROLL: &[&str] = &["lstm", "gru", "gru_rb", "rnn", "lstm2"];
const UNROLL_T: usize = 7;

/// Row formats.
const KERAS: &str = ".keras";
const ONNX: &str = "ONNX";
const H5: &str = "legacy .h5";
const TFL_F32: &str = ".tflite f32";
const TFL_INT8: &str = ".tflite int8";

/// The rows: (model, format, file). Keras 3 models' `unroll=True` twins are
/// `keras_table/NAME_unroll_{f32,int8}.tflite`, with the Keras predictions of NAME.
fn rows() -> Vec<Row> {
    use Input::{Norm, Raw};
    let mut v = Vec::new();
    let k3 = [
        ("LSTM(16)", "keras", "lstm", Raw),
        ("GRU(16), reset_after=True", "keras", "gru", Raw),
        ("GRU(16), reset_after=False", "keras", "gru_rb", Raw),
        ("SimpleRNN(16)", "keras", "rnn", Norm),
        (
            "LSTM(16, return_sequences) → LSTM(16)",
            "keras",
            "lstm2",
            Raw,
        ),
        ("Bidirectional(GRU(16))", "keras_table", "bigru_v", Raw),
        ("LSTM(16) → Dense(16, relu) head", "keras", "mlp", Raw),
        (
            "GRU(16, return_sequences) → GlobalAveragePooling1D",
            "keras",
            "gap",
            Raw,
        ),
    ];
    for (model, dir, name, input) in k3 {
        let pred = format!("{dir}/{name}_pred.npy");
        let pred = Some(pred.as_str());
        v.push(row(
            model,
            KERAS,
            &format!("{dir}/{name}.keras"),
            input,
            pred,
            Interp::No,
        ));
        let onnx = row(
            model,
            ONNX,
            &format!("{dir}/{name}.onnx"),
            input,
            pred,
            Interp::No,
        );
        v.push(onnx);
        if TFLITE_UNROLL.contains(&name) {
            for (format, kind) in [(TFL_F32, "f32"), (TFL_INT8, "int8")] {
                v.push(Row {
                    cut: Some(UNROLL_T),
                    ..row(
                        model,
                        format,
                        &format!("tflite_unroll/{name}_{kind}.tflite"),
                        Norm,
                        Some(&format!("tflite_unroll/{name}_keras_pred.npy")),
                        Interp::All(format!("tflite_unroll/{name}_{kind}_pred.npy")),
                    )
                });
            }
            continue;
        }
        for (format, kind) in [(TFL_F32, "f32"), (TFL_INT8, "int8")] {
            let mut r = row(
                model,
                format,
                &format!("keras_table/{name}_unroll_{kind}.tflite"),
                input,
                pred,
                Interp::Unrolled(format!("keras_table/{name}_unroll_{kind}_pred.npy")),
            );
            if input == Raw {
                r.normalize = Some(format!("keras_table/{name}_norm.json"));
            }
            v.push(r);
        }
    }
    // Other trained fixtures of the same models.
    let keras_bidir = Some("keras_bidir/bigru_pred.npy");
    v.extend([
        row(
            "LSTM(16) (tf_keras)",
            H5,
            "keras/legacy_lstm.h5",
            Raw,
            Some("keras/legacy_lstm_pred.npy"),
            Interp::No,
        ),
        row(
            "GRU(16, reset_after=False, return_sequences) → GRU(16) (tf_keras)",
            H5,
            "keras/legacy_gru2.h5",
            Raw,
            Some("keras/legacy_gru2_pred.npy"),
            Interp::No,
        ),
        row(
            "Bidirectional(GRU(16)) (tf_keras)",
            H5,
            "keras_table/legacy_bigru.h5",
            Raw,
            Some("keras_table/legacy_bigru_pred.npy"),
            Interp::No,
        ),
        row(
            "Bidirectional(LSTM(8, return_sequences)) → GlobalAveragePooling1D (tf_keras)",
            H5,
            "keras_table/legacy_bilstm_gap.h5",
            Raw,
            Some("keras_table/legacy_bilstm_gap_pred.npy"),
            Interp::No,
        ),
        row(
            "Bidirectional(GRU(8))",
            KERAS,
            "keras_bidir/bigru.keras",
            Raw,
            keras_bidir,
            Interp::No,
        ),
        row(
            "Bidirectional(GRU(8))",
            ONNX,
            "keras_bidir/bigru.onnx",
            Raw,
            keras_bidir,
            Interp::No,
        ),
        row(
            "LSTM(16) (tf_keras, fused UNIDIRECTIONAL_SEQUENCE_LSTM)",
            TFL_F32,
            "tflite/lstm_f32.tflite",
            Norm,
            None,
            Interp::All("tflite/lstm_f32_pred.npy".into()),
        ),
        row(
            "LSTM(16) (tf_keras, fused UNIDIRECTIONAL_SEQUENCE_LSTM)",
            TFL_INT8,
            "tflite/lstm_int8.tflite",
            Norm,
            None,
            Interp::All("tflite/lstm_int8_pred.npy".into()),
        ),
        row(
            "LSTM(16, return_sequences) → GAP → Dense(16, relu) head (tf_keras)",
            TFL_F32,
            "tflite/gapmlp_f32.tflite",
            Norm,
            None,
            Interp::All("tflite/gapmlp_f32_pred.npy".into()),
        ),
        row(
            "LSTM(16, return_sequences) → GAP → Dense(16, relu) head (tf_keras)",
            TFL_INT8,
            "tflite/gapmlp_int8.tflite",
            Norm,
            None,
            Interp::All("tflite/gapmlp_int8_pred.npy".into()),
        ),
    ]);
    v
}

fn vowels(f: &str) -> PathBuf {
    data_dir().join("vowels").join(f)
}

fn class_of(y: &[f64], i: usize, c: usize) -> usize {
    let r = &y[i * c..(i + 1) * c];
    (0..c).fold(0, |b, j| if r[j] > r[b] { j } else { b })
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

/// Fraction of `idx` where `f` holds.
fn frac(idx: &[usize], f: impl Fn(usize) -> bool) -> f64 {
    idx.iter().filter(|&&i| f(i)).count() as f64 / idx.len() as f64
}

/// Max |a − b| over the sequences `idx` (`a` on all 370, `b` one row per entry of `idx`).
fn max_abs_rows(a: &Outputs, b: &[f64], idx: &[usize]) -> f64 {
    let c = a.c;
    idx.iter()
        .enumerate()
        .flat_map(|(k, &i)| (0..c).map(move |j| (a.last(i)[j] - b[k * c + j]).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn tf_table() {
    let raw = data::read_inputs(&vowels("test_raw.npy")).unwrap();
    let norm = data::read_inputs(&vowels("test_norm.npy")).unwrap();
    let lengths = data::read_lengths(&vowels("test_lengths.npy"), raw.n, raw.t).unwrap();
    let labels = data::read_labels(&vowels("test_labels.npy"), Some(raw.n)).unwrap();
    let calib = data::read_inputs(&vowels("calib_raw.npy")).unwrap();
    let cl = data::read_lengths(&vowels("calib_lengths.npy"), calib.n, calib.t).unwrap();
    let calib = Batch::from_sequences(&calib, Some(&cl));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir().join("keras_table/info.json")).unwrap())
            .unwrap();
    let unroll_rows: Vec<usize> = info["unroll_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let all: Vec<usize> = (0..raw.n).collect();
    let cut_lengths = vec![UNROLL_T; raw.n];
    assert!(lengths.iter().all(|&l| l >= UNROLL_T));

    println!(
        "| model | format | file | float max err vs Keras predict | vs TFLite interpreter | float acc | int16 acc / agreement | int8 acc / agreement | int8 .tflite: interpreter acc vs tinyrnn int8 | blob bytes int16 / int8 |"
    );
    println!("|---|---|---|--:|--:|--:|--:|--:|--:|--:|");
    let mut imported = 0;
    for r in rows() {
        let path = data_dir().join(&r.file);
        let file = r.file.as_str();
        let own = ImportOptions {
            normalize: r.normalize.as_ref().map(|n| data_dir().join(n)),
            ..Default::default()
        };
        let m = match import::load_model(&path, &own) {
            Ok(m) => m,
            Err(e) => panic!("{file}: {e:#}"),
        };
        imported += 1;
        let lens = if r.cut.is_some() {
            &cut_lengths
        } else {
            &lengths
        };
        let run = |rn: Runnable, x: &Sequences| exec::run(&rn, x, Some(lens), Steps::Last).unwrap();
        let int8_file = r.format == TFL_INT8;
        // Bounds (module docs): the 7-frame rows take tests/tflite_unroll.rs's.
        let (max_differ, int8_disagree) = if r.cut.is_some() {
            (7, 5.0 / 370.0)
        } else {
            (3, 0.01)
        };
        let x = match r.input {
            Input::Raw => &raw,
            Input::Norm => &norm,
        };
        let out = run(Runnable::Float(Box::new(m)), x);
        assert_eq!((out.n, out.c), (370, 9), "{file}");
        let facc = frac(&all, |i| out.class(i) == labels[i]);
        // Against Keras's predict (all 370).
        let e_keras = r.keras.as_ref().map(|k| {
            let want = npy(&data_dir().join(k));
            assert_eq!(want.shape, [370, 9], "{k}");
            max_abs(&out.y, &want.data)
        });
        // Against the interpreter (all, or the unrolled length's sequences).
        let interp = match &r.interp {
            Interp::No => None,
            Interp::All(p) => Some((npy(&data_dir().join(p)).data, all.clone())),
            Interp::Unrolled(p) => Some((npy(&data_dir().join(p)).data, unroll_rows.clone())),
        };
        let e_interp = interp.as_ref().map(|(y, idx)| {
            assert_eq!(y.len(), idx.len() * 9, "{file}");
            max_abs_rows(&out, y, idx)
        });
        if !int8_file {
            if let Some(e) = e_keras {
                assert!(e <= 1e-5, "{file}: float vs Keras predict {e:e}");
            }
            if let Some(e) = e_interp {
                assert!(e <= 1e-5, "{file}: float vs TFLite interpreter {e:e}");
            }
        } else {
            let (y, idx) = interp
                .as_ref()
                .expect("an int8 .tflite row has interpreter outputs");
            let differ = idx
                .iter()
                .enumerate()
                .filter(|&(k, &i)| out.class(i) != class_of(y, k, 9))
                .count();
            assert!(
                differ <= max_differ,
                "{file}: {differ} of {} argmaxes differ from the interpreter's",
                idx.len()
            );
        }
        // tinyrnn's quantization, on raw features.
        let m = if r.input == Input::Norm {
            let opts = ImportOptions {
                normalize: Some(vowels("norm.json")),
                ..Default::default()
            };
            import::load_model(&path, &opts).unwrap()
        } else {
            import::load_model(&path, &own).unwrap()
        };
        let float = run(Runnable::Float(Box::new(m.clone())), &raw);
        let facc_raw = frac(&all, |i| float.class(i) == labels[i]);
        let stats = calibrate(&m, &calib, || {}).unwrap();
        let mut cells = Vec::new();
        let mut sizes = Vec::new();
        let mut int8_out = None;
        for (p, max_disagree, max_drop) in [
            (Precision::Int16, 1.0 / 370.0, 1.0 / 370.0),
            (Precision::Int8, int8_disagree, 0.01),
        ] {
            let q = quantize(&m, Some(&stats), &QuantOptions::new(p))
                .unwrap_or_else(|e| panic!("{file} {p:?}: {e:#}"));
            sizes.push(q.blob.len());
            let out = run(Runnable::Blob(Blob::from_bytes(q.blob).unwrap()), &raw);
            let acc = frac(&all, |i| out.class(i) == labels[i]);
            let agree = frac(&all, |i| out.class(i) == float.class(i));
            assert!(
                1.0 - agree <= max_disagree + 1e-12,
                "{file} {p:?}: agreement {agree}"
            );
            assert!(
                facc_raw - acc <= max_drop + 1e-12,
                "{file} {p:?}: accuracy {acc} vs float {facc_raw}"
            );
            cells.push(format!("{} / {}", pct(acc), pct(agree)));
            int8_out = Some(out);
        }
        let interp_acc = match (&interp, int8_file) {
            (Some((y, idx)), true) => {
                let q = int8_out.as_ref().unwrap();
                let ia = idx
                    .iter()
                    .enumerate()
                    .filter(|&(k, &i)| class_of(y, k, 9) == labels[i])
                    .count() as f64
                    / idx.len() as f64;
                let ta = frac(idx, |i| q.class(i) == labels[i]);
                let n = if idx.len() == 370 {
                    String::new()
                } else {
                    format!(" ({} seq. of length {})", idx.len(), info["unroll_T"])
                };
                format!("{} vs {}{n}", pct(ia), pct(ta))
            }
            _ => String::new(),
        };
        let e = |v: Option<f64>, n: &Interp| match (v, n) {
            (Some(e), Interp::Unrolled(_)) => {
                format!("{e:.1e} ({} seq.)", unroll_rows.len())
            }
            (Some(e), _) => format!("{e:.1e}"),
            (None, _) => "—".into(),
        };
        println!(
            "| {} | {} | `{file}` | {} | {} | {} | {} | {} | {interp_acc} | {} / {} |",
            r.model,
            r.format,
            e(e_keras, &Interp::No),
            e(e_interp, &r.interp),
            match r.cut {
                Some(t) => format!("{} (first {t} frames)", pct(facc)),
                None => pct(facc),
            },
            cells[0],
            cells[1],
            sizes[0],
            sizes[1],
        );
    }
    println!("\n{imported} rows imported and checked");
    assert!(imported >= 20, "{imported}");
}

//! TensorFlow Lite import: the tf_keras JapaneseVowels models of tests/data/tflite/ (made by
//! tools/scripts/make_tflite.py) against the TFLite interpreter's own outputs, float and
//! int8 (dequantized at import), tinyrnn's own int16/int8 quantization of them (with the
//! LSTMs' cell_clip) against the interpreter's recorded results, the Bidirectional(LSTM)
//! form, Keras 3 unrolled layers (tests/tflite_unroll.rs has the trained ones), and the
//! refusals (WHILE loops, unsupported operators, broken flatbuffers) as one `error:` line.

mod common;

use std::ffi::OsStr;
use std::path::PathBuf;

use common::*;
use tinyrnn::Precision;
use tinyrnn::{CellKind, DenseAct, OutputAct, Pool};
use tinyrnn_cli::data::{self, Sequences};
use tinyrnn_cli::exec::{self, Blob, Outputs, Runnable, Steps};
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::ir::{FloatLayer, FloatModel};
use tinyrnn_cli::quantize::calib::{calibrate, Batch};
use tinyrnn_cli::quantize::{quantize, QuantOptions};

fn tfl(f: &str) -> PathBuf {
    data_dir().join("tflite").join(f)
}

fn vowels(f: &str) -> PathBuf {
    data_dir().join("vowels").join(f)
}

/// The importable models: (name, pooling, hidden head layers).
const MODELS: &[(&str, Pool, usize)] = &[("lstm", Pool::Last, 0), ("gapmlp", Pool::Mean, 1)];

struct TestSet {
    x: Sequences,
    lengths: Vec<usize>,
    labels: Vec<usize>,
}

fn test_set() -> TestSet {
    let x = data::read_inputs(&vowels("test_norm.npy")).unwrap();
    let lengths = data::read_lengths(&vowels("test_lengths.npy"), x.n, x.t).unwrap();
    let labels = data::read_labels(&vowels("test_labels.npy"), Some(x.n)).unwrap();
    TestSet { x, lengths, labels }
}

fn run(m: &FloatModel, ts: &TestSet) -> Outputs {
    exec::run(
        &Runnable::Float(Box::new(m.clone())),
        &ts.x,
        Some(&ts.lengths),
        Steps::Last,
    )
    .unwrap()
}

fn class(y: &[f64], i: usize, c: usize) -> usize {
    let row = &y[i * c..(i + 1) * c];
    (0..c).fold(0, |b, j| if row[j] > row[b] { j } else { b })
}

fn load(name: &str) -> FloatModel {
    import::load_model(&tfl(&format!("{name}.tflite")), &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn check_structure(name: &str, m: &FloatModel, pool: Pool, mlp: usize) {
    assert_eq!(m.layers.len(), 1, "{name}");
    let l = &m.layers[0];
    assert_eq!(l.cell, CellKind::Lstm { peepholes: false }, "{name}");
    assert_eq!((l.input_size, l.hidden_size), (12, 16), "{name}");
    // The converter writes cell_clip 10 for Keras LSTMs; kept, not ignored.
    assert_eq!(l.cell_clip, Some(10.0), "{name}");
    assert_eq!(m.pool, pool, "{name}");
    assert_eq!(m.mlp.len(), mlp, "{name}");
    if mlp == 1 {
        let tinyrnn_cli::ir::FrameOp::Dense(d) = &m.mlp[0] else {
            panic!("{name}: mlp op")
        };
        assert_eq!((d.in_size, d.out_size, d.act), (16, 16, DenseAct::Relu));
    }
    assert_eq!(m.output_size(), 9, "{name}");
    assert_eq!(m.output_act, OutputAct::Softmax, "{name}");
    assert!(m.pre.is_empty() && m.norm.is_none(), "{name}");
}

/// Float `.tflite` files: outputs of the f64 reference within 1e-5 of the TFLite
/// interpreter's (softmax probabilities after each sequence's own last frame, 370 test
/// sequences), the same accuracy.
#[test]
fn tflite_float_matches_interpreter() {
    let ts = test_set();
    for &(name, pool, mlp) in MODELS {
        let f = format!("{name}_f32");
        let m = load(&f);
        check_structure(&f, &m, pool, mlp);
        let want = npy(&tfl(&format!("{f}_pred.npy")));
        let out = run(&m, &ts);
        assert_eq!(out.shape(), want.shape, "{f}");
        let err = max_abs(&out.y, &want.data);
        let n = ts.labels.len();
        let acc = (0..n).filter(|&i| out.class(i) == ts.labels[i]).count() as f64 / n as f64;
        let tacc = (0..n)
            .filter(|&i| class(&want.data, i, 9) == ts.labels[i])
            .count() as f64
            / n as f64;
        println!(
            "tflite {f}: f64 vs interpreter {err:.2e}, accuracy {acc:.4} (interpreter {tacc:.4})"
        );
        assert!(err <= 1e-5, "{f}: {err:e}");
        assert!((acc - tacc).abs() < 1e-9, "{f}: {acc} vs {tacc}");
    }
}

/// Keras `Bidirectional(LSTM(4))` (untrained, tf_keras): the converter writes REVERSE_V2 of
/// the input, one UNIDIRECTIONAL_SEQUENCE_LSTM on the reversed and one on the original
/// sequence, their last steps and a CONCATENATION. Imported as one bidirectional layer with
/// `FinalStates` pooling (`[fwd_{T-1}; bwd_0]`); the f64 reference over each whole sequence
/// within 1e-5 of the interpreter's output.
#[test]
fn tflite_bidirectional_matches_interpreter() {
    let ts = test_set();
    let m = load("bidi");
    assert_eq!(m.layers.len(), 1);
    let l = &m.layers[0];
    assert_eq!(l.direction, tinyrnn::Direction::Bidirectional);
    assert_eq!((l.input_size, l.hidden_size), (12, 4));
    let b = l.backward.as_deref().expect("reverse weights");
    assert_eq!(b.direction, tinyrnn::Direction::Forward);
    assert_eq!(
        (b.input_size, b.hidden_size, b.cell_clip),
        (12, 4, Some(10.0))
    );
    assert_ne!(b.w_ih, l.w_ih, "the two directions have their own weights");
    assert_eq!(m.pool, Pool::FinalStates);
    assert!(!m.streams());
    assert_eq!(m.output_act, OutputAct::Softmax);
    let want = npy(&tfl("bidi_pred.npy"));
    let out = run(&m, &ts);
    assert_eq!(out.shape(), want.shape);
    let err = max_abs(&out.y, &want.data);
    let n = ts.labels.len();
    let agree = (0..n)
        .filter(|&i| out.class(i) == class(&want.data, i, 9))
        .count();
    println!("tflite bidi: f64 vs interpreter {err:.2e}, argmax agreement {agree}/{n}");
    assert!(err <= 1e-5, "bidi: {err:e}");
    // Swapping the directions changes the outputs: the test can tell them apart.
    let mut swapped = m.clone();
    let fw = swapped.layers[0].clone();
    let mut bw = (*b).clone();
    bw.direction = tinyrnn::Direction::Bidirectional;
    bw.backward = Some(Box::new(FloatLayer {
        direction: tinyrnn::Direction::Forward,
        backward: None,
        ..fw
    }));
    swapped.layers[0] = bw;
    let err_swapped = max_abs(&run(&swapped, &ts).y, &want.data);
    assert!(err_swapped > 1e-3, "swapped directions: {err_swapped:e}");
}

/// Without the clip the cell state is unbounded: on these inputs cell_clip 10 is what the
/// interpreter applies, and a clip of 0.5 changes the outputs (the reference executes it).
#[test]
fn tflite_cell_clip_is_executed() {
    let ts = test_set();
    let m = load("lstm_f32");
    let base = run(&m, &ts);
    let mut tight = m.clone();
    tight.layers[0].cell_clip = Some(0.5);
    let d = max_abs(&run(&tight, &ts).y, &base.y);
    assert!(d > 1e-3, "clip 0.5 changed the outputs by {d:e} only");
}

/// int8 `.tflite` files (full-integer, float I/O) dequantized at import, run in f64, against
/// the interpreter's int8 kernels. The two differ by the interpreter's int8/int16 rounding of
/// activations and states (tinyrnn keeps them in float), so only argmax agreement and
/// accuracy are compared. Measured: 100 % argmax agreement for both models, outputs within
/// 2.2e-2 (lstm) and 4.2e-2 (gapmlp) of the interpreter's int8 ones, the same accuracy. Bound:
/// at least 99 % agreement (a sequence whose top two probabilities lie within that margin may
/// flip: at most 3 of 370); a wrong scale, zero point or gate order gives chance-level
/// agreement (~11 %).
#[test]
fn tflite_int8_dequantized_agrees_with_interpreter() {
    let ts = test_set();
    let n = ts.labels.len();
    for &(name, pool, mlp) in MODELS {
        let f = format!("{name}_int8");
        let m = load(&f);
        check_structure(&f, &m, pool, mlp);
        let want = npy(&tfl(&format!("{f}_pred.npy")));
        let out = run(&m, &ts);
        let agree = (0..n)
            .filter(|&i| out.class(i) == class(&want.data, i, 9))
            .count() as f64
            / n as f64;
        let acc = (0..n).filter(|&i| out.class(i) == ts.labels[i]).count() as f64 / n as f64;
        let tacc = (0..n)
            .filter(|&i| class(&want.data, i, 9) == ts.labels[i])
            .count() as f64
            / n as f64;
        let err = max_abs(&out.y, &want.data);
        println!(
            "tflite {f}: agreement {agree:.4}, accuracy {acc:.4} (interpreter int8 {tacc:.4}), max abs {err:.2e}"
        );
        assert!(agree >= 0.99, "{f}: agreement {agree}");
    }
}

fn refused(path: &std::path::Path, args: &[&str], want: &str) {
    let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    a.push(path.as_os_str());
    let (code, _, err) = cli(&a);
    assert_eq!(code, 1, "{}: {err}", path.display());
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(want), "{}: {err}", path.display());
}

/// Refusals: one `error:` line naming what was seen, exit 1, no panic.
#[test]
fn tflite_refusals() {
    for (f, want) in [
        (tfl("rnn.tflite"), "(WHILE): a WHILE-loop graph"),
        (
            data_dir().join("keras/lstm_while.tflite"),
            "import the .keras file itself",
        ),
        (tfl("elu.tflite"), "op 3 (ELU) is not supported"),
        // An unrolled layer whose 4th step reads other recurrent weights (tflite_unroll.rs).
        (
            data_dir().join("tflite_unroll/tampered_weights.tflite"),
            "every step must use the same recurrent weights",
        ),
    ] {
        refused(&f, &["inspect"], want);
    }
}

/// Keras 3 LSTM / GRU / SimpleRNN(4, unroll=True), untrained, fixed length 8
/// (make_keras.py `unrolled`): no WHILE, the time steps split by UNPACK, one copy of the cell
/// per step. Once refused, now imported as the streaming layer (the importer checks the
/// model against the graph evaluated on random inputs; tests/tflite_unroll.rs compares
/// trained ones with the interpreter and Keras).
#[test]
fn tflite_keras_unrolled_import() {
    for (f, cell) in [
        ("lstm", CellKind::Lstm { peepholes: false }),
        (
            "gru",
            CellKind::Gru {
                linear_before_reset: true,
            },
        ),
        ("rnn", CellKind::Rnn(tinyrnn::RnnAct::Tanh)),
    ] {
        let p = data_dir().join(format!("keras/{f}_unroll.tflite"));
        let m = import::load_model(&p, &ImportOptions::default()).unwrap();
        assert_eq!(m.layers.len(), 1, "{f}");
        assert_eq!(m.layers[0].cell, cell, "{f}");
        assert_eq!((m.layers[0].input_size, m.layers[0].hidden_size), (12, 4));
        assert_eq!((m.pool, m.output_act), (Pool::Last, OutputAct::Softmax));
        let (code, _, err) = cli(&[OsStr::new("inspect"), p.as_os_str()]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("unrolled for 8 time steps"), "{err}");
    }
}

/// `tinyrnn quantize` takes a TFLite LSTM with its cell_clip (10, the converter's value) and
/// `inspect` shows the clip of the blob.
#[test]
fn tflite_cell_clip_quantizes_through_the_cli() {
    let dir = scratch("tflite-clip");
    let out = dir.join("m.trnn");
    let (code, _, err) = cli(&[
        OsStr::new("quantize"),
        tfl("lstm_f32.tflite").as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--precision"),
        OsStr::new("int8"),
        OsStr::new("--calib"),
        vowels("test_norm.npy").as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = cli(&[OsStr::new("inspect"), out.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("cell clip 10"), "{stdout}");
}

/// The TFLite models quantized by tinyrnn (the clip in c's Q16.15), int16 and int8, on raw
/// features (imported with `--normalize norm.json`; calibrated on the 64 training sequences
/// of tests/data/vowels/calib_raw.npy as the other quantization tests), against the float
/// model (argmax agreement) and the TFLite interpreter's own recorded predictions (float
/// and its int8 kernels, `*_pred.npy` from tools/scripts/make_tflite.py) on the 370 test
/// sequences. The `_int8` files are the interpreter's int8 model dequantized at import,
/// then quantized again by tinyrnn.
///
/// Bounds as tests/keras.rs's `keras_quantized_accuracy` (one class is 0.27 pp of 370):
/// int16 at most one sequence changed and one lost; int8 at most 1 % disagreement and 1 pp
/// accuracy below the float model. Measured (`-- --nocapture`): every accuracy equals the
/// float model's and the interpreter's (lstm 94.86 %, gapmlp 94.59 %, f32 and int8 files);
/// agreement with float int16 100 % (max abs ≤ 6.6e-4), int8 ≥ 99.73 % (lstm: one of 370
/// sequences; max abs ≤ 5.8e-2).
#[test]
fn tflite_quantized_accuracy() {
    let ts = test_set();
    let raw = data::read_inputs(&vowels("test_raw.npy")).unwrap();
    let calib = data::read_inputs(&vowels("calib_raw.npy")).unwrap();
    let cl = data::read_lengths(&vowels("calib_lengths.npy"), calib.n, calib.t).unwrap();
    let n = ts.labels.len();
    let acc_of = |class: &dyn Fn(usize) -> usize| {
        (0..n).filter(|&i| class(i) == ts.labels[i]).count() as f64 / n as f64
    };
    for &(name, ..) in MODELS {
        for kind in ["f32", "int8"] {
            let f = format!("{name}_{kind}");
            let opts = ImportOptions {
                normalize: Some(vowels("norm.json")),
                ..Default::default()
            };
            let m = import::load_model(&tfl(&format!("{f}.tflite")), &opts).unwrap();
            assert_eq!(m.layers[0].cell_clip, Some(10.0), "{f}");
            let float = exec::run(
                &Runnable::Float(Box::new(m.clone())),
                &raw,
                Some(&ts.lengths),
                Steps::Last,
            )
            .unwrap();
            let facc = acc_of(&|i| float.class(i));
            let interp = npy(&tfl(&format!("{f}_pred.npy")));
            let tacc = acc_of(&|i| class(&interp.data, i, 9));
            let stats = calibrate(&m, &Batch::from_sequences(&calib, Some(&cl)), || {}).unwrap();
            for (p, max_disagree, max_drop) in [
                (Precision::Int16, 1.0 / 370.0, 1.0 / 370.0),
                (Precision::Int8, 0.01, 0.01),
            ] {
                let q = quantize(&m, Some(&stats), &QuantOptions::new(p)).unwrap();
                let blob = Blob::from_bytes(q.blob).unwrap();
                assert!(!blob.model().layers()[0].cell_clip.is_empty());
                let out =
                    exec::run(&Runnable::Blob(blob), &raw, Some(&ts.lengths), Steps::Last).unwrap();
                let acc = acc_of(&|i| out.class(i));
                let agree =
                    (0..n).filter(|&i| out.class(i) == float.class(i)).count() as f64 / n as f64;
                let agree_t = (0..n)
                    .filter(|&i| out.class(i) == class(&interp.data, i, 9))
                    .count() as f64
                    / n as f64;
                let err = max_abs(&out.y, &float.y);
                println!(
                    "tflite {f} -> tinyrnn {}: accuracy {acc:.4} (float {facc:.4}, TFLite \
                     interpreter {kind} {tacc:.4}), argmax agreement with float {agree:.4}, \
                     with the interpreter {agree_t:.4}, max abs vs float {err:.2e}",
                    p.name()
                );
                assert!(1.0 - agree <= max_disagree + 1e-12, "{f} {p:?}: {agree}");
                assert!(facc - acc <= max_drop + 1e-12, "{f} {p:?}: {acc} vs {facc}");
            }
        }
    }
}

/// A truncated file and corrupted flatbuffers: an error, never a panic (every truncation
/// length and byte flips over the whole file in-process; two of them through the CLI).
#[test]
fn tflite_broken_files() {
    let bytes = std::fs::read(tfl("lstm_int8.tflite")).unwrap();
    let dir = scratch("tflite-broken");
    let cut = dir.join("truncated.tflite");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    refused(&cut, &["inspect"], "(TFLite)");
    // The root offset points past the end.
    let mut bad = bytes.clone();
    bad[..4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let corrupt = dir.join("corrupt.tflite");
    std::fs::write(&corrupt, &bad).unwrap();
    refused(&corrupt, &["inspect"], "corrupt flatbuffer");
    let p = std::path::Path::new("x.tflite");
    let opts = ImportOptions::default();
    let mut errors = 0;
    for n in (8..bytes.len()).step_by(7) {
        errors += import::load_model_bytes(&bytes[..n], p, &opts).is_err() as usize;
    }
    assert!(errors > 0);
    for i in (8..bytes.len()).step_by(3) {
        for v in [0x00u8, 0xff, 0x80] {
            let mut c = bytes.clone();
            c[i] = v;
            // Ok or Err: both fine, a panic fails the test.
            let _ = import::load_model_bytes(&c, p, &opts);
        }
    }
}

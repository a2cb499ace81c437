//! Keras import (Keras 3 `.keras`, legacy tf.keras `.h5`): the trained JapaneseVowels models
//! of tests/data/keras/ (made by
//! tools/scripts/make_keras.py) against Keras's own `model.predict`, their int16/int8 blobs
//! against the float model, the gate-order conversions against the Keras cell equations,
//! and the refusals (unsupported layers by name, broken files) as one `error:` line.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tinyrnn::{CellKind, F32Math, OutputAct, Precision, RnnAct};
use tinyrnn_cli::data::{self, Sequences};
use tinyrnn_cli::exec::{self, Blob, Outputs, Runnable, Steps};
use tinyrnn_cli::import::keras::convert_recurrent;
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::ir::FloatModel;
use tinyrnn_cli::quantize::calib::{calibrate, Batch};
use tinyrnn_cli::quantize::{quantize, QuantOptions};

fn keras(f: &str) -> PathBuf {
    data_dir().join("keras").join(f)
}

fn vowels(f: &str) -> PathBuf {
    data_dir().join("vowels").join(f)
}

/// The importable models: (name, cells, takes raw features (has a Normalization layer)).
const MODELS: &[(&str, &[&str], bool)] = &[
    ("lstm", &["lstm"], true),
    ("gru", &["gru"], true),
    ("gru_rb", &["gru_rb"], true),
    ("rnn", &["rnn"], false),
    ("lstm2", &["lstm", "lstm"], true),
];

/// Legacy tf.keras 2.x full-model `.h5` files: (name, cells); both take raw features.
const LEGACY: &[(&str, &[&str])] = &[
    ("legacy_lstm", &["lstm"]),
    ("legacy_gru2", &["gru_rb", "gru"]),
];

fn model_file(name: &str) -> PathBuf {
    if name.starts_with("legacy_") {
        keras(&format!("{name}.h5"))
    } else {
        keras(&format!("{name}.keras"))
    }
}

fn all_models() -> Vec<(&'static str, &'static [&'static str], bool)> {
    MODELS
        .iter()
        .copied()
        .chain(LEGACY.iter().map(|&(n, c)| (n, c, true)))
        .collect()
}

fn cell_tag(c: CellKind) -> &'static str {
    match c {
        CellKind::Lstm { peepholes: false } => "lstm",
        CellKind::Gru {
            linear_before_reset: true,
        } => "gru",
        CellKind::Gru {
            linear_before_reset: false,
        } => "gru_rb",
        CellKind::Rnn(RnnAct::Tanh) => "rnn",
        _ => "other",
    }
}

struct TestSet {
    raw: Sequences,
    norm: Sequences,
    lengths: Vec<usize>,
    labels: Vec<usize>,
}

fn test_set() -> TestSet {
    let raw = data::read_inputs(&vowels("test_raw.npy")).unwrap();
    let norm = data::read_inputs(&vowels("test_norm.npy")).unwrap();
    let lengths = data::read_lengths(&vowels("test_lengths.npy"), raw.n, raw.t).unwrap();
    let labels = data::read_labels(&vowels("test_labels.npy"), Some(raw.n)).unwrap();
    TestSet {
        raw,
        norm,
        lengths,
        labels,
    }
}

fn accuracy(out: &Outputs, labels: &[usize]) -> f64 {
    (0..out.n).filter(|&i| out.class(i) == labels[i]).count() as f64 / out.n as f64
}

fn agreement(a: &Outputs, b: &Outputs) -> f64 {
    (0..a.n).filter(|&i| a.class(i) == b.class(i)).count() as f64 / a.n as f64
}

/// Every importable model: the right structure, and float outputs within 1e-5 of Keras's
/// `model.predict` (softmax probabilities after each sequence's own last frame) on all 370
/// test sequences, both for the f64 reference and for the float32 blob on the libm path;
/// the accuracy is the one make_keras.py measured with Keras.
#[test]
fn keras_models_match_keras_predict() {
    let ts = test_set();
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keras("info.json")).unwrap()).unwrap();
    for (name, cells, raw) in all_models() {
        let m = import::load_model(&model_file(name), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(
            m.layers
                .iter()
                .map(|l| cell_tag(l.cell))
                .collect::<Vec<_>>(),
            cells,
            "{name}"
        );
        assert!(m.layers.iter().all(|l| l.hidden_size == 16), "{name}");
        assert_eq!((m.input_size, m.output_size()), (12, 9), "{name}");
        assert_eq!(m.output_act, OutputAct::Softmax, "{name}");
        assert_eq!(m.norm.is_some(), raw, "{name}: Normalization folded");
        let x = if raw { &ts.raw } else { &ts.norm };
        let want = npy(&keras(&format!("{name}_pred.npy")));
        let f64_out = exec::run(
            &Runnable::Float(Box::new(m.clone())),
            x,
            Some(&ts.lengths),
            Steps::Last,
        )
        .unwrap();
        assert_eq!(f64_out.shape(), want.shape, "{name}");
        let q = quantize(&m, None, &QuantOptions::new(Precision::F32)).unwrap();
        let mut blob = Blob::from_bytes(q.blob).unwrap();
        blob.f32_math = F32Math::Accurate;
        let f32_out = exec::run(&Runnable::Blob(blob), x, Some(&ts.lengths), Steps::Last).unwrap();
        let e64 = max_abs(&f64_out.y, &want.data);
        let e32 = max_abs(&f32_out.y, &want.data);
        let acc = accuracy(&f64_out, &ts.labels);
        println!(
            "keras {name}: f64 vs Keras {e64:.2e}, f32 libm vs Keras {e32:.2e}, accuracy {acc:.4}"
        );
        assert!(e64 <= 1e-5, "{name}: f64 vs Keras {e64:e}");
        assert!(e32 <= 1e-5, "{name}: f32 vs Keras {e32:e}");
        let keras_acc = info["accuracy"][name].as_f64().unwrap();
        assert!(
            (acc - keras_acc).abs() < 1e-9,
            "{name}: {acc} vs Keras {keras_acc}"
        );
    }
}

/// Keras 3's ONNX exports (`model.export(format="onnx")`, make_keras_onnx.py) of the trained
/// models: GRU (both `reset_after`), SimpleRNN and the recurrent-dropout LSTM are `Loop`
/// graphs whose body is matched against the cell equations; `lstm`/`lstm2` are fused ONNX
/// `LSTM` nodes. Float outputs within 1e-5 of Keras's `model.predict` on all 370 test
/// sequences, and the same cells (gate layout, `reset_after`) as the `.keras` files.
#[test]
fn keras_onnx_exports_match_keras_predict() {
    let ts = test_set();
    for (name, cells, raw) in [
        ("gru", &["gru"][..], true),
        ("gru_rb", &["gru_rb"], true),
        ("rnn", &["rnn"], false),
        ("lstm_rd", &["lstm"], true),
        ("lstm", &["lstm"], true),
        ("lstm2", &["lstm", "lstm"], true),
    ] {
        let m = import::load_model(&keras(&format!("{name}.onnx")), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}.onnx: {e:#}"));
        let k = import::load_model(&keras(&format!("{name}.keras")), &ImportOptions::default())
            .unwrap();
        assert_eq!(
            m.layers
                .iter()
                .map(|l| cell_tag(l.cell))
                .collect::<Vec<_>>(),
            cells,
            "{name}"
        );
        assert_eq!(m.norm.is_some(), raw, "{name}");
        assert_eq!(m.output_act, OutputAct::Softmax, "{name}");
        // The same weights as the .keras file, up to float rounding of the folded forms.
        for (a, b) in m.layers.iter().zip(&k.layers) {
            let d = max_abs(
                &a.w_hh.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                &b.w_hh.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            );
            assert!(
                d <= 1e-6,
                "{name}: w_hh differs from the .keras file by {d:e}"
            );
        }
        let x = if raw { &ts.raw } else { &ts.norm };
        let want = npy(&keras(&format!("{name}_pred.npy")));
        let q = quantize(&m, None, &QuantOptions::new(Precision::F32)).unwrap();
        let out = exec::run(
            &Runnable::Float(Box::new(m)),
            x,
            Some(&ts.lengths),
            Steps::Last,
        )
        .unwrap();
        assert_eq!(out.shape(), want.shape, "{name}");
        let e = max_abs(&out.y, &want.data);
        let mut blob = Blob::from_bytes(q.blob).unwrap();
        blob.f32_math = F32Math::Accurate;
        let f32_out = exec::run(&Runnable::Blob(blob), x, Some(&ts.lengths), Steps::Last).unwrap();
        let e32 = max_abs(&f32_out.y, &want.data);
        println!("keras {name}.onnx: f64 vs Keras {e:.2e}, f32 libm vs Keras {e32:.2e}");
        assert!(e <= 1e-5, "{name}.onnx: f64 vs Keras {e:e}");
        assert!(e32 <= 1e-5, "{name}.onnx: f32 vs Keras {e32:e}");
    }
}

/// The model-graph `.keras` files (make_keras_onnx.py): their structure in the IR and the
/// f64 reference within 1e-5 of Keras's `model.predict` on all 370 test sequences (float
/// only: blob format 1 cannot hold these graphs yet, `quantize` refuses them).
///
/// `graph` folds its BatchNormalization into the Dense before it and merges the following
/// `Activation("relu")` into that layer; `lstm_rd` is an LSTM trained with recurrent dropout
/// (inactive at inference).
#[test]
fn keras_graph_models_match_keras_predict() {
    use tinyrnn::{DenseAct, Pool};
    use tinyrnn_cli::ir::FrameOp;
    let ts = test_set();
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keras("info.json")).unwrap()).unwrap();
    let dense = |op: &FrameOp| match op {
        FrameOp::Dense(d) => (d.in_size, d.out_size, d.act),
        FrameOp::LayerNorm(n) => (n.gamma.len(), 0, DenseAct::Identity),
    };
    for (spec, ext) in [
        ("lstm_rd", "lstm", vec![], Pool::Last, vec![]),
        (
            "mlp",
            "lstm",
            vec![],
            Pool::Last,
            vec![(16, 16, DenseAct::Relu)],
        ),
        ("gap", "gru", vec![], Pool::Mean, vec![]),
        (
            "graph",
            "lstm",
            vec![(12, 16, DenseAct::Tanh), (16, 0, DenseAct::Identity)],
            Pool::Max,
            vec![(16, 16, DenseAct::Relu)],
        ),
    ]
    .into_iter()
    .flat_map(|c| {
        // Keras 3's ONNX export of these graphs too, except `graph` (its TimeDistributed
        // Dense is exported as a Reshape that regroups the batch and time axes: refused).
        let exts: &[&str] = if c.0 == "graph" {
            &["keras"]
        } else {
            &["keras", "onnx"]
        };
        exts.iter()
            .map(move |&ext| (c.clone(), ext))
            .collect::<Vec<_>>()
    }) {
        let ((name, cell, pre, pool, mlp), ext) = (spec, ext);
        let m = import::load_model(&keras(&format!("{name}.{ext}")), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}.{ext}: {e:#}"));
        assert_eq!(m.layers.len(), 1, "{name}");
        assert_eq!(cell_tag(m.layers[0].cell), cell, "{name}");
        assert_eq!(m.pre.iter().map(dense).collect::<Vec<_>>(), pre, "{name}");
        assert_eq!(m.pool, pool, "{name}");
        assert_eq!(m.mlp.iter().map(dense).collect::<Vec<_>>(), mlp, "{name}");
        assert_eq!(m.output_act, OutputAct::Softmax, "{name}");
        assert_eq!((m.input_size, m.output_size()), (12, 9), "{name}");
        assert!(m.norm.is_some(), "{name}");
        let want = npy(&keras(&format!("{name}_pred.npy")));
        let out = exec::run(
            &Runnable::Float(Box::new(m)),
            &ts.raw,
            Some(&ts.lengths),
            Steps::Last,
        )
        .unwrap();
        assert_eq!(out.shape(), want.shape, "{name}");
        let e = max_abs(&out.y, &want.data);
        let acc = accuracy(&out, &ts.labels);
        println!("keras {name}.{ext}: f64 vs Keras {e:.2e}, accuracy {acc:.4}");
        assert!(e <= 1e-5, "{name}.{ext}: f64 vs Keras {e:e}");
        let keras_acc = info["accuracy"][name].as_f64().unwrap();
        assert!(
            (acc - keras_acc).abs() < 1e-9,
            "{name}: {acc} vs {keras_acc}"
        );
    }
}

/// int16 and int8 blobs of every model, calibrated on the 64 training sequences of
/// tests/data/vowels/calib_raw.npy (`rnn` takes normalized input: imported with
/// `--normalize norm.json` so it takes raw features too), against the float model on the
/// 370 test sequences.
///
/// Bounds: one changed class is 0.27 pp of 370. int16 (weights exact to 2^-16 of a row's
/// range) moves outputs by ~1e-3 at most, so at most one class may change and accuracy may
/// drop by at most one sequence (measured: 100 % agreement, 0 pp for all five). int8 (weights
/// to 1/254 of a row's range, ~0.5 % of a pre-activation) may flip the few sequences whose
/// top two probabilities are close: at most 1 % disagreement and 1 pp accuracy drop
/// (measured: worst 99.7 % agreement and −0.27 pp, gru and rnn). A wrong gate order or scale gives
/// chance-level agreement.
#[test]
fn keras_quantized_accuracy() {
    let ts = test_set();
    let calib = data::read_inputs(&vowels("calib_raw.npy")).unwrap();
    let cl = data::read_lengths(&vowels("calib_lengths.npy"), calib.n, calib.t).unwrap();
    for (name, _, raw) in all_models() {
        let opts = ImportOptions {
            normalize: (!raw).then(|| vowels("norm.json")),
            ..Default::default()
        };
        let m = import::load_model(&model_file(name), &opts).unwrap();
        let float = exec::run(
            &Runnable::Float(Box::new(m.clone())),
            &ts.raw,
            Some(&ts.lengths),
            Steps::Last,
        )
        .unwrap();
        let facc = accuracy(&float, &ts.labels);
        let stats = calibrate(&m, &Batch::from_sequences(&calib, Some(&cl)), || {}).unwrap();
        for (p, max_disagree, max_drop) in [
            (Precision::Int16, 1.0 / 370.0, 1.0 / 370.0),
            (Precision::Int8, 0.01, 0.01),
        ] {
            let q = quantize(&m, Some(&stats), &QuantOptions::new(p)).unwrap();
            let blob = Blob::from_bytes(q.blob).unwrap();
            let out = exec::run(
                &Runnable::Blob(blob),
                &ts.raw,
                Some(&ts.lengths),
                Steps::Last,
            )
            .unwrap();
            let (acc, agree) = (accuracy(&out, &ts.labels), agreement(&out, &float));
            let err = max_abs(&out.y, &float.y);
            println!(
                "keras {name} {p:?}: accuracy {acc:.4} (float {facc:.4}), agreement {agree:.4}, max abs {err:.2e}"
            );
            assert!(
                1.0 - agree <= max_disagree + 1e-12,
                "{name} {p:?}: agreement {agree}"
            );
            assert!(
                facc - acc <= max_drop + 1e-12,
                "{name} {p:?}: {acc} vs {facc}"
            );
        }
    }
}

/// Deterministic pseudo-random values in [-scale, scale].
fn rand_vec(seed: &mut u64, n: usize, scale: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((*seed >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0) as f32 * scale as f32
        })
        .collect()
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `x @ K[:, cols]` for a Keras `[rows, width]` kernel.
fn xk(x: &[f64], k: &[f32], width: usize, cols: std::ops::Range<usize>) -> Vec<f64> {
    cols.map(|c| {
        x.iter()
            .enumerate()
            .map(|(r, &xi)| xi * k[r * width + c] as f64)
            .sum()
    })
    .collect()
}

/// One step of a Keras cell as Keras writes it (keras/src/layers/rnn/{lstm,gru,simple_rnn}.py):
/// LSTM columns `i, f, c, o`; GRU columns `z, r, h`, `h = z ⊙ h + (1 − z) ⊙ hh`.
#[allow(clippy::too_many_arguments)]
fn keras_step(
    kind: &str,
    x: &[f64],
    h: &mut Vec<f64>,
    c: &mut [f64],
    k: &[f32],
    r: &[f32],
    b: &[f32],
    u: usize,
) {
    let g = match kind {
        "lstm" => 4,
        "rnn" => 1,
        _ => 3,
    };
    let w = g * u;
    let bias = |row: usize, j: usize| b[row * w + j] as f64;
    match kind {
        "lstm" => {
            let z: Vec<f64> = (0..w)
                .map(|j| xk(x, k, w, j..j + 1)[0] + xk(h, r, w, j..j + 1)[0] + bias(0, j))
                .collect();
            for j in 0..u {
                let (i, f, cc, o) = (
                    sig(z[j]),
                    sig(z[u + j]),
                    z[2 * u + j].tanh(),
                    sig(z[3 * u + j]),
                );
                c[j] = f * c[j] + i * cc;
                h[j] = o * c[j].tanh();
            }
        }
        "rnn" => {
            *h = (0..u)
                .map(|j| (xk(x, k, w, j..j + 1)[0] + xk(h, r, w, j..j + 1)[0] + bias(0, j)).tanh())
                .collect();
        }
        "gru" => {
            // reset_after=True: bias [2, 3u], hh = tanh(x·Kh + b_in_h + r ⊙ (h·Rh + b_rec_h))
            let xi = xk(x, k, w, 0..w);
            let hi = xk(h, r, w, 0..w);
            let mut nh = vec![0.0; u];
            for j in 0..u {
                let z = sig(xi[j] + bias(0, j) + hi[j] + bias(1, j));
                let rr = sig(xi[u + j] + bias(0, u + j) + hi[u + j] + bias(1, u + j));
                let hh = (xi[2 * u + j]
                    + bias(0, 2 * u + j)
                    + rr * (hi[2 * u + j] + bias(1, 2 * u + j)))
                .tanh();
                nh[j] = z * h[j] + (1.0 - z) * hh;
            }
            *h = nh;
        }
        _ => {
            // reset_after=False: bias [3u], hh = tanh(x·Kh + b_h + (r ⊙ h)·Rh)
            let xi = xk(x, k, w, 0..w);
            let hi = xk(h, r, w, 0..2 * u);
            let zr: Vec<(f64, f64)> = (0..u)
                .map(|j| {
                    (
                        sig(xi[j] + bias(0, j) + hi[j]),
                        sig(xi[u + j] + bias(0, u + j) + hi[u + j]),
                    )
                })
                .collect();
            let rh: Vec<f64> = (0..u).map(|j| zr[j].1 * h[j]).collect();
            let hr = xk(&rh, r, w, 2 * u..3 * u);
            *h = (0..u)
                .map(|j| {
                    let hh = (xi[2 * u + j] + bias(0, 2 * u + j) + hr[j]).tanh();
                    zr[j].0 * h[j] + (1.0 - zr[j].0) * hh
                })
                .collect();
        }
    }
}

/// Each conversion (LSTM `i,f,c,o`; GRU `z,r,h` → `r,z,n` with both bias layouts;
/// SimpleRNN; `use_bias=False`) gives a layer whose f64 steps equal the Keras cell equations
/// on random weights and inputs, within float rounding.
#[test]
fn gate_order_conversions_follow_keras_equations() {
    let (inp, u, steps) = (5, 4, 6);
    let mut seed = 7u64;
    for kind in ["lstm", "gru", "gru_rb", "rnn"] {
        for use_bias in [true, false] {
            let (cell, g, brows) = match kind {
                "lstm" => (CellKind::Lstm { peepholes: false }, 4, 1),
                "gru" => (
                    CellKind::Gru {
                        linear_before_reset: true,
                    },
                    3,
                    2,
                ),
                "gru_rb" => (
                    CellKind::Gru {
                        linear_before_reset: false,
                    },
                    3,
                    1,
                ),
                _ => (CellKind::Rnn(RnnAct::Tanh), 1, 1),
            };
            let k = rand_vec(&mut seed, inp * g * u, 0.8);
            let r = rand_vec(&mut seed, u * g * u, 0.8);
            let b = if use_bias {
                rand_vec(&mut seed, brows * g * u, 0.5)
            } else {
                vec![0.0; brows * g * u]
            };
            let layer = convert_recurrent(cell, inp, u, &k, &r, use_bias.then_some(&b[..]));
            let m = FloatModel {
                input_size: inp,
                norm: None,
                pre: Vec::new(),
                layers: vec![layer],
                pool: tinyrnn::Pool::Last,
                mlp: Vec::new(),
                head: None,
                output_act: OutputAct::Identity,
                name: String::new(),
            };
            m.validate().unwrap();
            let xs: Vec<Vec<f32>> = (0..steps).map(|_| rand_vec(&mut seed, inp, 1.5)).collect();
            let frames: Vec<&[f32]> = xs.iter().map(|v| &v[..]).collect();
            let got = m.run(&frames, &mut ());
            let (mut h, mut c) = (vec![0.0; u], vec![0.0; u]);
            let mut err = 0.0f64;
            for (t, x) in xs.iter().enumerate() {
                let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                keras_step(kind, &x64, &mut h, &mut c, &k, &r, &b, u);
                err = h
                    .iter()
                    .zip(&got[t])
                    .fold(err, |e, (a, b)| e.max((a - b).abs()));
            }
            assert!(err < 1e-12, "{kind} use_bias={use_bias}: {err:e}");
            // A changed gate order must be seen: the check is not vacuous.
            assert!(h.iter().any(|v| v.abs() > 1e-3), "{kind}: trivial state");
        }
    }
}

fn refused(path: &Path) -> String {
    let (code, out, err) = cli(&["inspect".as_ref(), path.as_os_str()]);
    assert_eq!(code, 1, "{}: {out}{err}", path.display());
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Unsupported layers and settings are refused by name (class and setting), one line.
#[test]
fn unsupported_layers_are_refused_by_name() {
    for (file, want) in [
        (
            "hardsig.keras",
            "(GRU): recurrent_activation \"hard_sigmoid\"",
        ),
        // The same GRU exported to ONNX: a Loop whose body is no cell tinyrnn has.
        (
            "hardsig.onnx",
            "(Loop): loop body node `sequential_7_1/gru_3_1/while/gru_cell_1/Relu6` (Clip): op `Clip` in a recurrent cell step is not supported",
        ),
    ] {
        let err = refused(&keras(file));
        println!("{err}");
        assert!(err.contains(want), "{file}: {err}");
    }
}

/// A real `.keras` file (lstm.keras, as Keras wrote it) with a `Conv1D` layer inserted into
/// its `config.json` before the LSTM, the weights file unchanged: refused through the CLI by
/// the layer's class and name, one `error:` line, exit 1 — not imported without the layer.
#[test]
fn a_keras_file_with_an_unsupported_layer_is_refused_by_the_cli() {
    use std::io::{Read, Write};
    let src = std::fs::File::open(keras("lstm.keras")).unwrap();
    let mut zin = zip::ZipArchive::new(src).unwrap();
    let p = scratch("keras_conv1d").join("conv1d.keras");
    let mut zout = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        if name == "config.json" {
            let mut c: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let layers = c["config"]["layers"].as_array_mut().unwrap();
            let at = layers
                .iter()
                .position(|l| l["class_name"] == "LSTM")
                .unwrap();
            layers.insert(
                at,
                serde_json::json!({
                    "module": "keras.layers",
                    "class_name": "Conv1D",
                    "config": {"name": "conv1d", "filters": 8, "kernel_size": [3]},
                }),
            );
            bytes = serde_json::to_vec(&c).unwrap();
        }
        zout.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zout.write_all(&bytes).unwrap();
    }
    zout.finish().unwrap();
    let err = refused(&p);
    assert!(err.contains("(Conv1D)") && err.contains("conv1d"), "{err}");
}

/// Broken files: one `error:` line each, exit 1, no panic.
#[test]
fn broken_keras_files_are_one_error_line() {
    for (file, want) in [
        ("truncated.keras", "not a readable zip archive"),
        ("noconfig.keras", "no `config.json`"),
        (
            "missing_dataset.keras",
            "`layers/lstm/cell/vars/1`) is missing from model.weights.h5",
        ),
    ] {
        let err = refused(&keras(file));
        assert!(err.contains(want), "{file}: {err}");
    }
    // An HDF5 signature and nothing readable after it.
    let p = scratch("keras_legacy").join("bad.h5");
    let mut bytes = b"\x89HDF\r\n\x1a\n".to_vec();
    bytes.resize(512, 0);
    std::fs::write(&p, &bytes).unwrap();
    let err = refused(&p);
    assert!(
        err.contains("(legacy Keras .h5): not a readable HDF5 file"),
        "{err}"
    );
    // A .tflite (what the TFLite converter makes of lstm.keras: a WHILE graph): refused
    // with a hint, not parsed as ONNX.
    let err = refused(&keras("lstm_while.tflite"));
    assert!(
        err.contains("(TFLite): op 10 (WHILE)") && err.contains("import the .keras file"),
        "{err}"
    );
    // A weights-only .h5 (`model.save_weights`): no model config, refused with the hint.
    let err = refused(&keras("weights_only.h5"));
    assert!(
        err.contains("without a `model_config`") && err.contains("model.keras"),
        "{err}"
    );
}

/// Corrupting bytes of a `.keras` or legacy `.h5` file (all bits of one byte flipped) gives a
/// model or an error, never a panic: the zip (whose CRC catches most flips) every 97th byte,
/// the `.h5` (bytes straight into the HDF5 reader) every 7th.
#[test]
fn corrupted_keras_bytes_never_panic() {
    for (file, stride) in [("gru.keras", 97), ("legacy_lstm.h5", 7)] {
        let good = std::fs::read(keras(file)).unwrap();
        let mut errors = 0;
        for pos in (0..good.len()).step_by(stride) {
            let mut b = good.clone();
            b[pos] ^= 0xff;
            if import::load_model_bytes(&b, Path::new(file), &ImportOptions::default()).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 0, "{file}");
    }
}

/// The CLI takes a `.keras` file where it takes ONNX: quantize to int8 (calibrated), then
/// eval against the `.keras` file as the reference; `inspect` says what was dropped or
/// folded (one `note:` line on stderr).
#[test]
fn cli_quantize_and_eval_a_keras_file() {
    for (file, note) in [
        (
            "rnn.keras",
            "note: layer `dropout` (Dropout) dropped (inactive at inference)",
        ),
        (
            "lstm.keras",
            "(Normalization) folded into the input normalization",
        ),
    ] {
        let (code, out, err) = cli(&["inspect".as_ref(), keras(file).as_os_str()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("keras "), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(note), "{file}: {err}");
    }
    let blob = scratch("keras_cli").join("lstm_int8.trnn");
    let s = |p: &Path| p.as_os_str().to_owned();
    let (code, _, err) = cli(&[
        "quantize".as_ref(),
        &s(&keras("lstm.keras")),
        "--calib".as_ref(),
        &s(&vowels("calib_raw.npy")),
        "--calib-lengths".as_ref(),
        &s(&vowels("calib_lengths.npy")),
        "-o".as_ref(),
        &s(&blob),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&[
        "eval".as_ref(),
        &s(&blob),
        "-i".as_ref(),
        &s(&vowels("test_raw.npy")),
        "--labels".as_ref(),
        &s(&vowels("test_labels.npy")),
        "--lengths".as_ref(),
        &s(&vowels("test_lengths.npy")),
        "--reference".as_ref(),
        &s(&keras("lstm.keras")),
        "--json".as_ref(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["agreement"].as_f64().unwrap() >= 0.99, "{v}");
}

/// `inspect` shows the whole graph of an imported model (pre-net, pooling, hidden head ops),
/// and counts the pooling accumulators in the state as the runtime does.
#[test]
fn inspect_shows_the_graph_of_imported_models() {
    let text = |f: &str| {
        let (code, out, err) = cli(&["inspect".as_ref(), keras(f).as_os_str()]);
        assert_eq!(code, 0, "{f}: {err}");
        out
    };
    let mlp = text("mlp.onnx");
    assert!(
        mlp.contains("head op 0: dense(relu) 16 -> 16, 272 params"),
        "{mlp}"
    );
    let graph = text("graph.keras");
    for line in [
        "pre-net op 0: dense(tanh) 12 -> 16",
        "pre-net op 1: layer_norm 16 -> 16",
        "pool over time: max (16 state words)",
        "head op 0: dense(relu) 16 -> 16",
    ] {
        assert!(graph.contains(line), "{line}: {graph}");
    }
    // GRU(16) + mean: 16 words of h, 2·16 of i64 sums and 2 of the u64 frame count
    let gap = text("gap.keras");
    assert!(
        gap.contains("pool over time: mean (34 state words)"),
        "{gap}"
    );
    assert!(gap.contains("RAM: state 50 words"), "{gap}");
}

//! The graph shapes of #10 from trained PyTorch models (tests/data/graph/, made by
//! tools/scripts/make_graph_models.py): MLP heads, input projections, pooling over time,
//! dense activations, LayerNorm/BatchNorm, from both torch exporters and safetensors,
//! run by the f64 reference against PyTorch and onnxruntime.

mod common;

use std::path::{Path, PathBuf};

use common::{data_dir, max_abs, npy};
use tinyrnn::{DenseAct, Pool};
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::ir::{FloatModel, FrameOp};

const MODELS: [&str; 6] = [
    "lstm_mlp",
    "proj_gru",
    "lstm_mean",
    "lstm_max",
    "gru_zoo",
    "lstm_zoo",
];

fn dir(model: &str) -> PathBuf {
    data_dir().join("graph").join(model)
}

fn load(path: &Path, opts: &ImportOptions) -> FloatModel {
    import::load_model(path, opts).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// The model's output after the last frame of each of the four test sequences, `[4·C]`.
fn outputs(m: &FloatModel) -> Vec<f64> {
    let x = npy(&data_dir().join("graph/x.npy"));
    let (n, t, f) = (x.shape[0], x.shape[1], x.shape[2]);
    let mut out = Vec::new();
    for s in 0..n {
        let rows: Vec<Vec<f32>> = (0..t)
            .map(|k| {
                let base = (s * t + k) * f;
                x.data[base..base + f].iter().map(|&v| v as f32).collect()
            })
            .collect();
        let frames: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        out.extend(m.run(&frames, &mut ()).pop().unwrap());
    }
    out
}

fn reference(model: &str, file: &str) -> Vec<f64> {
    npy(&dir(model).join(file)).data
}

/// The shape of the graph: (pre-net ops, pool, head ops, head width) in words.
fn shape(m: &FloatModel) -> (Vec<String>, Pool, Vec<String>) {
    let ops = |v: &[FrameOp]| -> Vec<String> {
        v.iter()
            .map(|op| match op {
                FrameOp::Dense(d) => {
                    format!("dense {}->{} {}", d.in_size, d.out_size, d.act.name())
                }
                FrameOp::LayerNorm(n) => format!("layernorm {}", n.gamma.len()),
            })
            .collect()
    };
    (ops(&m.pre), m.pool, ops(&m.mlp))
}

/// Every ONNX file imports, its float outputs match PyTorch and onnxruntime within 1e-5,
/// and both exporters give the same model.
#[test]
fn onnx_both_exporters_match_torch_and_ort() {
    for model in MODELS {
        let classic = load(&dir(model).join("classic.onnx"), &ImportOptions::default());
        let dynamo = load(&dir(model).join("dynamo.onnx"), &ImportOptions::default());
        classic.validate().unwrap();
        assert!(!classic.is_plain(), "{model} is not format 1's shape");
        let torch = reference(model, "y_torch.npy");
        for (m, ort, name) in [
            (&classic, "y_ort_classic.npy", "classic"),
            (&dynamo, "y_ort_dynamo.npy", "dynamo"),
        ] {
            let y = outputs(m);
            let e_torch = max_abs(&y, &torch);
            let e_ort = max_abs(&y, &reference(model, ort));
            println!(
                "{model} {name}: max |float - torch| {e_torch:.2e}, |float - ort| {e_ort:.2e}"
            );
            assert!(e_torch <= 1e-5, "{model} {name}: {e_torch} vs torch");
            assert!(e_ort <= 1e-5, "{model} {name}: {e_ort} vs ort");
        }
        assert_eq!(shape(&classic), shape(&dynamo), "{model}");
        assert_eq!(classic.layers.len(), dynamo.layers.len());
        for (a, b) in classic.layers.iter().zip(&dynamo.layers) {
            assert_eq!(a.cell, b.cell, "{model}");
            for (x, y) in [
                (&a.w_ih, &b.w_ih),
                (&a.w_hh, &b.w_hh),
                (&a.b_ih, &b.b_ih),
                (&a.b_hh, &b.b_hh),
            ] {
                assert_eq!(x, y, "{model}: recurrent weights differ between exporters");
            }
        }
        let (h1, h2) = (
            classic.head.as_ref().unwrap(),
            dynamo.head.as_ref().unwrap(),
        );
        assert_eq!(h1.weight, h2.weight, "{model}: head");
        // The dense layers (BatchNorm is folded by the dynamo exporter itself and by the
        // importer for the classic one, so those may differ in the last bits).
        for (a, b) in classic
            .pre
            .iter()
            .chain(&classic.mlp)
            .zip(dynamo.pre.iter().chain(&dynamo.mlp))
        {
            match (a, b) {
                (FrameOp::Dense(a), FrameOp::Dense(b)) => {
                    let d = max_abs(
                        &a.weight.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                        &b.weight.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                    );
                    assert!(d <= 1e-6, "{model}: dense weights differ by {d}");
                }
                (FrameOp::LayerNorm(a), FrameOp::LayerNorm(b)) => assert_eq!(a, b, "{model}"),
                _ => panic!("{model}: op kinds differ"),
            }
        }
    }
}

/// Where each model's layers land in the IR.
#[test]
fn graph_shapes_are_placed() {
    let s = |m: &str| {
        shape(&load(
            &dir(m).join("classic.onnx"),
            &ImportOptions::default(),
        ))
    };
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        s("lstm_mlp"),
        (vec![], Pool::Last, v(&["dense 16->16 relu"]))
    );
    assert_eq!(
        s("proj_gru"),
        (v(&["dense 6->12 relu"]), Pool::Last, vec![])
    );
    assert_eq!(s("lstm_mean"), (vec![], Pool::Mean, vec![]));
    assert_eq!(s("lstm_max"), (vec![], Pool::Max, vec![]));
    assert_eq!(
        s("gru_zoo"),
        (
            v(&["dense 6->8 identity", "layernorm 8", "dense 8->8 gelu"]),
            Pool::Sum,
            v(&["dense 12->12 leaky_relu", "dense 12->8 clip"])
        )
    );
    assert_eq!(
        s("lstm_zoo"),
        (
            v(&["dense 6->8 tanh"]),
            Pool::Max,
            v(&[
                "dense 12->10 gelu(tanh)",
                "dense 10->8 sigmoid",
                "layernorm 8",
                "dense 8->8 clip"
            ])
        )
    );
    let zoo = load(
        &dir("gru_zoo").join("classic.onnx"),
        &ImportOptions::default(),
    );
    match &zoo.mlp[..] {
        [FrameOp::Dense(a), FrameOp::Dense(b)] => {
            assert_eq!(a.act, DenseAct::LeakyRelu { alpha: 0.1 });
            assert_eq!(b.act, DenseAct::Clip { lo: 0.0, hi: 6.0 });
        }
        other => panic!("{other:?}"),
    }
}

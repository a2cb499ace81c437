//! The graph shapes of #10 from trained PyTorch models (tests/data/graph/, made by
//! tools/scripts/make_graph_models.py): MLP heads, input projections, pooling over time,
//! dense activations, LayerNorm/BatchNorm, from both torch exporters and safetensors,
//! run by the f64 reference against PyTorch and onnxruntime.

mod common;

use std::path::{Path, PathBuf};

use std::ffi::OsStr;

use common::{cli, data_dir, max_abs, npy};
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

fn sd_opts(flags: &[&str]) -> ImportOptions {
    let mut o = ImportOptions::default();
    let mut it = flags.iter();
    while let (Some(&f), Some(&v)) = (it.next(), it.next()) {
        match (f, v) {
            ("--pool", "mean") => o.pool = Some(import::Pool::Mean),
            ("--pool", "max") => o.pool = Some(import::Pool::Max),
            ("--head-act", "relu") => o.head_act.push(DenseAct::Relu),
            ("--pre-act", "relu") => o.pre_act.push(DenseAct::Relu),
            other => panic!("flag {other:?}"),
        }
    }
    o
}

/// The four main models' state_dicts import with the flags recorded in index.json, match
/// PyTorch within 1e-5, equal the ONNX import's graph, and the CLI prints the assumed
/// forward pass.
#[test]
fn safetensors_with_flags_match_torch() {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir().join("graph/index.json")).unwrap())
            .unwrap();
    let want_forward = [
        ("lstm_mlp", "y = head.2(relu(head.0(rnn(x)[0][:, -1])))"),
        ("proj_gru", "y = head.0(rnn(relu(pre.0(x)))[0][:, -1])"),
        ("lstm_mean", "y = head.0(rnn(x)[0].mean(dim=1))"),
        ("lstm_max", "y = head.0(rnn(x)[0].max(dim=1).values)"),
    ];
    for (model, forward) in want_forward {
        let flags: Vec<String> = index["models"][model]["safetensors_flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let file = dir(model).join("model.safetensors");
        let m = load(&file, &sd_opts(&flags));
        let e = max_abs(&outputs(&m), &reference(model, "y_torch.npy"));
        println!("{model} safetensors {flags:?}: max |float - torch| {e:.2e}");
        assert!(e <= 1e-5, "{model}: {e}");
        let onnx = load(&dir(model).join("classic.onnx"), &ImportOptions::default());
        assert_eq!(shape(&m), shape(&onnx), "{model}");
        let mut args: Vec<&OsStr> = vec!["inspect".as_ref(), file.as_os_str()];
        args.extend(flags.iter().map(|f| OsStr::new(*f)));
        let (_, _, stderr) = cli(&args);
        let note: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note:")).collect();
        assert_eq!(note.len(), 1, "{model}: {stderr}");
        assert!(
            note[0].contains(forward),
            "{model}: {forward:?} not in {}",
            note[0]
        );
    }
}

/// One `error:` line, exit 1, nothing on stdout.
fn refused(args: &[&OsStr], wants: &[&str]) {
    let (code, stdout, stderr) = cli(args);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for w in wants {
        assert!(stderr.contains(w), "{w:?} not in {stderr}");
    }
}

/// What cannot be placed is refused in one line naming it: a safetensors MLP head or
/// pre-net without its activation flags, a bidirectional/reverse layer, an unsupported op
/// inside a head.
#[test]
fn refusals_are_one_clear_line() {
    let sd = dir("lstm_mlp").join("model.safetensors");
    refused(
        &["inspect".as_ref(), sd.as_os_str()],
        &[
            "2 dense layer(s) (`head.0` (16 -> 16), `head.2` (16 -> 4))",
            "0 --head-act given, 1 needed",
            "keys: head.0.bias [16]",
        ],
    );
    refused(
        &[
            "inspect".as_ref(),
            sd.as_os_str(),
            "--head-act".as_ref(),
            "relu,relu".as_ref(),
        ],
        &["2 --head-act given, 1 needed"],
    );
    let sd = dir("proj_gru").join("model.safetensors");
    refused(
        &["inspect".as_ref(), sd.as_os_str()],
        &[
            "1 dense layer(s) before the first recurrent layer (`pre.0` (6 -> 12))",
            "--pre-act",
        ],
    );
    let onnx = dir("lstm_mlp").join("classic.onnx");
    refused(
        &[
            "inspect".as_ref(),
            onnx.as_os_str(),
            "--head-act".as_ref(),
            "relu".as_ref(),
        ],
        &["--pre-act/--head-act apply to safetensors"],
    );
    // Bidirectional and reverse layers, and an unsupported op inside the head, in the
    // trained model's own graph.
    let scratch = common::scratch("graph-import-refusals");
    for (what, edit, wants) in [
        (
            "bidirectional",
            "direction",
            &[
                "node `/rnn/LSTM` (LSTM)",
                "expected [2, G·H, I] / [2, G·H, H] (direction=bidirectional)",
            ][..],
        ),
        (
            "Selu",
            "op",
            &[
                "node `/head/head.1/Relu` (Selu)",
                "unsupported ONNX op `Selu`",
            ][..],
        ),
    ] {
        let mut m = common::load_onnx(&onnx);
        if edit == "op" {
            common::find_node(&mut m, "Relu").op_type = what.into();
        } else {
            common::find_node(&mut m, "LSTM")
                .attribute
                .push(common::attr_s("direction", what));
        }
        let f = scratch.join(format!("{what}.onnx"));
        std::fs::write(&f, common::encode(&m)).unwrap();
        refused(&["inspect".as_ref(), f.as_os_str()], wants);
    }
}

/// Opset 14 has no `LayerNormalization` and no `Gelu`: the classic exporter writes them as
/// arithmetic (ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add, Erf or Tanh), which the importer fuses
/// back into the same graph as the opset-17 file.
#[test]
fn decomposed_layer_norm_and_gelu_are_fused() {
    for model in ["gru_zoo", "lstm_zoo"] {
        let m = load(
            &dir(model).join("classic_op14.onnx"),
            &ImportOptions::default(),
        );
        let e_torch = max_abs(&outputs(&m), &reference(model, "y_torch.npy"));
        let e_ort = max_abs(&outputs(&m), &reference(model, "y_ort_classic_op14.npy"));
        println!("{model} opset 14: max |float - torch| {e_torch:.2e}, |float - ort| {e_ort:.2e}");
        assert!(
            e_torch <= 1e-5 && e_ort <= 1e-5,
            "{model}: {e_torch} {e_ort}"
        );
        let op17 = load(&dir(model).join("classic.onnx"), &ImportOptions::default());
        assert_eq!(shape(&m), shape(&op17), "{model}");
        assert_eq!(m.mlp, op17.mlp, "{model}");
        assert_eq!(m.pre, op17.pre, "{model}");
    }
}

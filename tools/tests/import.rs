//! Importers against the PyTorch / onnxruntime references in `tests/data/`: every golden
//! case in both formats, the trained JapaneseVowels classifiers and the predictor, the
//! importer's handling of graph variants, and its one-line rejections.

mod common;

use std::path::Path;

use common::*;
use tinyrnn::{CellKind, OutputAct, RnnAct};
use tinyrnn_cli::data::{self, Sequences};
use tinyrnn_cli::exec::{self, Runnable, Steps};
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::ir::FloatModel;

/// The bound for float `run` vs PyTorch.
const TOL: f64 = 5e-5;

fn opts_for(meta: &serde_json::Value) -> ImportOptions {
    ImportOptions {
        rnn_activation: match meta["rnn_activation"].as_str() {
            Some("relu") => Some(RnnAct::Relu),
            _ => None,
        },
        normalize: None,
        output_act: match meta["output_activation"].as_str() {
            Some("softmax") => Some(OutputAct::Softmax),
            Some("sigmoid") => Some(OutputAct::Sigmoid),
            _ => None,
        },
        pool: None,
        ..Default::default()
    }
}

fn run_all(m: &FloatModel, x: &Sequences, lengths: Option<&[usize]>) -> exec::Outputs {
    exec::run(
        &Runnable::Float(Box::new(m.clone())),
        x,
        lengths,
        Steps::All,
    )
    .unwrap()
}

fn check_structure(case: &str, m: &FloatModel, meta: &serde_json::Value) {
    let hs: Vec<usize> = meta["hidden_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(
        m.layers.iter().map(|l| l.hidden_size).collect::<Vec<_>>(),
        hs,
        "{case}"
    );
    assert_eq!(m.input_size, meta["input_size"].as_u64().unwrap() as usize);
    assert_eq!(
        m.output_size(),
        meta["output_size"].as_u64().unwrap() as usize
    );
    assert_eq!(
        m.head.is_some(),
        meta["has_head"].as_bool().unwrap(),
        "{case}"
    );
    let want_act = match meta["output_activation"].as_str().unwrap() {
        "softmax" => OutputAct::Softmax,
        "sigmoid" => OutputAct::Sigmoid,
        _ => OutputAct::Identity,
    };
    assert_eq!(m.output_act, want_act, "{case}");
    for l in &m.layers {
        let ok = match (meta["cell"].as_str().unwrap(), l.cell) {
            ("lstm", CellKind::Lstm { peepholes }) => {
                peepholes == meta["peepholes"].as_bool().unwrap_or(false)
            }
            (
                "gru",
                CellKind::Gru {
                    linear_before_reset,
                },
            ) => linear_before_reset == meta["linear_before_reset"].as_bool().unwrap_or(true),
            ("rnn", CellKind::Rnn(a)) => {
                (a == RnnAct::Relu) == (meta["rnn_activation"].as_str() == Some("relu"))
            }
            _ => false,
        };
        assert!(ok, "{case}: cell {:?} vs meta", l.cell);
    }
    if let Some(init) = meta.get("initial_state").filter(|v| !v.is_null()) {
        let h0: Vec<f32> = init["initial_h"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let c0: Vec<f32> = init["initial_c"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(m.layers[0].h0.as_deref(), Some(&h0[..]), "{case} h0");
        assert_eq!(m.layers[0].c0.as_deref(), Some(&c0[..]), "{case} c0");
    } else {
        assert!(m.layers.iter().all(|l| l.h0.is_none() && l.c0.is_none()));
    }
}

/// Every golden case, ONNX and (where present) safetensors, matches `y_all.npy` at every step.
#[test]
fn golden_cases_match_reference() {
    let mut report = Vec::new();
    for case in golden_cases() {
        let meta = meta(&case);
        let x = data::read_inputs(&golden(&case, "x.npy")).unwrap();
        let y = npy(&golden(&case, "y_all.npy"));
        let mut formats = vec!["model.onnx"];
        if meta["has_safetensors"].as_bool() == Some(true) {
            formats.push("model.safetensors");
        }
        for f in formats {
            let path = golden(&case, f);
            let opts = if f.ends_with("onnx") {
                ImportOptions::default()
            } else {
                opts_for(&meta)
            };
            let m =
                import::load_model(&path, &opts).unwrap_or_else(|e| panic!("{case}/{f}: {e:#}"));
            check_structure(&case, &m, &meta);
            let out = run_all(&m, &x, None);
            assert_eq!(out.shape(), y.shape, "{case}/{f}");
            let err = max_abs(&out.y, &y.data);
            report.push(format!("{case}/{f}: max abs {err:.3e}"));
            assert!(err <= TOL, "{case}/{f}: max abs error {err:e} > {TOL:e}");
        }
    }
    println!("{}", report.join("\n"));
    assert!(report.len() >= 30, "{} golden checks", report.len());
}

/// A `--lengths` run equals running each sequence truncated to its length.
#[test]
fn lengths_equal_truncation() {
    let case = "lstm_3l";
    let m = import::load_model(&golden(case, "model.onnx"), &ImportOptions::default()).unwrap();
    let x = data::read_inputs(&golden(case, "x.npy")).unwrap();
    let lengths = vec![12, 1, 7, 3];
    let r = Runnable::Float(Box::new(m.clone()));
    let last = exec::run(&r, &x, Some(&lengths), Steps::Last).unwrap();
    let all = exec::run(&r, &x, Some(&lengths), Steps::All).unwrap();
    for (i, &len) in lengths.iter().enumerate() {
        let one = Sequences::new(1, len, x.f, x.seq(i)[..len * x.f].to_vec());
        let o = exec::run(&r, &one, None, Steps::Last).unwrap();
        assert_eq!(last.last(i), o.last(0));
        assert_eq!(all.last(i), o.last(0));
        // Padded steps are zeros.
        for t in len..x.t {
            assert!(all.at(i, t).iter().all(|&v| v == 0.0));
        }
    }
}

fn vowels(p: &str) -> std::path::PathBuf {
    data_dir().join("vowels").join(p)
}

/// The trained JapaneseVowels models, both formats, normalized input and raw input with
/// `--normalize`, match PyTorch's logits at each sequence's own last step.
#[test]
fn vowels_match_pytorch() {
    let x_norm = data::read_inputs(&vowels("test_norm.npy")).unwrap();
    let x_raw = data::read_inputs(&vowels("test_raw.npy")).unwrap();
    let lengths = data::read_lengths(&vowels("test_lengths.npy"), x_norm.n, x_norm.t).unwrap();
    let labels = data::read_labels(&vowels("test_labels.npy"), Some(x_norm.n)).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vowels("train_metrics.json")).unwrap()).unwrap();
    for m in ["lstm", "gru", "rnn"] {
        let reference = npy(&vowels(&format!("{m}_ref_logits.npy")));
        for f in ["onnx", "safetensors"] {
            let path = vowels(&format!("{m}.{f}"));
            for raw in [false, true] {
                let opts = ImportOptions {
                    normalize: raw.then(|| vowels("norm.json")),
                    ..Default::default()
                };
                let model = import::load_model(&path, &opts).unwrap();
                assert_eq!(model.norm.is_some(), raw);
                let x = if raw { &x_raw } else { &x_norm };
                let out = exec::run(
                    &Runnable::Float(Box::new(model)),
                    x,
                    Some(&lengths),
                    Steps::Last,
                )
                .unwrap();
                assert_eq!(out.shape(), reference.shape);
                let err = max_abs(&out.y, &reference.data);
                let acc =
                    (0..out.n).filter(|&i| out.class(i) == labels[i]).count() as f64 / out.n as f64;
                println!("vowels {m}.{f} raw={raw}: max abs {err:.3e}, accuracy {acc:.4}");
                assert!(err <= TOL, "{m}.{f} raw={raw}: {err:e}");
                let want = metrics[m].as_f64().unwrap();
                assert!((acc - want).abs() < 1e-9, "{m}: accuracy {acc} vs {want}");
            }
        }
    }
}

/// The next-step predictor matches PyTorch at every prime step.
#[test]
fn predictor_matches_pytorch() {
    let dir = data_dir().join("predictor");
    let x = data::read_inputs(&dir.join("prime.npy")).unwrap();
    let y = npy(&dir.join("prime_y_all.npy"));
    for f in ["predictor.onnx", "predictor.safetensors"] {
        let m = import::load_model(&dir.join(f), &ImportOptions::default()).unwrap();
        let out = run_all(&m, &x, None);
        let err = max_abs(&out.y, &y.data);
        println!("predictor {f}: max abs {err:.3e}");
        assert!(err <= TOL, "{f}: {err:e}");
    }
}

fn import_bytes(bytes: &[u8]) -> anyhow::Result<FloatModel> {
    import::load_model_bytes(bytes, Path::new("test.onnx"), &ImportOptions::default())
}

fn err_of(bytes: &[u8]) -> String {
    format!("{:#}", import_bytes(bytes).unwrap_err())
}

/// A leading per-feature `Sub`/`Div` on the input becomes the model's normalization.
#[test]
fn onnx_input_normalization_is_folded() {
    let case = "gru_1l";
    let mut m = load_onnx(&golden(case, "model.onnx"));
    let mean = [0.5f32, -1.0, 2.0, 0.0, 3.0];
    let std = [2.0f32, 0.5, 1.0, 4.0, 0.25];
    let g = m.graph.as_mut().unwrap();
    for n in &mut g.node {
        for i in &mut n.input {
            if i == "x" {
                *i = "x_norm".into();
            }
        }
    }
    g.node
        .insert(0, node("Sub", &["x", "mean"], &["x_sub"], vec![]));
    g.node
        .insert(1, node("Div", &["x_sub", "std"], &["x_norm"], vec![]));
    g.initializer.push(tensor_f32("mean", &[5], &mean));
    g.initializer.push(tensor_f32("std", &[1, 1, 5], &std));
    let folded = import_bytes(&encode(&m)).unwrap();
    let plain = import::load_model(&golden(case, "model.onnx"), &ImportOptions::default()).unwrap();
    let n = folded.norm.clone().expect("normalization folded");
    assert_eq!(n.offset, mean.to_vec());
    assert_eq!(n.scale, std.iter().map(|s| 1.0 / s).collect::<Vec<_>>());
    assert_eq!(folded.layers, plain.layers);
    // Raw input through the folded model == normalized input through the plain one.
    let x = data::read_inputs(&golden(case, "x.npy")).unwrap();
    let mut xn = x.clone();
    for (k, v) in xn.data.iter_mut().enumerate() {
        let j = k % 5;
        *v = (*v - mean[j]) / std[j];
    }
    let a = run_all(&folded, &x, None);
    let b = run_all(&plain, &xn, None);
    assert!(max_abs(&a.y, &b.y) < 1e-5);
}

/// Taking the last step with `Gather(-1)` + `Gemm` (a classifier head) gives the last step of
/// the per-step graph.
#[test]
fn onnx_gather_last_and_gemm_head() {
    let mut m = load_onnx(&golden("lstm_1l", "model.onnx"));
    let g = m.graph.as_mut().unwrap();
    // Replace MatMul(h, W[H,C]) + Add(b, .) by Gather(h, -1, axis 1) -> Gemm(transB=1).
    let mm = g.node.iter().position(|n| n.op_type == "MatMul").unwrap();
    let h_in = g.node[mm].input[0].clone();
    let w_name = g.node[mm].input[1].clone();
    let w = g
        .initializer
        .iter()
        .find(|t| t.name == w_name)
        .unwrap()
        .clone();
    let wt = tinyrnn_cli::import::onnx_tensor::Tensor::from_proto(&w)
        .unwrap()
        .transpose(&[1, 0])
        .unwrap();
    g.initializer.push(tensor_f32(
        "w_t",
        &[wt.dims[0] as i64, wt.dims[1] as i64],
        &wt.as_f32(),
    ));
    g.initializer.push(proto_i64("idx", &[], &[-1]));
    g.node.truncate(mm);
    g.node.push(node(
        "Gather",
        &[&h_in, "idx"],
        &["last"],
        vec![attr_i("axis", 1)],
    ));
    g.node.push(node(
        "Gemm",
        &["last", "w_t", "head.bias"],
        &["y"],
        vec![attr_i("transB", 1)],
    ));
    let imported = import_bytes(&encode(&m)).unwrap();
    let plain =
        import::load_model(&golden("lstm_1l", "model.onnx"), &ImportOptions::default()).unwrap();
    assert_eq!(imported.layers, plain.layers);
    assert_eq!(imported.head, plain.head);
}

fn proto_i64(name: &str, dims: &[i64], v: &[i64]) -> tinyrnn_cli::import::proto::TensorProto {
    tinyrnn_cli::import::proto::TensorProto {
        dims: dims.to_vec(),
        data_type: tinyrnn_cli::import::proto::dtype::INT64,
        int64_data: v.to_vec(),
        name: name.into(),
        ..Default::default()
    }
}

/// The dynamo exporter of current PyTorch keeps an `LSTM` node (with Expand/Reshape glue):
/// that graph is supported too.
#[test]
fn dynamo_graph_with_lstm_node_is_supported() {
    let case = "dynamo_lstm";
    let m = import::load_model(&golden(case, "model.onnx"), &ImportOptions::default()).unwrap();
    let x = data::read_inputs(&golden(case, "x.npy")).unwrap();
    let y = npy(&golden(case, "y_all.npy"));
    assert!(max_abs(&run_all(&m, &x, None).y, &y.data) <= TOL);
}

type Mutation = Box<dyn Fn(&mut tinyrnn_cli::import::proto::ModelProto)>;

#[test]
fn rejections_name_the_problem() {
    let base = golden("lstm_1l", "model.onnx");
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "bidirectional",
            Box::new(|m| {
                find_node(m, "LSTM")
                    .attribute
                    .push(attr_s("direction", "bidirectional"))
            }),
            "direction=bidirectional",
        ),
        (
            "clip",
            Box::new(|m| find_node(m, "LSTM").attribute.push(attr_f("clip", 3.0))),
            "`clip`",
        ),
        (
            "input_forget",
            Box::new(|m| {
                find_node(m, "LSTM")
                    .attribute
                    .push(attr_i("input_forget", 1))
            }),
            "input_forget",
        ),
        (
            "unknown op",
            Box::new(|m| find_node(m, "Add").op_type = "Selu".into()),
            "unsupported ONNX op `Selu`",
        ),
        (
            "activations",
            Box::new(|m| {
                let mut a = attr_s("activations", "");
                a.strings = vec![b"Sigmoid".to_vec(), b"Relu".to_vec(), b"Tanh".to_vec()];
                a.r#type = tinyrnn_cli::import::proto::attr_type::STRINGS;
                find_node(m, "LSTM").attribute.push(a);
            }),
            "activations",
        ),
        (
            "middle time step",
            Box::new(|m| {
                let g = m.graph.as_mut().unwrap();
                g.initializer.push(proto_i64("i3", &[], &[3]));
                let add = g.node.iter().position(|n| n.op_type == "Add").unwrap();
                g.node[add].output[0] = "pre".into();
                g.node.push(node(
                    "Gather",
                    &["pre", "i3"],
                    &["y"],
                    vec![attr_i("axis", 1)],
                ));
            }),
            "time step 3",
        ),
    ];
    for (name, mutate, want) in cases {
        let mut m = load_onnx(&base);
        mutate(&mut m);
        let e = err_of(&encode(&m));
        assert!(e.contains(want), "{name}: {e}");
        assert!(!e.contains('\n'), "{name}: multi-line error");
    }
    let e = err_of(&unrolled_onnx());
    assert!(e.contains("dynamo=False"), "{e}");
    let e = err_of(b"\x08\x07garbage that is not protobuf \xff\xff\xff");
    assert!(e.contains("ONNX"), "{e}");
    let blob = b"TRNN\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let e = err_of(blob);
    assert!(e.contains("blob"), "{e}");
}

/// safetensors: key-set problems list the keys found.
#[test]
fn safetensors_ambiguity_lists_keys() {
    use safetensors::tensor::{serialize, Dtype, TensorView};
    let h = 4usize;
    let f32s = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| (i as f32 * 0.01).to_le_bytes())
            .collect()
    };
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = vec![
        ("enc.weight_ih_l0".into(), vec![3 * h, 2], f32s(3 * h * 2)),
        ("enc.weight_hh_l0".into(), vec![3 * h, h], f32s(3 * h * h)),
        ("enc.bias_ih_l0".into(), vec![3 * h], f32s(3 * h)),
        ("enc.bias_hh_l0".into(), vec![3 * h], f32s(3 * h)),
        ("a.weight".into(), vec![2, h], f32s(2 * h)),
        ("a.bias".into(), vec![2], f32s(2)),
        ("b.weight".into(), vec![3, h], f32s(3 * h)),
        ("b.bias".into(), vec![3], f32s(3)),
    ];
    let build = |skip: &[&str]| -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = bufs
            .iter()
            .filter(|(n, _, _)| !skip.contains(&n.as_str()))
            .map(|(n, s, d)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
                )
            })
            .collect();
        serialize(views, None).unwrap()
    };
    let load = |b: &[u8]| {
        import::load_model_bytes(b, Path::new("m.safetensors"), &ImportOptions::default())
    };
    let e = format!("{:#}", load(&build(&[])).unwrap_err());
    assert!(
        e.contains("two or more candidate heads") && e.contains("b.weight"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        load(&build(&["b.weight", "b.bias", "enc.bias_hh_l0"])).unwrap_err()
    );
    assert!(
        e.contains("enc.bias_hh_l0") && e.contains("enc.weight_ih_l0"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        load(&build(&["b.weight", "b.bias", "a.bias"])).unwrap_err()
    );
    assert!(e.contains("a.bias"), "{e}");
    let m = load(&build(&["b.weight", "b.bias"])).unwrap();
    assert_eq!(
        m.layers[0].cell,
        CellKind::Gru {
            linear_before_reset: true
        }
    );
    assert_eq!(m.output_size(), 2);
}

/// `_, h = rnn(x); fc(h[-1])` on a 3-layer module: the exporter concatenates the layers'
/// `Y_h` and gathers the last one.
#[test]
fn onnx_stacked_final_states_select_last_layer() {
    let mut m = load_onnx(&golden("lstm_3l", "model.onnx"));
    let g = m.graph.as_mut().unwrap();
    let yh: Vec<String> = g
        .node
        .iter()
        .filter(|n| n.op_type == "LSTM")
        .map(|n| n.output[1].clone())
        .collect();
    assert_eq!(yh.len(), 3);
    let mm = g
        .node
        .iter()
        .find(|n| n.op_type == "MatMul")
        .unwrap()
        .clone();
    g.initializer.push(proto_i64("minus1", &[], &[-1]));
    let refs: Vec<&str> = yh.iter().map(|s| s.as_str()).collect();
    g.node
        .push(node("Concat", &refs, &["h_n"], vec![attr_i("axis", 0)]));
    g.node.push(node(
        "Gather",
        &["h_n", "minus1"],
        &["h_last"],
        vec![attr_i("axis", 0)],
    ));
    g.node
        .push(node("MatMul", &["h_last", &mm.input[1]], &["mm2"], vec![]));
    g.node
        .push(node("Add", &["mm2", "head.bias"], &["y2"], vec![]));
    g.output[0].name = "y2".into();
    let imported = import_bytes(&encode(&m)).unwrap();
    let plain =
        import::load_model(&golden("lstm_3l", "model.onnx"), &ImportOptions::default()).unwrap();
    assert_eq!(imported.layers, plain.layers);
    assert_eq!(imported.head, plain.head);
    // Selecting layer 0's state instead is rejected.
    let g = m.graph.as_mut().unwrap();
    g.initializer.push(proto_i64("zero", &[], &[0]));
    let gather = g.node.iter_mut().find(|n| n.output[0] == "h_last").unwrap();
    gather.input[1] = "zero".into();
    let e = err_of(&encode(&m));
    assert!(e.contains("not from the last one"), "{e}");
}

/// Half-precision state_dicts (f16 and bf16) import too.
#[test]
fn safetensors_half_precision() {
    use safetensors::tensor::{serialize, Dtype, TensorView};
    use safetensors::SafeTensors;
    let case = "gru_1l";
    let bytes = std::fs::read(golden(case, "model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let plain = import::load_model(
        &golden(case, "model.safetensors"),
        &ImportOptions::default(),
    )
    .unwrap();
    for dt in [Dtype::F16, Dtype::BF16, Dtype::F64] {
        let owned: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| {
                let vals = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                let data: Vec<u8> = match dt {
                    Dtype::F16 => vals
                        .flat_map(|x| half::f16::from_f32(x).to_le_bytes())
                        .collect(),
                    Dtype::BF16 => vals
                        .flat_map(|x| half::bf16::from_f32(x).to_le_bytes())
                        .collect(),
                    _ => vals.flat_map(|x| (x as f64).to_le_bytes()).collect(),
                };
                (n, v.shape().to_vec(), data)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = owned
            .iter()
            .map(|(n, s, d)| (n.clone(), TensorView::new(dt, s.clone(), d).unwrap()))
            .collect();
        let b = serialize(views, None).unwrap();
        let m = import::load_model_bytes(&b, Path::new("h.safetensors"), &ImportOptions::default())
            .unwrap();
        let tol = match dt {
            Dtype::F16 => 1e-3,
            Dtype::BF16 => 1e-2,
            _ => 0.0,
        };
        let d = max_abs(
            &m.layers[0]
                .w_hh
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
            &plain.layers[0]
                .w_hh
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
        );
        assert!(d <= tol, "{dt:?}: {d}");
    }
}

/// Random corruption of real model files gives, never a panic, either a one-line error
/// naming the file or a model that validates and runs to finite outputs; any truncation
/// to less than half the file is an error.
#[test]
fn corrupted_files_never_panic() {
    let mut rng = 0x9E3779B97F4A7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for (case, file) in [
        ("lstm_3l", "model.onnx"),
        ("dynamo_lstm", "model.onnx"),
        ("gru_stack3", "model.safetensors"),
    ] {
        let good = std::fs::read(golden(case, file)).unwrap();
        let name = Path::new(file);
        let (mut errors, mut models) = (0usize, 0usize);
        for k in 0..1500 {
            let mut b = good.clone();
            let mut short = false;
            match k % 3 {
                0 => {
                    b.truncate((next() as usize) % b.len());
                    short = b.len() < good.len() / 2;
                }
                1 => {
                    for _ in 0..1 + next() % 4 {
                        let i = (next() as usize) % b.len();
                        b[i] ^= 1 << (next() % 8);
                    }
                }
                _ => {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
            }
            match import::load_model_bytes(&b, name, &ImportOptions::default()) {
                Err(e) => {
                    let e = format!("{e:#}");
                    assert!(e.starts_with(file), "{case} #{k}: {e}");
                    assert!(!e.contains('\n'), "{case} #{k}: multi-line error: {e}");
                    errors += 1;
                }
                Ok(m) => {
                    assert!(
                        !short,
                        "{case} #{k}: truncated to {} bytes, imported",
                        b.len()
                    );
                    m.validate()
                        .unwrap_or_else(|e| panic!("{case} #{k}: invalid model: {e}"));
                    let x = Sequences::new(1, 3, m.input_size, vec![0.5; 3 * m.input_size]);
                    let out =
                        exec::run(&Runnable::Float(Box::new(m.clone())), &x, None, Steps::All)
                            .unwrap_or_else(|e| panic!("{case} #{k}: {e:#}"));
                    assert_eq!(out.y.len(), 3 * m.output_size(), "{case} #{k}");
                    assert!(out.y.iter().all(|v| v.is_finite()), "{case} #{k}");
                    models += 1;
                }
            }
        }
        println!("{case}/{file}: 1500 corruptions, {errors} errors, {models} models");
        assert_eq!(errors + models, 1500);
        assert!(errors >= 500, "{case}: only {errors} corruptions refused");
    }
}

// ------------------------------------------------------------ ONNX external data

fn extdata(case: &str, file: &str) -> std::path::PathBuf {
    data_dir().join("extdata").join(case).join(file)
}

/// The files `torch.onnx.export(model, (x,), "model.onnx")` writes (torch's default
/// exporter: weights in `model.onnx.data`) import, and match PyTorch's and onnxruntime's
/// logits: the f64 reference and the float32 blob on the libm path, both ≤ 1e-5.
#[test]
fn default_exporter_external_data_matches_pytorch() {
    use tinyrnn::{F32Math, Precision};
    use tinyrnn_cli::exec::Blob;
    use tinyrnn_cli::quantize::{quantize, QuantOptions};
    for case in ["gru_linear", "lstm2_linear"] {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(extdata(case, "meta.json")).unwrap()).unwrap();
        let external = meta["external_tensors"].as_object().unwrap();
        assert!(!external.is_empty(), "{case}: no external tensor");
        let m = import::load_model(&extdata(case, "model.onnx"), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{case}: {e:#}"));
        let x = data::read_inputs(&extdata(case, "x.npy")).unwrap();
        let y_torch = npy(&extdata(case, "y_torch.npy"));
        let y_ort = npy(&extdata(case, "y_ort.npy"));
        let f64_out =
            exec::run(&Runnable::Float(Box::new(m.clone())), &x, None, Steps::Last).unwrap();
        assert_eq!(f64_out.shape(), y_torch.shape, "{case}");
        let q = quantize(&m, None, &QuantOptions::new(Precision::F32)).unwrap();
        let mut blob = Blob::from_bytes(q.blob).unwrap();
        blob.f32_math = F32Math::Accurate;
        let f32_out = exec::run(&Runnable::Blob(blob), &x, None, Steps::Last).unwrap();
        let errs = [
            ("f64 vs torch", max_abs(&f64_out.y, &y_torch.data)),
            ("f64 vs ort", max_abs(&f64_out.y, &y_ort.data)),
            ("f32 libm vs torch", max_abs(&f32_out.y, &y_torch.data)),
        ];
        println!(
            "extdata {case} ({} external tensors): {errs:?}",
            external.len()
        );
        for (what, e) in errs {
            assert!(e <= 1e-5, "{case} {what}: max abs error {e:e}");
        }
    }
    // nn.RNN: the default exporter unrolls it (no RNN node): refused with the hint.
    let e = format!(
        "{:#}",
        import::load_model(
            &extdata("rnn_linear", "model.onnx"),
            &ImportOptions::default()
        )
        .unwrap_err()
    );
    assert!(e.contains("dynamo=False") && !e.contains('\n'), "{e}");
}

/// Copies `gru_linear`'s two files into a scratch folder, applies `edit` to every external
/// tensor's entries, and returns the model path.
fn ext_copy(
    name: &str,
    edit: impl Fn(&mut Vec<tinyrnn_cli::import::proto::StringStringEntryProto>),
) -> std::path::PathBuf {
    let dir = scratch(name).join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        extdata("gru_linear", "model.onnx.data"),
        dir.join("model.onnx.data"),
    )
    .unwrap();
    let mut m = load_onnx(&extdata("gru_linear", "model.onnx"));
    for t in &mut m.graph.as_mut().unwrap().initializer {
        if t.data_location == 1 {
            edit(&mut t.external_data);
        }
    }
    let p = dir.join("model.onnx");
    std::fs::write(&p, encode(&m)).unwrap();
    p
}

fn set(e: &mut [tinyrnn_cli::import::proto::StringStringEntryProto], key: &str, v: &str) {
    e.iter_mut().find(|e| e.key == key).unwrap().value = v.into();
}

/// Bad external data: each an `Err` of one line naming the tensor and the problem, and one
/// `error:` line with exit status 1 from the CLI.
#[test]
fn external_data_refusals() {
    let data_len = std::fs::metadata(extdata("gru_linear", "model.onnx.data"))
        .unwrap()
        .len();
    let mut cases: Vec<(&str, std::path::PathBuf, String)> = Vec::new();
    let p = ext_copy("ext-missing", |_| {});
    std::fs::remove_file(p.with_file_name("model.onnx.data")).unwrap();
    cases.push(("missing .data", p, "not found".into()));
    let p = ext_copy("ext-truncated", |_| {});
    let d = std::fs::read(p.with_file_name("model.onnx.data")).unwrap();
    std::fs::write(p.with_file_name("model.onnx.data"), &d[..d.len() / 2]).unwrap();
    cases.push(("truncated .data", p, "runs past its end".into()));
    let p = ext_copy("ext-parent", |e| set(e, "location", "../model.onnx.data"));
    std::fs::copy(
        extdata("gru_linear", "model.onnx.data"),
        p.parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("model.onnx.data"),
    )
    .unwrap();
    cases.push(("../ location", p, "leaves the model's folder".into()));
    let abs = extdata("gru_linear", "model.onnx.data")
        .canonicalize()
        .unwrap();
    let abs_s = abs.to_str().unwrap().to_string();
    let p = ext_copy("ext-absolute", move |e| set(e, "location", &abs_s));
    cases.push(("absolute location", p, "absolute path".into()));
    let off = data_len.to_string();
    let p = ext_copy("ext-offset", move |e| set(e, "offset", &off));
    cases.push(("offset past the end", p, "runs past its end".into()));
    let p = ext_copy("ext-huge-offset", |e| {
        set(e, "offset", &u64::MAX.to_string())
    });
    cases.push(("offset overflow", p, "overflows".into()));
    let p = ext_copy("ext-length", |e| set(e, "length", "4"));
    cases.push(("length vs dims", p, "need".into()));
    let p = ext_copy("ext-bad-number", |e| set(e, "offset", "-8"));
    cases.push(("negative offset", p, "is not a byte count".into()));
    let p = ext_copy("ext-no-location", |e| e.retain(|e| e.key != "location"));
    cases.push(("no location", p, "has no `location`".into()));
    let p = ext_copy("ext-directory", |e| set(e, "location", "."));
    cases.push(("a directory", p, "not a regular file".into()));
    #[cfg(unix)]
    {
        let p = ext_copy("ext-symlink", |_| {});
        let data = p.with_file_name("model.onnx.data");
        let outside = p.parent().unwrap().parent().unwrap().join("elsewhere.data");
        std::fs::rename(&data, &outside).unwrap();
        std::os::unix::fs::symlink(&outside, &data).unwrap();
        cases.push((
            "symlink out of the folder",
            p,
            "outside the model's folder".into(),
        ));
    }
    let external: Vec<String> = load_onnx(&extdata("gru_linear", "model.onnx"))
        .graph
        .unwrap()
        .initializer
        .into_iter()
        .filter(|t| t.data_location == 1)
        .map(|t| format!("tensor `{}`", t.name))
        .collect();
    for (name, path, want) in &cases {
        let e = format!(
            "{:#}",
            import::load_model(path, &ImportOptions::default()).unwrap_err()
        );
        assert!(e.contains(want.as_str()), "{name}: {e}");
        assert!(
            external.iter().any(|t| e.contains(t.as_str())),
            "{name}: tensor not named: {e}"
        );
        assert!(!e.contains('\n'), "{name}: multi-line error: {e}");
        let (code, stdout, stderr) = cli(&["inspect".as_ref(), path.as_os_str()]);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with("error:") && stderr.contains(want.as_str()),
            "{name}: {stderr}"
        );
    }
    // The untouched copy imports (the refusals come from the edits, not from the copy), and
    // so does one without `offset`/`length` entries for its first tensor (offset 0, length
    // from the dims).
    let p = ext_copy("ext-ok", |_| {});
    let plain = import::load_model(&p, &ImportOptions::default()).unwrap();
    let p = ext_copy("ext-defaults", |e| {
        if e.iter().any(|e| e.key == "offset" && e.value == "0") {
            e.retain(|e| e.key == "location");
        }
    });
    let defaults = import::load_model(&p, &ImportOptions::default()).unwrap();
    assert_eq!(defaults.layers, plain.layers);
    // Bytes without a file: external data needs the model's folder, which is the folder of
    // the given path; a bare name reads from the current directory, where the file is not.
    let bytes = std::fs::read(extdata("gru_linear", "model.onnx")).unwrap();
    let e = format!("{:#}", import_bytes(&bytes).unwrap_err());
    assert!(e.contains("not found") && !e.contains('\n'), "{e}");
}

// ------------------------------------------------ safetensors: never guess the forward pass

fn state_dict(file: &str) -> std::path::PathBuf {
    data_dir().join("state_dicts").join(file)
}

fn sd_opts(pool: Option<import::Pool>) -> ImportOptions {
    ImportOptions {
        pool,
        ..Default::default()
    }
}

/// `LSTM → Linear` from `save_file(model.state_dict())` imports with the default
/// `--pool last` (and `hn`, the same model), matches PyTorch ≤ 1e-5, and the CLI prints the
/// forward pass it assumes.
#[test]
fn safetensors_prints_assumed_forward() {
    let x = data::read_inputs(&state_dict("x.npy")).unwrap();
    let y = npy(&state_dict("lstm_linear_y_torch.npy"));
    let m = import::load_model(&state_dict("lstm_linear.safetensors"), &sd_opts(None)).unwrap();
    let out = exec::run(&Runnable::Float(Box::new(m.clone())), &x, None, Steps::Last).unwrap();
    let err = max_abs(&out.y, &y.data);
    println!("state_dicts/lstm_linear: max abs {err:.3e} vs PyTorch");
    assert!(err <= 1e-5, "{err:e}");
    for pool in [import::Pool::Last, import::Pool::Hn] {
        let p = import::load_model(&state_dict("lstm_linear.safetensors"), &sd_opts(Some(pool)))
            .unwrap();
        assert_eq!(p, m, "{pool:?}");
    }
    let file = state_dict("lstm_linear.safetensors");
    let (code, stdout, stderr) = cli(&["inspect".as_ref(), file.as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("lstm 6 -> 16"), "{stdout}");
    let note: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(note.len(), 1, "{stderr}");
    assert!(
        note[0].contains("y = fc(rnn(x)[0][:, -1])") && note[0].contains("--pool last"),
        "{stderr}"
    );
    let (code, _, stderr) = cli(&[
        "inspect".as_ref(),
        file.as_os_str(),
        "--pool".as_ref(),
        "hn".as_ref(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("y = fc(h_n[-1])"), "{stderr}");
    // An ONNX graph records its reduction: --pool is refused there.
    let onnx = golden("lstm_1l", "model.onnx");
    let (code, _, stderr) = cli(&[
        "inspect".as_ref(),
        onnx.as_os_str(),
        "--pool".as_ref(),
        "last".as_ref(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--pool applies to safetensors"), "{stderr}");
}

/// `LSTM → mean over time → Linear` has the same keys as `LSTM → Linear`. With
/// `--pool mean` it imports as the mean-pooled model and matches PyTorch; without `--pool`
/// it imports under the printed `out[:, -1]` assumption, which for this model is not
/// PyTorch's forward (the measured difference shows why the note is printed).
#[test]
fn safetensors_pooling_is_a_flag_not_a_guess() {
    let file = state_dict("lstm_mean.safetensors");
    let x = data::read_inputs(&state_dict("x.npy")).unwrap();
    let y = npy(&state_dict("lstm_mean_y_torch.npy"));
    let m = import::load_model(&file, &sd_opts(Some(import::Pool::Mean))).unwrap();
    assert_eq!(m.pool, tinyrnn::Pool::Mean);
    let out = exec::run(&Runnable::Float(Box::new(m)), &x, None, Steps::Last).unwrap();
    let err = max_abs(&out.y, &y.data);
    assert!(err <= TOL, "--pool mean: {err}");
    let (code, _, stderr) = cli(&["inspect".as_ref(), file.as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("note:")
            && stderr.contains("[:, -1]")
            && stderr.contains("--pool mean|max|sum"),
        "{stderr}"
    );
    let m = import::load_model(&file, &sd_opts(None)).unwrap();
    let out = exec::run(&Runnable::Float(Box::new(m)), &x, None, Steps::Last).unwrap();
    let err = max_abs(&out.y, &y.data);
    println!("state_dicts/lstm_mean imported as the last step: max abs {err:.3} vs PyTorch's mean-pooled logits");
    assert!(err > 0.1, "{err}");
}

/// Keys that imply layers the runtime cannot place are refused by name (and the keys listed).
#[test]
fn safetensors_refuses_unplaceable_keys() {
    let cases = [(
        "lstm_mlp",
        &[
            "2 dense layer(s) (`fc1` (16 -> 8), `fc2` (8 -> 4))",
            "--head-act",
            "fc2.weight [4, 8]",
            "fc2.bias [4]",
        ][..],
    )];
    for (case, wants) in cases {
        let file = state_dict(&format!("{case}.safetensors"));
        let (code, stdout, stderr) = cli(&["inspect".as_ref(), file.as_os_str()]);
        assert_eq!(code, 1, "{case}: {stderr}");
        assert!(stdout.is_empty(), "{case}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{case}: {stderr}");
        assert!(stderr.starts_with("error:"), "{case}: {stderr}");
        assert!(stderr.contains("keys: "), "{case}: {stderr}");
        for w in wants {
            assert!(stderr.contains(w), "{case}: {w:?} not in {stderr}");
        }
    }
}

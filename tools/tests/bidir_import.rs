//! Reverse and bidirectional recurrent layers and the LSTM projection, imported from ONNX
//! (both torch exporters, and the ONNX backend node tests for `direction`) and safetensors
//! (tests/data/bidir/, made by tools/scripts/make_bidir_models.py), run in float by the f64
//! reference (`tinyrnn run`, i.e. `FloatModel::run_window`) against PyTorch, onnxruntime and
//! the ONNX reference implementation's expected outputs.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{cli, data_dir, max_abs, npy, scratch};
use tinyrnn::{CellKind, Direction, Pool};
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::ir::{FloatLayer, FloatModel};

fn dir(model: &str) -> PathBuf {
    data_dir().join("bidir").join(model)
}

fn load(path: &Path, opts: &ImportOptions) -> FloatModel {
    import::load_model(path, opts).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn s(p: &Path) -> &OsStr {
    p.as_os_str()
}

/// `tinyrnn run MODEL -i x.npy -o y.npy [flags]`: the float outputs `[4·C]`.
fn run_cli(model: &Path, flags: &[&str]) -> Vec<f64> {
    let out = scratch(&format!(
        "bidir-{}",
        model
            .strip_prefix(data_dir())
            .unwrap()
            .to_string_lossy()
            .replace(['/', '.'], "_")
    ))
    .join("y.npy");
    let x = data_dir().join("bidir/x.npy");
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("run"),
        s(model),
        OsStr::new("--input"),
        s(&x),
        OsStr::new("--output"),
        s(&out),
    ];
    args.extend(flags.iter().map(OsStr::new));
    let (code, _, err) = cli(&args);
    assert_eq!(code, 0, "{}: {err}", model.display());
    npy(&out).data
}

fn reference(model: &str, file: &str) -> Vec<f64> {
    npy(&dir(model).join(file)).data
}

/// Directions of the layers and the pool, as imported.
type Shape = (Vec<Direction>, Pool);

fn shape(m: &FloatModel) -> Shape {
    (m.layers.iter().map(|l| l.direction).collect(), m.pool)
}

/// The trained models from both torch exporters (and the hand-written reverse GRU graph):
/// `tinyrnn run`'s float outputs match PyTorch and onnxruntime within 1e-5.
#[test]
fn onnx_models_match_torch_and_ort() {
    let bi = Direction::Bidirectional;
    let cases: [(&str, &str, &str, Shape); 7] = [
        (
            "bigru_last",
            "classic.onnx",
            "y_ort_classic.npy",
            (vec![bi], Pool::Last),
        ),
        (
            "bigru_last",
            "dynamo.onnx",
            "y_ort_dynamo.npy",
            (vec![bi], Pool::Last),
        ),
        (
            "bigru_hn",
            "classic.onnx",
            "y_ort_classic.npy",
            (vec![bi, bi], Pool::FinalStates),
        ),
        (
            "bigru_hn",
            "dynamo.onnx",
            "y_ort_dynamo.npy",
            (vec![bi, bi], Pool::FinalStates),
        ),
        (
            "bilstm_mean",
            "classic.onnx",
            "y_ort_classic.npy",
            (vec![bi], Pool::Mean),
        ),
        (
            "bilstm_mean",
            "dynamo.onnx",
            "y_ort_dynamo.npy",
            (vec![bi], Pool::Mean),
        ),
        (
            "revgru_hn",
            "model.onnx",
            "y_ort.npy",
            (vec![Direction::Reverse], Pool::FinalStates),
        ),
    ];
    for (model, file, ort, want) in cases {
        let path = dir(model).join(file);
        let m = load(&path, &ImportOptions::default());
        m.validate().unwrap();
        assert_eq!(shape(&m), want, "{model}/{file}");
        let y = run_cli(&path, &[]);
        let e_torch = max_abs(&y, &reference(model, "y_torch.npy"));
        let e_ort = max_abs(&y, &reference(model, ort));
        println!("{model}/{file}: max |float - torch| {e_torch:.2e}, |float - ort| {e_ort:.2e}");
        assert!(e_torch <= 1e-5, "{model}/{file}: {e_torch} vs torch");
        assert!(e_ort <= 1e-5, "{model}/{file}: {e_ort} vs ort");
    }
    // Both exporters and the state_dict give the same weights, reverse directions included.
    for model in ["bigru_hn", "bilstm_mean", "bigru_last"] {
        let a = load(&dir(model).join("classic.onnx"), &ImportOptions::default());
        let b = load(&dir(model).join("dynamo.onnx"), &ImportOptions::default());
        let pool = match model {
            "bigru_hn" => import::Pool::Hn,
            "bigru_last" => import::Pool::Last,
            _ => import::Pool::Mean,
        };
        let c = load(
            &dir(model).join("model.safetensors"),
            &ImportOptions {
                pool: Some(pool),
                ..Default::default()
            },
        );
        for other in [&b, &c] {
            assert_eq!(a.layers, other.layers, "{model}: layers differ");
            assert_eq!(a.pool, other.pool, "{model}");
        }
    }
}

/// The state_dicts: `_reverse` keys become bidirectional layers, `weight_hr` a projection;
/// `--pool hn` on a bidirectional last layer is `cat(h_n[-2], h_n[-1])`.
#[test]
fn safetensors_match_torch() {
    for (model, flags) in [
        ("bigru_hn", &["--pool", "hn"][..]),
        ("bilstm_mean", &["--pool", "mean"][..]),
        ("lstm_proj", &[][..]),
        ("bigru_last", &["--pool", "last"][..]),
    ] {
        let path = dir(model).join("model.safetensors");
        let y = run_cli(&path, flags);
        let e = max_abs(&y, &reference(model, "y_torch.npy"));
        println!("{model}/model.safetensors {flags:?}: max |float - torch| {e:.2e}");
        assert!(e <= 1e-5, "{model}: {e} vs torch");
    }
    let proj = load(
        &dir("lstm_proj").join("model.safetensors"),
        &ImportOptions::default(),
    );
    let l = &proj.layers[0];
    assert_eq!(l.cell, CellKind::Lstm { peepholes: false });
    assert_eq!((l.hidden_size, l.dir_out_size(), l.out_size()), (12, 6, 6));
    assert_eq!(l.w_hh.len(), 4 * 12 * 6);
    // The assumed forward pass names what it assumes.
    let (code, _, err) = cli(&[
        OsStr::new("inspect"),
        s(&dir("bigru_hn").join("model.safetensors")),
        OsStr::new("--pool"),
        OsStr::new("hn"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("assuming y = fc(cat(h_n[-2], h_n[-1]))")
            && err.contains("rnn = GRU(num_layers=2, bidirectional=True) 6->20->20"),
        "{err}"
    );
    let (code, _, err) = cli(&[
        OsStr::new("inspect"),
        s(&dir("lstm_proj").join("model.safetensors")),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("rnn = LSTM(num_layers=1, hidden_size=12, proj_size=6) 6->6"),
        "{err}"
    );
}

/// `inspect` shows each layer's direction and projection.
#[test]
fn inspect_shows_direction_and_projection() {
    let (code, out, err) = cli(&[
        OsStr::new("inspect"),
        s(&dir("bigru_hn").join("classic.onnx")),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("layer 0: gru 6 -> 10, 1080 params, bidirectional (output 20 wide)"),
        "{out}"
    );
    assert!(
        out.contains("layer 1: gru 20 -> 10, 1920 params, bidirectional (output 20 wide)"),
        "{out}"
    );
    let (code, out, _) = cli(&[
        OsStr::new("inspect"),
        s(&dir("revgru_hn").join("model.onnx")),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("layer 0: gru 6 -> 10, 540 params, reverse"),
        "{out}"
    );
    let (code, out, _) = cli(&[
        OsStr::new("inspect"),
        s(&dir("lstm_proj").join("model.safetensors")),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("layer 0: lstm 6 -> 12, 744 params, projection to 6 (output 6 wide)"),
        "{out}"
    );
}

/// The six ONNX backend node tests for `direction` (LSTM, GRU, RNN; reverse and
/// bidirectional): the expected output of the ONNX reference implementation is matched. The
/// LSTM and RNN cases output `Y_h` (`[num_directions, 1, H]`: the final state of each
/// direction, the model's output); the GRU cases output `Y` (`[T, num_directions, 1, H]`),
/// checked at every step through the layer's window run.
#[test]
fn onnx_backend_node_tests_for_direction() {
    let mut n = 0;
    for cell in ["lstm", "gru", "simple_rnn"] {
        for d in ["reverse", "bidirectional"] {
            let case = format!("test_{cell}_{d}");
            let p = data_dir().join("bidir/node").join(&case);
            let m = load(&p.join("model.onnx"), &ImportOptions::default());
            m.validate().unwrap();
            let want_dir = if d == "reverse" {
                Direction::Reverse
            } else {
                Direction::Bidirectional
            };
            assert_eq!(m.layers[0].direction, want_dir, "{case}");
            let x = npy(&p.join("x.npy"));
            let y = npy(&p.join("y.npy"));
            let f = x.shape[2];
            let rows: Vec<Vec<f32>> = x
                .data
                .chunks_exact(f)
                .map(|r| r.iter().map(|&v| v as f32).collect())
                .collect();
            let frames: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
            let e = if y.shape.len() == 4 {
                // Y [T, D, 1, H]: row t is [fwd_t; bwd_t].
                let xs: Vec<Vec<f64>> = rows
                    .iter()
                    .map(|r| r.iter().map(|&v| v as f64).collect())
                    .collect();
                let got: Vec<f64> = m.layers[0].run_window(0, &xs, &mut ()).concat();
                max_abs(&got, &y.data)
            } else {
                // Y_h [D, 1, H]: the model's output [fwd h_n; bwd h_n].
                max_abs(&m.run_window(&frames, &mut ()), &y.data)
            };
            println!("{case}: max |float - onnx reference| {e:.2e}");
            assert!(e <= 1e-5, "{case}: {e}");
            n += 1;
        }
    }
    assert_eq!(n, 6);
}

/// What cannot be imported is refused with one `error:` line naming it.
#[test]
fn refusals_name_the_thing() {
    let one_line = |args: &[&OsStr]| -> String {
        let (code, out, err) = cli(args);
        assert_eq!(code, 1, "{out}{err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("note:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].starts_with("error: "), "{err}");
        lines[0].to_string()
    };
    // PyTorch's default exporter writes nn.LSTM(12, proj_size=6) as an LSTM node of hidden
    // size 6 (W/R [1, 24, 6]: the projection and half the cell units dropped) whose
    // initial_c is still [1, batch, 12]; onnxruntime rejects it too.
    let e = one_line(&[
        OsStr::new("inspect"),
        s(&dir("lstm_proj").join("dynamo_invalid.onnx")),
    ]);
    assert!(
        e.contains("initial_c has shape [1, 4, 12]: a cell state wider than the hidden state (6) is an LSTM with projection (PyTorch proj_size=6), which the ONNX LSTM op cannot express"),
        "{e}"
    );
    // A state_dict with only part of a layer's `_reverse` keys.
    let d = scratch("bidir-partial-reverse");
    let bytes = std::fs::read(dir("bigru_hn").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(k, _)| k != "rnn.bias_hh_l1_reverse")
        .collect();
    let partial = d.join("partial.safetensors");
    safetensors::serialize_to_file(kept, None, &partial).unwrap();
    let e = one_line(&[
        OsStr::new("inspect"),
        s(&partial),
        OsStr::new("--pool"),
        OsStr::new("hn"),
    ]);
    assert!(
        e.contains("missing `rnn.bias_hh_l1_reverse` (biases are required) (the reverse direction of a bidirectional=True module needs all of its `_reverse` keys); keys:"),
        "{e}"
    );
}

/// The two state_dicts tests/data/state_dicts/ once refused (made by
/// tools/scripts/make_external_data.py): `nn.GRU(6, 16, bidirectional=True)` with
/// `fc(out[:, -1])` (`out[:, -1]` = `[fwd_{T−1}; bwd_{T−1}]`) and `nn.LSTM(6, 16,
/// proj_size=8)` with `fc(out[:, -1])`, now imported and matching PyTorch.
#[test]
fn earlier_refused_state_dicts_match_torch() {
    let sd = data_dir().join("state_dicts");
    let x = sd.join("x.npy");
    for case in ["gru_bidir", "lstm_proj"] {
        let model = sd.join(format!("{case}.safetensors"));
        let out = scratch(&format!("bidir-sd-{case}")).join("y.npy");
        let (code, _, err) = cli(&[
            OsStr::new("run"),
            s(&model),
            OsStr::new("--input"),
            s(&x),
            OsStr::new("--output"),
            s(&out),
        ]);
        assert_eq!(code, 0, "{case}: {err}");
        let e = max_abs(
            &npy(&out).data,
            &npy(&sd.join(format!("{case}_y_torch.npy"))).data,
        );
        println!("state_dicts/{case}: max |float - torch| {e:.2e}");
        assert!(e <= 1e-5, "{case}: {e}");
    }
}

/// Keras (tests/data/keras_bidir/, tools/scripts/make_keras_bidir.py, JapaneseVowels raw
/// features with each sequence's own length): `Bidirectional(GRU)` and
/// `Bidirectional(SimpleRNN)` (final state of each direction), `Bidirectional(LSTM|GRU,
/// return_sequences=True)` + `GlobalAveragePooling1D`, two stacked `Bidirectional(GRU)`,
/// `GRU(go_backwards=True)` and `GRU(go_backwards=True, return_sequences=True)` +
/// `GlobalMaxPooling1D`, as `.keras`: `tinyrnn run`'s float outputs match Keras's
/// `model.predict` within 1e-5 on all 370 test sequences.
#[test]
fn keras_bidirectional_and_go_backwards_match_predict() {
    let kb = data_dir().join("keras_bidir");
    let v = data_dir().join("vowels");
    for (name, dirs, pool) in [
        ("bigru", vec![Direction::Bidirectional], Pool::FinalStates),
        ("bilstm_gap", vec![Direction::Bidirectional], Pool::Mean),
        ("gru_back", vec![Direction::Reverse], Pool::FinalStates),
        ("birnn", vec![Direction::Bidirectional], Pool::FinalStates),
        ("bigru_gap", vec![Direction::Bidirectional], Pool::Mean),
        (
            "bigru2",
            vec![Direction::Bidirectional, Direction::Bidirectional],
            Pool::FinalStates,
        ),
        ("gru_back_gmp", vec![Direction::Reverse], Pool::Max),
    ] {
        let model = kb.join(format!("{name}.keras"));
        let m = load(&model, &ImportOptions::default());
        assert_eq!(shape(&m), (dirs, pool), "{name}");
        let out = scratch(&format!("bidir-keras-{name}")).join("y.npy");
        let (code, _, err) = cli(&[
            OsStr::new("run"),
            s(&model),
            OsStr::new("--input"),
            s(&v.join("test_raw.npy")),
            OsStr::new("--lengths"),
            s(&v.join("test_lengths.npy")),
            OsStr::new("--output"),
            s(&out),
        ]);
        assert_eq!(code, 0, "{name}: {err}");
        let got = npy(&out).data;
        let want = npy(&kb.join(format!("{name}_pred.npy"))).data;
        assert_eq!(got.len(), 370 * 9);
        let e = max_abs(&got, &want);
        println!("keras_bidir/{name}.keras: max |float - keras predict| {e:.2e}");
        assert!(e <= 1e-5, "{name}: {e}");
    }
}

/// Keras models tinyrnn cannot run, refused with one `error:` line naming the layer (or,
/// for their ONNX export, the node).
#[test]
fn keras_refusals_name_the_layer() {
    let kb = data_dir().join("keras_bidir");
    for (file, want) in [
        (
            "bigru_sum.keras",
            "(Bidirectional): merge_mode=\"sum\" is not supported (\"concat\" only: [forward; backward])",
        ),
        (
            "gru_back_seq.keras",
            "(GRU): the layer before it has go_backwards=True and return_sequences=True, so Keras hands it the sequence in reversed time order",
        ),
        (
            "bigru_sum.onnx",
            "node `sequential_3_1/bidirectional_2_1/add` (Add): Add of the two directions of bidirectional recurrent layer 0 (Keras Bidirectional merge_mode \"sum\", \"mul\" or \"ave\") is not supported: only the two concatenated, [forward; backward] (merge_mode \"concat\")",
        ),
        (
            "gru_back_seq.onnx",
            "(Loop): the Loop reads the per-step output of a reverse (go_backwards=True, return_sequences=True) layer, which Keras hands on in reversed time order",
        ),
    ] {
        let (code, out, err) = cli(&[OsStr::new("inspect"), s(&kb.join(file))]);
        assert_eq!(code, 1, "{file}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{file}: {err}");
        assert!(err.starts_with("error: ") && err.contains(want), "{file}: {err}");
    }
}

/// Legacy tf.keras 2.x full-model `.h5` files with `Bidirectional` (what NNoM users have;
/// tests/data/keras_table/, tools/scripts/make_keras_table.py, trained on JapaneseVowels, raw
/// features): tf.keras lists both directions' weights on the wrapper, `forward_<layer>/…`
/// then `backward_<layer>/…`. `Bidirectional(GRU(16))` (each direction's final state) and
/// `Bidirectional(LSTM(8, return_sequences=True))` + `GlobalAveragePooling1D`: the f64
/// reference within 1e-5 of tf_keras's `model.predict` on all 370 test sequences, and
/// swapping the two directions' weights moves the outputs far from it (the test tells the
/// directions apart). merge_mode `"sum"` is refused naming the layer.
#[test]
fn keras_legacy_h5_bidirectional_matches_tf_keras_predict() {
    use tinyrnn_cli::data;
    use tinyrnn_cli::exec::{self, Runnable, Steps};
    let kt = data_dir().join("keras_table");
    let v = data_dir().join("vowels");
    let x = data::read_inputs(&v.join("test_raw.npy")).unwrap();
    let lengths = data::read_lengths(&v.join("test_lengths.npy"), x.n, x.t).unwrap();
    let run = |m: &FloatModel| {
        exec::run(
            &Runnable::Float(Box::new(m.clone())),
            &x,
            Some(&lengths),
            Steps::Last,
        )
        .unwrap()
        .y
    };
    for (name, cell, hidden, pool) in [
        (
            "legacy_bigru",
            CellKind::Gru {
                linear_before_reset: true,
            },
            16,
            Pool::FinalStates,
        ),
        (
            "legacy_bilstm_gap",
            CellKind::Lstm { peepholes: false },
            8,
            Pool::Mean,
        ),
    ] {
        let m = load(&kt.join(format!("{name}.h5")), &ImportOptions::default());
        assert_eq!(shape(&m), (vec![Direction::Bidirectional], pool), "{name}");
        let l = &m.layers[0];
        assert_eq!((l.cell, l.input_size, l.hidden_size), (cell, 12, hidden));
        assert!(m.norm.is_some(), "{name}: Normalization folded");
        let want = npy(&kt.join(format!("{name}_pred.npy"))).data;
        let got = run(&m);
        let e = max_abs(&got, &want);
        println!("keras_table/{name}.h5: max |float - tf_keras predict| {e:.2e}");
        assert!(e <= 1e-5, "{name}: {e}");
        let mut swapped = m.clone();
        let b = *swapped.layers[0].backward.take().unwrap();
        let f = std::mem::replace(&mut swapped.layers[0], b);
        swapped.layers[0].direction = Direction::Bidirectional;
        swapped.layers[0].backward = Some(Box::new(FloatLayer {
            direction: Direction::Forward,
            backward: None,
            ..f
        }));
        let e_swapped = max_abs(&run(&swapped), &want);
        assert!(e_swapped > 1e-2, "{name}: swapped directions {e_swapped:e}");
    }
    let (code, out, err) = cli(&[OsStr::new("inspect"), s(&kt.join("legacy_bigru_sum.h5"))]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ")
            && err.contains("(legacy Keras .h5): layer `bidirectional_2` (Bidirectional): merge_mode=\"sum\" is not supported"),
        "{err}"
    );
}

/// Keras's ONNX export (`model.export(format="onnx")`, tests/data/keras_bidir/*.onnx) of
/// `Bidirectional` and `go_backwards=True` layers: a `Loop` per direction, the backward one
/// over a `ReverseSequence` of its input (and, for a `Bidirectional` with
/// `return_sequences`, its per-step output reversed back before the `Concat`), or for
/// `Bidirectional(LSTM)` one fused `LSTM` node with `direction="bidirectional"`. Each imports
/// as the layers the `.keras` file gives: `tinyrnn run`'s float outputs match Keras's
/// `model.predict` within 1e-5 and the same model imported from its `.keras` within 1e-6 on
/// all 370 test sequences; `tinyrnn quantize` makes int16 and int8 blobs of it, and
/// `tinyrnn eval` compares them with the float model.
#[test]
fn keras_onnx_bidirectional_and_go_backwards_match_predict() {
    let kb = data_dir().join("keras_bidir");
    let v = data_dir().join("vowels");
    let bi = Direction::Bidirectional;
    let rev = Direction::Reverse;
    let run = |model: &Path, tag: &str| -> Vec<f64> {
        let out = scratch(&format!("bidir-keras-onnx-{tag}")).join("y.npy");
        let (code, _, err) = cli(&[
            OsStr::new("run"),
            s(model),
            OsStr::new("--input"),
            s(&v.join("test_raw.npy")),
            OsStr::new("--lengths"),
            s(&v.join("test_lengths.npy")),
            OsStr::new("--output"),
            s(&out),
        ]);
        assert_eq!(code, 0, "{tag}: {err}");
        npy(&out).data
    };
    for (name, dirs, pool) in [
        ("bigru", vec![bi], Pool::FinalStates),
        ("birnn", vec![bi], Pool::FinalStates),
        ("bilstm_gap", vec![bi], Pool::Mean),
        ("bigru_gap", vec![bi], Pool::Mean),
        ("bigru2", vec![bi, bi], Pool::FinalStates),
        ("gru_back", vec![rev], Pool::FinalStates),
        ("gru_back_gmp", vec![rev], Pool::Max),
    ] {
        let onnx = kb.join(format!("{name}.onnx"));
        let keras = kb.join(format!("{name}.keras"));
        let m = load(&onnx, &ImportOptions::default());
        m.validate().unwrap();
        assert_eq!(shape(&m), (dirs, pool), "{name}");
        let got = run(&onnx, &format!("{name}-onnx"));
        let from_keras = run(&keras, &format!("{name}-keras"));
        let want = npy(&kb.join(format!("{name}_pred.npy"))).data;
        assert_eq!(got.len(), 370 * 9);
        let e = max_abs(&got, &want);
        let ek = max_abs(&got, &from_keras);
        println!(
            "keras_bidir/{name}.onnx: max |float - keras predict| {e:.2e}, |float - .keras import| {ek:.2e}"
        );
        assert!(e <= 1e-5, "{name}: {e} vs Keras");
        assert!(ek <= 1e-6, "{name}: {ek} vs the .keras import");
        for (precision, min_agreement) in [("int16", 0.99), ("int8", 0.97)] {
            let blob = scratch(&format!("bidir-keras-onnx-{name}-{precision}")).join("m.trnn");
            let (code, _, err) = cli(&[
                OsStr::new("quantize"),
                s(&onnx),
                OsStr::new("--precision"),
                OsStr::new(precision),
                OsStr::new("--calib"),
                s(&v.join("calib_raw.npy")),
                OsStr::new("--calib-lengths"),
                s(&v.join("calib_lengths.npy")),
                OsStr::new("-o"),
                s(&blob),
            ]);
            assert_eq!(code, 0, "{name} {precision}: {err}");
            let (code, out, err) = cli(&[OsStr::new("inspect"), s(&blob)]);
            assert_eq!(code, 0, "{name} {precision}: {err}");
            assert!(
                out.contains("RAM: window buffer"),
                "{name} {precision}: not a window-mode blob: {out}"
            );
            let (code, out, err) = cli(&[
                OsStr::new("eval"),
                s(&blob),
                OsStr::new("-i"),
                s(&v.join("test_raw.npy")),
                OsStr::new("--labels"),
                s(&v.join("test_labels.npy")),
                OsStr::new("--lengths"),
                s(&v.join("test_lengths.npy")),
                OsStr::new("--reference"),
                s(&onnx),
                OsStr::new("--json"),
            ]);
            assert_eq!(code, 0, "{name} {precision}: {err}");
            let r: serde_json::Value = serde_json::from_str(&out).unwrap();
            let (acc, ref_acc, agree, err_max) = (
                r["accuracy"].as_f64().unwrap(),
                r["reference_accuracy"].as_f64().unwrap(),
                r["agreement"].as_f64().unwrap(),
                r["max_abs_error"].as_f64().unwrap(),
            );
            println!(
                "keras_bidir/{name}.onnx {precision}: accuracy {acc:.4} (float {ref_acc:.4}), argmax agreement {agree:.4}, max |q - float| {err_max:.2e}"
            );
            assert!(
                agree >= min_agreement,
                "{name} {precision}: agreement {agree}"
            );
            if precision == "int16" {
                assert!(err_max <= 1e-3, "{name} int16: max |q - float| {err_max}");
            }
        }
    }
}

/// What Keras's export puts around a `ReverseSequence` other than a whole-sequence time
/// reversal feeding a Loop (or undoing one), edited into tests/data/keras_bidir files:
/// one `error:` line naming the node.
#[test]
fn keras_onnx_reverse_sequence_refusals_name_the_node() {
    use common::{encode, find_node, load_onnx};
    let kb = data_dir().join("keras_bidir");
    let d = scratch("bidir-keras-onnx-refusals");
    let refused = |m: &tinyrnn_cli::import::proto::ModelProto, tag: &str| -> String {
        let p = d.join(format!("{tag}.onnx"));
        std::fs::write(&p, encode(m)).unwrap();
        let (code, out, err) = cli(&[OsStr::new("inspect"), s(&p)]);
        assert_eq!(code, 1, "{tag}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{tag}: {err}");
        assert!(err.starts_with("error: "), "{tag}: {err}");
        err
    };
    let rs_name = "sequential_1/bidirectional_1/backward_gru_1/ReverseV2_ReverseSequence__105";
    // Partial reversal: sequence_lens a constant 5 (every sequence reversed in its first
    // five steps only).
    let mut m = load_onnx(&kb.join("bigru.onnx"));
    m.graph
        .as_mut()
        .unwrap()
        .initializer
        .push(tinyrnn_cli::import::proto::TensorProto {
            dims: vec![1],
            data_type: tinyrnn_cli::import::proto::dtype::INT64,
            int64_data: vec![5],
            name: "five".into(),
            ..Default::default()
        });
    find_node(&mut m, "ReverseSequence").input[1] = "five".into();
    let e = refused(&m, "partial");
    assert!(
        e.contains(&format!("node `{rs_name}` (ReverseSequence): ReverseSequence with sequence_lens other than the full time size of every sequence")),
        "{e}"
    );
    // The feature axis as its time axis.
    let mut m = load_onnx(&kb.join("bigru.onnx"));
    let n = find_node(&mut m, "ReverseSequence");
    n.attribute = vec![
        common::attr_i("time_axis", 2),
        common::attr_i("batch_axis", 1),
    ];
    let e = refused(&m, "feature-axis");
    assert!(
        e.contains(&format!("node `{rs_name}` (ReverseSequence): ReverseSequence with time_axis=2 over a Feat(12) axis of the data sequence")),
        "{e}"
    );
    // Bidirectional(return_sequences=True) whose backward per-step output is concatenated
    // without being reversed back: step t would pair fwd_t with bwd_{T-1-t}.
    let mut m = load_onnx(&kb.join("bigru_gap.onnx"));
    let g = m.graph.as_mut().unwrap();
    let pos = g
        .node
        .iter()
        .rposition(|n| n.op_type == "ReverseSequence")
        .unwrap();
    let back = g.node[pos].clone();
    for n in g.node.iter_mut() {
        for i in n.input.iter_mut() {
            if *i == back.output[0] {
                *i = back.input[0].clone();
            }
        }
    }
    g.node.remove(pos);
    let e = refused(&m, "not-reversed-back");
    assert!(
        e.contains("(Concat): Concat of a time-reversed sequence with one in time order"),
        "{e}"
    );
}

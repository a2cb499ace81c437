//! `tinyrnn run` and `tinyrnn inspect` end to end (the built binary): output files and
//! shapes, the exact `--raw` line format, blobs through `tinyrnn::Session`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tinyrnn::Precision;
use tinyrnn_cli::data;
use tinyrnn_cli::exec::{self, Blob, Runnable, Steps};
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::quantize::calib::{calibrate, Batch};
use tinyrnn_cli::quantize::{quantize, QuantOptions};

fn tinyrnn(args: &[&str]) -> (i32, String, String) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    cli(&args)
}

fn ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = tinyrnn(args);
    assert_eq!(code, 0, "tinyrnn {args:?}: {stderr}");
    stdout
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `seq=<i> class=<c> logits=<v0>,...` parsed.
fn parse_raw(line: &str) -> (usize, usize, Vec<String>) {
    let mut it = line.split(' ');
    let seq = it
        .next()
        .unwrap()
        .strip_prefix("seq=")
        .unwrap()
        .parse()
        .unwrap();
    let class = it
        .next()
        .unwrap()
        .strip_prefix("class=")
        .unwrap()
        .parse()
        .unwrap();
    let logits = it
        .next()
        .unwrap()
        .strip_prefix("logits=")
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    assert!(it.next().is_none(), "extra fields in {line:?}");
    (seq, class, logits)
}

#[test]
fn float_run_outputs_and_raw_lines() {
    let dir = scratch("float_run");
    let case = "lstm_softmax";
    let (model, x) = (golden(case, "model.onnx"), golden(case, "x.npy"));
    let y = npy(&golden(case, "y_all.npy"));
    let (n, t, c) = (y.shape[0], y.shape[1], y.shape[2]);

    let all = dir.join("all.npy");
    ok(&[
        "run",
        s(&model),
        "--input",
        s(&x),
        "--steps",
        "all",
        "-o",
        s(&all),
    ]);
    let a = npy(&all);
    assert_eq!(a.shape, vec![n, t, c]);
    assert!(max_abs(&a.data, &y.data) <= 5e-5);

    let last = dir.join("last.npy");
    ok(&["run", s(&model), "--input", s(&x), "--output", s(&last)]);
    let l = npy(&last);
    assert_eq!(l.shape, vec![n, c]);
    for i in 0..n {
        let want = &y.data[(i * t + t - 1) * c..(i * t + t) * c];
        assert!(max_abs(&l.data[i * c..(i + 1) * c], want) <= 5e-5);
    }

    let stdout = ok(&["run", s(&model), "--input", s(&x), "--raw"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), n);
    for (i, line) in lines.iter().enumerate() {
        let (seq, class, logits) = parse_raw(line);
        assert_eq!(seq, i);
        let v: Vec<f64> = logits
            .iter()
            .map(|s| s.parse::<f32>().unwrap() as f64)
            .collect();
        assert_eq!(v.len(), c);
        assert_eq!(class, exec::argmax(&v));
        let want = &y.data[(i * t + t - 1) * c..(i * t + t) * c];
        assert!(max_abs(&v, want) <= 5e-5, "{line}");
        // Shortest round-trip f32 formatting.
        for s in &logits {
            let f: f32 = s.parse().unwrap();
            assert_eq!(&format!("{f}"), s);
        }
    }

    // A single [T, F] sequence gives [1, C].
    let xs = data::read_inputs(&x).unwrap();
    let one = dir.join("one.npy");
    write_npy(&one, &[xs.t, xs.f], xs.seq(2));
    let out1 = dir.join("out1.npy");
    ok(&["run", s(&model), "--input", s(&one), "-o", s(&out1)]);
    let o = npy(&out1);
    assert_eq!(o.shape, vec![1, c]);
    assert_eq!(o.data, l.data[2 * c..3 * c].to_vec());
}

fn vowels(p: &str) -> PathBuf {
    data_dir().join("vowels").join(p)
}

/// Quantizes the vowels LSTM (with the normalization folded in) to `precision`.
fn vowels_blob(precision: Precision, path: &Path) -> Vec<u8> {
    let opts = ImportOptions {
        normalize: Some(vowels("norm.json")),
        ..Default::default()
    };
    let fm = import::load_model(&vowels("lstm.onnx"), &opts).unwrap();
    let stats = if precision.is_int() {
        let x = data::read_inputs(&vowels("calib_raw.npy")).unwrap();
        let len = data::read_lengths(&vowels("calib_lengths.npy"), x.n, x.t).unwrap();
        let batch = Batch {
            data: &x.data,
            n: x.n,
            t: x.t,
            f: x.f,
            lengths: Some(&len),
        };
        Some(calibrate(&fm, &batch, || {}).unwrap())
    } else {
        None
    };
    let q = quantize(&fm, stats.as_ref(), &QuantOptions::new(precision)).unwrap();
    std::fs::write(path, &q.blob).unwrap();
    q.blob
}

#[test]
fn blob_run_is_the_session_path() {
    let dir = scratch("blob_run");
    let x_raw = data::read_inputs(&vowels("test_raw.npy")).unwrap();
    let lengths = data::read_lengths(&vowels("test_lengths.npy"), x_raw.n, x_raw.t).unwrap();
    let labels = data::read_labels(&vowels("test_labels.npy"), Some(x_raw.n)).unwrap();
    let reference = npy(&vowels("lstm_ref_logits.npy"));
    for (p, name) in [
        (Precision::Int8, "int8"),
        (Precision::Int16, "int16"),
        (Precision::F32, "f32"),
    ] {
        let blob_path = dir.join(format!("lstm_{name}.trnn"));
        let bytes = vowels_blob(p, &blob_path);
        let lib = exec::run(
            &Runnable::Blob(Blob::from_bytes(bytes).unwrap()),
            &x_raw,
            Some(&lengths),
            Steps::Last,
        )
        .unwrap();
        // The binary's output file and raw lines are the library's Session results.
        let out = dir.join(format!("y_{name}.npy"));
        let stdout = ok(&[
            "run",
            s(&blob_path),
            "--input",
            s(&vowels("test_raw.npy")),
            "--lengths",
            s(&vowels("test_lengths.npy")),
            "-o",
            s(&out),
            "--raw",
        ]);
        let y = npy(&out);
        assert_eq!(y.shape, vec![x_raw.n, 9]);
        let lib32: Vec<f64> = lib.y.iter().map(|&v| v as f32 as f64).collect();
        assert_eq!(y.data, lib32);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), x_raw.n);
        let mut correct = 0;
        for (i, line) in lines.iter().enumerate() {
            let (seq, class, logits) = parse_raw(line);
            assert_eq!(seq, i);
            assert_eq!(class, lib.class(i));
            if p.is_int() {
                let q: Vec<i16> = logits.iter().map(|s| s.parse().unwrap()).collect();
                assert_eq!(q, lib.last_q(i).unwrap());
                assert_eq!(class, exec::argmax(&q));
            } else {
                assert!(logits.iter().all(|s| s.parse::<f32>().is_ok()));
            }
            correct += (class == labels[i]) as usize;
        }
        let acc = correct as f64 / x_raw.n as f64;
        let err = max_abs(&lib.y, &reference.data);
        println!("vowels lstm {name} blob: accuracy {acc:.4}, max abs vs PyTorch {err:.3e}");
        assert!(acc > 0.95, "{name}: accuracy {acc}");
        if p == Precision::F32 {
            // micromath (the MCU default) is an approximation; libm matches PyTorch.
            assert!(err < 0.1, "f32 blob (fast math) vs PyTorch {err}");
            let out = dir.join("y_f32_accurate.npy");
            ok(&[
                "run",
                s(&blob_path),
                "--input",
                s(&vowels("test_raw.npy")),
                "--lengths",
                s(&vowels("test_lengths.npy")),
                "--f32-math",
                "accurate",
                "-o",
                s(&out),
            ]);
            let acc_err = max_abs(&npy(&out).data, &reference.data);
            println!("vowels lstm f32 blob, accurate math: max abs vs PyTorch {acc_err:.3e}");
            assert!(
                acc_err < 1e-4,
                "f32 blob (accurate math) vs PyTorch {acc_err}"
            );
        }
        // --steps all on the blob: [N, T, C], last true step equals the last-step run.
        if p == Precision::Int8 {
            let all = dir.join("all.npy");
            ok(&[
                "run",
                s(&blob_path),
                "--input",
                s(&vowels("test_raw.npy")),
                "--lengths",
                s(&vowels("test_lengths.npy")),
                "--steps",
                "all",
                "-o",
                s(&all),
            ]);
            let a = npy(&all);
            assert_eq!(a.shape, vec![x_raw.n, x_raw.t, 9]);
            for (i, &len) in lengths.iter().enumerate() {
                let o = (i * x_raw.t + len - 1) * 9;
                assert_eq!(a.data[o..o + 9], y.data[i * 9..(i + 1) * 9]);
            }
        }
    }
}

#[test]
fn inspect_all_three_kinds() {
    let dir = scratch("inspect");
    let blob = dir.join("lstm.trnn");
    vowels_blob(Precision::Int8, &blob);
    for (file, kind) in [
        (vowels("lstm.onnx"), "onnx"),
        (vowels("lstm.safetensors"), "safetensors"),
        (blob.clone(), "blob"),
    ] {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["inspect", s(&file), "--json"])).unwrap();
        assert_eq!(v["file_kind"], kind);
        assert_eq!(v["input_size"], 12);
        assert_eq!(v["output_size"], 9);
        assert_eq!(v["layers"][0]["cell"], "lstm");
        assert_eq!(v["layers"][0]["hidden_size"], 32);
        // 4·32·(12+32) + 2·4·32 + 9·(32+1)
        assert_eq!(v["params"], 4 * 32 * 44 + 8 * 32 + 9 * 33);
        assert_eq!(v["state_bytes"], 2 * 32 * 4);
        let text = ok(&["inspect", s(&file)]);
        assert!(text.contains("layer 0: lstm 12 -> 32"), "{text}");
        assert!(text.contains("RAM"), "{text}");
    }
    let v: serde_json::Value = serde_json::from_str(&ok(&["inspect", s(&blob), "--json"])).unwrap();
    assert_eq!(v["precision"], "int8");
    assert_eq!(v["normalization"], true);
    assert_eq!(v["layers"][0]["h_format"], "Q0.15");
    assert!(v["weight_bytes"].as_u64().unwrap() > 0);
    assert!(v["scratch_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["features"], serde_json::json!(["lstm", "int8"]));
    let text = ok(&["inspect", s(&blob)]);
    assert!(text.contains("\nfeatures: lstm, int8 ("), "{text}");
}

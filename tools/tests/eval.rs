//! Trained-model tests: each bundled JapaneseVowels classifier (tests/data/vowels, LSTM, GRU
//! and RNN, 12 features, 9 classes, variable lengths) is quantized at all three precisions
//! with its calibration split and training statistics (`--normalize norm.json`, so the blob
//! takes raw inputs), then evaluated on the 370 held-out test sequences against the float
//! model (f64 reference of the imported ONNX model), through the same functions the CLI
//! runs.
//!
//! Thresholds (issue 3): int16 within 0.3 accuracy points of the float model; int8 within
//! 1.0 point with ≥ 97 % class agreement; float32 agrees on every class. Run with
//! `--nocapture` to see the figures.

use std::path::{Path, PathBuf};

use tinyrnn_cli::cmd::eval::{self, EvalResult};
use tinyrnn_cli::cmd::quantize::{self, PrecisionArg};
use tinyrnn_cli::exec::F32MathArg;
use tinyrnn_cli::import::ImportArgs;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/vowels")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyrnn-eval-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn norm_args() -> ImportArgs {
    ImportArgs {
        normalize: Some(data().join("norm.json")),
        ..Default::default()
    }
}

fn quantize_to(model: &Path, p: PrecisionArg, out: &Path) {
    let d = data();
    quantize::run(&quantize::Args {
        model: model.to_path_buf(),
        output: out.to_path_buf(),
        precision: p,
        calib: Some(d.join("calib_raw.npy")),
        calib_lengths: Some(d.join("calib_lengths.npy")),
        json: true,
        sign_key: None,
        model_version: None,
        import: norm_args(),
    })
    .unwrap();
}

fn eval_blob(blob: &Path, reference: &Path, plot: Option<PathBuf>, math: F32MathArg) -> EvalResult {
    let d = data();
    let (res, pairs) = eval::eval(&eval::Args {
        model: blob.to_path_buf(),
        input: d.join("test_raw.npy"),
        labels: d.join("test_labels.npy"),
        lengths: Some(d.join("test_lengths.npy")),
        reference: Some(reference.to_path_buf()),
        json: true,
        plot: plot.clone(),
        classes: None,
        f32_math: math,
        import: norm_args(),
    })
    .unwrap();
    if let Some(p) = plot {
        tinyrnn_cli::plot::eval_plot(&p, &res, pairs.as_ref()).unwrap();
    }
    res
}

/// The quantizer is deterministic: its blobs for the bundled models are committed in
/// tests/data/blobs/ and must be reproduced byte for byte (`TINYRNN_BLESS=1` rewrites them
/// after a deliberate change). The firmware and `codegen` tests use these files.
fn check_blessed(blob: &Path, file: &str) {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/blobs")
        .join(file);
    let got = std::fs::read(blob).unwrap();
    if std::env::var_os("TINYRNN_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(committed.parent().unwrap()).unwrap();
        std::fs::write(&committed, &got).unwrap();
        return;
    }
    let want = std::fs::read(&committed).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with TINYRNN_BLESS=1 to create it)",
            committed.display()
        )
    });
    assert!(
        got == want,
        "{file}: the quantizer's output changed (re-bless with TINYRNN_BLESS=1 if deliberate)"
    );
}

fn check_model(name: &str) {
    let d = data();
    let onnx = d.join(format!("{name}.onnx"));
    let dir = tmpdir(name);
    let mut lines = Vec::new();
    for (p, tag) in [
        (PrecisionArg::Float32, "float32"),
        (PrecisionArg::Int16, "int16"),
        (PrecisionArg::Int8, "int8"),
    ] {
        let blob = dir.join(format!("{name}_{tag}.trnn"));
        quantize_to(&onnx, p, &blob);
        check_blessed(&blob, &format!("vowels_{name}_{tag}.trnn"));
        // Plots of the int8 blob: SVG (with text) and PNG.
        let plots = (p == PrecisionArg::Int8).then(|| {
            [
                dir.join(format!("{name}.svg")),
                dir.join(format!("{name}.png")),
            ]
        });
        let r = eval_blob(
            &blob,
            &onnx,
            plots.as_ref().map(|p| p[0].clone()),
            F32MathArg::Fast,
        );
        if let Some([svg, png]) = &plots {
            eval_blob(&blob, &onnx, Some(png.clone()), F32MathArg::Fast);
            let s = std::fs::read_to_string(svg).unwrap();
            assert!(s.contains("<svg") && s.contains("predicted class"));
            let b = std::fs::read(png).unwrap();
            assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
            if std::env::var_os("TINYRNN_KEEP_PLOTS").is_some() {
                std::fs::copy(svg, std::env::temp_dir().join(format!("{name}_int8.svg"))).unwrap();
                std::fs::copy(png, std::env::temp_dir().join(format!("{name}_int8.png"))).unwrap();
            }
        }
        let float_acc = r.reference_accuracy.unwrap();
        // The float model's accuracy is PyTorch's (train_metrics.json, same test split).
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("train_metrics.json")).unwrap()).unwrap();
        assert!((float_acc - metrics[name].as_f64().unwrap()).abs() < 1e-9);
        let agree = r.agreement.unwrap();
        let delta = 100.0 * (r.accuracy - float_acc);
        lines.push(format!(
            "{name:>4} {tag:>7}: accuracy {:.2}% (float {:.2}%, {delta:+.2} points), agreement {:.2}%, \
             max|err| {:.3e}, mean|err| {:.3e}",
            100.0 * r.accuracy,
            100.0 * float_acc,
            100.0 * agree,
            r.max_abs_error.unwrap(),
            r.mean_abs_error.unwrap()
        ));
        assert_eq!(r.samples, 370);
        match p {
            PrecisionArg::Float32 => {
                // The blob runs with the MCU default F32Math::Fast (micromath): its
                // exp/tanh approximations (~1e-3 relative) leave up to ~0.05 on logits of
                // magnitude ~10 after 29 steps; classes must still all agree.
                assert_eq!(agree, 1.0, "{}", lines.last().unwrap());
                assert!(r.max_abs_error.unwrap() < 0.1, "{}", lines.last().unwrap());
                // With libm (F32Math::Accurate) only float32 rounding remains: measured
                // ≤ 3.6e-6 against the f64 reference.
                let acc = eval_blob(&blob, &onnx, None, F32MathArg::Accurate);
                let e = acc.max_abs_error.unwrap();
                lines.push(format!(
                    "{name:>4} float32 (accurate math): max|err| {e:.3e}"
                ));
                assert!(e < 2e-5, "{}", lines.last().unwrap());
                assert_eq!(acc.agreement, Some(1.0));
            }
            PrecisionArg::Int16 => {
                assert!(delta.abs() <= 0.3, "{}", lines.last().unwrap());
            }
            PrecisionArg::Int8 => {
                assert!(delta.abs() <= 1.0, "{}", lines.last().unwrap());
                assert!(agree >= 0.97, "{}", lines.last().unwrap());
            }
        }
    }
    for l in &lines {
        eprintln!("{l}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn vowels_lstm() {
    check_model("lstm");
}

#[test]
fn vowels_gru() {
    check_model("gru");
}

#[test]
fn vowels_rnn() {
    check_model("rnn");
}

/// `tinyrnn eval` on the committed int8 LSTM blob (9 classes) with extra arguments.
fn eval_cli(extra: &[&str]) -> std::process::Output {
    let d = data();
    let blob =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/blobs/vowels_lstm_int8.trnn");
    std::process::Command::new(env!("CARGO_BIN_EXE_tinyrnn"))
        .arg("eval")
        .arg(blob)
        .arg("--input")
        .arg(d.join("test_raw.npy"))
        .arg("--lengths")
        .arg(d.join("test_lengths.npy"))
        .arg("--labels")
        .arg(d.join("test_labels.npy"))
        .args(extra)
        .output()
        .unwrap()
}

const SPEAKERS: [&str; 9] = [
    "speaker 1",
    "speaker 2",
    "speaker 3",
    "speaker 4",
    "speaker 5",
    "speaker 6",
    "speaker 7",
    "speaker 8",
    "speaker 9",
];

#[test]
fn class_names_reach_the_plot_text_and_json() {
    let dir = tmpdir("classes");
    let names = dir.join("names.json");
    std::fs::write(&names, serde_json::to_vec(&SPEAKERS).unwrap()).unwrap();
    let svg = dir.join("cm.svg");
    let out = eval_cli(&[
        "--classes",
        names.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["class_names"], serde_json::json!(SPEAKERS));
    assert_eq!(v["classes"], 9);
    let s = std::fs::read_to_string(&svg).unwrap();
    for n in SPEAKERS {
        // once as a row label, once as a column label
        assert_eq!(s.matches(&format!("\n{n}\n</text>")).count(), 2, "{n}");
    }
    assert!(s.contains("int8 blob: accuracy 97.84% (N = 370)"));
    // Every one of the 81 cells carries its count (text elements that are numbers).
    let counts = s
        .split("</text>")
        .filter_map(|t| t.rsplit('>').next())
        .filter(|t| t.trim().parse::<u64>().is_ok())
        .count();
    assert_eq!(counts, 81);

    // The comma list, the text output and a PNG.
    let png = dir.join("cm.png");
    let list = SPEAKERS.join(",");
    let out = eval_cli(&["--classes", &list, "--plot", png.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("28  speaker 9\n"), "{text}");
    let b = std::fs::read(&png).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_class_names_fail_cleanly() {
    let dir = tmpdir("badclasses");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(
        p("ten.json"),
        serde_json::to_vec(&[SPEAKERS.as_slice(), &["x"]].concat()).unwrap(),
    )
    .unwrap();
    std::fs::write(p("broken.json"), b"[\"a\", 3]").unwrap();
    let nine_dup = "a,b,c,d,e,f,g,h,a".to_string();
    let nine_empty = "a,b,c,,e,f,g,h,i".to_string();
    let cases = [
        (
            "a,b".to_string(),
            "--classes gives 2 names but the model has 9 classes",
        ),
        (
            p("ten.json"),
            "--classes gives 10 names but the model has 9 classes",
        ),
        (p("broken.json"), "expected a JSON array of class names"),
        (p("missing.json"), "--classes: cannot read"),
        (nine_dup, "\"a\" is given twice (names 0 and 8)"),
        (nine_empty, "name 3 is empty"),
    ];
    for (spec, want) in cases {
        let out = eval_cli(&["--classes", &spec, "--plot", &p("cm.png")]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{spec}: {err}");
        assert_eq!(err.lines().count(), 1, "{spec}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{spec}: {err}"
        );
        assert!(out.stdout.is_empty(), "{spec}");
        assert!(!dir.join("cm.png").exists(), "{spec}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

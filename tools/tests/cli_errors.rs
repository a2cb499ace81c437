//! Table-driven bad-input test of the built `tinyrnn` binary: every failure is one
//! `error:` line on stderr with status 1 (clap usage errors: 2), never a panic, and never a
//! partial or clobbered output file.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use tinyrnn::Precision;
use tinyrnn_cli::import::{self, ImportOptions};
use tinyrnn_cli::quantize::{quantize, QuantOptions};

struct Case {
    name: &'static str,
    args: Vec<String>,
    code: i32,
    want: &'static str,
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = scratch("errors");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let onnx = golden("lstm_1l", "model.onnx");
    let onnx_s = onnx.to_str().unwrap().to_string();
    let st = golden("lstm_1l", "model.safetensors");
    let x = golden("lstm_1l", "x.npy").to_str().unwrap().to_string();
    let onnx_bytes = std::fs::read(&onnx).unwrap();
    let st_bytes = std::fs::read(&st).unwrap();

    // Fixtures.
    std::fs::write(p("empty.onnx"), b"").unwrap();
    std::fs::write(p("trunc.onnx"), &onnx_bytes[..onnx_bytes.len() / 2]).unwrap();
    let mut rng = 0x2545F491u32;
    let noise: Vec<u8> = (0..3000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            (rng >> 24) as u8
        })
        .collect();
    std::fs::write(p("corrupt.onnx"), &noise).unwrap();
    std::fs::write(p("trunc.safetensors"), &st_bytes[..st_bytes.len() - 100]).unwrap();
    let fm = import::load_model(&onnx, &ImportOptions::default()).unwrap();
    let blob = quantize(&fm, None, &QuantOptions::new(Precision::F32))
        .unwrap()
        .blob;
    std::fs::write(p("good.trnn"), &blob).unwrap();
    std::fs::write(p("trunc.trnn"), &blob[..blob.len() - 7]).unwrap();
    let mut flipped = blob.clone();
    let k = flipped.len() / 2;
    flipped[k] ^= 0x10;
    std::fs::write(p("flipped.trnn"), &flipped).unwrap();
    let mut m = load_onnx(&onnx);
    find_node(&mut m, "Add").op_type = "Selu".into();
    std::fs::write(p("unsupported.onnx"), encode(&m)).unwrap();
    let mut m = load_onnx(&onnx);
    find_node(&mut m, "LSTM")
        .attribute
        .push(attr_s("direction", "bidirectional"));
    std::fs::write(p("bidir.onnx"), encode(&m)).unwrap();
    std::fs::write(p("unrolled.onnx"), unrolled_onnx()).unwrap();
    let mut v = vec![0.5f32; 2 * 3 * 5];
    v[15 + 1] = f32::NAN; // [1, 0, 1]
    write_npy(&dir.join("nan.npy"), &[2, 3, 5], &v);
    let mut v = vec![0.5f32; 2 * 3 * 5];
    v[2 * 5 + 4] = f32::INFINITY; // [0, 2, 4]
    write_npy(&dir.join("inf.npy"), &[2, 3, 5], &v);
    write_npy(&dir.join("wrongf.npy"), &[2, 3, 7], &[0.0; 42]);
    write_npy(&dir.join("rank1.npy"), &[4], &[0.0; 4]);
    std::fs::write(
        p("ints.npy"),
        tinyrnn_cli::data::npy_bytes_i64(&[1, 2, 5], &[1; 10]).unwrap(),
    )
    .unwrap();
    let good = std::fs::read(golden("lstm_1l", "x.npy")).unwrap();
    std::fs::write(p("trunc.npy"), &good[..good.len() - 10]).unwrap();
    std::fs::write(p("notnpy.npy"), b"hello").unwrap();
    std::fs::write(
        p("len_zero.npy"),
        tinyrnn_cli::data::npy_bytes_i64(&[4], &[3, 0, 2, 1]).unwrap(),
    )
    .unwrap();
    std::fs::write(
        p("len_long.npy"),
        tinyrnn_cli::data::npy_bytes_i64(&[4], &[3, 13, 2, 1]).unwrap(),
    )
    .unwrap();
    std::fs::write(
        p("len_count.npy"),
        tinyrnn_cli::data::npy_bytes_i64(&[3], &[3, 3, 3]).unwrap(),
    )
    .unwrap();
    std::fs::write(p("stats_bad.json"), br#"{"mean":[0,0],"std":[1,1]}"#).unwrap();
    std::fs::write(
        p("stats_zero.json"),
        br#"{"mean":[0,0,0,0,0],"std":[1,1,0,1,1]}"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("adir")).unwrap();
    std::fs::write(p("keep.npy"), b"keep").unwrap();

    let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let run_x =
        |model: &str, input: &str| a(&["run", model, "--input", input, "-o", &p("keep.npy")]);
    let cases = vec![
        Case {
            name: "missing model",
            args: run_x(&p("nope.onnx"), &x),
            code: 1,
            want: "cannot read",
        },
        Case {
            name: "empty model",
            args: run_x(&p("empty.onnx"), &x),
            code: 1,
            want: "empty",
        },
        Case {
            name: "truncated onnx",
            args: run_x(&p("trunc.onnx"), &x),
            code: 1,
            want: "ONNX",
        },
        Case {
            name: "corrupt onnx",
            args: run_x(&p("corrupt.onnx"), &x),
            code: 1,
            want: "ONNX",
        },
        Case {
            name: "truncated safetensors",
            args: run_x(&p("trunc.safetensors"), &x),
            code: 1,
            want: "error:",
        },
        Case {
            name: "truncated blob",
            args: run_x(&p("trunc.trnn"), &x),
            code: 1,
            want: "truncated",
        },
        Case {
            name: "bit-flipped blob",
            args: run_x(&p("flipped.trnn"), &x),
            code: 1,
            want: "CRC",
        },
        Case {
            name: "unsupported op",
            args: run_x(&p("unsupported.onnx"), &x),
            code: 1,
            want: "unsupported ONNX op `Selu`",
        },
        Case {
            name: "bidirectional",
            args: run_x(&p("bidir.onnx"), &x),
            code: 1,
            want: "direction=bidirectional",
        },
        Case {
            name: "unrolled graph",
            args: run_x(&p("unrolled.onnx"), &x),
            code: 1,
            want: "dynamo=False",
        },
        Case {
            name: "NaN in data",
            args: run_x(&onnx_s, &p("nan.npy")),
            code: 1,
            want: "non-finite value NaN at index [1, 0, 1]",
        },
        Case {
            name: "inf in data",
            args: run_x(&onnx_s, &p("inf.npy")),
            code: 1,
            want: "non-finite value inf at index [0, 2, 4]",
        },
        Case {
            name: "NaN into a blob",
            args: run_x(&p("good.trnn"), &p("nan.npy")),
            code: 1,
            want: "non-finite",
        },
        Case {
            name: "wrong feature count",
            args: run_x(&onnx_s, &p("wrongf.npy")),
            code: 1,
            want: "7 features",
        },
        Case {
            name: "wrong feature count (blob)",
            args: run_x(&p("good.trnn"), &p("wrongf.npy")),
            code: 1,
            want: "expects 5",
        },
        Case {
            name: "rank-1 input",
            args: run_x(&onnx_s, &p("rank1.npy")),
            code: 1,
            want: "[N, T, F]",
        },
        Case {
            name: "integer input",
            args: run_x(&onnx_s, &p("ints.npy")),
            code: 1,
            want: "float32 or float64",
        },
        Case {
            name: "truncated npy",
            args: run_x(&onnx_s, &p("trunc.npy")),
            code: 1,
            want: "truncated",
        },
        Case {
            name: "not an npy",
            args: run_x(&onnx_s, &p("notnpy.npy")),
            code: 1,
            want: "not a .npy",
        },
        Case {
            name: "missing input",
            args: run_x(&onnx_s, &p("nope.npy")),
            code: 1,
            want: "cannot read",
        },
        Case {
            name: "zero length",
            args: a(&[
                "run",
                &onnx_s,
                "--input",
                &x,
                "--lengths",
                &p("len_zero.npy"),
                "-o",
                &p("keep.npy"),
            ]),
            code: 1,
            want: "length 0 at index [1]",
        },
        Case {
            name: "length beyond T",
            args: a(&[
                "run",
                &onnx_s,
                "--input",
                &x,
                "--lengths",
                &p("len_long.npy"),
                "-o",
                &p("keep.npy"),
            ]),
            code: 1,
            want: "outside 1..=12",
        },
        Case {
            name: "length count",
            args: a(&[
                "run",
                &onnx_s,
                "--input",
                &x,
                "--lengths",
                &p("len_count.npy"),
                "-o",
                &p("keep.npy"),
            ]),
            code: 1,
            want: "4 sequences",
        },
        Case {
            name: "stats count",
            args: a(&[
                "run",
                &onnx_s,
                "--input",
                &x,
                "--normalize",
                &p("stats_bad.json"),
                "-o",
                &p("keep.npy"),
            ]),
            code: 1,
            want: "5 input features",
        },
        Case {
            name: "stats zero std",
            args: a(&[
                "run",
                &onnx_s,
                "--input",
                &x,
                "--normalize",
                &p("stats_zero.json"),
                "-o",
                &p("keep.npy"),
            ]),
            code: 1,
            want: "std[2]",
        },
        Case {
            name: "normalize on a blob",
            args: a(&[
                "run",
                &p("good.trnn"),
                "--input",
                &x,
                "--normalize",
                &p("stats_zero.json"),
            ]),
            code: 1,
            want: "own normalization",
        },
        Case {
            name: "unwritable output",
            args: a(&[
                "run",
                &onnx_s,
                "--input",
                &x,
                "-o",
                "/nonexistent-dir/y.npy",
            ]),
            code: 1,
            want: "cannot write /nonexistent-dir/y.npy",
        },
        Case {
            name: "output is a directory",
            args: a(&["run", &onnx_s, "--input", &x, "-o", &p("adir")]),
            code: 1,
            want: "directory",
        },
        Case {
            name: "quantize int8 without --calib",
            args: a(&["quantize", &onnx_s, "-o", &p("keep.npy")]),
            code: 1,
            want: "--calib",
        },
        Case {
            name: "quantize with NaN calibration",
            args: a(&[
                "quantize",
                &onnx_s,
                "-o",
                &p("keep.npy"),
                "--calib",
                &p("nan.npy"),
            ]),
            code: 1,
            want: "non-finite",
        },
        Case {
            name: "quantize a blob",
            args: a(&[
                "quantize",
                &p("good.trnn"),
                "-o",
                &p("keep.npy"),
                "--precision",
                "float32",
            ]),
            code: 1,
            want: "blob",
        },
        Case {
            name: "quantize unwritable",
            args: a(&[
                "quantize",
                &onnx_s,
                "-o",
                "/nonexistent-dir/m.trnn",
                "--precision",
                "float32",
            ]),
            code: 1,
            want: "/nonexistent-dir/m.trnn",
        },
        Case {
            name: "inspect corrupt",
            args: a(&["inspect", &p("corrupt.onnx")]),
            code: 1,
            want: "ONNX",
        },
        Case {
            name: "inspect missing",
            args: a(&["inspect", &p("nope")]),
            code: 1,
            want: "cannot read",
        },
        Case {
            name: "no --input",
            args: a(&["run", &onnx_s]),
            code: 2,
            want: "--input",
        },
        Case {
            name: "bad --steps",
            args: a(&["run", &onnx_s, "--input", &x, "--steps", "some"]),
            code: 2,
            want: "--steps",
        },
        Case {
            name: "unknown subcommand",
            args: a(&["frobnicate"]),
            code: 2,
            want: "frobnicate",
        },
    ];
    let before: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for c in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_tinyrnn"))
            .args(&c.args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        assert_eq!(code, c.code, "{}: status {code}, stderr: {stderr}", c.name);
        assert!(stderr.starts_with("error:"), "{}: {stderr}", c.name);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", c.name);
        if c.code == 1 {
            assert_eq!(
                stderr.lines().count(),
                1,
                "{}: not one line: {stderr}",
                c.name
            );
        }
        assert!(
            stderr.contains(c.want),
            "{}: expected {:?} in: {stderr}",
            c.name,
            c.want
        );
        assert!(
            out.stdout.is_empty() || c.code != 1,
            "{}: wrote to stdout",
            c.name
        );
        // The existing output is untouched and nothing else appeared.
        assert_eq!(
            std::fs::read(dir.join("keep.npy")).unwrap(),
            b"keep",
            "{}",
            c.name
        );
        let now: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            now.len(),
            before.len(),
            "{}: files appeared: {now:?}",
            c.name
        );
    }
    // And a good run does replace it.
    let out = Command::new(env!("CARGO_BIN_EXE_tinyrnn"))
        .args(run_x(&onnx_s, &x))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_ne!(std::fs::read(dir.join("keep.npy")).unwrap(), b"keep");
    assert!(!Path::new("/nonexistent-dir").exists());
}

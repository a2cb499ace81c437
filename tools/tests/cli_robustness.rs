//! Bad inputs through the built `tinyrnn` binary, complementing `cli_errors.rs` (which
//! covers missing / empty / truncated / corrupt model files, unsupported ONNX, NaN / inf
//! data, wrong shapes and feature counts, missing `--calib`, unwritable outputs, for `run`,
//! `quantize` and `inspect`). Here:
//!
//! * every loader error (header, CRC, decoding, dimensions, tensor lengths, fixed-point
//!   parameters, non-finite weights) in every command that reads a blob: `inspect`, `run`,
//!   `eval`, `generate`, `codegen`;
//! * pathological `.npy` files (shapes that overflow or claim terabytes, wrong dtypes, byte
//!   order, Fortran order, headers beyond the file) as inputs, labels, lengths and
//!   calibration data;
//! * degenerate quantization (all-zero or huge calibration data, non-finite or huge
//!   weights, calibration of the wrong width);
//! * `eval`, `generate` and `codegen` argument errors;
//! * a few hundred generated garbage files (random bytes, blob / safetensors / ONNX
//!   look-alikes, mutated real files) through `inspect` and `run`.
//!
//! Every failure must be one `error:` line on stderr with status 1 (clap usage errors:
//! 2), never a panic, never a partial output file, and an existing output stays untouched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use tinyrnn::model::{crc32, write_blob, Model, HEADER_LEN};

fn tinyrnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyrnn"))
        .args(args)
        .output()
        .expect("run tinyrnn")
}

/// `out` is a clean failure: `code`, one `error:` line containing `want`, no panic, no
/// stdout.
fn assert_fails(what: &str, out: &Output, code: i32, want: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: status {:?}, stderr: {stderr}",
        out.status
    );
    assert!(stderr.starts_with("error:"), "{what}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{what}: {stderr}"
    );
    if code == 1 {
        assert_eq!(stderr.lines().count(), 1, "{what}: not one line: {stderr}");
        // `eval --plot` prints its report before it writes the plot
        assert!(
            out.stdout.is_empty() || what.contains("plot"),
            "{what}: wrote to stdout"
        );
    }
    assert!(
        stderr.to_lowercase().contains(&want.to_lowercase()),
        "{what}: expected {want:?} in: {stderr}"
    );
}

/// `out` is a success or a clean failure (for inputs whose fate is not the point).
fn assert_clean(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(1) => {
            assert!(stderr.starts_with("error:"), "{what}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{what}: not one line: {stderr}");
        }
        c => panic!("{what}: status {c:?}, stderr: {stderr}"),
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{what}: {stderr}"
    );
}

/// A scratch directory with a sentinel output file `keep` whose content must survive.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = scratch(name);
        std::fs::write(d.join("keep"), b"keep").unwrap();
        Dir(d)
    }
    fn p(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.0.join(name), bytes).unwrap();
        self.p(name)
    }
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
    /// The sentinel is intact and no file appeared since `before`.
    fn untouched(&self, what: &str, before: &[String]) {
        assert_eq!(
            std::fs::read(self.0.join("keep")).unwrap(),
            b"keep",
            "{what}: existing output clobbered"
        );
        assert_eq!(self.files(), before, "{what}: files appeared");
    }
}

fn vowels(file: &str) -> String {
    data_dir()
        .join("vowels")
        .join(file)
        .to_str()
        .unwrap()
        .to_string()
}

fn real_blob(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("blobs").join(format!("{name}.trnn"))).unwrap()
}

/// `payload` behind a valid header (magic, version, flags, length, CRC).
fn reseal(payload: &[u8]) -> Vec<u8> {
    let mut v = b"TRNN".to_vec();
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(&crc32(payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// An `.npy` with the given header dict and body.
fn npy(dict: &str, body: &[u8]) -> Vec<u8> {
    let mut h = dict.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(body);
    v
}

fn f32_npy(shape: &str, v: &[f32]) -> Vec<u8> {
    let body: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    npy(
        &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"),
        &body,
    )
}

fn i64_npy(v: &[i64]) -> Vec<u8> {
    let body: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    npy(
        &format!(
            "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}",
            v.len()
        ),
        &body,
    )
}

/// Deterministic pseudo-random bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The corrupted blobs, each with the loader's message for it.
fn corrupt_blobs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let good = real_blob("vowels_lstm_int8");
    let payload = &good[HEADER_LEN..];
    let m = Model::from_blob(&good).unwrap();
    let mut v = Vec::new();
    let mut b = good.clone();
    b[4] = 7;
    v.push(("unsupported version", b, "version 7"));
    let mut b = good.clone();
    b[6] = 1;
    v.push(("flags set", b, "does not support"));
    v.push(("magic only", b"TRNN".to_vec(), "truncated"));
    v.push(("header only", good[..HEADER_LEN].to_vec(), "truncated"));
    v.push((
        "cut in the payload",
        good[..good.len() / 3].to_vec(),
        "truncated",
    ));
    let mut b = good.clone();
    b.push(0);
    v.push(("trailing byte", b, "trailing"));
    let mut b = good.clone();
    let k = b.len() - 100;
    b[k] ^= 0x04;
    v.push(("payload bit flip", b, "CRC-32"));
    let mut b = good.clone();
    b[13] ^= 0x80;
    v.push(("CRC bit flip", b, "CRC-32"));
    v.push(("empty payload", reseal(&[]), "does not decode"));
    let mut p = payload.to_vec();
    p[0] = 9; // precision id
    v.push(("precision id 9", reseal(&p), "does not decode"));
    // Validation errors: rewrite the description.
    let rewrite = |f: &dyn Fn(&mut tinyrnn::model::ModelDesc<'_>)| {
        let mut d = m.desc().clone();
        f(&mut d);
        let mut buf = vec![0u8; good.len() + 4096];
        let n = write_blob(&d, &mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    v.push((
        "hidden size 0",
        rewrite(&|d| d.layers[0].hidden_size = 0),
        "dimension",
    ));
    v.push((
        "hidden size 65535",
        rewrite(&|d| d.layers[0].hidden_size = u16::MAX),
        "dimension",
    ));
    v.push((
        "short weight tensor",
        rewrite(&|d| {
            let w = d.layers[0].w_hh;
            d.layers[0].w_hh = &w[1..];
        }),
        "length",
    ));
    v.push((
        "x_frac 16",
        rewrite(&|d| d.layers[0].x_frac = 16),
        "fixed-point",
    ));
    v.push((
        "requant shift 0",
        rewrite(&|d| {
            let mut r = d.layers[0].rq_ih.to_vec();
            r[4] = 0;
            d.layers[0].rq_ih = Vec::leak(r);
        }),
        "fixed-point",
    ));
    // f32 blob with a NaN weight
    let f = real_blob("vowels_gru_float32");
    let fm = Model::from_blob(&f).unwrap();
    let mut w = fm.desc().layers[0].w_ih.to_vec();
    w[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut d = fm.desc().clone();
    d.layers[0].w_ih = &w;
    let mut buf = vec![0u8; f.len() + 4096];
    let n = write_blob(&d, &mut buf).unwrap();
    v.push(("NaN weight", buf[..n].to_vec(), "NaN"));
    v
}

#[test]
fn every_loader_error_in_every_command() {
    let dir = Dir::new("robust-blobs");
    let x = vowels("test_raw.npy");
    let labels = vowels("test_labels.npy");
    let lengths = vowels("test_lengths.npy");
    let prime = dir.write("prime.npy", &f32_npy("(1, 2, 12)", &[0.5; 24]));
    let keep = dir.p("keep");
    let mut n = 0;
    for (what, bytes, want) in corrupt_blobs() {
        let blob = dir.write("bad.trnn", &bytes);
        let before = dir.files();
        let cmds: Vec<Vec<&str>> = vec![
            vec!["inspect", &blob],
            vec![
                "run",
                &blob,
                "--input",
                &x,
                "--lengths",
                &lengths,
                "-o",
                &keep,
            ],
            vec![
                "eval",
                &blob,
                "--input",
                &x,
                "--labels",
                &labels,
                "--lengths",
                &lengths,
            ],
            vec![
                "generate", &blob, "--prime", &prime, "--steps", "5", "-o", &keep,
            ],
            vec!["codegen", &blob, "-o", &keep],
        ];
        for args in cmds {
            let what = format!("{what}: {}", args[0]);
            assert_fails(&what, &tinyrnn(&args), 1, want);
            dir.untouched(&what, &before);
            n += 1;
        }
    }
    println!("{n} corrupt-blob command runs failed cleanly");
}

#[test]
fn pathological_npy_files() {
    let dir = Dir::new("robust-npy");
    let blob = data_dir()
        .join("blobs/vowels_lstm_int8.trnn")
        .to_str()
        .unwrap()
        .to_string();
    let onnx = vowels("lstm.onnx");
    let norm = vowels("norm.json");
    let raw = vowels("test_raw.npy");
    let keep = dir.p("keep");
    let dict = |descr: &str, fortran: &str, shape: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
    };
    let small = vec![0u8; 4 * 24];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "terabyte shape",
            npy(&dict("<f4", "False", "(100000, 100000, 12)"), &small),
        ),
        (
            "shape product overflows usize",
            npy(
                &dict("<f4", "False", "(4294967296, 4294967296, 12)"),
                &small,
            ),
        ),
        (
            "dimension beyond u64",
            npy(
                &dict("<f4", "False", "(99999999999999999999999, 2, 12)"),
                &small,
            ),
        ),
        (
            "negative dimension",
            npy(&dict("<f4", "False", "(-1, 2, 12)"), &small),
        ),
        (
            "any: zero sequences",
            npy(&dict("<f4", "False", "(0, 2, 12)"), &[]),
        ),
        (
            "any: zero frames",
            npy(&dict("<f4", "False", "(1, 0, 12)"), &[]),
        ),
        (
            "any: zero features",
            npy(&dict("<f4", "False", "(1, 2, 0)"), &[]),
        ),
        (
            "any: big-endian floats",
            npy(&dict(">f4", "False", "(1, 2, 12)"), &small),
        ),
        (
            "any: float16",
            npy(&dict("<f2", "False", "(1, 2, 12)"), &small[..48]),
        ),
        (
            "any: float64",
            npy(&dict("<f8", "False", "(1, 2, 12)"), &[0; 192]),
        ),
        (
            "complex",
            npy(&dict("<c8", "False", "(1, 2, 12)"), &[0; 192]),
        ),
        ("bool", npy(&dict("|b1", "False", "(1, 2, 12)"), &[0; 24])),
        ("object", npy(&dict("|O", "False", "(1, 2, 12)"), &small)),
        (
            "fortran order",
            npy(&dict("<f4", "True", "(1, 2, 12)"), &small),
        ),
        (
            "body too short",
            npy(&dict("<f4", "False", "(1, 2, 12)"), &small[..90]),
        ),
        (
            "any: body too long (numpy ignores the excess too)",
            npy(&dict("<f4", "False", "(1, 2, 12)"), &[0; 100]),
        ),
        ("header not a dict", npy("hello", &small)),
        (
            "header without shape",
            npy("{'descr': '<f4', 'fortran_order': False, }", &small),
        ),
        ("header length beyond the file", {
            let mut v = b"\x93NUMPY\x01\x00".to_vec();
            v.extend_from_slice(&u16::MAX.to_le_bytes());
            v.extend_from_slice(b"{'descr'");
            v
        }),
        ("version 3 header length beyond the file", {
            let mut v = b"\x93NUMPY\x03\x00".to_vec();
            v.extend_from_slice(&u32::MAX.to_le_bytes());
            v.extend_from_slice(b"{'descr'");
            v
        }),
        ("magic only", b"\x93NUMPY".to_vec()),
        ("non-UTF-8 header", npy("{'descr': '\u{FFFD}'}", &small)),
    ];
    let mut n = 0;
    for (what, bytes) in &cases {
        let f = dir.write("x.npy", bytes);
        let mut before = dir.files();
        before.sort();
        let runs: Vec<(&str, Vec<&str>)> = vec![
            (
                "run --input",
                vec!["run", &blob, "--input", &f, "-o", &keep],
            ),
            (
                "run --lengths",
                vec!["run", &blob, "--input", &raw, "--lengths", &f, "-o", &keep],
            ),
            (
                "eval --labels",
                vec!["eval", &blob, "--input", &raw, "--labels", &f],
            ),
            (
                "quantize --calib",
                vec![
                    "quantize",
                    &onnx,
                    "--normalize",
                    &norm,
                    "--calib",
                    &f,
                    "-o",
                    &keep,
                ],
            ),
        ];
        for (cmd, args) in runs {
            let what = format!("{what}: {cmd}");
            let out = tinyrnn(&args);
            // Zero-sized data and other float formats may be accepted or refused;
            // everything else is an error.
            if what.starts_with("any: ") {
                assert_clean(&what, &out);
                // a success may have written: back to the sentinel state
                std::fs::write(&keep, b"keep").unwrap();
                for f in dir.files() {
                    if !before.contains(&f) {
                        let _ = std::fs::remove_file(dir.0.join(f));
                    }
                }
            } else {
                assert_fails(&what, &out, 1, "");
                dir.untouched(&what, &before);
            }
            n += 1;
        }
    }
    println!("{n} pathological .npy runs handled cleanly");
}

#[test]
fn degenerate_quantization() {
    let dir = Dir::new("robust-quant");
    let onnx = golden("lstm_1l", "model.onnx");
    let onnx_s = onnx.to_str().unwrap().to_string();
    let keep = dir.p("keep");
    // Calibration data: all zeros, constant huge, a single frame, mixed rails.
    let zeros = dir.write("zeros.npy", &f32_npy("(2, 3, 5)", &[0.0; 30]));
    let huge = dir.write("huge.npy", &f32_npy("(2, 3, 5)", &[1e30; 30]));
    let one = dir.write("one.npy", &f32_npy("(1, 1, 5)", &[0.25; 5]));
    let rails: Vec<f32> = (0..30)
        .map(|i| if i % 2 == 0 { f32::MAX } else { f32::MIN })
        .collect();
    let rails = dir.write("rails.npy", &f32_npy("(2, 3, 5)", &rails));
    let wide = dir.write("wide.npy", &f32_npy("(2, 3, 7)", &[0.5; 42]));
    let lens = dir.write("lens.npy", &i64_npy(&[3, 3, 3]));
    // Models: a NaN weight, huge weights, tiny weights.
    let mut m = load_onnx(&onnx);
    let init = m
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.dims.len() == 3)
        .expect("an LSTM weight");
    let set_all = |t: &mut tinyrnn_cli::import::proto::TensorProto, v: f32| {
        if t.raw_data.is_empty() {
            t.float_data.iter_mut().for_each(|x| *x = v);
        } else {
            for c in t.raw_data.chunks_exact_mut(4) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
    };
    set_all(init, f32::NAN);
    let nan_model = dir.write("nan.onnx", &encode(&m));
    set_all(
        m.graph
            .as_mut()
            .unwrap()
            .initializer
            .iter_mut()
            .find(|t| t.dims.len() == 3)
            .unwrap(),
        1e30,
    );
    let huge_model = dir.write("huge.onnx", &encode(&m));
    set_all(
        m.graph
            .as_mut()
            .unwrap()
            .initializer
            .iter_mut()
            .find(|t| t.dims.len() == 3)
            .unwrap(),
        1e-30,
    );
    let tiny_model = dir.write("tiny.onnx", &encode(&m));

    // Must fail.
    let mut before = dir.files();
    before.sort();
    for (what, args, want) in [
        (
            "NaN weights",
            vec!["quantize", &nan_model, "--calib", &one, "-o", &keep],
            "non-finite",
        ),
        (
            "calibration of the wrong width",
            vec!["quantize", &onnx_s, "--calib", &wide, "-o", &keep],
            "7",
        ),
        (
            "--calib-lengths without --calib",
            vec![
                "quantize",
                &onnx_s,
                "--precision",
                "float32",
                "--calib-lengths",
                &lens,
                "-o",
                &keep,
            ],
            "--calib",
        ),
        (
            "calibration lengths of the wrong count",
            vec![
                "quantize",
                &onnx_s,
                "--calib",
                &zeros,
                "--calib-lengths",
                &lens,
                "-o",
                &keep,
            ],
            "",
        ),
    ] {
        assert_fails(what, &tinyrnn(&args), 1, want);
        dir.untouched(what, &before);
    }
    // May succeed (then the blob must load and run) or fail cleanly; never a panic.
    let mut n = 0;
    for (model, calib) in [
        (&onnx_s, &zeros),
        (&onnx_s, &huge),
        (&onnx_s, &one),
        (&onnx_s, &rails),
        (&huge_model, &one),
        (&tiny_model, &one),
        (&huge_model, &huge),
    ] {
        for precision in ["int8", "int16", "float32"] {
            let what = format!("quantize {model} --calib {calib} --precision {precision}");
            let out_path = dir.p("out.trnn");
            let _ = std::fs::remove_file(&out_path);
            let out = tinyrnn(&[
                "quantize",
                model,
                "--calib",
                calib,
                "--precision",
                precision,
                "-o",
                &out_path,
            ]);
            assert_clean(&what, &out);
            if out.status.success() {
                let b = std::fs::read(&out_path).expect("blob written");
                let m = Model::from_blob(&b).expect("the written blob loads");
                let mut s = tinyrnn::Session::<2048, 1024>::new(&m).unwrap();
                s.step(&[0.5; 5]).unwrap();
                s.classify().unwrap();
            } else {
                assert!(!Path::new(&out_path).exists(), "{what}: partial blob");
            }
            n += 1;
        }
    }
    println!("{n} degenerate quantizations handled cleanly");
}

#[test]
fn eval_generate_codegen_argument_errors() {
    let dir = Dir::new("robust-args");
    let blob = data_dir()
        .join("blobs/vowels_lstm_int8.trnn")
        .to_str()
        .unwrap()
        .to_string();
    let x = vowels("test_raw.npy");
    let (labels, lengths) = (vowels("test_labels.npy"), vowels("test_lengths.npy"));
    let keep = dir.p("keep");
    let labels_short = dir.write("labels_short.npy", &i64_npy(&[0, 1, 2]));
    let labels_range = dir.write("labels_range.npy", &i64_npy(&vec![99; 370]));
    let labels_neg = dir.write("labels_neg.npy", &i64_npy(&vec![-1; 370]));
    let labels_f = dir.write("labels_f.npy", &f32_npy("(370,)", &[0.0; 370]));
    let prime_wide = dir.write("prime_wide.npy", &f32_npy("(1, 2, 7)", &[0.5; 14]));
    let prime = dir.write("prime.npy", &f32_npy("(1, 2, 12)", &[0.5; 24]));
    std::fs::create_dir_all(dir.0.join("adir")).unwrap();
    let adir = dir.p("adir");
    let mut before = dir.files();
    before.sort();
    let cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        (
            "eval: label count",
            vec!["eval", &blob, "--input", &x, "--labels", &labels_short],
            1,
            "3",
        ),
        (
            "eval: label out of range",
            vec!["eval", &blob, "--input", &x, "--labels", &labels_range],
            1,
            "99",
        ),
        (
            "eval: negative label",
            vec!["eval", &blob, "--input", &x, "--labels", &labels_neg],
            1,
            "",
        ),
        (
            "eval: float labels",
            vec!["eval", &blob, "--input", &x, "--labels", &labels_f],
            1,
            "",
        ),
        (
            "eval: no --labels",
            vec!["eval", &blob, "--input", &x],
            2,
            "--labels",
        ),
        (
            "eval: unwritable plot",
            vec![
                "eval",
                &blob,
                "--input",
                &x,
                "--labels",
                &labels,
                "--lengths",
                &lengths,
                "--plot",
                "/nonexistent-dir/p.svg",
            ],
            1,
            "plot",
        ),
        (
            "generate: output width ≠ input width",
            vec![
                "generate", &blob, "--prime", &prime, "--steps", "3", "-o", &keep,
            ],
            1,
            "",
        ),
        (
            "generate: prime of the wrong width",
            vec![
                "generate",
                &blob,
                "--prime",
                &prime_wide,
                "--steps",
                "3",
                "-o",
                &keep,
            ],
            1,
            "",
        ),
        (
            "generate: steps not a number",
            vec!["generate", &blob, "--prime", &prime, "--steps", "-3"],
            2,
            "",
        ),
        (
            "codegen: unwritable",
            vec!["codegen", &blob, "-o", "/nonexistent-dir/m.rs"],
            1,
            "/nonexistent-dir/m.", // the blob beside it (m.trnn) is written first
        ),
        (
            "codegen: output is a directory",
            vec!["codegen", &blob, "-o", &adir],
            1,
            "",
        ),
        (
            "codegen: not a blob",
            vec!["codegen", &x, "-o", &keep],
            1,
            "",
        ),
    ];
    for (what, args, code, want) in cases {
        assert_fails(what, &tinyrnn(&args), code, want);
        dir.untouched(what, &before);
    }
}

/// Generated garbage through `inspect` and `run`: random bytes, blob look-alikes (random
/// payloads under a valid header, real payloads with random bytes changed, resealed),
/// safetensors look-alikes (hostile headers), mutated ONNX files.
#[test]
fn garbage_files_never_panic() {
    let dir = Dir::new("robust-garbage");
    let x = golden("lstm_1l", "x.npy").to_str().unwrap().to_string();
    let keep = dir.p("keep");
    let blob = real_blob("vowels_rnn_int8");
    let onnx = std::fs::read(golden("lstm_1l", "model.onnx")).unwrap();
    let st = std::fs::read(golden("lstm_1l", "model.safetensors")).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..40 {
        let n = rng.below(4096);
        files.push((format!("random {i}"), rng.bytes(n)));
        let mut b = b"TRNN".to_vec();
        let n = rng.below(200);
        b.extend(rng.bytes(n));
        files.push((format!("TRNN + random {i}"), b));
        let n = rng.below(3000);
        files.push((format!("sealed random payload {i}"), reseal(&rng.bytes(n))));
        let mut p = blob[HEADER_LEN..].to_vec();
        for _ in 0..1 + rng.below(4) {
            let k = rng.below(p.len());
            p[k] = rng.next() as u8;
        }
        files.push((format!("sealed mutated payload {i}"), reseal(&p)));
        let mut o = onnx.clone();
        for _ in 0..1 + rng.below(8) {
            let k = rng.below(o.len());
            o[k] = rng.next() as u8;
        }
        files.push((format!("mutated onnx {i}"), o));
        let mut s = st.clone();
        for _ in 0..1 + rng.below(8) {
            let k = rng.below(s.len().min(400));
            s[k] = rng.next() as u8;
        }
        files.push((format!("mutated safetensors header {i}"), s));
    }
    // Hostile safetensors headers.
    for (i, h) in [
        r#"{"w":{"dtype":"F32","shape":[100000000000,100000000000],"data_offsets":[0,16]}}"#,
        r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,99999999999]}}"#,
        r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#,
        r#"{"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}}"#,
        r#"{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#,
        r#"{"w":[1,2,3]}"#,
        r#"{"#,
        r#"{"weight_ih_l0":{"dtype":"F32","shape":[8,1],"data_offsets":[0,32]}}"#,
    ]
    .iter()
    .enumerate()
    {
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&[0u8; 16]);
        files.push((format!("hostile safetensors {i}"), b));
    }
    let mut before = dir.files();
    before.push("m".into());
    before.sort();
    for (what, bytes) in &files {
        let f = dir.write("m", bytes);
        let out = tinyrnn(&["inspect", &f]);
        assert_clean(&format!("{what}: inspect"), &out);
        let out = tinyrnn(&["run", &f, "--input", &x, "-o", &keep]);
        assert_clean(&format!("{what}: run"), &out);
        if !out.status.success() {
            dir.untouched(what, &before);
        } else {
            std::fs::write(dir.0.join("keep"), b"keep").unwrap();
        }
    }
    println!("{} garbage files × 2 commands handled cleanly", files.len());
}

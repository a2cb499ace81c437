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
//!   look-alikes, mutated real files) through `inspect` and `run`;
//! * output files: `-o` / `--plot` naming an input (directly, as a hard link, through a
//!   symlinked input) in every command that writes, a symbolic link, a dangling link, a
//!   FIFO, a socket and (as root) a scratch device node: refused, every file unchanged;
//! * `generate --steps` beyond its bound, and its streamed output;
//! * the smaller messages: `run --steps all` without `-o`, values out of range, NaN in
//!   the padding past `--lengths`, a `--normalize` std far too small.
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

// ------------------------------------------------------------------ output files

/// What a directory entry is, and its bytes for a regular file (compared byte for byte).
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    File(Vec<u8>),
    Link(PathBuf),
    Other(String),
}

/// Every entry of `dir` (not following links).
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Entry> {
    use std::os::unix::fs::FileTypeExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let v = if t.is_symlink() {
                Entry::Link(std::fs::read_link(e.path()).unwrap())
            } else if t.is_file() {
                Entry::File(std::fs::read(e.path()).unwrap())
            } else if t.is_fifo() {
                Entry::Other("fifo".into())
            } else if t.is_char_device() {
                Entry::Other("char device".into())
            } else if t.is_socket() {
                Entry::Other("socket".into())
            } else {
                Entry::Other(format!("{t:?}"))
            };
            (e.file_name().to_string_lossy().into_owned(), v)
        })
        .collect()
}

/// Copies a fixture into `dir` under `name`.
fn copy_in(dir: &Dir, from: &str, name: &str) -> String {
    std::fs::copy(from, dir.0.join(name)).unwrap();
    dir.p(name)
}

/// `-o` (or `--plot`) naming one of the command's inputs, directly, through a hard link or
/// through a symlinked input: refused, every file unchanged byte for byte.
#[test]
fn output_never_overwrites_an_input() {
    let dir = Dir::new("robust-out-input");
    let onnx = copy_in(&dir, &vowels("lstm.onnx"), "lstm.onnx");
    let norm = copy_in(&dir, &vowels("norm.json"), "norm.json");
    let calib = copy_in(&dir, &vowels("calib_raw.npy"), "calib.npy");
    let clen = copy_in(&dir, &vowels("calib_lengths.npy"), "calib_len.npy");
    let x = copy_in(&dir, &vowels("test_raw.npy"), "x.npy");
    let lengths = copy_in(&dir, &vowels("test_lengths.npy"), "len.npy");
    let labels = copy_in(&dir, &vowels("test_labels.npy"), "labels.npy");
    let blob = copy_in(
        &dir,
        data_dir()
            .join("blobs/vowels_lstm_int8.trnn")
            .to_str()
            .unwrap(),
        "m.trnn",
    );
    // inputs whose names a plot or a module may have
    let x_svg = copy_in(&dir, &vowels("test_raw.npy"), "x.svg");
    let blob_rs = copy_in(&dir, &blob, "blob.rs");
    let pred = data_dir().join("predictor");
    let gen = copy_in(
        &dir,
        pred.join("predictor.onnx").to_str().unwrap(),
        "gen.onnx",
    );
    let gen_norm = copy_in(
        &dir,
        pred.join("norm.json").to_str().unwrap(),
        "gen_norm.json",
    );
    let prime = copy_in(&dir, pred.join("prime.npy").to_str().unwrap(), "prime.npy");
    // class names for `eval --classes` (an input: a plot may not replace it)
    std::fs::write(
        dir.0.join("names.json"),
        r#"["a","b","c","d","e","f","g","h","i"]"#,
    )
    .unwrap();
    let names = dir.p("names.json");
    // ... and a hard link to it that a plot could be told to write
    std::fs::hard_link(dir.0.join("names.json"), dir.0.join("names_link.svg")).unwrap();
    let names_link = dir.p("names_link.svg");
    // a hard link to the input and a symlink to it
    std::fs::hard_link(dir.0.join("x.npy"), dir.0.join("x_hard.npy")).unwrap();
    std::os::unix::fs::symlink("x.npy", dir.0.join("x_link.npy")).unwrap();
    let (x_hard, x_link) = (dir.p("x_hard.npy"), dir.p("x_link.npy"));
    let quant = |out: &str| {
        vec![
            "quantize".to_string(),
            onnx.clone(),
            "--normalize".into(),
            norm.clone(),
            "--calib".into(),
            calib.clone(),
            "--calib-lengths".into(),
            clen.clone(),
            "-o".into(),
            out.to_string(),
        ]
    };
    let run = |model: &str, input: &str, out: &str| {
        vec![
            "run".to_string(),
            model.into(),
            "--input".into(),
            input.into(),
            "--lengths".into(),
            lengths.clone(),
            "-o".into(),
            out.into(),
        ]
    };
    let eval = |input: &str, plot: &str| {
        vec![
            "eval".to_string(),
            blob.clone(),
            "--input".into(),
            input.into(),
            "--labels".into(),
            labels.clone(),
            "--lengths".into(),
            lengths.clone(),
            "--plot".into(),
            plot.into(),
        ]
    };
    let generate = |out: &str| {
        vec![
            "generate".to_string(),
            gen.clone(),
            "--normalize".into(),
            gen_norm.clone(),
            "--prime".into(),
            prime.clone(),
            "--steps".into(),
            "5".into(),
            "-o".into(),
            out.into(),
        ]
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("quantize -o MODEL", quant(&onnx), "lstm.onnx"),
        ("quantize -o --calib", quant(&calib), "calib.npy"),
        ("quantize -o --calib-lengths", quant(&clen), "calib_len.npy"),
        ("quantize -o --normalize", quant(&norm), "norm.json"),
        ("run -o --input", run(&blob, &x, &x), "x.npy"),
        (
            "run -o hard link to --input",
            run(&blob, &x, &x_hard),
            "x.npy",
        ),
        (
            "run --input symlink -o its target",
            run(&blob, &x_link, &x),
            "x_link.npy",
        ),
        ("run -o --lengths", run(&blob, &x, &lengths), "len.npy"),
        ("run -o MODEL", run(&blob, &x, &blob), "m.trnn"),
        ("eval --plot --input", eval(&x_svg, &x_svg), "x.svg"),
        (
            "eval --plot --classes JSON",
            {
                let mut a = eval(&x, &names_link);
                a.extend(["--classes".to_string(), names.clone()]);
                a
            },
            "names.json",
        ),
        ("generate -o --prime", generate(&prime), "prime.npy"),
        ("generate -o MODEL", generate(&gen), "gen.onnx"),
        (
            "generate -o --normalize",
            generate(&gen_norm),
            "gen_norm.json",
        ),
        (
            "codegen -o BLOB",
            vec![
                "codegen".into(),
                blob_rs.clone(),
                "-o".into(),
                blob_rs.clone(),
            ],
            "blob.rs",
        ),
    ];
    let before = snapshot(&dir.0);
    for (what, args, input) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = tinyrnn(&args);
        assert_fails(what, &out, 1, "is the input");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(input), "{what}: {stderr}");
        assert!(snapshot(&dir.0) == before, "{what}: a file changed");
    }
    // The blob copy of codegen may be the input blob itself: it is kept, the module written.
    let out = tinyrnn(&["codegen", &blob, "-o", &dir.p("m.rs")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        std::fs::read(data_dir().join("blobs/vowels_lstm_int8.trnn")).unwrap()
    );
    assert!(dir.0.join("m.rs").is_file());
    println!("{} output-is-an-input runs refused", cases.len());
}

/// Whether the tests run as root (then `mknod` works).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `-o` naming a symbolic link (to a file, or dangling), a FIFO, a socket, or (as root) a
/// scratch device node, for every command that writes: refused, nothing replaced, nothing
/// written through, no temporary file left.
#[test]
fn output_never_replaces_links_or_special_files() {
    use std::os::unix::fs::FileTypeExt;
    let dir = Dir::new("robust-out-special");
    let blob = data_dir()
        .join("blobs/vowels_lstm_int8.trnn")
        .to_str()
        .unwrap()
        .to_string();
    let onnx = vowels("lstm.onnx");
    let norm = vowels("norm.json");
    let (x, lengths, labels) = (
        vowels("test_raw.npy"),
        vowels("test_lengths.npy"),
        vowels("test_labels.npy"),
    );
    let pred = data_dir().join("predictor");
    let gen = pred.join("predictor.onnx").to_str().unwrap().to_string();
    let prime = pred.join("prime.npy").to_str().unwrap().to_string();
    // targets: a symlink to `keep`, a dangling symlink, a FIFO, a socket, a device node
    std::os::unix::fs::symlink("keep", dir.0.join("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", dir.0.join("dangling")).unwrap();
    let st = Command::new("mkfifo")
        .arg(dir.0.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
    let _sock = std::os::unix::net::UnixListener::bind(dir.0.join("sock")).unwrap();
    let mut targets = vec![
        ("link", "symbolic link"),
        ("dangling", "symbolic link"),
        ("fifo", "FIFO"),
        ("sock", "socket"),
    ];
    if is_root() {
        // a scratch node in the test's own directory (1, 3 is what /dev/null is); the real
        // /dev is never touched
        let st = Command::new("mknod")
            .arg(dir.0.join("node"))
            .args(["c", "1", "3"])
            .status()
            .unwrap();
        assert!(st.success(), "mknod failed");
        targets.push(("node", "device node"));
    } else {
        println!("note: not root, the device-node case is skipped (mknod needs root)");
    }
    let before = snapshot(&dir.0);
    let mut n = 0;
    for (name, want) in &targets {
        let t = dir.p(name);
        let cmds: Vec<Vec<&str>> = vec![
            vec![
                "quantize",
                &onnx,
                "--precision",
                "float32",
                "--normalize",
                &norm,
                "-o",
                &t,
            ],
            vec!["run", &blob, "--input", &x, "--lengths", &lengths, "-o", &t],
            vec![
                "generate", &gen, "--prime", &prime, "--steps", "3", "-o", &t,
            ],
        ];
        for args in cmds {
            let what = format!("{} -o {name}", args[0]);
            assert_fails(&what, &tinyrnn(&args), 1, want);
            n += 1;
        }
        // the plot and the module need their extension: the same kind of file under that name
        let plot = format!("{t}.svg");
        let module = format!("{t}.rs");
        if *name == "link" {
            std::os::unix::fs::symlink("keep", &plot).unwrap();
            std::os::unix::fs::symlink("keep", &module).unwrap();
        } else {
            std::fs::rename(&t, &plot).unwrap();
        }
        let what = format!("eval --plot {name}");
        let out = tinyrnn(&[
            "eval",
            &blob,
            "--input",
            &x,
            "--labels",
            &labels,
            "--lengths",
            &lengths,
            "--plot",
            &plot,
        ]);
        assert_fails(&what, &out, 1, want);
        n += 1;
        if *name != "link" {
            std::fs::rename(&plot, &module).unwrap();
        }
        let what = format!("codegen -o {name}");
        assert_fails(&what, &tinyrnn(&["codegen", &blob, "-o", &module]), 1, want);
        n += 1;
        // back to the names of the snapshot
        if *name == "link" {
            std::fs::remove_file(&plot).unwrap();
            std::fs::remove_file(&module).unwrap();
        } else {
            std::fs::rename(&module, &t).unwrap();
        }
        assert!(snapshot(&dir.0) == before, "{name}: a file changed");
    }
    // still what they were
    let ft = |n: &str| {
        std::fs::symlink_metadata(dir.0.join(n))
            .unwrap()
            .file_type()
    };
    assert!(ft("link").is_symlink() && ft("dangling").is_symlink());
    assert!(ft("fifo").is_fifo() && ft("sock").is_socket());
    assert!(!dir.0.join("nowhere").exists());
    assert_eq!(std::fs::read(dir.0.join("keep")).unwrap(), b"keep");
    println!("{n} runs with a link or special file as the output refused");
}

/// `generate --steps` beyond the bound (N × steps × C ≤ 2^30 values) is one error line, no
/// allocation, no file; within it, the streamed `.npy` and the printed lines agree.
#[test]
fn generate_steps_are_bounded_and_streamed() {
    let dir = Dir::new("robust-gen-steps");
    let pred = data_dir().join("predictor");
    let gen = pred.join("predictor.onnx").to_str().unwrap().to_string();
    let norm = pred.join("norm.json").to_str().unwrap().to_string();
    let prime = pred.join("prime.npy").to_str().unwrap().to_string();
    let keep = dir.p("keep");
    let new = dir.p("new.npy");
    let before = dir.files();
    for steps in ["1000000000000", "18446744073709551615", "1073741825"] {
        for out in [Some(&keep), Some(&new), None] {
            let mut args = vec![
                "generate",
                &gen,
                "--normalize",
                &norm,
                "--prime",
                &prime,
                "--steps",
                steps,
            ];
            if let Some(o) = out {
                args.extend(["-o", o]);
            }
            let what = format!("generate --steps {steps} -o {out:?}");
            assert_fails(&what, &tinyrnn(&args), 1, "1073741824");
            dir.untouched(&what, &before);
        }
    }
    // the bound itself is accepted (checked without running it: 2^30 steps is too long for
    // a test), 2^30 + 1 is not: the arithmetic is N × steps × C = 1 × steps × 1
    tinyrnn_cli::cmd::generate::check_size(1, 1 << 30, 1).unwrap();
    assert!(tinyrnn_cli::cmd::generate::check_size(2, 1 << 29, 1).is_ok());
    assert!(tinyrnn_cli::cmd::generate::check_size(2, (1 << 29) + 1, 1).is_err());
    assert!(tinyrnn_cli::cmd::generate::check_size(usize::MAX, usize::MAX, 256).is_err());
    // streamed to a file and to stdout: the same values (shortest f32 form, exact)
    let base = [
        "generate",
        &gen,
        "--normalize",
        &norm,
        "--prime",
        &prime,
        "--steps",
        "3000",
    ];
    let printed = tinyrnn(&base);
    assert!(printed.status.success());
    let lines = String::from_utf8(printed.stdout).unwrap();
    let mut args = base.to_vec();
    args.extend(["-o", &new]);
    let out = tinyrnn(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = tinyrnn_cli::data::read_array(Path::new(&new)).unwrap();
    assert_eq!(a.shape, vec![1, 3000, 1]);
    assert_eq!(lines.lines().count(), 3000);
    for (s, (line, v)) in lines.lines().zip(&a.data).enumerate() {
        assert_eq!(line, format!("seq=0 step={s} y={}", *v as f32));
    }
}

/// The smaller messages: `run --steps all` prints every step; a value beyond float32 or
/// beyond the blob's normalization names file, sequence, frame and feature; NaN in the
/// padding past `--lengths` is accepted (never read); a `--normalize` std far too small
/// warns with the count.
#[test]
fn small_messages() {
    let dir = Dir::new("robust-small");
    let blob = data_dir()
        .join("blobs/vowels_lstm_int8.trnn")
        .to_str()
        .unwrap()
        .to_string();
    let (x, lengths) = (vowels("test_raw.npy"), vowels("test_lengths.npy"));
    let keep = dir.p("keep");
    let xs = tinyrnn_cli::data::read_inputs(Path::new(&x)).unwrap();
    let lens: Vec<usize> = tinyrnn_cli::data::read_array(Path::new(&lengths))
        .unwrap()
        .data
        .iter()
        .map(|&v| v as usize)
        .collect();
    let (n, t, f) = (xs.n, xs.t, xs.f);

    // run --steps all without -o: one line per true step; the last equals --steps last's
    let all = tinyrnn(&[
        "run",
        &blob,
        "--input",
        &x,
        "--lengths",
        &lengths,
        "--steps",
        "all",
    ]);
    assert!(all.status.success());
    let all = String::from_utf8(all.stdout).unwrap();
    let last = tinyrnn(&["run", &blob, "--input", &x, "--lengths", &lengths]);
    let last = String::from_utf8(last.stdout).unwrap();
    assert_eq!(all.lines().count(), lens.iter().sum::<usize>());
    for (i, l) in last.lines().enumerate() {
        let want = l.replacen(
            &format!("seq={i} "),
            &format!("seq={i} step={} ", lens[i] - 1),
            1,
        );
        assert!(all.lines().any(|a| a == want), "{want}");
    }
    // ... and the printed values are the -o file's, exactly
    let yall = dir.p("yall.npy");
    let o = tinyrnn(&[
        "run",
        &blob,
        "--input",
        &x,
        "--lengths",
        &lengths,
        "--steps",
        "all",
        "-o",
        &yall,
    ]);
    assert!(o.status.success());
    let y = tinyrnn_cli::data::read_array(Path::new(&yall)).unwrap();
    let c = y.shape[2];
    let first = all.lines().next().unwrap();
    let vals: Vec<String> = y.data[..c]
        .iter()
        .map(|&v| format!("{}", v as f32))
        .collect();
    assert!(first.starts_with("seq=0 step=0 class="), "{first}");
    assert!(
        first.ends_with(&format!("values={}", vals.join(","))),
        "{first}"
    );
    std::fs::remove_file(&yall).unwrap();

    let before = dir.files();
    // a finite value the blob's normalization takes beyond float32
    let mut v = xs.data.clone();
    v[(2 * t + 3) * f + 4] = 1e38;
    let big = dir.p("big.npy");
    tinyrnn_cli::data::write_f32(Path::new(&big), &[n, t, f], &v, &[]).unwrap();
    let out = tinyrnn(&[
        "run",
        &blob,
        "--input",
        &big,
        "--lengths",
        &lengths,
        "-o",
        &keep,
    ]);
    assert_fails("1e38 into a blob", &out, 1, "out of range");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("big.npy: sequence 2, frame 3, feature 4: value 1e38"),
        "{e}"
    );
    // a float64 value beyond float32
    let mut body = Vec::new();
    for (k, &val) in xs.data.iter().enumerate() {
        let val = if k == (t + 2) * f + 5 {
            // [1, 2, 5]
            1e39
        } else {
            val as f64
        };
        body.extend_from_slice(&val.to_le_bytes());
    }
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({n}, {t}, {f}), }}");
    let huge = dir.write("huge.npy", &npy(&dict, &body));
    let out = tinyrnn(&["run", &blob, "--input", &huge, "-o", &keep]);
    assert_fails("1e39 in float64 data", &out, 1, "out of range");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("huge.npy: value 1e39 at index [1, 2, 5] (sequence 1, frame 2, feature 5)"),
        "{e}"
    );
    std::fs::remove_file(&big).unwrap();
    std::fs::remove_file(&huge).unwrap();
    dir.untouched("out-of-range values", &before);

    // NaN in the padding past --lengths: accepted, same outputs as the clean data; refused
    // without --lengths (then it is read)
    let i = lens.iter().position(|&l| l < t).unwrap();
    let mut v = xs.data.clone();
    for k in 0..f {
        v[(i * t + t - 1) * f + k] = f32::NAN;
    }
    let nanpad = dir.p("nanpad.npy");
    tinyrnn_cli::data::write_f32(Path::new(&nanpad), &[n, t, f], &v, &[]).unwrap();
    let (y1, y2) = (dir.p("y1.npy"), dir.p("y2.npy"));
    for (input, y) in [(&x, &y1), (&nanpad, &y2)] {
        let o = tinyrnn(&[
            "run",
            &blob,
            "--input",
            input,
            "--lengths",
            &lengths,
            "-o",
            y,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(&y1).unwrap(), std::fs::read(&y2).unwrap());
    let out = tinyrnn(&["run", &blob, "--input", &nanpad, "-o", &keep]);
    assert_fails(
        "NaN padding without --lengths",
        &out,
        1,
        "non-finite value NaN",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("index [{i}, {}, 0]", t - 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the same through eval and quantize's calibration
    let labels = vowels("test_labels.npy");
    let o = tinyrnn(&[
        "eval",
        &blob,
        "--input",
        &nanpad,
        "--labels",
        &labels,
        "--lengths",
        &lengths,
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (q1, q2) = (dir.p("q1.trnn"), dir.p("q2.trnn"));
    for (calib, q) in [(&x, &q1), (&nanpad, &q2)] {
        let o = tinyrnn(&[
            "quantize",
            &vowels("lstm.onnx"),
            "--normalize",
            &vowels("norm.json"),
            "--calib",
            calib,
            "--calib-lengths",
            &lengths,
            "-o",
            q,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(&q1).unwrap(), std::fs::read(&q2).unwrap());

    // --normalize with a std of 1e-30: a warning with the count of values beyond ±1000 std
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vowels("norm.json")).unwrap()).unwrap();
    let mut bad = stats.clone();
    bad["std"][3] = serde_json::json!(1e-30);
    let bad_norm = dir.write("bad_norm.json", bad.to_string().as_bytes());
    let mean3 = stats["mean"][3].as_f64().unwrap() as f32;
    let (mut beyond, mut total) = (0, 0);
    for (i, &len) in lens.iter().enumerate() {
        for s in 0..len {
            total += f;
            let v = xs.frame(i, s)[3];
            beyond += usize::from(((v as f64 - mean3 as f64) * 1e30).abs() > 1e3);
        }
    }
    assert!(beyond > 0);
    let o = tinyrnn(&[
        "run",
        &vowels("lstm.onnx"),
        "--normalize",
        &bad_norm,
        "--input",
        &x,
        "--lengths",
        &lengths,
        "-o",
        &y1,
    ]);
    assert!(o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    let warn: Vec<&str> = e.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warn.len(), 1, "{e}");
    assert!(
        warn[0].contains(&format!(
            "{beyond} of {total} input values are beyond ±1000"
        )),
        "{e}"
    );
    assert!(
        warn[0].contains("feature 3") && warn[0].contains("std 1.000e-30"),
        "{e}"
    );
    // the bundled statistics do not warn
    let o = tinyrnn(&[
        "run",
        &vowels("lstm.onnx"),
        "--normalize",
        &vowels("norm.json"),
        "--input",
        &x,
        "--lengths",
        &lengths,
        "-o",
        &y1,
    ]);
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));
}

/// ONNX constants whose shape comes from the file (`ConstantOfShape`, `Expand`, `Reshape`)
/// with element counts that overflow or claim terabytes: one error line, no allocation
/// abort (checked arithmetic, a bound on constant sizes).
#[test]
fn onnx_constant_shapes_are_checked() {
    use tinyrnn_cli::import::proto::{self, AttributeProto, TensorProto};
    let dir = Dir::new("robust-onnx-shapes");
    let onnx = golden("lstm_1l", "model.onnx");
    let x = golden("lstm_1l", "x.npy").to_str().unwrap().to_string();
    let keep = dir.p("keep");
    let ints = |name: &str, v: &[i64]| TensorProto {
        dims: vec![v.len() as i64],
        data_type: proto::dtype::INT64,
        int64_data: v.to_vec(),
        name: name.into(),
        ..Default::default()
    };
    let one = AttributeProto {
        name: "value".into(),
        r#type: proto::attr_type::TENSOR,
        t: Some(tensor_f32("v", &[1], &[1.0])),
        ..Default::default()
    };
    let huge: &[&[i64]] = &[
        &[1 << 40],
        &[65536, 65536, 65536],
        &[i64::MAX, i64::MAX],
        &[1 << 32, 1 << 32, 1 << 32],
    ];
    let mut n = 0;
    for shape in huge {
        let variants: Vec<(&str, Vec<proto::NodeProto>, Vec<TensorProto>)> = vec![
            (
                "ConstantOfShape",
                vec![node(
                    "ConstantOfShape",
                    &["big_shape"],
                    &["junk"],
                    vec![one.clone()],
                )],
                vec![ints("big_shape", shape)],
            ),
            (
                "Expand",
                vec![node("Expand", &["c1", "big_shape"], &["junk"], vec![])],
                vec![tensor_f32("c1", &[1], &[2.0]), ints("big_shape", shape)],
            ),
            (
                "Reshape",
                vec![node("Reshape", &["c6", "big_shape"], &["junk"], vec![])],
                vec![
                    tensor_f32("c6", &[6], &[1.0; 6]),
                    ints("big_shape", &[shape.to_vec(), vec![-1]].concat()),
                ],
            ),
        ];
        for (op, nodes, inits) in variants {
            let mut m = load_onnx(&onnx);
            let g = m.graph.as_mut().unwrap();
            g.initializer.extend(inits);
            for (k, nd) in nodes.into_iter().enumerate() {
                g.node.insert(k, nd);
            }
            // the graph's output now depends on the constant: output + junk
            let out_name = g.output[0].name.clone();
            for nd in g.node.iter_mut() {
                for o in nd.output.iter_mut().filter(|o| **o == out_name) {
                    *o = "pre_junk".into();
                }
            }
            g.node
                .push(node("Add", &["pre_junk", "junk"], &[&out_name], vec![]));
            let f = dir.write("m.onnx", &encode(&m));
            let before = dir.files();
            let what = format!("{op} {shape:?}");
            for args in [
                vec!["inspect", f.as_str()],
                vec!["run", &f, "--input", &x, "-o", &keep],
            ] {
                let out = tinyrnn(&args);
                assert_fails(&format!("{what}: {}", args[0]), &out, 1, "too large");
                dir.untouched(&what, &before);
                n += 1;
            }
        }
    }
    println!("{n} runs with huge ONNX constant shapes failed cleanly");
}

/// An ONNX model's external data file (`model.onnx.data`, what torch's default exporter
/// writes) is an input too: `-o` naming it is refused and nothing changes.
#[test]
fn output_never_overwrites_external_data() {
    let dir = Dir::new("robust-out-extdata");
    let src = data_dir().join("extdata/gru_linear");
    let onnx = copy_in(&dir, src.join("model.onnx").to_str().unwrap(), "model.onnx");
    let data = copy_in(
        &dir,
        src.join("model.onnx.data").to_str().unwrap(),
        "model.onnx.data",
    );
    let x = copy_in(&dir, src.join("x.npy").to_str().unwrap(), "x.npy");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "quantize -o DATA",
            vec!["quantize", &onnx, "--calib", &x, "-o", &data],
        ),
        (
            "run -o DATA",
            vec!["run", &onnx, "--input", &x, "-o", &data],
        ),
    ];
    let before = snapshot(&dir.0);
    for (what, args) in &cases {
        let out = tinyrnn(args);
        assert_fails(what, &out, 1, "is the input");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("model.onnx.data"), "{what}: {stderr}");
        assert!(snapshot(&dir.0) == before, "{what}: a file changed");
    }
    // The same commands with a fresh output succeed: the model reads its data file.
    let out = tinyrnn(&["run", &onnx, "--input", &x, "-o", &dir.p("y.npy")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

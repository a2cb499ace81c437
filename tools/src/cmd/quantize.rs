//! `tinyrnn quantize`: import a float model, calibrate it on `.npy` sequences, and write an
//! int8 / int16 / float32 blob (atomically), with a report of the chosen formats, the
//! calibrated ranges, saturation counts, and the blob's error against the float model on
//! the calibration set (measured by running the blob through `tinyrnn::Session`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tinyrnn::Precision;

use crate::data::{self, Sequences};
use crate::exec::{self, Blob, Runnable, Steps};
use crate::import::{self, ImportArgs};
use crate::ir::FloatModel;
use crate::output;
use crate::quantize::calib::{calibrate, Batch};
use crate::quantize::{quantize, QuantOptions, Report};

/// Number format of the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    /// int8 weights (per-row scales), int16 activations, i32 accumulators.
    Int8,
    /// int16 weights and activations, i64 accumulators.
    Int16,
    /// f32 everywhere (no calibration needed).
    Float32,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Int8 => Precision::Int8,
            PrecisionArg::Int16 => Precision::Int16,
            PrecisionArg::Float32 => Precision::F32,
        }
    }
}

/// Arguments of `tinyrnn quantize`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Float model: ONNX (either torch exporter; external data `.onnx.data` is read from
    /// the model's folder), PyTorch safetensors state_dict (see --pool) or Keras 3 `.keras`
    /// file (the format is told by the content, not the extension).
    pub model: PathBuf,
    /// Where to write the blob: atomically (never a partial file), never over an input, a
    /// symbolic link or a non-regular file.
    #[arg(long, short, value_name = "OUT")]
    pub output: PathBuf,
    /// Number format of the blob.
    #[arg(long, value_enum, default_value = "int8")]
    pub precision: PrecisionArg,
    /// Calibration sequences: float .npy [N, T, F] (or [T, F]), raw values as the firmware
    /// will feed them. Required for int8 and int16.
    #[arg(long, value_name = "X.npy")]
    pub calib: Option<PathBuf>,
    /// True length of each zero-padded calibration sequence: int .npy [N].
    #[arg(long, visible_alias = "lengths", value_name = "L.npy")]
    pub calib_lengths: Option<PathBuf>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Sign the blob in the same step (as `tinyrnn sign`): OUT is the signed blob. Needs
    /// --version.
    #[arg(long, value_name = "KEY", requires = "model_version")]
    pub sign_key: Option<PathBuf>,
    /// Model version of the signed blob (anti-rollback); only with --sign-key.
    #[arg(long = "version", value_name = "N", requires = "sign_key")]
    pub model_version: Option<u32>,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// Error of the produced blob against the float model on the calibration set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibError {
    /// Sequences compared.
    pub sequences: usize,
    /// Largest |blob − float| over every output of every step.
    pub max_abs_error: f64,
    /// Mean |blob − float| over every output of every step.
    pub mean_abs_error: f64,
    /// Largest |blob − float| over the last-step outputs.
    pub last_max_abs_error: f64,
    /// Fraction of sequences whose last-step argmax agrees.
    pub agreement: f64,
    /// A model with a reverse or bidirectional layer gives one output per sequence (its
    /// window): the "every step" figures are then over those outputs only.
    pub windowed: bool,
}

/// Runs `model` (f64 reference) and `blob` (Session) over `x`, comparing every step (for
/// a windowed model, the one output per sequence).
///
/// # Errors
/// Runtime errors of either path.
pub fn blob_error(
    model: &FloatModel,
    blob: Vec<u8>,
    x: &Sequences,
    lengths: Option<&[usize]>,
) -> Result<CalibError> {
    let windowed = !model.streams();
    let steps = if windowed { Steps::Last } else { Steps::All };
    let fl = exec::run(&Runnable::Float(Box::new(model.clone())), x, lengths, steps)?;
    let bl = exec::run(&Runnable::Blob(Blob::from_bytes(blob)?), x, lengths, steps)?;
    let (mut max, mut sum, mut cnt, mut last_max, mut agree) = (0.0f64, 0.0, 0usize, 0.0f64, 0);
    for i in 0..x.n {
        if !windowed {
            for t in 0..fl.lengths[i] {
                for (a, b) in fl.at(i, t).iter().zip(bl.at(i, t)) {
                    let e = (a - b).abs();
                    max = max.max(e);
                    sum += e;
                    cnt += 1;
                }
            }
        }
        for (a, b) in fl.last(i).iter().zip(bl.last(i)) {
            let e = (a - b).abs();
            last_max = last_max.max(e);
            if windowed {
                max = max.max(e);
                sum += e;
                cnt += 1;
            }
        }
        if fl.class(i) == bl.class(i) {
            agree += 1;
        }
    }
    Ok(CalibError {
        sequences: x.n,
        max_abs_error: max,
        mean_abs_error: sum / cnt.max(1) as f64,
        last_max_abs_error: last_max,
        agreement: agree as f64 / x.n.max(1) as f64,
        windowed,
    })
}

#[derive(Serialize)]
struct JsonOut<'a> {
    output: String,
    #[serde(flatten)]
    report: &'a Report,
    calibration_error: Option<CalibError>,
    /// `{model_version, key_id, envelope_bytes}` with --sign-key.
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<serde_json::Value>,
}

/// Runs `tinyrnn quantize`.
///
/// # Errors
/// Unreadable model or data, a missing `--calib` for an integer precision, NaN/inf in the
/// model or data, shape mismatches, an unwritable output (the existing file is untouched).
pub fn run(args: &Args) -> Result<()> {
    let precision: Precision = args.precision.into();
    if precision.is_int() && args.calib.is_none() {
        bail!(
            "{} quantization needs calibration data: pass --calib X.npy (sequences as the \
             firmware will feed them), or use --precision float32",
            precision.name()
        );
    }
    if args.calib.is_none() && args.calib_lengths.is_some() {
        bail!("--calib-lengths needs --calib");
    }
    let model_files = import::model_files(&args.model);
    let mut inputs = output::inputs(
        &[],
        &[
            args.calib.as_deref(),
            args.calib_lengths.as_deref(),
            args.import.normalize.as_deref(),
            args.sign_key.as_deref(),
        ],
    );
    inputs.extend(model_files.iter().map(PathBuf::as_path));
    output::check(&args.output, &inputs)?;
    // The key is read before the (long) calibration: a wrong path fails at once.
    let sign_key = match &args.sign_key {
        Some(k) => Some(super::sign::read_secret(k)?),
        None => None,
    };
    let model = import::load_model(&args.model, &args.import.options())?;
    let calib = match &args.calib {
        Some(p) => {
            let (x, lengths) = data::read_inputs_lengths(p, args.calib_lengths.as_deref())?;
            x.expect_features(model.input_size, &format!("{}", args.model.display()))
                .with_context(|| format!("{}", p.display()))?;
            if let Some(w) = model
                .norm
                .as_ref()
                .and_then(|n| exec::norm_warning(n, &x, lengths.as_deref()))
            {
                eprintln!("warning: {}: {w}", p.display());
            }
            Some((x, lengths))
        }
        None => None,
    };
    let stats = match &calib {
        Some((x, lengths)) => {
            let batch = Batch::from_sequences(x, lengths.as_deref());
            let bar = if std::io::stderr().is_terminal() {
                let b = indicatif::ProgressBar::new(x.n as u64);
                b.set_message("calibrating");
                b
            } else {
                indicatif::ProgressBar::hidden()
            };
            let s = calibrate(&model, &batch, || bar.inc(1)).with_context(|| {
                format!("calibration on {}", args.calib.as_ref().unwrap().display())
            });
            bar.finish_and_clear();
            Some(s?)
        }
        None => None,
    };
    let q = quantize(&model, stats.as_ref(), &QuantOptions::new(precision))?;
    let err = match &calib {
        Some((x, lengths)) => Some(
            blob_error(&model, q.blob.clone(), x, lengths.as_deref())
                .context("running the blob on the calibration set")?,
        ),
        None => None,
    };
    let written = match (&sign_key, args.model_version) {
        (Some(k), Some(version)) => super::sign::sign_blob(&q.blob, k, version)?,
        _ => q.blob.clone(),
    };
    output::write_atomic(&args.output, &written, &inputs)?;
    if args.json {
        let out = JsonOut {
            output: args.output.display().to_string(),
            report: &q.report,
            calibration_error: err,
            signed: match (&sign_key, args.model_version) {
                (Some(k), Some(version)) => Some(serde_json::json!({
                    "model_version": version,
                    "key_id": super::sign::hex(&tinyrnn::signed::key_id(
                        &k.verifying_key().to_bytes()
                    )),
                    "envelope_bytes": written.len(),
                })),
                _ => None,
            },
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", q.report.to_text());
        if let Some(e) = err.as_ref().filter(|e| e.windowed) {
            println!(
                "blob vs float model on the calibration set ({} sequences, via tinyrnn::Session \
                 window mode):\n  one output per sequence: max |err| {:.3e}, mean |err| {:.3e}; \
                 class agreement {:.2}%",
                e.sequences,
                e.max_abs_error,
                e.mean_abs_error,
                100.0 * e.agreement
            );
        } else if let Some(e) = &err {
            println!(
                "blob vs float model on the calibration set ({} sequences, via tinyrnn::Session):\n  \
                 every step: max |err| {:.3e}, mean |err| {:.3e}; last step: max |err| {:.3e}; \
                 class agreement {:.2}%",
                e.sequences,
                e.max_abs_error,
                e.mean_abs_error,
                e.last_max_abs_error,
                100.0 * e.agreement
            );
        }
        println!(
            "wrote {} ({} bytes, {})",
            args.output.display(),
            written.len(),
            precision.name()
        );
        if let (Some(k), Some(version)) = (&sign_key, args.model_version) {
            println!(
                "signed: model version {version}, key id {}",
                super::sign::hex(&tinyrnn::signed::key_id(&k.verifying_key().to_bytes()))
            );
        }
    }
    Ok(())
}

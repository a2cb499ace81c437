//! `tinyrnn run`: run a model over `.npy` sequences (float reference for ONNX/safetensors,
//! `tinyrnn::Session` for blobs, exactly as the MCU does).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::data;
use crate::exec::{self, Steps};
use crate::import::ImportArgs;
use crate::output;

/// Arguments of `tinyrnn run`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model: ONNX, PyTorch safetensors or a tinyrnn blob.
    pub model: PathBuf,
    /// Input sequences: float32/float64 .npy [N, T, F] (or [T, F]); raw values for a blob
    /// with a normalization.
    #[arg(long, short, value_name = "X.npy")]
    pub input: PathBuf,
    /// True length of each zero-padded sequence: int .npy [N]; the padding past it is
    /// never read (it may hold anything, NaN included).
    #[arg(long, value_name = "L.npy")]
    pub lengths: Option<PathBuf>,
    /// Write the outputs as float32 .npy: [N, C] (last step) or [N, T, C] (--steps all);
    /// atomically, never over an input, a symbolic link or a non-regular file.
    #[arg(long, short, value_name = "Y.npy")]
    pub output: Option<PathBuf>,
    /// Keep the output after each sequence's last frame, or after every frame (without -o:
    /// one `seq=<i> step=<t> ...` line per frame of each sequence's true length).
    #[arg(long, value_enum, default_value = "last")]
    pub steps: Steps,
    /// Print `seq=<i> class=<c> logits=<v0>,<v1>,...` per sequence with the integer outputs
    /// of an integer blob (the firmware prints the same lines).
    #[arg(long)]
    pub raw: bool,
    /// float32 blobs: `fast` (rational tanh/sigmoid, the MCU default) or `accurate` (libm).
    #[arg(long, value_enum, default_value = "fast")]
    pub f32_math: exec::F32MathArg,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// Runs `tinyrnn run`.
///
/// # Errors
/// Unreadable or invalid model/data, shape mismatches, unwritable output.
pub fn run(args: &Args) -> Result<()> {
    let model_files = crate::import::model_files(&args.model);
    let mut inputs = output::inputs(
        &[&args.input],
        &[args.lengths.as_deref(), args.import.normalize.as_deref()],
    );
    inputs.extend(model_files.iter().map(PathBuf::as_path));
    if let Some(path) = &args.output {
        output::check(path, &inputs)?;
    }
    let mut model = exec::load(&args.model, &args.import.options())?;
    if let exec::Runnable::Blob(b) = &mut model {
        b.f32_math = args.f32_math.into();
    }
    let (x, lengths) = data::read_inputs_lengths(&args.input, args.lengths.as_deref())?;
    x.expect_features(model.input_size(), &format!("{}", args.model.display()))
        .with_context(|| format!("{}", args.input.display()))?;
    let out = exec::run(&model, &x, lengths.as_deref(), args.steps)
        .with_context(|| format!("{}", args.input.display()))?;
    // after the run: a value that made it fail was reported as the error
    if let Some(w) = model
        .norm()
        .and_then(|n| exec::norm_warning(&n, &x, lengths.as_deref()))
    {
        eprintln!("warning: {}: {w}", args.input.display());
    }
    if let Some(path) = &args.output {
        data::write_f32(path, &out.shape(), &out.to_f32(), &inputs)?;
        eprintln!(
            "wrote {} {} ({})",
            path.display(),
            data::fmt_shape(&out.shape()),
            model.kind()
        );
    }
    if args.raw || args.output.is_none() {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        for i in 0..out.n {
            match args.steps {
                Steps::Last => {
                    let line = if args.raw {
                        out.raw_line(i)
                    } else {
                        float_line(&out, i)
                    };
                    writeln!(w, "{line}")
                }
                // every step of the sequence's true length, one line each
                Steps::All => (0..out.lengths[i])
                    .try_for_each(|t| writeln!(w, "{}", step_line(&out, i, t, args.raw))),
            }
            .context("cannot write to stdout")?;
        }
        w.flush().context("cannot write to stdout")?;
    }
    Ok(())
}

/// `seq=<i> class=<c> values=<v0>,...` with the (dequantized) float outputs.
fn float_line(out: &exec::Outputs, i: usize) -> String {
    let vals: Vec<String> = out
        .last(i)
        .iter()
        .map(|&v| format!("{}", v as f32))
        .collect();
    format!("seq={i} class={} values={}", out.class(i), vals.join(","))
}

/// `seq=<i> step=<t> class=<c> values=<v0>,...` (`--steps all`); with `raw`, `logits=` and
/// the integer outputs of an integer blob, as in [`exec::Outputs::raw_line`].
fn step_line(out: &exec::Outputs, i: usize, t: usize, raw: bool) -> String {
    let o = (i * out.t + t) * out.c;
    let q = out.y_q.as_ref().map(|q| &q[o..o + out.c]);
    let (class, vals): (usize, Vec<String>) = match q {
        Some(q) if raw => (exec::argmax(q), q.iter().map(|v| v.to_string()).collect()),
        _ => (
            q.map_or_else(|| exec::argmax(out.at(i, t)), exec::argmax),
            out.at(i, t)
                .iter()
                .map(|&v| format!("{}", v as f32))
                .collect(),
        ),
    };
    let key = if raw { "logits" } else { "values" };
    format!("seq={i} step={t} class={class} {key}={}", vals.join(","))
}

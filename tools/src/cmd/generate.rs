//! `tinyrnn generate`: one-to-many generation. Prime the model with a sequence, then feed
//! each output back as the next input.
//!
//! Convention (PyTorch's usual autoregressive loop, and `tinyrnn::Generator`'s): after
//! priming with `x_1 … x_T` the outputs are `y_T, y_{T+1}, …`, where `y_T` is the output
//! after `x_T` and `y_{t+1}` the output after feeding `y_t` back. Fed-back outputs are in
//! model space (no normalization). Blobs run through `tinyrnn::Generator` (the MCU's code);
//! ONNX/safetensors models through the f64 reference.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

use crate::data::{self, Sequences};
use crate::exec::{self, F32MathArg, Runnable};
use crate::import::ImportArgs;

/// Capacity of the host's generator: enough for any blob the loader accepts.
const STATE_WORDS: usize = 2 * tinyrnn::MAX_LAYERS * tinyrnn::MAX_DIM;
/// Scratch words: `[x; h]` plus `r ⊙ h`, one word per value (f32 path, the largest).
const SCRATCH_WORDS: usize = 3 * tinyrnn::MAX_DIM;

/// Arguments of `tinyrnn generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model whose output width equals its input width: blob, ONNX or safetensors.
    pub model: PathBuf,
    /// Priming sequence(s): float .npy [T, F] or [N, T, F] (raw values for a model with a
    /// normalization).
    #[arg(long, value_name = "X.npy")]
    pub prime: PathBuf,
    /// Number of outputs to generate per sequence (the first is the output after the last
    /// priming frame).
    #[arg(long, value_name = "N")]
    pub steps: usize,
    /// Write the generated outputs as float32 .npy: [N, STEPS, C] ([STEPS, C] for a [T, F]
    /// prime). Without it they are printed, one step per line.
    #[arg(long, short, value_name = "Y.npy")]
    pub output: Option<PathBuf>,
    /// Transcendental functions of a float32 blob: fast (micromath, the MCU default) or
    /// accurate (libm).
    #[arg(long, value_enum, default_value = "fast")]
    pub f32_math: F32MathArg,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// Generates `steps` outputs per priming sequence: `[N, steps, C]` values.
///
/// # Errors
/// Output width ≠ input width, feature-count mismatch, runtime errors.
pub fn generate(m: &Runnable, prime: &Sequences, steps: usize) -> Result<Vec<f64>> {
    let (fin, fout) = (m.input_size(), m.output_size());
    if fin != fout {
        bail!(
            "generation feeds each output back as the next input, but the model has {fin} input \
             features and {fout} outputs"
        );
    }
    prime.expect_features(fin, "the model")?;
    let c = fout;
    let mut y = Vec::with_capacity(prime.n * steps * c);
    match m {
        Runnable::Float(fm) => {
            for i in 0..prime.n {
                let mut st = fm.initial_state();
                for t in 0..prime.t {
                    fm.step(&mut st, prime.frame(i, t), &mut ());
                }
                for s in 0..steps {
                    let out = fm.output(&st, &mut ());
                    if s + 1 < steps {
                        fm.step_normalized(&mut st, &out, &mut ());
                    }
                    y.extend_from_slice(&out);
                }
            }
        }
        Runnable::Blob(b) => {
            let model = b.model();
            let err = |e: tinyrnn::Error| anyhow!("{e}");
            let mut g: Box<tinyrnn::Generator<'_, STATE_WORDS, SCRATCH_WORDS>> =
                Box::new(tinyrnn::Generator::new(&model).map_err(err)?);
            g.session().set_f32_math(b.f32_math).map_err(err)?;
            let mut out = vec![0f32; c];
            for i in 0..prime.n {
                g.session().reset();
                for t in 0..prime.t {
                    g.prime(prime.frame(i, t))
                        .map_err(|e| anyhow!("sequence {i}, priming frame {t}: {e}"))?;
                }
                for _ in 0..steps {
                    g.next(&mut out).map_err(err)?;
                    y.extend(out.iter().map(|&v| v as f64));
                }
            }
        }
    }
    Ok(y)
}

/// Runs `tinyrnn generate`.
///
/// # Errors
/// As [`generate`]; unreadable inputs, an unwritable output.
pub fn run(args: &Args) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let mut m = exec::load(&args.model, &args.import.options())?;
    if let Runnable::Blob(b) = &mut m {
        b.f32_math = args.f32_math.into();
    }
    let prime = data::read_inputs(&args.prime)?;
    let y =
        generate(&m, &prime, args.steps).with_context(|| format!("{}", args.model.display()))?;
    let c = m.output_size();
    match &args.output {
        Some(p) => {
            let shape = if prime.single {
                vec![args.steps, c]
            } else {
                vec![prime.n, args.steps, c]
            };
            let yf: Vec<f32> = y.iter().map(|&v| v as f32).collect();
            data::write_f32(p, &shape, &yf)?;
            eprintln!(
                "wrote {} {} ({})",
                p.display(),
                data::fmt_shape(&shape),
                m.kind()
            );
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for i in 0..prime.n {
                for s in 0..args.steps {
                    let o = (i * args.steps + s) * c;
                    let vals: Vec<String> = y[o..o + c]
                        .iter()
                        .map(|&v| format!("{}", v as f32))
                        .collect();
                    writeln!(out, "seq={i} step={s} y={}", vals.join(","))?;
                }
            }
        }
    }
    Ok(())
}

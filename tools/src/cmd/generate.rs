//! `tinyrnn generate`: one-to-many generation. Prime the model with a sequence, then feed
//! each output back as the next input.
//!
//! Convention (PyTorch's usual autoregressive loop, and `tinyrnn::Generator`'s): after
//! priming with `x_1 … x_T` the outputs are `y_T, y_{T+1}, …`, where `y_T` is the output
//! after `x_T` and `y_{t+1}` the output after feeding `y_t` back. Fed-back outputs are in
//! model space (no normalization). Blobs run through `tinyrnn::Generator` (the MCU's code);
//! ONNX/safetensors models through the f64 reference.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use npyz::WriterBuilder;

use crate::data::{self, Sequences};
use crate::exec::{self, F32MathArg, Runnable};
use crate::import::ImportArgs;
use crate::output::{self, Pending};

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
    /// priming frame); sequences × steps × outputs is at most 2^30 values.
    #[arg(long, value_name = "N")]
    pub steps: usize,
    /// Write the generated outputs as float32 .npy: [N, STEPS, C] ([STEPS, C] for a [T, F]
    /// prime), streamed to the file as they are generated; atomically, never over an input,
    /// a symbolic link or a non-regular file. Without it they are printed, one step per line.
    #[arg(long, short, value_name = "Y.npy")]
    pub output: Option<PathBuf>,
    /// Transcendental functions of a float32 blob: fast (rational tanh/sigmoid, the MCU default) or
    /// accurate (libm).
    #[arg(long, value_enum, default_value = "fast")]
    pub f32_math: F32MathArg,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// Most values one run may generate (`N × steps × C`): 2^30, 4 GiB as float32. Outputs
/// are streamed, never held in memory, so this bounds the file size and the run time.
pub const MAX_VALUES: u64 = 1 << 30;

/// Checks `n × steps × c` against [`MAX_VALUES`] (in checked arithmetic).
///
/// # Errors
/// `steps` is 0, or the run would generate more than [`MAX_VALUES`] values.
pub fn check_size(n: usize, steps: usize, c: usize) -> Result<()> {
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let total = (n as u128)
        .checked_mul(steps as u128)
        .and_then(|v| v.checked_mul(c as u128));
    if total.is_none_or(|t| t > MAX_VALUES as u128) {
        let total = total.map_or("more than 2^128".to_string(), |t| t.to_string());
        bail!(
            "--steps {steps}: {n} sequence(s) × {steps} steps × {c} outputs = {total} values, more \
             than the {MAX_VALUES} (4 GiB of float32) one run may generate; ask for fewer steps"
        );
    }
    Ok(())
}

/// Generates `steps` outputs per priming sequence, handing each to `emit(sequence, step,
/// values)` as soon as it is computed (nothing is accumulated).
///
/// # Errors
/// Output width ≠ input width, feature-count mismatch, runtime errors, errors of `emit`.
pub fn generate_each(
    m: &Runnable,
    prime: &Sequences,
    steps: usize,
    mut emit: impl FnMut(usize, usize, &[f64]) -> Result<()>,
) -> Result<()> {
    let (fin, fout) = (m.input_size(), m.output_size());
    if fin != fout {
        bail!(
            "generation feeds each output back as the next input, but the model has {fin} input \
             features and {fout} outputs"
        );
    }
    prime.expect_features(fin, "the model")?;
    let c = fout;
    if let Runnable::Float(fm) = &m {
        if !fm.streams() {
            bail!(
                "generation runs the model frame by frame, but it has a reverse or \
                 bidirectional layer (which needs the whole sequence first)"
            );
        }
    }
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
                    emit(i, s, &out)?;
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
            let mut y = vec![0f64; c];
            for i in 0..prime.n {
                g.session().reset();
                for t in 0..prime.t {
                    let frame = prime.frame(i, t);
                    g.prime(frame).map_err(|e| {
                        exec::step_error(
                            e,
                            &model,
                            frame,
                            &format!("sequence {i}, priming frame {t}"),
                        )
                    })?;
                }
                for s in 0..steps {
                    g.next(&mut out).map_err(err)?;
                    for (d, &v) in y.iter_mut().zip(&out) {
                        *d = v as f64;
                    }
                    emit(i, s, &y)?;
                }
            }
        }
    }
    Ok(())
}

/// Generates `steps` outputs per priming sequence: `[N, steps, C]` values.
///
/// # Errors
/// As [`check_size`] and [`generate_each`].
pub fn generate(m: &Runnable, prime: &Sequences, steps: usize) -> Result<Vec<f64>> {
    check_size(prime.n, steps, m.output_size())?;
    let mut y = Vec::new();
    generate_each(m, prime, steps, |_, _, v| {
        y.extend_from_slice(v);
        Ok(())
    })?;
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
    let model_files = crate::import::model_files(&args.model);
    let mut inputs = output::inputs(&[&args.prime], &[args.import.normalize.as_deref()]);
    inputs.extend(model_files.iter().map(PathBuf::as_path));
    if let Some(p) = &args.output {
        output::check(p, &inputs)?;
    }
    let mut m = exec::load(&args.model, &args.import.options())?;
    if let Runnable::Blob(b) = &mut m {
        b.f32_math = args.f32_math.into();
    }
    let prime = data::read_inputs(&args.prime)?;
    let c = m.output_size();
    check_size(prime.n, args.steps, c)?;
    let ctx = || format!("{}", args.model.display());
    match &args.output {
        Some(p) => {
            let shape = if prime.single {
                vec![args.steps as u64, c as u64]
            } else {
                vec![prime.n as u64, args.steps as u64, c as u64]
            };
            let werr = |e: std::io::Error| anyhow!("cannot write {}: {e}", p.display());
            let mut file = Pending::create(p, &inputs)?;
            {
                let mut w = npyz::WriteOptions::<f32>::new()
                    .default_dtype()
                    .shape(&shape)
                    .writer(&mut file)
                    .begin_nd()
                    .map_err(werr)?;
                generate_each(&m, &prime, args.steps, |_, _, y| {
                    y.iter()
                        .try_for_each(|&v| w.push(&(v as f32)))
                        .map_err(werr)
                })
                .with_context(ctx)?;
                w.finish().map_err(werr)?;
            }
            file.commit()?;
            let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            eprintln!(
                "wrote {} {} ({})",
                p.display(),
                data::fmt_shape(&shape),
                m.kind()
            );
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            generate_each(&m, &prime, args.steps, |i, s, y| {
                let vals: Vec<String> = y.iter().map(|&v| format!("{}", v as f32)).collect();
                writeln!(out, "seq={i} step={s} y={}", vals.join(","))
                    .context("cannot write to stdout")
            })
            .with_context(ctx)?;
            out.flush().context("cannot write to stdout")?;
        }
    }
    Ok(())
}

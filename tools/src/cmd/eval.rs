//! `tinyrnn eval`: classification accuracy and confusion matrix of a model (blob or float)
//! on labelled `.npy` sequences; with `--reference`, agreement and output error against
//! another model (typically the float model a blob was quantized from).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::data::{self, Sequences};
use crate::exec::{self, F32MathArg, Outputs, Runnable, Steps};
use crate::import::{self, FileKind, ImportArgs, ImportOptions};
use crate::ir::Norm;

/// Arguments of `tinyrnn eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model to evaluate: a tinyrnn blob, ONNX, PyTorch safetensors or Keras 3 `.keras`.
    pub model: PathBuf,
    /// Input sequences: float .npy [N, T, F] (or [T, F]), raw values for a blob with a
    /// normalization.
    #[arg(long, short, value_name = "X.npy")]
    pub input: PathBuf,
    /// Class labels: int .npy [N].
    #[arg(long, value_name = "Y.npy")]
    pub labels: PathBuf,
    /// True length of each zero-padded sequence: int .npy [N]; the class is taken after
    /// each sequence's own last frame.
    #[arg(long, value_name = "L.npy")]
    pub lengths: Option<PathBuf>,
    /// Reference model (ONNX/safetensors/.keras float model, or another blob): adds its accuracy,
    /// the agreement of predicted classes, and the max/mean absolute output error. A float
    /// reference without normalization borrows the evaluated blob's (same raw inputs).
    #[arg(long, value_name = "MODEL")]
    pub reference: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Draw the confusion matrix (a count in every cell, class names with --classes) and,
    /// with --reference, a scatter of the model's outputs against the reference's, to an
    /// .svg or .png file. Both carry the same text: the PNG's font is built in. Written
    /// atomically, never over an input, a symbolic link or a non-regular file.
    #[arg(long, value_name = "OUT.svg|OUT.png")]
    pub plot: Option<PathBuf>,
    /// Class names, in class order, for the plot's axes and the printed confusion matrix:
    /// a comma list (`--classes yes,no,maybe`) or a .json file holding an array of strings
    /// (`--classes names.json`). Their number must equal the model's outputs.
    #[arg(long, value_name = "A,B,..|NAMES.json")]
    pub classes: Option<String>,
    /// Transcendental functions of float32 blobs: fast (rational tanh/sigmoid, the MCU default) or
    /// accurate (libm).
    #[arg(long, value_enum, default_value = "fast")]
    pub f32_math: F32MathArg,
    /// Import options; they apply to whichever of MODEL and --reference is a float model.
    #[command(flatten)]
    pub import: ImportArgs,
}

/// The figures `eval` reports (the `--json` object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalResult {
    /// What was evaluated (`int8 blob`, `float model (f64 reference)`, …).
    pub model: String,
    /// Sequences evaluated.
    pub samples: usize,
    /// Fraction of sequences classified correctly.
    pub accuracy: f64,
    /// Number of classes (rows/columns of the confusion matrix).
    pub classes: usize,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Class names given with `--classes`, in class order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// What the reference was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Accuracy of the reference model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_accuracy: Option<f64>,
    /// Fraction of sequences whose predicted class equals the reference's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Largest |output − reference output| over the last-step outputs (dequantized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_abs_error: Option<f64>,
    /// Mean |output − reference output| over the last-step outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_abs_error: Option<f64>,
}

fn is_blob(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let n = f
        .read(&mut head)
        .with_context(|| format!("{}", path.display()))?;
    Ok(import::sniff(&head[..n]) == FileKind::Blob)
}

/// Loads a model; import options apply only when it is a float model.
fn load(path: &Path, opts: &ImportOptions, math: F32MathArg) -> Result<Runnable> {
    let mut r = if is_blob(path)? {
        exec::load(path, &ImportOptions::default())?
    } else {
        exec::load(path, opts)?
    };
    if let Runnable::Blob(b) = &mut r {
        b.f32_math = math.into();
    }
    Ok(r)
}

/// The normalization a blob carries, as a float [`Norm`] (`None` for a float model).
fn blob_norm(r: &Runnable) -> Option<Norm> {
    match r {
        Runnable::Blob(_) => r.norm(),
        Runnable::Float(_) => None,
    }
}

/// Gives a float model without normalization the other model's (blob) normalization.
fn adopt_norm(r: &mut Runnable, other: &Runnable, explicit: bool) -> bool {
    if explicit {
        return false;
    }
    if let (Runnable::Float(fm), Some(n)) = (&mut *r, blob_norm(other)) {
        if fm.norm.is_none() {
            fm.norm = Some(n);
            return true;
        }
    }
    false
}

/// Evaluates already computed outputs against labels (and reference outputs).
///
/// # Errors
/// A label not below the number of outputs.
pub fn evaluate(
    kind: &str,
    out: &Outputs,
    labels: &[usize],
    reference: Option<(&str, &Outputs)>,
) -> Result<EvalResult> {
    let n = out.n;
    let k = out.c;
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
        bail!("label {l} at index [{i}] but the model has only {k} outputs (classes 0..{k})");
    }
    let mut confusion = vec![vec![0u64; k]; k];
    let mut correct = 0usize;
    for i in 0..n {
        let p = out.class(i);
        confusion[labels[i]][p] += 1;
        correct += usize::from(p == labels[i]);
    }
    let mut res = EvalResult {
        model: kind.to_string(),
        samples: n,
        accuracy: correct as f64 / n.max(1) as f64,
        classes: k,
        confusion,
        class_names: None,
        reference: None,
        reference_accuracy: None,
        agreement: None,
        max_abs_error: None,
        mean_abs_error: None,
    };
    if let Some((rkind, r)) = reference {
        if r.c != k {
            bail!("the reference has {} outputs but the model has {k}", r.c);
        }
        let (mut rc, mut agree, mut max, mut sum) = (0usize, 0usize, 0.0f64, 0.0f64);
        for (i, &label) in labels.iter().enumerate().take(n) {
            let pr = r.class(i);
            rc += usize::from(pr == label);
            agree += usize::from(pr == out.class(i));
            for (a, b) in out.last(i).iter().zip(r.last(i)) {
                let e = (a - b).abs();
                max = max.max(e);
                sum += e;
            }
        }
        res.reference = Some(rkind.to_string());
        res.reference_accuracy = Some(rc as f64 / n.max(1) as f64);
        res.agreement = Some(agree as f64 / n.max(1) as f64);
        res.max_abs_error = Some(max);
        res.mean_abs_error = Some(sum / (n * k).max(1) as f64);
    }
    Ok(res)
}

impl EvalResult {
    /// Human-readable text (what `eval` prints without `--json`).
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} sequences, accuracy {:.2}%",
            self.model,
            self.samples,
            100.0 * self.accuracy
        );
        if let (Some(r), Some(ra), Some(ag), Some(mx), Some(mn)) = (
            &self.reference,
            self.reference_accuracy,
            self.agreement,
            self.max_abs_error,
            self.mean_abs_error,
        ) {
            let _ = writeln!(
                s,
                "reference {r}: accuracy {:.2}% ({:+.2} points), class agreement {:.2}%, \
                 output error max {mx:.3e} mean {mn:.3e}",
                100.0 * ra,
                100.0 * (self.accuracy - ra),
                100.0 * ag
            );
        }
        let _ = writeln!(
            s,
            "confusion matrix (rows: true class, columns: predicted):"
        );
        let w = self
            .confusion
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(self.classes.to_string().len());
        let _ = write!(s, "  {:>w$} |", "");
        for c in 0..self.classes {
            let _ = write!(s, " {c:>w$}");
        }
        s.push('\n');
        for (t, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "  {t:>w$} |");
            for v in row {
                let _ = write!(s, " {v:>w$}");
            }
            if let Some(name) = self.class_names.as_ref().and_then(|n| n.get(t)) {
                let _ = write!(s, "  {name}");
            }
            s.push('\n');
        }
        s
    }
}

/// The class names `--classes` gives (a comma list, or a `.json` file holding an array of
/// strings), checked against the model's `classes` outputs: as many names as classes, none
/// empty, none repeated, no control characters.
///
/// # Errors
/// An unreadable or malformed `.json` file, or names that fail a check.
pub fn class_names(spec: &str, classes: usize) -> Result<Vec<String>> {
    let names: Vec<String> = if spec.to_ascii_lowercase().ends_with(".json") {
        let bytes =
            std::fs::read(spec).with_context(|| format!("--classes: cannot read {spec}"))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!("--classes {spec}: expected a JSON array of class names (strings): {e}")
        })?
    } else {
        spec.split(',').map(|s| s.trim().to_string()).collect()
    };
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() {
            bail!("--classes: name {i} is empty");
        }
        if n.chars().any(char::is_control) {
            bail!("--classes: name {i} ({n:?}) contains a control character");
        }
        if let Some(j) = names[..i].iter().position(|m| m == n) {
            bail!("--classes: {n:?} is given twice (names {j} and {i})");
        }
    }
    if names.len() != classes {
        bail!(
            "--classes gives {} name{} but the model has {classes} classes (outputs)",
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        );
    }
    Ok(names)
}

/// Runs `tinyrnn eval`.
///
/// # Errors
/// Unreadable or invalid model/data, shape mismatches, labels out of range, an unwritable
/// plot.
pub fn run(args: &Args) -> Result<()> {
    let res = eval(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&res.0)?);
    } else {
        print!("{}", res.0.to_text());
    }
    if let Some(p) = &args.plot {
        let bytes = crate::plot::render(p, &res.0, res.1.as_ref())?;
        crate::output::write_atomic(p, &bytes, &paths(&inputs(args))).context("--plot")?;
        if !args.json {
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}

/// The files `eval` reads (never overwritten by `--plot`), with the models' external data.
fn inputs(args: &Args) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = crate::output::inputs(
        &[&args.input, &args.labels],
        &[args.lengths.as_deref(), args.import.normalize.as_deref()],
    )
    .into_iter()
    .map(Path::to_path_buf)
    .collect();
    v.extend(crate::import::model_files(&args.model));
    if let Some(r) = &args.reference {
        v.extend(crate::import::model_files(r));
    }
    if let Some(c) = args.classes.as_deref() {
        if c.to_ascii_lowercase().ends_with(".json") {
            v.push(PathBuf::from(c));
        }
    }
    v
}

fn paths(v: &[PathBuf]) -> Vec<&Path> {
    v.iter().map(PathBuf::as_path).collect()
}

/// Last-step output pairs (model, reference) for the scatter plot.
pub type Pairs = Vec<(f64, f64)>;

/// Computes the evaluation of `args` (without printing): the result and, with a
/// reference, the (model, reference) output pairs.
///
/// # Errors
/// As [`run`].
pub fn eval(args: &Args) -> Result<(EvalResult, Option<Pairs>)> {
    if let Some(p) = &args.plot {
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("svg") | Some("png")) {
            bail!(
                "--plot {}: the file name must end in .svg or .png",
                p.display()
            );
        }
        crate::output::check(p, &paths(&inputs(args))).context("--plot")?;
    }
    let opts = args.import.options();
    let mut model = load(&args.model, &opts, args.f32_math)?;
    let class_names = match &args.classes {
        Some(spec) => Some(class_names(spec, model.output_size())?),
        None => None,
    };
    let mut reference = match &args.reference {
        Some(p) => Some(load(p, &opts, args.f32_math)?),
        None => None,
    };
    let any_float =
        matches!(model, Runnable::Float(_)) || matches!(reference, Some(Runnable::Float(_)));
    if !any_float && (opts.normalize.is_some() || opts.rnn_activation.is_some()) {
        bail!("--normalize / --rnn-activation apply to ONNX/safetensors models; both models are blobs");
    }
    if let Some(r) = reference.as_mut() {
        let explicit = opts.normalize.is_some();
        if adopt_norm(r, &model, explicit) || adopt_norm(&mut model, r, explicit) {
            eprintln!(
                "note: the float model takes the blob's input normalization (same raw inputs)"
            );
        }
    }
    let (x, lengths): (Sequences, _) =
        data::read_inputs_lengths(&args.input, args.lengths.as_deref())?;
    x.expect_features(model.input_size(), &format!("{}", args.model.display()))
        .with_context(|| format!("{}", args.input.display()))?;
    let labels = data::read_labels(&args.labels, Some(x.n))?;
    let in_ctx = || format!("{}", args.input.display());
    let out = exec::run(&model, &x, lengths.as_deref(), Steps::Last).with_context(in_ctx)?;
    let rout = match &reference {
        Some(r) => {
            if r.output_size() != model.output_size() {
                bail!(
                    "the reference has {} outputs but the model has {}",
                    r.output_size(),
                    model.output_size()
                );
            }
            Some(exec::run(r, &x, lengths.as_deref(), Steps::Last).with_context(in_ctx)?)
        }
        None => None,
    };
    // after the runs: a value that made them fail was reported as the error
    if let Some(w) = model
        .norm()
        .and_then(|n| exec::norm_warning(&n, &x, lengths.as_deref()))
    {
        eprintln!("warning: {}: {w}", args.input.display());
    }
    let res = evaluate(
        model.kind(),
        &out,
        &labels,
        rout.as_ref()
            .zip(reference.as_ref())
            .map(|(o, r)| (r.kind(), o)),
    )?;
    let res = EvalResult { class_names, ..res };
    let pairs = rout.map(|r| {
        out.y
            .iter()
            .zip(&r.y)
            .map(|(&a, &b)| (a, b))
            .collect::<Vec<_>>()
    });
    Ok((res, pairs))
}

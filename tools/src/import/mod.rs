//! Importers: ONNX, PyTorch safetensors and Keras 3 `.keras` → [`FloatModel`], plus
//! `--normalize` statistics.
//!
//! [`load_model`] looks at the file's content, not its name: a tinyrnn blob (`TRNN` magic)
//! is refused with a hint, a safetensors file is recognised by its JSON header, a zip
//! archive is read as a `.keras` file, an HDF5 file as a legacy tf.keras `.h5` model,
//! a TensorFlow Lite flatbuffer (`TFL3`) as a `.tflite` model, anything else is parsed as an
//! ONNX protobuf.

pub mod keras;
pub mod norm;
pub mod onnx;
pub mod onnx_tensor;
pub mod proto;
pub mod safetensors;
pub mod tflite;
pub mod tflite_fb;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tinyrnn::{DenseAct, OutputAct, RnnAct};

use crate::ir::FloatModel;

/// Options every importer understands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// Non-linearity of Elman RNN layers in a safetensors state_dict (which does not say);
    /// `None` = PyTorch's default `tanh`. For ONNX it must agree with the graph if given.
    pub rnn_activation: Option<RnnAct>,
    /// Per-feature mean/std statistics (JSON or `.npy`) folded into the model's
    /// normalization: the model then takes raw inputs.
    pub normalize: Option<PathBuf>,
    /// Activation on the output, for a safetensors state_dict (which does not say);
    /// `None` = identity. For ONNX it must agree with the graph if given.
    pub output_act: Option<OutputAct>,
    /// How a safetensors state_dict's model reduces the sequence before its head (which a
    /// state_dict does not record); `None` = `last`, with the assumption printed. Refused
    /// for ONNX (the graph records it).
    pub pool: Option<Pool>,
    /// Activations of the dense layers before the first recurrent layer of a safetensors
    /// state_dict (which does not record them), one per layer in order.
    pub pre_act: Vec<DenseAct>,
    /// Activations of the hidden dense layers of a safetensors state_dict's head (all but
    /// the last, whose activation is `output_act`), one per layer in order.
    pub head_act: Vec<DenseAct>,
}

/// `--pool` values: what the model's forward pass feeds its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pool {
    /// The last time step of the last layer's output, `out[:, -1]` (the default).
    Last,
    /// The mean of the outputs over time, `out.mean(dim=1)`.
    Mean,
    /// The maximum over time, `out.max(dim=1).values`.
    Max,
    /// The sum over time, `out.sum(dim=1)`.
    Sum,
    /// The last layer's final state `h_n[-1]` (equal to `out[:, -1]` for a
    /// unidirectional stack); for a bidirectional last layer `cat(h_n[-2], h_n[-1])`, the
    /// final state of each direction.
    Hn,
}

impl Pool {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Pool::Last => "last",
            Pool::Mean => "mean",
            Pool::Max => "max",
            Pool::Sum => "sum",
            Pool::Hn => "hn",
        }
    }
}

/// `--output-activation` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputActArg {
    /// None (raw logits / values).
    Identity,
    /// Element-wise logistic sigmoid.
    Sigmoid,
    /// Element-wise tanh.
    Tanh,
    /// Softmax over the output vector.
    Softmax,
}

impl From<OutputActArg> for OutputAct {
    fn from(a: OutputActArg) -> Self {
        match a {
            OutputActArg::Identity => OutputAct::Identity,
            OutputActArg::Sigmoid => OutputAct::Sigmoid,
            OutputActArg::Tanh => OutputAct::Tanh,
            OutputActArg::Softmax => OutputAct::Softmax,
        }
    }
}

/// `--pre-act` / `--head-act` values: a dense layer's activation (PyTorch module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DenseActArg {
    /// None (a plain `nn.Linear` followed by the next layer).
    Identity,
    /// `nn.ReLU`.
    Relu,
    /// `nn.ReLU6` (clip to [0, 6]).
    Relu6,
    /// `nn.Hardtanh()` (clip to [-1, 1]).
    Hardtanh,
    /// `nn.LeakyReLU()` with PyTorch's default slope 0.01.
    LeakyRelu,
    /// `nn.Tanh`.
    Tanh,
    /// `nn.Sigmoid`.
    Sigmoid,
    /// `nn.GELU()` (exact, erf).
    Gelu,
    /// `nn.GELU(approximate="tanh")`.
    GeluTanh,
}

impl From<DenseActArg> for DenseAct {
    fn from(a: DenseActArg) -> Self {
        match a {
            DenseActArg::Identity => DenseAct::Identity,
            DenseActArg::Relu => DenseAct::Relu,
            DenseActArg::Relu6 => DenseAct::Clip { lo: 0.0, hi: 6.0 },
            DenseActArg::Hardtanh => DenseAct::Clip { lo: -1.0, hi: 1.0 },
            DenseActArg::LeakyRelu => DenseAct::LeakyRelu { alpha: 0.01 },
            DenseActArg::Tanh => DenseAct::Tanh,
            DenseActArg::Sigmoid => DenseAct::Sigmoid,
            DenseActArg::Gelu => DenseAct::Gelu,
            DenseActArg::GeluTanh => DenseAct::GeluTanh,
        }
    }
}

/// `--rnn-activation` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RnnActArg {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `relu`.
    Relu,
}

impl From<RnnActArg> for RnnAct {
    fn from(a: RnnActArg) -> Self {
        match a {
            RnnActArg::Tanh => RnnAct::Tanh,
            RnnActArg::Relu => RnnAct::Relu,
        }
    }
}

/// The import options as command-line flags (flatten into a subcommand's `Args`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImportArgs {
    /// Non-linearity of nn.RNN layers in a safetensors state_dict (it does not say).
    #[arg(long, value_enum, value_name = "ACT")]
    pub rnn_activation: Option<RnnActArg>,
    /// Input standardization the model was trained with: JSON {"mean":[..],"std":[..]} or
    /// .npy [2, F] (row 0 mean, row 1 std); the model then takes raw inputs.
    #[arg(long, value_name = "STATS")]
    pub normalize: Option<PathBuf>,
    /// Activation on the model output for a safetensors state_dict (it does not say).
    #[arg(long, value_enum, value_name = "ACT")]
    pub output_activation: Option<OutputActArg>,
    /// What a safetensors state_dict's model feeds its head (it does not say): `last`
    /// (`fc(out[:, -1])`, the default; the assumed forward pass is printed on stderr), `hn`
    /// (`fc(h_n[-1])`, the same value; for a bidirectional last layer
    /// `fc(cat(h_n[-2], h_n[-1]))`, each direction's final state), or a pooling over time:
    /// `mean`, `max`, `sum`.
    #[arg(long, value_enum, value_name = "POOL")]
    pub pool: Option<Pool>,
    /// Activation after each dense layer before the first recurrent layer of a safetensors
    /// state_dict (it does not say): once per layer, in order (repeat the flag or separate
    /// with commas); `identity` for none. Required when such layers exist.
    #[arg(long, value_enum, value_name = "ACT", value_delimiter = ',')]
    pub pre_act: Vec<DenseActArg>,
    /// Activation after each hidden dense layer of a safetensors state_dict's head (all but
    /// the last Linear, whose activation is --output-activation): once per hidden layer, in
    /// order (repeat or separate with commas), e.g. `--head-act relu` for
    /// `fc2(relu(fc1(z)))`. Required for an MLP head.
    #[arg(long, value_enum, value_name = "ACT", value_delimiter = ',')]
    pub head_act: Vec<DenseActArg>,
}

impl ImportArgs {
    /// The corresponding [`ImportOptions`].
    pub fn options(&self) -> ImportOptions {
        ImportOptions {
            rnn_activation: self.rnn_activation.map(Into::into),
            normalize: self.normalize.clone(),
            output_act: self.output_activation.map(Into::into),
            pool: self.pool,
            pre_act: self.pre_act.iter().map(|&a| a.into()).collect(),
            head_act: self.head_act.iter().map(|&a| a.into()).collect(),
        }
    }
}

/// What a file holds, judged by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A tinyrnn blob (`TRNN` magic).
    Blob,
    /// A safetensors file.
    Safetensors,
    /// A zip archive: a Keras 3 `.keras` file.
    Keras,
    /// A TensorFlow Lite flatbuffer (file identifier `TFL3`): a `.tflite` model.
    Tflite,
    /// An HDF5 file (signature `\x89HDF\r\n\x1a\n`): a legacy tf.keras `.h5` full model.
    Hdf5,
    /// Anything else: parsed as ONNX.
    Onnx,
}

/// Classifies file content (see [`FileKind`]).
pub fn sniff(bytes: &[u8]) -> FileKind {
    if bytes.starts_with(&tinyrnn::model::MAGIC) {
        return FileKind::Blob;
    }
    if keras::is_keras_zip(bytes) {
        return FileKind::Keras;
    }
    if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
        return FileKind::Hdf5;
    }
    if bytes.get(4..8) == Some(b"TFL3") {
        return FileKind::Tflite;
    }
    if bytes.len() >= 10 {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
        if n >= 2 && n <= (bytes.len() as u64).saturating_sub(8) && bytes[8] == b'{' {
            return FileKind::Safetensors;
        }
    }
    FileKind::Onnx
}

/// The files a model at `path` is read from: `path` itself and, for an ONNX model with
/// external data, each data file its tensors name (`location` joined to the model's folder,
/// as [`onnx_tensor::ExternalData`] reads them). Commands give this list to
/// [`crate::output`] so that no output can replace a model's data file.
///
/// Best effort: a file that cannot be read or decoded lists only `path` (the import reports
/// the problem).
pub fn model_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    let Ok(bytes) = std::fs::read(path) else {
        return files;
    };
    if sniff(&bytes) != FileKind::Onnx {
        return files;
    }
    let Ok(model) = proto::decode_model(&bytes) else {
        return files;
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(graph) = model.graph.as_ref() else {
        return files;
    };
    let attr_tensors = graph
        .node
        .iter()
        .flat_map(|n| n.attribute.iter().filter_map(|a| a.t.as_ref()));
    for t in graph.initializer.iter().chain(attr_tensors) {
        for e in &t.external_data {
            if e.key == "location" && !e.value.is_empty() {
                let f = dir.join(&e.value);
                if !files.contains(&f) {
                    files.push(f);
                }
            }
        }
    }
    files
}

/// Imports an ONNX or safetensors model and applies `opts` (normalization), validated.
///
/// # Errors
/// Missing/empty/corrupt files, unsupported graphs, a blob (with a hint), bad statistics.
pub fn load_model(path: &Path, opts: &ImportOptions) -> Result<FloatModel> {
    let bytes = crate::data::read_file(path)?;
    load_model_bytes(&bytes, path, opts)
}

/// [`load_model`] on bytes already read (`path` names the source in messages and the model;
/// its folder is where ONNX external data is read from).
///
/// # Errors
/// As [`load_model`]. The message is one line: names echoed from a corrupt file have their
/// control characters escaped.
pub fn load_model_bytes(bytes: &[u8], path: &Path, opts: &ImportOptions) -> Result<FloatModel> {
    load_model_inner(bytes, path, opts).map_err(|e| {
        let msg: String = format!("{e:#}")
            .chars()
            .flat_map(|c| {
                let esc: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                esc
            })
            .collect();
        anyhow::anyhow!(msg)
    })
}

fn load_model_inner(bytes: &[u8], path: &Path, opts: &ImportOptions) -> Result<FloatModel> {
    if bytes.is_empty() {
        bail!("{}: the file is empty", path.display());
    }
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut m = match sniff(bytes) {
        FileKind::Blob => bail!(
            "{}: this is a tinyrnn blob, not an ONNX or safetensors model (blobs are already quantized: use `tinyrnn run` / `inspect` / `eval` on it directly)",
            path.display()
        ),
        FileKind::Safetensors => safetensors::import(bytes, opts)
            .with_context(|| format!("{} (safetensors)", path.display()))?,
        FileKind::Keras | FileKind::Hdf5 | FileKind::Tflite
            if opts.pool.is_some() || opts.output_act.is_some() || opts.rnn_activation.is_some() =>
        {
            bail!(
                "{}: --pool/--output-activation/--rnn-activation apply to safetensors state_dicts; a Keras or TFLite model records them",
                path.display()
            )
        }
        FileKind::Keras => {
            keras::import(bytes).with_context(|| format!("{} (Keras)", path.display()))?
        }
        FileKind::Tflite => {
            tflite::import(bytes).with_context(|| format!("{} (TFLite)", path.display()))?
        }
        FileKind::Hdf5 => keras::import_legacy_h5(bytes)
            .with_context(|| format!("{} (legacy Keras .h5)", path.display()))?,
        FileKind::Onnx if opts.pool.is_some() => bail!(
            "{}: --pool applies to safetensors state_dicts; an ONNX graph records its own reduction over time",
            path.display()
        ),
        FileKind::Onnx if !opts.pre_act.is_empty() || !opts.head_act.is_empty() => bail!(
            "{}: --pre-act/--head-act apply to safetensors state_dicts; an ONNX graph records its own activations",
            path.display()
        ),
        FileKind::Onnx => {
            onnx::import(bytes, opts, path).with_context(|| format!("{} (ONNX)", path.display()))?
        }
    };
    m.name = name.chars().take(tinyrnn::model::MAX_NAME).collect();
    if let Some(stats) = &opts.normalize {
        let n = norm::load_stats(stats, m.input_size)?;
        m.norm = Some(match m.norm.take() {
            None => n,
            Some(inner) => norm::compose(&n, &inner),
        });
    }
    m.validate()
        .map_err(|e| anyhow::anyhow!("{}: invalid model: {e}", path.display()))?;
    Ok(m)
}

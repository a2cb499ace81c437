//! Keras 3 `.keras` files → [`FloatModel`].
//!
//! A `.keras` file is a zip archive holding `config.json` (the model's layers and their
//! settings) and `model.weights.h5` (the weights, an HDF5 file: `layers/<name>/vars/<i>`,
//! recurrent layers under `layers/<name>/cell/vars/<i>`, `<name>` being the snake-case class
//! name, `_1`, `_2`… for repeats). The zip is read with the `zip` crate, the HDF5 file with
//! `hdf5-reader` (pure Rust, read-only). A legacy tf.keras 2.x full-model `.h5` file (one
//! HDF5 file: the same layer config in the root's `model_config` attribute, the weights
//! under `model_weights/<layer name>/` in the order of each group's `weight_names`) goes
//! through the same layer rules ([`import_legacy_h5`]).
//!
//! What imports: a Sequential model, or a Functional model whose layers form one chain, made
//! of `InputLayer`, an optional leading `Normalization` (folded into the model's input
//! normalization), up to four `LSTM`/`GRU`/`SimpleRNN` layers (all but the last with
//! `return_sequences=True`), `Dropout` anywhere (dropped: inference ignores it), then at most
//! one `Dense` with a `linear`/`softmax`/`sigmoid`/`tanh` activation, optionally followed by
//! an `Activation` layer of those kinds. Everything else is refused, naming the layer and
//! its setting; nothing is imported on a guess.
//!
//! Gate orders: Keras LSTM kernels hold `i, f, c, o` columns (the IR's `i, f, g, o`: only a
//! transpose); Keras GRU kernels hold `z, r, h` (the IR wants `r, z, n`: the first two blocks
//! swap). A `reset_after=True` GRU has a `[2, 3·units]` bias (row 0 input, row 1 recurrent),
//! the IR's `linear_before_reset` GRU; `reset_after=False` has one `[3·units]` bias.

use std::io::{Cursor, Read};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tinyrnn::{CellKind, OutputAct, RnnAct};

use crate::ir::{FloatDense, FloatLayer, FloatModel, Norm};

/// The zip local-file-header magic.
pub const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// Largest member of the archive read (config or weights).
const MAX_MEMBER: u64 = 1 << 30;

/// Keras's `backend.epsilon()`: `Normalization` divides by `max(sqrt(variance), 1e-7)`.
const KERAS_EPSILON: f64 = 1e-7;

/// True if `bytes` starts like a zip archive (what a `.keras` file is).
pub fn is_keras_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(&ZIP_MAGIC)
}

fn read_member(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str) -> Result<Vec<u8>> {
    let f = zip.by_name(name).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => anyhow!(
            "the zip archive has no `{name}`: not a Keras 3 `.keras` file (it holds config.json and model.weights.h5)"
        ),
        e => anyhow!("cannot read `{name}` from the zip archive: {e}"),
    })?;
    if f.size() > MAX_MEMBER {
        bail!("`{name}` is {} bytes: too large", f.size());
    }
    let mut out = Vec::with_capacity(f.size() as usize);
    f.take(MAX_MEMBER)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read `{name}` from the zip archive"))?;
    Ok(out)
}

/// Imports a `.keras` archive.
///
/// # Errors
/// Not a zip / no `config.json` / no `model.weights.h5`, an unsupported layer or setting
/// (named), missing or mis-shaped weights.
pub fn import(bytes: &[u8]) -> Result<FloatModel> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| anyhow!("not a readable zip archive: {e}"))?;
    let config = read_member(&mut zip, "config.json")?;
    let config: Value =
        serde_json::from_slice(&config).map_err(|e| anyhow!("config.json is not JSON: {e}"))?;
    let weights = read_member(&mut zip, "model.weights.h5")?;
    let h5 = hdf5_reader::Hdf5File::from_bytes(&weights)
        .map_err(|e| anyhow!("model.weights.h5: not a readable HDF5 file: {e}"))?;
    let layers = model_layers(&config)?;
    build(&layers, &H5Weights { file: h5 })
}

/// Imports a legacy tf.keras full-model `.h5` file (`model.save("model.h5")` of tf.keras
/// 2.x / tf_keras): the `model_config` attribute of the root group holds the same layer
/// config as a `.keras` file's `config.json`, the weights are under
/// `model_weights/<layer name>/`, listed in order by each layer group's `weight_names`
/// attribute.
///
/// # Errors
/// As [`import`]; a weights-only `.h5` (no `model_config`) is refused.
pub fn import_legacy_h5(bytes: &[u8]) -> Result<FloatModel> {
    let file = hdf5_reader::Hdf5File::from_bytes(bytes)
        .map_err(|e| anyhow!("not a readable HDF5 file: {e}"))?;
    let root = file
        .root_group()
        .map_err(|e| anyhow!("cannot read the HDF5 root group: {e}"))?;
    let config = root
        .attribute("model_config")
        .and_then(|a| a.read_string())
        .map_err(|_| {
            anyhow!("an HDF5 file without a `model_config` attribute (weights only, or not a Keras model): save the whole model (`model.save(\"model.keras\")`) and import that")
        })?;
    let config: Value = serde_json::from_str(&config)
        .map_err(|e| anyhow!("the `model_config` attribute is not JSON: {e}"))?;
    let mut layers = model_layers(&config)?;
    for l in &mut layers {
        l.path = format!("model_weights/{}", l.name);
    }
    build(&layers, &LegacyWeights { file })
}

struct LegacyWeights {
    file: hdf5_reader::Hdf5File,
}

impl Weights for LegacyWeights {
    fn var(&self, folder: &str, i: usize) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        let folder = folder.strip_suffix("/cell").unwrap_or(folder);
        let Ok(group) = self.file.group(folder) else {
            return Ok(None);
        };
        let names = match group.attribute("weight_names") {
            Ok(a) => a.read_strings().unwrap_or_default(),
            Err(_) => return Ok(None),
        };
        let Some(name) = names.get(i) else {
            return Ok(None);
        };
        read_f32(&self.file, &format!("{folder}/{name}"))
    }
}

fn read_f32(file: &hdf5_reader::Hdf5File, path: &str) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
    let ds = match file.dataset(path) {
        Ok(ds) => ds,
        Err(_) => return Ok(None),
    };
    if ds.chunks().is_some() {
        bail!("HDF5 dataset `{path}` is chunked (Keras writes contiguous datasets): not supported");
    }
    let shape: Vec<usize> = ds.shape().iter().map(|&d| d as usize).collect();
    let a = ds
        .read_array::<f32>()
        .map_err(|e| anyhow!("cannot read HDF5 dataset `{path}` as float32: {e}"))?;
    Ok(Some((shape, a.iter().copied().collect())))
}

/// One layer of the config: class, name, settings, and its weights' folder in the HDF5 file.
#[derive(Debug, Clone)]
pub struct LayerConfig {
    /// `class_name` (`LSTM`, `Dense`…).
    pub class: String,
    /// The layer's `name` setting.
    pub name: String,
    /// The layer's `config` object.
    pub config: Value,
    /// Folder of its weights: `layers/<snake_case class>[_k]`.
    pub path: String,
}

fn snake_case(class: &str) -> String {
    // keras.src.utils.naming.to_snake_case: `(.)([A-Z][a-z]+)` → `\1_\2`, then
    // `([a-z])([A-Z])` → `\1_\2`, lower-cased: an underscore goes before an upper-case
    // letter that follows any character and starts a word (`SimpleRNN` → `simple_rnn`), or
    // that follows a lower-case letter (`Pooling1D` → `pooling1d`: not after a digit).
    let mut out = String::new();
    let chars: Vec<char> = class.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let starts_word = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if starts_word || chars[i - 1].is_ascii_lowercase() {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The model's layers in order, checked to form one chain (Sequential, or Functional with
/// every layer fed by the one before it).
///
/// # Errors
/// Not a Sequential/Functional model, a nested model, a graph that is not a chain.
pub fn model_layers(config: &Value) -> Result<Vec<LayerConfig>> {
    let class = config["class_name"].as_str().unwrap_or("");
    let functional = match class {
        "Sequential" => false,
        "Functional" | "Model" => true,
        "" => bail!("config.json has no `class_name`: not a Keras model config"),
        other => {
            bail!("model class `{other}` is not supported (Sequential or Functional models only)")
        }
    };
    let list = config["config"]["layers"]
        .as_array()
        .ok_or_else(|| anyhow!("config.json: the model has no `layers` list"))?;
    let mut used = std::collections::HashMap::<String, usize>::new();
    let mut out: Vec<LayerConfig> = Vec::new();
    for l in list {
        let class = l["class_name"]
            .as_str()
            .ok_or_else(|| anyhow!("config.json: a layer without `class_name`"))?
            .to_string();
        let cfg = l["config"].clone();
        let name = cfg["name"]
            .as_str()
            .or_else(|| l["name"].as_str())
            .unwrap_or(&class)
            .to_string();
        let base = snake_case(&class);
        let n = used.entry(base.clone()).or_insert(0);
        let path = if *n == 0 {
            format!("layers/{base}")
        } else {
            format!("layers/{base}_{n}")
        };
        *n += 1;
        if functional {
            let inbound = inbound_layers(l)?;
            let want: Vec<String> = out.last().map(|p| vec![p.name.clone()]).unwrap_or_default();
            if inbound != want {
                bail!(
                    "layer `{name}` ({class}) takes its input from {inbound:?}, not from the layer before it: only a chain of layers can be imported"
                );
            }
        }
        out.push(LayerConfig {
            class,
            name,
            config: cfg,
            path,
        });
    }
    if functional {
        let outputs = config["config"]["output_layers"].to_string();
        let last = out.last().map(|l| l.name.clone()).unwrap_or_default();
        if !outputs.contains(&format!("\"{last}\"")) || outputs.matches('[').count() > 2 {
            bail!("the model's outputs {outputs} are not its last layer `{last}`: only a chain of layers can be imported");
        }
    }
    Ok(out)
}

/// Names of the layers feeding a Functional model's layer (`keras_history[0]` of each input).
fn inbound_layers(layer: &Value) -> Result<Vec<String>> {
    let mut names = Vec::new();
    fn walk(v: &Value, names: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(h) = o.get("keras_history").and_then(|h| h.as_array()) {
                    if let Some(n) = h.first().and_then(|n| n.as_str()) {
                        names.push(n.to_string());
                    }
                    return;
                }
                o.values().for_each(|x| walk(x, names));
            }
            // tf.keras 2.x: `[name, node index, tensor index, kwargs]`
            Value::Array(a) if a.len() >= 3 && a[0].is_string() && a[1].is_number() => {
                names.push(a[0].as_str().unwrap_or_default().to_string());
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, names)),
            _ => {}
        }
    }
    let nodes = &layer["inbound_nodes"];
    if let Some(a) = nodes.as_array() {
        if a.len() > 1 {
            bail!(
                "layer `{}` is called {} times (shared layer): not supported",
                layer["config"]["name"].as_str().unwrap_or("?"),
                a.len()
            );
        }
    }
    walk(nodes, &mut names);
    Ok(names)
}

/// Where weights come from (the HDF5 file; a map in unit tests).
pub trait Weights {
    /// The variable `vars/<i>` under `folder`: shape and values, or `None` if absent.
    ///
    /// # Errors
    /// A dataset that exists but cannot be read as float32.
    fn var(&self, folder: &str, i: usize) -> Result<Option<(Vec<usize>, Vec<f32>)>>;
}

struct H5Weights {
    file: hdf5_reader::Hdf5File,
}

impl Weights for H5Weights {
    fn var(&self, folder: &str, i: usize) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        read_f32(&self.file, &format!("{folder}/vars/{i}"))
            .map_err(|e| anyhow!("model.weights.h5: {e}"))
    }
}

/// A layer's `i`-th variable, required, with its expected shape.
fn need(
    w: &dyn Weights,
    l: &LayerConfig,
    folder: &str,
    i: usize,
    what: &str,
    shape: &[usize],
) -> Result<Vec<f32>> {
    let (got, v) = w.var(folder, i)?.ok_or_else(|| {
        anyhow!(
            "layer `{}` ({}): its {what} (`{folder}/vars/{i}`) is missing from model.weights.h5",
            l.name,
            l.class
        )
    })?;
    // Keras may store a [n] vector as [1, n] / [1, 1, n]: compare without leading ones.
    let strip = |s: &[usize]| -> Vec<usize> {
        let k = s
            .iter()
            .take_while(|&&d| d == 1)
            .count()
            .min(s.len().saturating_sub(1));
        s[k..].to_vec()
    };
    if strip(&got) != strip(shape) || v.len() != shape.iter().product::<usize>() {
        bail!(
            "layer `{}` ({}): its {what} has shape {got:?}, expected {shape:?}",
            l.name,
            l.class
        );
    }
    Ok(v)
}

fn string_setting<'a>(l: &'a LayerConfig, key: &str, default: &'a str) -> Result<&'a str> {
    match &l.config[key] {
        Value::Null => Ok(default),
        Value::String(s) => Ok(s),
        other => bail!(
            "layer `{}` ({}): {key} = {other} is not a built-in activation name: not supported",
            l.name,
            l.class
        ),
    }
}

fn bool_setting(l: &LayerConfig, key: &str, default: bool) -> bool {
    l.config[key].as_bool().unwrap_or(default)
}

fn units(l: &LayerConfig) -> Result<usize> {
    match l.config["units"].as_u64() {
        Some(u) if u > 0 && u <= 1 << 16 => Ok(u as usize),
        _ => bail!("layer `{}` ({}): no valid `units` setting", l.name, l.class),
    }
}

/// `[rows, cols]` row-major → its transpose (`[cols, rows]`).
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

/// Swaps the first two `h`-row gate blocks of `[3·h, …]` row-major data (GRU `z, r, h` ↔
/// `r, z, n`).
fn swap_zr(v: &mut [f32], h: usize) {
    let block = v.len() / 3;
    debug_assert_eq!(block % h.max(1), 0);
    let (a, b) = v.split_at_mut(block);
    a.swap_with_slice(&mut b[..block]);
}

/// Keras kernel `[in, gates·h]` + recurrent kernel `[h, gates·h]` → IR `w_ih`, `w_hh`.
pub fn recurrent_weights(
    kernel: &[f32],
    rec: &[f32],
    input: usize,
    h: usize,
    gates: usize,
) -> (Vec<f32>, Vec<f32>) {
    (
        transpose(kernel, input, gates * h),
        transpose(rec, h, gates * h),
    )
}

/// Converts a Keras recurrent layer (already read) to the IR: `kernel` `[I, g·H]`,
/// `rec` `[H, g·H]`, `bias` as Keras stores it (`None` for `use_bias=False`).
pub fn convert_recurrent(
    cell: CellKind,
    input: usize,
    h: usize,
    kernel: &[f32],
    rec: &[f32],
    bias: Option<&[f32]>,
) -> FloatLayer {
    let g = cell.gates();
    let (mut w_ih, mut w_hh) = recurrent_weights(kernel, rec, input, h, g);
    let (mut b_ih, mut b_hh) = (vec![0.0; g * h], vec![0.0; g * h]);
    match (cell, bias) {
        (
            CellKind::Gru {
                linear_before_reset: true,
            },
            Some(b),
        ) => {
            b_ih.copy_from_slice(&b[..g * h]);
            b_hh.copy_from_slice(&b[g * h..]);
        }
        (_, Some(b)) => b_ih.copy_from_slice(b),
        (_, None) => {}
    }
    if let CellKind::Gru { .. } = cell {
        for v in [&mut w_ih, &mut w_hh, &mut b_ih, &mut b_hh] {
            swap_zr(v, h);
        }
    }
    FloatLayer {
        cell,
        input_size: input,
        hidden_size: h,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        peephole: None,
        h0: None,
        c0: None,
        cell_clip: None,
    }
}

fn output_act(name: &str) -> Option<OutputAct> {
    Some(match name {
        "linear" => OutputAct::Identity,
        "softmax" => OutputAct::Softmax,
        "sigmoid" => OutputAct::Sigmoid,
        "tanh" => OutputAct::Tanh,
        _ => return None,
    })
}

const NOT_YET: &[&str] = &[
    "Bidirectional",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "AveragePooling1D",
    "MaxPooling1D",
    "BatchNormalization",
    "LayerNormalization",
    "Conv1D",
    "TimeDistributed",
    "Flatten",
    "Reshape",
    "Concatenate",
    "Add",
    "Attention",
    "MultiHeadAttention",
    "Embedding",
    "ConvLSTM1D",
    "RNN",
];

/// Builds the float model from the layer list and the weights.
///
/// # Errors
/// An unsupported layer or setting (named), missing or mis-shaped weights.
pub fn build(layers: &[LayerConfig], w: &dyn Weights) -> Result<FloatModel> {
    let mut norm: Option<Norm> = None;
    let mut rec: Vec<FloatLayer> = Vec::new();
    let mut last_seq = true; // does the tensor so far have a time axis?
    let mut head: Option<FloatDense> = None;
    let mut act = OutputAct::Identity;
    let mut act_set = false;
    let mut input_size: Option<usize> = None;
    let mut notes: Vec<String> = Vec::new();
    for l in layers {
        let who = format!("layer `{}` ({})", l.name, l.class);
        match l.class.as_str() {
            "InputLayer" => {
                let shape = l.config["batch_shape"]
                    .as_array()
                    .or_else(|| l.config["batch_input_shape"].as_array());
                if let Some(f) = shape.and_then(|s| s.last()).and_then(|f| f.as_u64()) {
                    input_size = Some(f as usize);
                }
                if let Some(s) = shape {
                    if s.len() != 3 {
                        bail!("{who}: input shape {s:?} is not [batch, time, features]");
                    }
                }
            }
            "Dropout" | "SpatialDropout1D" | "GaussianNoise" | "GaussianDropout" | "AlphaDropout" => {
                notes.push(format!("{who} dropped (inactive at inference)"));
            }
            "Masking" => bail!(
                "{who}: masking is not supported (tinyrnn runs each sequence to its own length; export the model without Masking)"
            ),
            "Normalization" => {
                if !rec.is_empty() || norm.is_some() {
                    bail!("{who}: a Normalization after the first recurrent layer is not supported");
                }
                if bool_setting(l, "invert", false) {
                    bail!("{who}: invert=True is not supported");
                }
                let axis = &l.config["axis"];
                let last_axis = match axis {
                    Value::Null => true,
                    Value::Number(n) => n.as_i64() == Some(-1) || n.as_i64() == Some(2),
                    Value::Array(a) => a.len() == 1 && matches!(a[0].as_i64(), Some(-1) | Some(2)),
                    _ => false,
                };
                if !last_axis {
                    bail!("{who}: axis = {axis} is not supported (per-feature normalization over the last axis only)");
                }
                let (mean, var) = match (w.var(&l.path, 0)?, w.var(&l.path, 1)?) {
                    (Some((_, m)), Some((_, v))) => (m, v),
                    _ => match (l.config["mean"].as_array(), l.config["variance"].as_array()) {
                        (Some(m), Some(v)) => (
                            m.iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect(),
                            v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect(),
                        ),
                        _ => bail!("{who}: its mean/variance (`{}/vars/0`, `/vars/1`) are missing from model.weights.h5", l.path),
                    },
                };
                if mean.len() != var.len() || mean.iter().chain(&var).any(|x| !x.is_finite()) || var.iter().any(|&v| v < 0.0) {
                    bail!("{who}: mean/variance are not {} finite values with variance ≥ 0", mean.len());
                }
                notes.push(format!("{who} folded into the input normalization"));
                norm = Some(Norm {
                    offset: mean,
                    scale: var
                        .iter()
                        .map(|&v| (1.0 / (v as f64).sqrt().max(KERAS_EPSILON)) as f32)
                        .collect(),
                });
            }
            "LSTM" | "GRU" | "SimpleRNN" => {
                if !last_seq {
                    bail!("{who}: the layer before it returns only its last step (return_sequences=False): set return_sequences=True on every recurrent layer but the last");
                }
                if head.is_some() {
                    bail!("{who}: a recurrent layer after a Dense layer is not supported");
                }
                if bool_setting(l, "go_backwards", false) {
                    bail!("{who}: go_backwards=True is not supported (tinyrnn runs forward in time)");
                }
                if bool_setting(l, "return_state", false) {
                    bail!("{who}: return_state=True is not supported");
                }
                let h = units(l)?;
                let activation = string_setting(l, "activation", "tanh")?;
                let cell = match l.class.as_str() {
                    "SimpleRNN" => CellKind::Rnn(match activation {
                        "tanh" => RnnAct::Tanh,
                        "relu" => RnnAct::Relu,
                        a => bail!("{who}: activation \"{a}\" is not supported (tanh or relu)"),
                    }),
                    class => {
                        if activation != "tanh" {
                            bail!("{who}: activation \"{activation}\" is not supported (tanh only)");
                        }
                        let ra = string_setting(l, "recurrent_activation", "sigmoid")?;
                        if ra != "sigmoid" {
                            bail!("{who}: recurrent_activation \"{ra}\" is not supported (sigmoid only; retrain with recurrent_activation=\"sigmoid\")");
                        }
                        if class == "LSTM" {
                            CellKind::Lstm { peepholes: false }
                        } else {
                            CellKind::Gru {
                                linear_before_reset: bool_setting(l, "reset_after", true),
                            }
                        }
                    }
                };
                let g = cell.gates();
                let folder = format!("{}/cell", l.path);
                let input = match rec.last() {
                    Some(p) => p.hidden_size,
                    None => match (input_size, w.var(&folder, 0)?) {
                        (Some(i), _) => i,
                        (None, Some((s, _))) if s.len() == 2 => s[0],
                        _ => bail!("{who}: cannot tell its input width (no InputLayer shape, no kernel)"),
                    },
                };
                let kernel = need(w, l, &folder, 0, "kernel", &[input, g * h])?;
                let rk = need(w, l, &folder, 1, "recurrent kernel", &[h, g * h])?;
                let use_bias = bool_setting(l, "use_bias", true);
                let bias = if use_bias {
                    let shape: Vec<usize> = match cell {
                        CellKind::Gru { linear_before_reset: true } => vec![2, g * h],
                        _ => vec![g * h],
                    };
                    Some(need(w, l, &folder, 2, "bias", &shape)?)
                } else {
                    if w.var(&folder, 2)?.is_some() {
                        bail!("{who}: use_bias=False but model.weights.h5 holds a bias");
                    }
                    None
                };
                if input_size.is_none() {
                    input_size = Some(input);
                }
                rec.push(convert_recurrent(cell, input, h, &kernel, &rk, bias.as_deref()));
                last_seq = bool_setting(l, "return_sequences", false);
                if rec.len() > tinyrnn::MAX_LAYERS {
                    bail!("{who}: more than {} recurrent layers are not supported", tinyrnn::MAX_LAYERS);
                }
            }
            "Dense" => {
                let Some(prev) = rec.last() else {
                    bail!("{who}: a Dense layer before the recurrent layers is not supported (only a head after them)");
                };
                if last_seq {
                    bail!("{who}: the recurrent layer before it returns sequences (return_sequences=True): per-step Dense outputs are not supported yet; set return_sequences=False on the last recurrent layer");
                }
                if head.is_some() {
                    bail!("{who}: a second Dense layer (an MLP head) is not supported yet (one Dense head only)");
                }
                let a = string_setting(l, "activation", "linear")?;
                let Some(oa) = output_act(a) else {
                    bail!("{who}: activation \"{a}\" is not supported on the head (linear, softmax, sigmoid or tanh; a hidden Dense layer is an MLP head, not supported yet)");
                };
                let out = units(l)?;
                let inp = prev.hidden_size;
                let kernel = need(w, l, &l.path, 0, "kernel", &[inp, out])?;
                let bias = if bool_setting(l, "use_bias", true) {
                    need(w, l, &l.path, 1, "bias", &[out])?
                } else {
                    vec![0.0; out]
                };
                head = Some(FloatDense {
                    out_size: out,
                    in_size: inp,
                    weight: transpose(&kernel, inp, out),
                    bias,
                    act: tinyrnn::DenseAct::Identity,
                });
                act = oa;
                act_set = oa != OutputAct::Identity;
            }
            "Activation" | "Softmax" => {
                let a = if l.class == "Softmax" {
                    "softmax"
                } else {
                    string_setting(l, "activation", "linear")?
                };
                let Some(oa) = output_act(a) else {
                    bail!("{who}: activation \"{a}\" is not supported (linear, softmax, sigmoid or tanh on the output)");
                };
                if rec.is_empty() || last_seq {
                    bail!("{who}: an activation before the end of the recurrent stack is not supported");
                }
                if act_set && oa != OutputAct::Identity {
                    bail!("{who}: a second output activation is not supported");
                }
                if oa != OutputAct::Identity {
                    act = oa;
                    act_set = true;
                }
            }
            c if NOT_YET.contains(&c) => bail!("{who}: not supported yet"),
            c => bail!("{who}: layer class `{c}` is not supported"),
        }
    }
    if rec.is_empty() {
        bail!("the model has no LSTM, GRU or SimpleRNN layer");
    }
    if last_seq {
        bail!(
            "the last recurrent layer returns sequences (return_sequences=True) and no reduction follows: set return_sequences=False on it"
        );
    }
    let input_size = input_size.unwrap_or(rec[0].input_size);
    if input_size != rec[0].input_size {
        bail!(
            "the input has {input_size} features but the first recurrent layer's kernel takes {}",
            rec[0].input_size
        );
    }
    if let Some(n) = &norm {
        if n.offset.len() != input_size {
            bail!(
                "the Normalization layer has {} values for {input_size} input features",
                n.offset.len()
            );
        }
    }
    if !notes.is_empty() {
        eprintln!("note: {}", notes.join("; "));
    }
    Ok(FloatModel {
        input_size,
        norm,
        pre: Vec::new(),
        layers: rec,
        pool: tinyrnn::Pool::Last,
        mlp: Vec::new(),
        head,
        output_act: act,
        name: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Zero weights of an LSTM 3 → 4 (`missing`: none at all): only the config matters.
    struct LstmWeights {
        missing: bool,
    }

    impl Weights for LstmWeights {
        fn var(&self, folder: &str, i: usize) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
            let shape = match i {
                0 => vec![3, 16],
                1 => vec![4, 16],
                _ => vec![16],
            };
            let n = shape.iter().product();
            Ok((!self.missing && folder.ends_with("/cell")).then(|| (shape, vec![0.0; n])))
        }
    }

    fn layer(class: &str, config: Value) -> LayerConfig {
        LayerConfig {
            class: class.into(),
            name: format!("my_{}", snake_case(class)),
            config,
            path: format!("layers/{}", snake_case(class)),
        }
    }

    fn err(layers: &[LayerConfig], missing: bool) -> String {
        format!("{:#}", build(layers, &LstmWeights { missing }).unwrap_err())
    }

    /// Settings and layers with no exact counterpart are refused, naming layer and setting
    /// (checked before any weight is read).
    #[test]
    fn refusals_name_layer_and_setting() {
        let input = layer("InputLayer", json!({"batch_shape": [null, null, 3]}));
        let lstm = |extra: Value| {
            let mut c = json!({"units": 4, "return_sequences": false});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            layer("LSTM", c)
        };
        for (layers, want) in [
            (
                vec![input.clone(), layer("Masking", json!({})), lstm(json!({}))],
                "layer `my_masking` (Masking): masking is not supported",
            ),
            (
                vec![input.clone(), lstm(json!({"go_backwards": true}))],
                "(LSTM): go_backwards=True is not supported",
            ),
            (
                vec![
                    input.clone(),
                    lstm(json!({"recurrent_activation": "hard_sigmoid"})),
                ],
                "(LSTM): recurrent_activation \"hard_sigmoid\" is not supported",
            ),
            (
                vec![input.clone(), lstm(json!({"activation": "relu"}))],
                "(LSTM): activation \"relu\" is not supported",
            ),
            (
                vec![input.clone(), lstm(json!({"return_sequences": true}))],
                "the last recurrent layer returns sequences",
            ),
            (
                vec![input.clone(), lstm(json!({"return_state": true}))],
                "return_state=True is not supported",
            ),
            (
                vec![
                    input.clone(),
                    layer("LayerNormalization", json!({})),
                    lstm(json!({})),
                ],
                "(LayerNormalization): not supported yet",
            ),
            (
                vec![
                    input.clone(),
                    layer("BatchNormalization", json!({})),
                    lstm(json!({})),
                ],
                "(BatchNormalization): not supported yet",
            ),
            (
                vec![input.clone(), layer("Conv1D", json!({})), lstm(json!({}))],
                "(Conv1D): not supported yet",
            ),
            (
                vec![input.clone(), layer("Lambda", json!({})), lstm(json!({}))],
                "layer class `Lambda` is not supported",
            ),
            (
                vec![
                    input.clone(),
                    layer("Normalization", json!({"invert": true})),
                ],
                "(Normalization): invert=True is not supported",
            ),
            (vec![input.clone()], "no LSTM, GRU or SimpleRNN layer"),
            (
                vec![input.clone(), lstm(json!({}))],
                "its kernel (`layers/lstm/cell/vars/0`) is missing",
            ),
        ] {
            let e = err(&layers, want.contains("missing"));
            assert!(e.contains(want), "want {want:?}, got {e:?}");
            assert!(!e.contains('\n'), "{e}");
        }
        // The same stack with nothing unsupported imports (the refusals are not vacuous).
        let m = build(&[input, lstm(json!({}))], &LstmWeights { missing: false }).unwrap();
        assert_eq!((m.input_size, m.layers[0].hidden_size), (3, 4));
    }

    #[test]
    fn snake_case_matches_keras() {
        assert_eq!(snake_case("LSTM"), "lstm");
        assert_eq!(snake_case("SimpleRNN"), "simple_rnn");
        assert_eq!(snake_case("GRU"), "gru");
        assert_eq!(snake_case("InputLayer"), "input_layer");
        assert_eq!(snake_case("Dense"), "dense");
        assert_eq!(
            snake_case("GlobalAveragePooling1D"),
            "global_average_pooling1d"
        );
    }
}

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
//! of `InputLayer`, an optional leading `Normalization` (the model's input normalization), a
//! per-frame pre-net of `Dense`/`TimeDistributed(Dense)` and `LayerNormalization` layers, up
//! to four `LSTM`/`GRU`/`SimpleRNN` layers (all but the last with `return_sequences=True`;
//! `go_backwards=True` makes a reverse layer, `Bidirectional(...)` with merge_mode `concat` a
//! bidirectional one, output `[forward; backward]` — Keras re-reverses the backward
//! sequence, and without `return_sequences` gives each direction's final state, the IR's
//! `Pool::FinalStates`; in a legacy `.h5` the two directions' weights are the wrapper's
//! `forward_…`/`backward_…` ones),
//! an optional `GlobalAveragePooling1D`/`GlobalMaxPooling1D` after a last layer that
//! returns sequences, then hidden `Dense`/`LayerNormalization` layers and the output `Dense`
//! (its `softmax`/`sigmoid`/`tanh` the output activation). `Dropout` is dropped anywhere,
//! `BatchNormalization` is folded into the adjacent `Dense` layer, an `Activation`/`ReLU`
//! layer is merged into the `Dense` before it; dense activations `linear`, `relu`, `relu6`,
//! `tanh`, `sigmoid`, `gelu`, `leaky_relu` and `hard_sigmoid` (exactly `clip(x/6 + 1/2, 0, 1)`
//! in Keras 3: the 1/6 and 1/2 are folded into the layer). Everything else (`Masking`,
//! a `Bidirectional` merge_mode other than `concat`, a `go_backwards=True` layer's reversed
//! sequence read by another recurrent layer, a `hard_sigmoid` recurrent activation…) is refused,
//! naming the layer and its setting; nothing is imported on a guess.
//!
//! Gate orders: Keras LSTM kernels hold `i, f, c, o` columns (the IR's `i, f, g, o`: only a
//! transpose); Keras GRU kernels hold `z, r, h` (the IR wants `r, z, n`: the first two blocks
//! swap). A `reset_after=True` GRU has a `[2, 3·units]` bias (row 0 input, row 1 recurrent),
//! the IR's `linear_before_reset` GRU; `reset_after=False` has one `[3·units]` bias.

use std::io::{Cursor, Read};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tinyrnn::{CellKind, DenseAct, OutputAct, Pool, RnnAct};

use crate::ir::{FloatDense, FloatLayer, FloatLayerNorm, FloatModel, FrameOp, Norm};

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
    /// `folder` is `model_weights/<layer>` (a recurrent layer's `/cell` suffix ignored: the
    /// legacy file lists the cell's weights on the layer), or for one direction of a
    /// `Bidirectional` layer `model_weights/<layer>/forward_layer` / `/backward_layer`:
    /// tf.keras lists both directions' weights on the wrapper, named
    /// `<layer>/forward_<inner>/…` and `<layer>/backward_<inner>/…`, and each direction
    /// takes the names of its own prefix, in order.
    fn var(&self, folder: &str, i: usize) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        let folder = folder.strip_suffix("/cell").unwrap_or(folder);
        let (group_path, direction) = match folder.rsplit_once('/') {
            // `model_weights/<layer>/…_layer`, not a layer named `forward_layer`
            Some((g, "forward_layer")) if g.contains('/') => (g, Some("forward_")),
            Some((g, "backward_layer")) if g.contains('/') => (g, Some("backward_")),
            _ => (folder, None),
        };
        let Ok(group) = self.file.group(group_path) else {
            return Ok(None);
        };
        let names = match group.attribute("weight_names") {
            Ok(a) => a.read_strings().unwrap_or_default(),
            Err(_) => return Ok(None),
        };
        let names: Vec<&String> = match direction {
            None => names.iter().collect(),
            Some(prefix) => {
                let layer = group_path.rsplit('/').next().unwrap_or_default();
                names
                    .iter()
                    .filter(|n| {
                        let rest = n.strip_prefix(&format!("{layer}/")).unwrap_or(n);
                        rest.starts_with(prefix)
                    })
                    .collect()
            }
        };
        let Some(name) = names.get(i) else {
            return Ok(None);
        };
        read_f32(&self.file, &format!("{group_path}/{name}"))
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
    FloatLayer::forward(cell, input, h, [w_ih, w_hh, b_ih, b_hh])
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

/// A Keras activation name on a dense layer → the IR's activation, with an input affine map
/// `(scale, shift)` folded into the layer for the ones that are one (`hard_sigmoid` is
/// exactly `clip(x/6 + 1/2, 0, 1)` in Keras 3).
fn dense_act(name: &str) -> Option<(DenseAct, f32, f32)> {
    Some(match name {
        "linear" => (DenseAct::Identity, 1.0, 0.0),
        "relu" => (DenseAct::Relu, 1.0, 0.0),
        "relu6" => (DenseAct::Clip { lo: 0.0, hi: 6.0 }, 1.0, 0.0),
        "tanh" => (DenseAct::Tanh, 1.0, 0.0),
        "sigmoid" => (DenseAct::Sigmoid, 1.0, 0.0),
        "gelu" => (DenseAct::Gelu, 1.0, 0.0),
        // keras.activations.leaky_relu's default negative_slope.
        "leaky_relu" => (DenseAct::LeakyRelu { alpha: 0.2 }, 1.0, 0.0),
        "hard_sigmoid" => (DenseAct::Clip { lo: 0.0, hi: 1.0 }, 1.0 / 6.0, 0.5),
        _ => return None,
    })
}

const DENSE_ACTS: &str = "linear, relu, relu6, tanh, sigmoid, gelu, leaky_relu, hard_sigmoid";

const NOT_YET: &[&str] = &[
    "AveragePooling1D",
    "MaxPooling1D",
    "Conv1D",
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

/// Where the layer walk is: before the recurrent stack (per-frame pre-net), on a recurrent
/// layer's per-step outputs, or on one vector per sequence (last step or pooled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pre,
    Steps,
    Vector,
}

/// The layers being collected.
struct Graph {
    norm: Option<Norm>,
    pre: Vec<FrameOp>,
    rec: Vec<FloatLayer>,
    pool: Pool,
    /// Dense/LayerNorm ops after the recurrent stack (the last dense becomes the head).
    post: Vec<FrameOp>,
    act: OutputAct,
    /// A per-feature `x·s + t` (BatchNormalization) waiting for the next dense layer.
    pending: Option<(String, Vec<f64>, Vec<f64>)>,
    /// Input width (from the InputLayer or the first kernel).
    input_size: Option<usize>,
    stage: Stage,
    /// The last recurrent layer is a `go_backwards=True` one returning sequences: Keras
    /// returns them in reversed time order (output `t` is the state after frames
    /// `T−1 … T−1−t`), which only an order-free pooling may read.
    reversed_steps: bool,
    notes: Vec<String>,
}

impl Graph {
    /// Width of the tensor so far (None before anything fixed it).
    fn width(&self) -> Option<usize> {
        let base = match self.rec.last() {
            Some(r) => r.out_size(),
            None => {
                let mut w = self.input_size?;
                for op in &self.pre {
                    w = op.out_size(w);
                }
                return Some(w);
            }
        };
        Some(self.post.iter().fold(base, |w, op| op.out_size(w)))
    }

    fn ops(&mut self) -> &mut Vec<FrameOp> {
        match self.stage {
            Stage::Pre => &mut self.pre,
            _ => &mut self.post,
        }
    }
}

/// Reads a Keras `Dense` layer (kernel `[in, out]`, bias `[out]`) as the IR's
/// `[out, in]` weight.
fn read_dense(w: &dyn Weights, l: &LayerConfig, folder: &str, inp: usize) -> Result<FloatDense> {
    let out = units(l)?;
    let kernel = need(w, l, folder, 0, "kernel", &[inp, out])?;
    let bias = if bool_setting(l, "use_bias", true) {
        need(w, l, folder, 1, "bias", &[out])?
    } else {
        vec![0.0; out]
    };
    Ok(FloatDense {
        out_size: out,
        in_size: inp,
        weight: transpose(&kernel, inp, out),
        bias,
        act: DenseAct::Identity,
    })
}

/// `y = x·s + t` per feature folded into the dense layer that reads `x`.
fn fold_before(d: &mut FloatDense, s: &[f64], t: &[f64]) {
    for o in 0..d.out_size {
        let row = &mut d.weight[o * d.in_size..(o + 1) * d.in_size];
        let mut b = d.bias[o] as f64;
        for (i, wv) in row.iter_mut().enumerate() {
            b += *wv as f64 * t[i];
            *wv = (*wv as f64 * s[i]) as f32;
        }
        d.bias[o] = b as f32;
    }
}

/// `y = x·s + t` per output folded into the dense layer that produced `x` (no activation).
fn fold_after(d: &mut FloatDense, s: &[f64], t: &[f64]) {
    for o in 0..d.out_size {
        for wv in &mut d.weight[o * d.in_size..(o + 1) * d.in_size] {
            *wv = (*wv as f64 * s[o]) as f32;
        }
        d.bias[o] = (d.bias[o] as f64 * s[o] + t[o]) as f32;
    }
}

/// A `BatchNormalization` layer at inference: `x·s + t` per feature.
fn batch_norm(w: &dyn Weights, l: &LayerConfig, width: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let who = format!("layer `{}` ({})", l.name, l.class);
    let axis = &l.config["axis"];
    if !matches!(axis.as_i64(), None | Some(-1))
        && !matches!(axis, Value::Array(a) if a.len() == 1 && a[0].as_i64() == Some(-1))
    {
        bail!("{who}: axis = {axis} is not supported (the feature axis, -1, only)");
    }
    if bool_setting(l, "renorm", false) {
        bail!("{who}: renorm=True is not supported");
    }
    let eps = l.config["epsilon"].as_f64().unwrap_or(1e-3);
    let (scale, center) = (
        bool_setting(l, "scale", true),
        bool_setting(l, "center", true),
    );
    let mut i = 0;
    let mut next = |what: &str| -> Result<Vec<f32>> {
        let v = need(w, l, &l.path, i, what, &[width]);
        i += 1;
        v
    };
    let gamma = if scale { Some(next("gamma")?) } else { None };
    let beta = if center { Some(next("beta")?) } else { None };
    let mean = next("moving mean")?;
    let var = next("moving variance")?;
    let mut s = Vec::with_capacity(width);
    let mut t = Vec::with_capacity(width);
    for k in 0..width {
        let g = gamma.as_ref().map_or(1.0, |g| g[k] as f64);
        let b = beta.as_ref().map_or(0.0, |b| b[k] as f64);
        let inv = 1.0 / (var[k] as f64 + eps).sqrt();
        if !inv.is_finite() {
            bail!(
                "{who}: moving variance {} with epsilon {eps} is not positive",
                var[k]
            );
        }
        s.push(g * inv);
        t.push(b - mean[k] as f64 * g * inv);
    }
    Ok((s, t))
}

/// Reads one `LSTM`/`GRU`/`SimpleRNN` layer (settings and weights under `<path>/cell`) as
/// a forward layer; `input` is the width it reads, if known.
fn read_recurrent(w: &dyn Weights, l: &LayerConfig, input: Option<usize>) -> Result<FloatLayer> {
    let who = format!("layer `{}` ({})", l.name, l.class);
    if bool_setting(l, "return_state", false) {
        bail!("{who}: return_state=True is not supported");
    }
    if bool_setting(l, "stateful", false) {
        bail!("{who}: stateful=True is not supported");
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
    let gates = cell.gates();
    let folder = format!("{}/cell", l.path);
    let input = match input {
        Some(i) => i,
        None => match w.var(&folder, 0)? {
            Some((s, _)) if s.len() == 2 => s[0],
            _ => bail!("{who}: cannot tell its input width (no InputLayer shape, no kernel)"),
        },
    };
    let kernel = need(w, l, &folder, 0, "kernel", &[input, gates * h])?;
    let rk = need(w, l, &folder, 1, "recurrent kernel", &[h, gates * h])?;
    let bias = if bool_setting(l, "use_bias", true) {
        let shape: Vec<usize> = match cell {
            CellKind::Gru {
                linear_before_reset: true,
            } => vec![2, gates * h],
            _ => vec![gates * h],
        };
        Some(need(w, l, &folder, 2, "bias", &shape)?)
    } else {
        if w.var(&folder, 2)?.is_some() {
            bail!("{who}: use_bias=False but model.weights.h5 holds a bias");
        }
        None
    };
    Ok(convert_recurrent(
        cell,
        input,
        h,
        &kernel,
        &rk,
        bias.as_deref(),
    ))
}

/// Builds the float model from the layer list and the weights.
///
/// # Errors
/// An unsupported layer or setting (named), missing or mis-shaped weights.
pub fn build(layers: &[LayerConfig], w: &dyn Weights) -> Result<FloatModel> {
    let mut g = Graph {
        norm: None,
        pre: Vec::new(),
        rec: Vec::new(),
        pool: Pool::Last,
        post: Vec::new(),
        act: OutputAct::Identity,
        pending: None,
        input_size: None,
        stage: Stage::Pre,
        notes: Vec::new(),
        reversed_steps: false,
    };
    let mut act_set = false;
    for l in layers {
        let who = format!("layer `{}` ({})", l.name, l.class);
        if act_set && !matches!(l.class.as_str(), "Dropout" | "Activation" | "Softmax") {
            bail!("{who}: a layer after the output activation is not supported");
        }
        if let Some((bn, _, _)) = &g.pending {
            if !matches!(l.class.as_str(), "Dense" | "Dropout" | "TimeDistributed") {
                bail!("layer `{bn}` (BatchNormalization): only folded into an adjacent Dense layer, but {who} follows it");
            }
        }
        match l.class.as_str() {
            "InputLayer" => {
                let shape = l.config["batch_shape"]
                    .as_array()
                    .or_else(|| l.config["batch_input_shape"].as_array());
                if let Some(f) = shape.and_then(|s| s.last()).and_then(|f| f.as_u64()) {
                    g.input_size = Some(f as usize);
                }
                if let Some(s) = shape {
                    if s.len() != 3 {
                        bail!("{who}: input shape {s:?} is not [batch, time, features]");
                    }
                }
            }
            "Dropout" | "SpatialDropout1D" | "GaussianNoise" | "GaussianDropout" | "AlphaDropout" => {
                g.notes.push(format!("{who} dropped (inactive at inference)"));
            }
            "Masking" => bail!(
                "{who}: masking is not supported (tinyrnn runs each sequence to its own length; export the model without Masking)"
            ),
            "Normalization" => {
                if g.stage != Stage::Pre || g.norm.is_some() || !g.pre.is_empty() {
                    bail!("{who}: a Normalization that is not the model's first layer is not supported");
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
                g.notes.push(format!("{who} folded into the input normalization"));
                if g.input_size.is_none() {
                    g.input_size = Some(mean.len());
                }
                g.norm = Some(Norm {
                    offset: mean,
                    scale: var
                        .iter()
                        .map(|&v| (1.0 / (v as f64).sqrt().max(KERAS_EPSILON)) as f32)
                        .collect(),
                });
            }
            "LSTM" | "GRU" | "SimpleRNN" | "Bidirectional" => {
                if g.stage == Stage::Vector {
                    bail!("{who}: the layer before it gives one vector per sequence (return_sequences=False or a pooling): set return_sequences=True on every recurrent layer but the last");
                }
                if g.reversed_steps {
                    bail!("{who}: the layer before it has go_backwards=True and return_sequences=True, so Keras hands it the sequence in reversed time order; only a GlobalAveragePooling1D/GlobalMaxPooling1D may follow such a layer");
                }
                if !g.post.is_empty() {
                    bail!("{who}: layers between recurrent layers are not supported");
                }
                let input_hint = g.width();
                let (layer, return_sequences) = if l.class == "Bidirectional" {
                    // Keras's default is "concat"; `None` (JSON null) returns the two
                    // directions as two outputs.
                    let merge = match l.config.get("merge_mode") {
                        None => "\"concat\"".to_string(),
                        Some(Value::Null) => "None".to_string(),
                        Some(v) => v.to_string(),
                    };
                    if merge != "\"concat\"" {
                        bail!("{who}: merge_mode={merge} is not supported (\"concat\" only: [forward; backward])");
                    }
                    let inner = |key: &str, folder: &str| -> Option<LayerConfig> {
                        let v = &l.config[key];
                        Some(LayerConfig {
                            class: v["class_name"].as_str()?.to_string(),
                            name: format!("{}/{}", l.name, v["config"]["name"].as_str().unwrap_or(key)),
                            config: v["config"].clone(),
                            path: format!("{}/{folder}", l.path),
                        })
                    };
                    let Some(fwd) = inner("layer", "forward_layer") else {
                        bail!("{who}: its config has no wrapped `layer`");
                    };
                    // Keras builds the backward layer from the same config with go_backwards
                    // flipped, unless a `backward_layer` is given.
                    let bwd = inner("backward_layer", "backward_layer").unwrap_or_else(|| {
                        let mut b = fwd.clone();
                        b.config["go_backwards"] = Value::Bool(!bool_setting(&fwd, "go_backwards", false));
                        b.path = format!("{}/backward_layer", l.path);
                        b
                    });
                    if !matches!(fwd.class.as_str(), "LSTM" | "GRU" | "SimpleRNN") || bwd.class != fwd.class {
                        bail!("{who}: Bidirectional({}, backward {}) is not supported (LSTM, GRU or SimpleRNN in both directions)", fwd.class, bwd.class);
                    }
                    if bool_setting(&fwd, "go_backwards", false) || !bool_setting(&bwd, "go_backwards", false) {
                        bail!("{who}: a forward layer with go_backwards=True or a backward layer without it is not supported");
                    }
                    let rs = bool_setting(&fwd, "return_sequences", false);
                    if bool_setting(&bwd, "return_sequences", false) != rs {
                        bail!("{who}: the two directions disagree on return_sequences");
                    }
                    let mut f = read_recurrent(w, &fwd, input_hint)?;
                    let b = read_recurrent(w, &bwd, input_hint)?;
                    if (b.cell, b.input_size, b.hidden_size) != (f.cell, f.input_size, f.hidden_size) {
                        bail!("{who}: the backward layer's cell or sizes differ from the forward layer's");
                    }
                    f.direction = tinyrnn::Direction::Bidirectional;
                    f.backward = Some(Box::new(b));
                    g.notes.push(format!("{who}: merge_mode \"concat\", output [forward; backward]"));
                    (f, rs)
                } else {
                    let rs = bool_setting(l, "return_sequences", false);
                    let mut f = read_recurrent(w, l, input_hint)?;
                    if bool_setting(l, "go_backwards", false) {
                        f.direction = tinyrnn::Direction::Reverse;
                        g.reversed_steps = rs;
                    }
                    (f, rs)
                };
                if g.input_size.is_none() {
                    g.input_size = Some(layer.input_size);
                }
                let dir = layer.direction;
                g.rec.push(layer);
                if return_sequences {
                    g.stage = Stage::Steps;
                } else {
                    g.stage = Stage::Vector;
                    // The layer's final state: a backward layer's is its state after frame 0
                    // (a bidirectional one's, [forward final; backward final]).
                    if dir != tinyrnn::Direction::Forward {
                        g.pool = Pool::FinalStates;
                    }
                }
                if g.rec.len() > tinyrnn::MAX_LAYERS {
                    bail!("{who}: more than {} recurrent layers are not supported", tinyrnn::MAX_LAYERS);
                }
            }
            "GlobalAveragePooling1D" | "GlobalMaxPooling1D" => {
                if g.stage != Stage::Steps {
                    bail!("{who}: pooling over time needs a recurrent layer with return_sequences=True right before it");
                }
                if bool_setting(l, "keepdims", false) {
                    bail!("{who}: keepdims=True is not supported");
                }
                if l.config["data_format"].as_str().is_some_and(|f| f != "channels_last") {
                    bail!("{who}: data_format {} is not supported (channels_last only)", l.config["data_format"]);
                }
                g.pool = if l.class == "GlobalAveragePooling1D" { Pool::Mean } else { Pool::Max };
                g.stage = Stage::Vector;
                g.reversed_steps = false;
            }
            "Dense" | "TimeDistributed" => {
                let (dl, folder) = if l.class == "TimeDistributed" {
                    let inner = &l.config["layer"];
                    if inner["class_name"].as_str() != Some("Dense") {
                        bail!("{who}: TimeDistributed({}) is not supported (Dense only)", inner["class_name"]);
                    }
                    if g.stage == Stage::Vector {
                        bail!("{who}: TimeDistributed needs a sequence");
                    }
                    let dl = LayerConfig {
                        class: "Dense".into(),
                        name: l.name.clone(),
                        config: inner["config"].clone(),
                        path: l.path.clone(),
                    };
                    let folder = if w.var(&format!("{}/layer", l.path), 0)?.is_some() {
                        format!("{}/layer", l.path)
                    } else {
                        l.path.clone()
                    };
                    (dl, folder)
                } else {
                    (l.clone(), l.path.clone())
                };
                if g.stage == Stage::Steps {
                    bail!("{who}: the recurrent layer before it returns sequences (return_sequences=True): per-step outputs are not supported; set return_sequences=False or pool over time (GlobalAveragePooling1D/GlobalMaxPooling1D)");
                }
                let Some(inp) = g.width() else {
                    bail!("{who}: cannot tell its input width (no InputLayer shape)");
                };
                let mut d = read_dense(w, &dl, &folder, inp)?;
                if let Some((bn, s, t)) = g.pending.take() {
                    fold_before(&mut d, &s, &t);
                    g.notes.push(format!("layer `{bn}` (BatchNormalization) folded into {who}"));
                }
                let a = string_setting(&dl, "activation", "linear")?;
                if a == "softmax" {
                    if g.stage != Stage::Vector {
                        bail!("{who}: softmax is only supported on the model's output");
                    }
                    // The output layer (any later layer but Dropout/Activation is refused).
                    g.post.push(FrameOp::Dense(d));
                    g.act = OutputAct::Softmax;
                    act_set = true;
                    continue;
                }
                let Some((da, sc, sh)) = dense_act(a) else {
                    bail!("{who}: activation \"{a}\" is not supported ({DENSE_ACTS}; softmax on the last layer)");
                };
                if sc != 1.0 || sh != 0.0 {
                    let n = d.out_size;
                    fold_after(&mut d, &vec![sc as f64; n], &vec![sh as f64; n]);
                    g.notes.push(format!("{who}: hard_sigmoid as clip(x/6 + 1/2, 0, 1)"));
                }
                d.act = da;
                g.ops().push(FrameOp::Dense(d));
            }
            "Activation" | "Softmax" | "ReLU" => {
                let a = match l.class.as_str() {
                    "Softmax" => "softmax",
                    "ReLU" => {
                        let c = &l.config;
                        let plain = c["negative_slope"].as_f64().unwrap_or(0.0) == 0.0
                            && c["threshold"].as_f64().unwrap_or(0.0) == 0.0;
                        if !plain {
                            bail!("{who}: negative_slope/threshold are not supported");
                        }
                        match c["max_value"].as_f64() {
                            None => "relu",
                            Some(6.0) => "relu6",
                            Some(m) => bail!("{who}: max_value = {m} is not supported (none or 6)"),
                        }
                    }
                    _ => string_setting(l, "activation", "linear")?,
                };
                if a == "linear" {
                    continue;
                }
                let vector = g.stage == Stage::Vector;
                let last = match g.ops().last_mut() {
                    Some(FrameOp::Dense(d)) if d.act == DenseAct::Identity => Some(d),
                    _ => None,
                };
                if vector && (a == "softmax" || (last.is_none() && output_act(a).is_some())) {
                    let Some(oa) = output_act(a) else { unreachable!() };
                    g.act = oa;
                    act_set = true;
                    continue;
                }
                let Some(d) = last else {
                    bail!("{who}: an activation that does not follow a Dense layer is not supported");
                };
                let Some((da, sc, sh)) = dense_act(a) else {
                    bail!("{who}: activation \"{a}\" is not supported ({DENSE_ACTS})");
                };
                if sc != 1.0 || sh != 0.0 {
                    let n = d.out_size;
                    fold_after(d, &vec![sc as f64; n], &vec![sh as f64; n]);
                }
                d.act = da;
                g.notes.push(format!("{who} merged into the Dense layer before it"));
            }
            "BatchNormalization" => {
                if g.stage == Stage::Steps {
                    bail!("{who}: between recurrent layers is not supported");
                }
                let Some(width) = g.width() else {
                    bail!("{who}: cannot tell its width (no InputLayer shape)");
                };
                let (s, t) = batch_norm(w, l, width)?;
                match g.ops().last_mut() {
                    Some(FrameOp::Dense(d)) if d.act == DenseAct::Identity => {
                        fold_after(d, &s, &t);
                        g.notes.push(format!("{who} folded into the Dense layer before it"));
                    }
                    _ => g.pending = Some((l.name.clone(), s, t)),
                }
            }
            "LayerNormalization" => {
                if g.stage == Stage::Steps {
                    bail!("{who}: between recurrent layers is not supported");
                }
                if bool_setting(l, "rms_scaling", false) {
                    bail!("{who}: rms_scaling=True is not supported");
                }
                let axis = &l.config["axis"];
                let last = match axis {
                    Value::Null => true,
                    Value::Number(n) => n.as_i64() == Some(-1),
                    Value::Array(a) => a.len() == 1 && a[0].as_i64() == Some(-1),
                    _ => false,
                };
                if !last {
                    bail!("{who}: axis = {axis} is not supported (the feature axis, -1, only)");
                }
                let Some(width) = g.width() else {
                    bail!("{who}: cannot tell its width (no InputLayer shape)");
                };
                let mut i = 0;
                let gamma = if bool_setting(l, "scale", true) {
                    i += 1;
                    need(w, l, &l.path, 0, "gamma", &[width])?
                } else {
                    vec![1.0; width]
                };
                let beta = if bool_setting(l, "center", true) {
                    need(w, l, &l.path, i, "beta", &[width])?
                } else {
                    vec![0.0; width]
                };
                let eps = l.config["epsilon"].as_f64().unwrap_or(1e-3) as f32;
                g.ops().push(FrameOp::LayerNorm(FloatLayerNorm { gamma, beta, eps }));
            }
            c if NOT_YET.contains(&c) => bail!("{who}: not supported yet"),
            c => bail!("{who}: layer class `{c}` is not supported"),
        }
    }
    if let Some((bn, _, _)) = &g.pending {
        bail!("layer `{bn}` (BatchNormalization): no Dense layer to fold it into");
    }
    if g.rec.is_empty() {
        bail!("the model has no LSTM, GRU or SimpleRNN layer");
    }
    if g.stage == Stage::Steps {
        bail!(
            "the last recurrent layer returns sequences (return_sequences=True) and no reduction follows: set return_sequences=False on it or pool over time"
        );
    }
    let input_size = g.input_size.unwrap_or(g.rec[0].input_size);
    let first_in = g.pre.iter().fold(input_size, |w, op| op.out_size(w));
    if first_in != g.rec[0].input_size {
        bail!(
            "the input has {first_in} features but the first recurrent layer's kernel takes {}",
            g.rec[0].input_size
        );
    }
    if let Some(n) = &g.norm {
        if n.offset.len() != input_size {
            bail!(
                "the Normalization layer has {} values for {input_size} input features",
                n.offset.len()
            );
        }
    }
    // The last op after the recurrent stack is the head if it is a dense layer without a
    // hidden activation (its activation, if any, is the output activation).
    let mut head = None;
    match g.post.last() {
        Some(FrameOp::Dense(d)) if d.act == DenseAct::Identity => {
            if let Some(FrameOp::Dense(d)) = g.post.pop() {
                head = Some(d);
            }
        }
        Some(FrameOp::Dense(d)) if !act_set => {
            if let Some(oa) = match d.act {
                DenseAct::Sigmoid => Some(OutputAct::Sigmoid),
                DenseAct::Tanh => Some(OutputAct::Tanh),
                _ => None,
            } {
                if let Some(FrameOp::Dense(mut d)) = g.post.pop() {
                    d.act = DenseAct::Identity;
                    head = Some(d);
                    g.act = oa;
                }
            }
        }
        _ => {}
    }
    if !g.notes.is_empty() {
        eprintln!("note: {}", g.notes.join("; "));
    }
    Ok(FloatModel {
        input_size,
        norm: g.norm,
        pre: g.pre,
        layers: g.rec,
        pool: g.pool,
        mlp: g.post,
        head,
        output_act: g.act,
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
                vec![
                    input.clone(),
                    lstm(json!({"go_backwards": true, "return_sequences": true})),
                    lstm(json!({})),
                ],
                "(LSTM): the layer before it has go_backwards=True and return_sequences=True, so Keras hands it the sequence in reversed time order",
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
                    layer("Bidirectional", json!({"merge_mode": "mul"})),
                ],
                "(Bidirectional): merge_mode=\"mul\" is not supported (\"concat\" only",
            ),
            (
                vec![
                    input.clone(),
                    layer("Bidirectional", json!({"merge_mode": null})),
                ],
                "(Bidirectional): merge_mode=None is not supported (\"concat\" only",
            ),
            (
                vec![
                    input.clone(),
                    lstm(json!({})),
                    layer("GlobalAveragePooling1D", json!({})),
                ],
                "(GlobalAveragePooling1D): pooling over time needs a recurrent layer with return_sequences=True",
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

    /// Weights from a map `folder/vars/i` → (shape, values).
    struct MapWeights(std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>);

    impl Weights for MapWeights {
        fn var(&self, folder: &str, i: usize) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
            Ok(self.0.get(&format!("{folder}/vars/{i}")).cloned())
        }
    }

    /// `TimeDistributed(Dense)` reads its kernel where Keras 3 saves it
    /// (`layers/time_distributed/layer/vars/`), becomes a pre-net dense layer (kernel
    /// transposed to `[out, in]`), and a `hard_sigmoid` on it is `clip(x/6 + 1/2, 0, 1)`.
    #[test]
    fn time_distributed_dense_is_a_pre_net_layer() {
        let seq = |n: usize| (0..n).map(|k| k as f32 * 0.5 - 1.0).collect::<Vec<f32>>();
        let mut m = std::collections::HashMap::new();
        m.insert(
            "layers/time_distributed/layer/vars/0".to_string(),
            (vec![3, 2], seq(6)),
        );
        m.insert(
            "layers/time_distributed/layer/vars/1".to_string(),
            (vec![2], vec![0.25, -0.5]),
        );
        m.insert(
            "layers/lstm/cell/vars/0".to_string(),
            (vec![2, 16], vec![0.0; 32]),
        );
        m.insert(
            "layers/lstm/cell/vars/1".to_string(),
            (vec![4, 16], vec![0.0; 64]),
        );
        m.insert(
            "layers/lstm/cell/vars/2".to_string(),
            (vec![16], vec![0.0; 16]),
        );
        let td = |act: &str| LayerConfig {
            class: "TimeDistributed".into(),
            name: "td".into(),
            config: json!({"layer": {"class_name": "Dense", "config": {"units": 2, "activation": act}}}),
            path: "layers/time_distributed".into(),
        };
        let input = layer("InputLayer", json!({"batch_shape": [null, null, 3]}));
        let lstm = layer("LSTM", json!({"units": 4}));
        let w = MapWeights(m);
        let model = build(&[input.clone(), td("relu"), lstm.clone()], &w).unwrap();
        let FrameOp::Dense(d) = &model.pre[0] else {
            panic!("{:?}", model.pre)
        };
        assert_eq!((d.in_size, d.out_size, d.act), (3, 2, DenseAct::Relu));
        // kernel [[-1, -0.5], [0, 0.5], [1, 1.5]] (in × out) → rows per output.
        assert_eq!(d.weight, [-1.0, 0.0, 1.0, -0.5, 0.5, 1.5]);
        assert_eq!(d.bias, [0.25, -0.5]);
        let model = build(&[input, td("hard_sigmoid"), lstm], &w).unwrap();
        let FrameOp::Dense(h) = &model.pre[0] else {
            panic!()
        };
        assert_eq!(h.act, DenseAct::Clip { lo: 0.0, hi: 1.0 });
        for x in [-4.0f64, -0.3, 0.0, 2.0, 5.0] {
            let y = model.pre[0].apply(&[x, 0.0, 0.0]);
            let z = 0.25 - x; // kernel row 0 of output 0 is -1
            let want = (z / 6.0 + 0.5).clamp(0.0, 1.0);
            assert!((y[0] - want).abs() < 1e-7, "{x}: {} vs {want}", y[0]);
        }
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

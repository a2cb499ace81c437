//! TensorFlow Lite (`.tflite`) import: the flatbuffer (read by [`super::tflite_fb`]) →
//! [`FloatModel`].
//!
//! What is read: the first subgraph, as a chain of operators from its one input
//! `[batch 1, time, features]` to its one output, each taking the running value as input 0
//! (other inputs are constants). Quantized tensors (int8/uint8/int16/int32/int64, per-tensor
//! or per-channel scale and zero point) and float16 constants are dequantized at import, so a
//! float, dynamic-range or full-integer model all become the same float model (tinyrnn then
//! calibrates and quantizes it itself); `QUANTIZE`/`DEQUANTIZE` of the running value are
//! dropped.
//!
//! | operators | becomes |
//! |---|---|
//! | `FULLY_CONNECTED` (fused activation) before the first recurrent layer | pre-net dense |
//! | `UNIDIRECTIONAL_SEQUENCE_LSTM` / `_RNN` | recurrent layer (LSTM gates `i, f, c, o` → `i, f, g, o`; `cell_clip` kept as [`FloatLayer::cell_clip`]) |
//! | `REVERSE_V2` (time), the same sequence op on the reversed and the original sequence, the last step of each, `CONCATENATION` `[forward, backward]` | a bidirectional layer (Keras `Bidirectional`, concat merge), pooling [`Pool::FinalStates`] |
//! | `UNPACK` of the time steps, one copy of a `SimpleRNN` / `GRU` / `LSTM` cell per step, then the last step's `h` (or `PACK` into the next unrolled layer) | recurrent layer(s), pooling `Last` (Keras `unroll=True`; see tflite_unroll.rs); the last layer's `PACK`ed whole sequence reduced over time by `MEAN` / `REDUCE_MAX` / `SUM`: pooling `Mean` / `Max` / `Sum` |
//! | the same with a second cell copy reading the steps from the last (`go_backwards=True`), or both joined by a `CONCATENATION` `[forward, backward]` (of the final states, or of the `PACK`s, the backward one re-reversed by `REVERSE_V2`) | a reverse / bidirectional layer (Keras `Bidirectional`, concat merge; window mode), a last one pooled [`Pool::FinalStates`] |
//! | `STRIDED_SLICE` of the last time step / `MEAN` / `REDUCE_MAX` / `SUM` over time | pooling `Last` / `Mean` / `Max` / `Sum` |
//! | `FULLY_CONNECTED` after it | hidden head layers, the last one the head |
//! | `RELU` / `LOGISTIC` / `TANH` after a dense | its activation (on the last one: the output activation) |
//! | `SOFTMAX` (beta 1) at the end | softmax output |
//! | `RESHAPE` / `SQUEEZE` / `EXPAND_DIMS` that keep the values | dropped |
//!
//! Refused by name: a `WHILE` loop (what Keras 3 RNN layers convert to), an unrolled layer
//! whose steps are not copies of one cell, an unrolled `Bidirectional` merge other than
//! concat (the op joining the two directions), an unrolled `go_backwards=True` layer returning
//! sequences (stacked in reversed time order), bidirectional sequence ops, LSTM projection clipping, CIFG, projection and layer-norm LSTMs,
//! time-major sequence ops, integer model inputs/outputs, and any other operator (one error
//! naming the operator and its index).

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use tinyrnn::model::{CellKind, DenseAct, OutputAct, Pool, RnnAct};

use super::tflite_fb::{Buf, Table};
use crate::ir::{FloatDense, FloatLayer, FloatModel, FrameOp};

#[path = "tflite_unroll.rs"]
mod unroll;

/// `BuiltinOperator` names by code (schema order).
const OP_NAMES: &[&str] = &[
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES",
    "CUMSUM",
    "CALL_ONCE",
    "BROADCAST_TO",
    "RFFT2D",
    "CONV_3D",
    "IMAG",
    "REAL",
    "COMPLEX_ABS",
    "HASHTABLE",
    "HASHTABLE_FIND",
    "HASHTABLE_IMPORT",
    "HASHTABLE_SIZE",
    "REDUCE_ALL",
    "CONV_3D_TRANSPOSE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "BROADCAST_ARGS",
    "RANDOM_STANDARD_NORMAL",
    "BUCKETIZE",
    "RANDOM_UNIFORM",
    "MULTINOMIAL",
    "GELU",
    "DYNAMIC_UPDATE_SLICE",
    "RELU_0_TO_1",
    "UNSORTED_SEGMENT_PROD",
    "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM",
    "ATAN2",
    "UNSORTED_SEGMENT_MIN",
    "SIGN",
    "BITCAST",
    "BITWISE_XOR",
    "RIGHT_SHIFT",
];

/// `BuiltinOptions` union tags of the options this importer reads.
mod opt {
    pub const FULLY_CONNECTED: u8 = 8;
    pub const CONCATENATION: u8 = 10;
    pub const SOFTMAX: u8 = 9;
    pub const REDUCER: u8 = 27;
    pub const SEQUENCE_RNN: u8 = 31;
    pub const STRIDED_SLICE: u8 = 32;
    pub const UNIDIRECTIONAL_SEQUENCE_LSTM: u8 = 71;
}

/// Element types (`TensorType`).
const T_NAMES: &[&str] = &[
    "FLOAT32",
    "FLOAT16",
    "INT32",
    "UINT8",
    "INT64",
    "STRING",
    "BOOL",
    "INT16",
    "COMPLEX64",
    "INT8",
    "FLOAT64",
];
const FLOAT32: u8 = 0;
const FLOAT16: u8 = 1;
const INT32: u8 = 2;
const UINT8: u8 = 3;
const INT64: u8 = 4;
const INT16: u8 = 7;
const INT8: u8 = 9;

fn type_name(t: u8) -> String {
    T_NAMES
        .get(t as usize)
        .map_or_else(|| format!("type {t}"), |s| (*s).to_string())
}

/// What to export instead of a WHILE-loop graph.
const WHILE_HINT: &str =
    "Keras 3 recurrent layers (and tf_keras ones other than LSTM) convert to a WHILE loop, \
which tinyrnn does not import: import the .keras file itself, or export ONNX \
(`model.export(path, format=\"onnx\")`), or convert a tf_keras (Keras 2) LSTM, which becomes \
UNIDIRECTIONAL_SEQUENCE_LSTM";

/// Per-tensor or per-channel quantization.
#[derive(Debug, Clone)]
struct Quant {
    scale: Vec<f32>,
    zero_point: Vec<i64>,
    dim: usize,
}

#[derive(Debug, Clone)]
struct Tensor {
    name: String,
    shape: Vec<i32>,
    /// `shape_signature` if present (−1 = dynamic), else `shape`.
    sig: Vec<i32>,
    dtype: u8,
    buffer: usize,
    quant: Option<Quant>,
    sparse: bool,
}

struct Op<'a> {
    name: String,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    opt_type: u8,
    opts: Option<Table<'a>>,
}

struct Graph<'a> {
    bytes: &'a [u8],
    buffers: Vec<Table<'a>>,
    tensors: Vec<Tensor>,
    /// Constant tensors produced by `DEQUANTIZE` of a constant: output → source.
    alias: HashMap<usize, usize>,
}

fn op_name(codes: &[(i32, Option<String>)], idx: u32) -> Result<String> {
    let (code, custom) = codes
        .get(idx as usize)
        .ok_or_else(|| anyhow!("operator code index {idx} out of range"))?;
    Ok(match (*code, custom) {
        (32, Some(c)) => format!("CUSTOM '{c}'"),
        (c, _) => OP_NAMES
            .get(c as usize)
            .map_or_else(|| format!("builtin operator {c}"), |s| (*s).to_string()),
    })
}

fn read_tensor(t: &Table) -> Result<Tensor> {
    let shape = t.i32s(0)?;
    let sig = t.i32s(7)?;
    let quant = match t.table(4)? {
        None => None,
        Some(q) => {
            let scale = q.f32s(2)?;
            if scale.is_empty() {
                None
            } else {
                Some(Quant {
                    scale,
                    zero_point: q.i64s(3)?,
                    dim: usize::try_from(q.i32(6, 0)?)
                        .map_err(|_| anyhow!("negative quantized_dimension"))?,
                })
            }
        }
    };
    Ok(Tensor {
        name: t.string(3)?.unwrap_or_default(),
        sig: if sig.is_empty() { shape.clone() } else { sig },
        shape,
        dtype: t.u8(1, 0)?,
        buffer: t.u32(2, 0)? as usize,
        quant,
        sparse: t.table(6)?.is_some(),
    })
}

impl<'a> Graph<'a> {
    fn tensor(&self, i: i32) -> Result<&Tensor> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.tensors.get(i))
            .ok_or_else(|| anyhow!("tensor index {i} out of range"))
    }

    /// The stored bytes of tensor `i`'s buffer (empty for a non-constant).
    fn data(&self, i: usize) -> Result<&'a [u8]> {
        let t = &self.tensors[i];
        let Some(b) = self.buffers.get(t.buffer) else {
            bail!("tensor '{}': buffer {} out of range", t.name, t.buffer);
        };
        let off = b.u64(1, 0)?;
        if off > 1 {
            let size = b.u64(2, 0)?;
            return usize::try_from(off)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(o, s)| self.bytes.get(o..o.checked_add(s)?))
                .ok_or_else(|| anyhow!("tensor '{}': external buffer out of bounds", t.name));
        }
        b.vector(0, 1)?.bytes()
    }

    fn is_const(&self, i: i32) -> bool {
        let Ok(i) = usize::try_from(i) else {
            return false;
        };
        if self.alias.contains_key(&i) {
            return true;
        }
        i < self.tensors.len() && self.data(i).is_ok_and(|d| !d.is_empty())
    }

    /// Whether optional input `k` of `op` is present.
    fn has(&self, op: &Op, k: usize) -> bool {
        op.inputs.get(k).is_some_and(|&i| i >= 0)
    }

    /// Constant input `k` of `op` as (shape, dequantized values).
    fn constant(&self, op: &Op, k: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let i = *op
            .inputs
            .get(k)
            .ok_or_else(|| anyhow!("{}: input {k} missing", op.name))?;
        let mut idx = usize::try_from(i).map_err(|_| anyhow!("{}: input {k} missing", op.name))?;
        if idx >= self.tensors.len() {
            bail!("{}: input {k}: tensor index {idx} out of range", op.name);
        }
        if let Some(&src) = self.alias.get(&idx) {
            idx = src;
        }
        self.dequantize(idx)
            .with_context(|| format!("{} input {k} ('{}')", op.name, self.tensors[idx].name))
    }

    fn dequantize(&self, idx: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = &self.tensors[idx];
        if t.sparse {
            bail!("sparse tensors are not supported");
        }
        let shape = t
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| anyhow!("dimension {d} in a constant")))
            .collect::<Result<Vec<_>>>()?;
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| anyhow!("shape {shape:?} overflows"))?;
        let data = self.data(idx)?;
        if data.is_empty() {
            bail!("not a constant (no data)");
        }
        let size = match t.dtype {
            FLOAT32 | INT32 => 4,
            FLOAT16 | INT16 => 2,
            INT8 | UINT8 => 1,
            INT64 => 8,
            d => bail!("element type {} is not supported", type_name(d)),
        };
        if n.checked_mul(size) != Some(data.len()) {
            bail!(
                "{} bytes of data for shape {shape:?} of {}",
                data.len(),
                type_name(t.dtype)
            );
        }
        let raw: Vec<f64> = match t.dtype {
            FLOAT32 => {
                return Ok((
                    shape,
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ))
            }
            FLOAT16 => {
                return Ok((
                    shape,
                    data.chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                ))
            }
            INT8 => data.iter().map(|&b| b as i8 as f64).collect(),
            UINT8 => data.iter().map(|&b| b as f64).collect(),
            INT16 => data
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
                .collect(),
            INT32 => data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            _ => data
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    i64::from_le_bytes(a) as f64
                })
                .collect(),
        };
        let Some(q) = &t.quant else {
            bail!(
                "{} constant without quantization parameters",
                type_name(t.dtype)
            );
        };
        let nch = q.scale.len();
        let (stride, dim) = if nch == 1 {
            (1, 1)
        } else {
            let d = *shape
                .get(q.dim)
                .ok_or_else(|| anyhow!("quantized_dimension {} out of range", q.dim))?;
            if d != nch {
                bail!("{nch} scales for {d} channels");
            }
            (shape[q.dim + 1..].iter().product::<usize>(), d)
        };
        if !q.zero_point.is_empty() && q.zero_point.len() != nch {
            bail!("{} zero points for {nch} scales", q.zero_point.len());
        }
        let v = raw
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let c = (i / stride.max(1)) % dim;
                let zp = q.zero_point.get(c).copied().unwrap_or(0) as f64;
                ((x - zp) * q.scale[c] as f64) as f32
            })
            .collect::<Vec<_>>();
        if v.iter().any(|x| !x.is_finite()) {
            bail!("non-finite dequantized values");
        }
        Ok((shape, v))
    }

    /// Constant int32/int64 input `k` of `op` as integers.
    fn ints(&self, op: &Op, k: usize) -> Result<Vec<i64>> {
        let i = op.inputs.get(k).copied().unwrap_or(-1);
        let idx = usize::try_from(i)
            .ok()
            .filter(|&i| i < self.tensors.len())
            .ok_or_else(|| anyhow!("{}: input {k} missing", op.name))?;
        let t = &self.tensors[idx];
        let data = self.data(idx)?;
        match t.dtype {
            INT32 => Ok(data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect()),
            INT64 => Ok(data
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    i64::from_le_bytes(a)
                })
                .collect()),
            d => bail!(
                "{}: input {k} is {} (expected int32 constants)",
                op.name,
                type_name(d)
            ),
        }
    }

    /// A `[rows, cols]` constant.
    fn matrix(
        &self,
        op: &Op,
        k: usize,
        rows: Option<usize>,
        cols: usize,
    ) -> Result<(usize, Vec<f32>)> {
        let (s, v) = self.constant(op, k)?;
        match s[..] {
            [r, c] if c == cols && rows.is_none_or(|want| want == r) => Ok((r, v)),
            _ => bail!(
                "{} input {k}: weight shape {s:?}, expected [{}, {cols}]",
                op.name,
                rows.map_or("?".to_string(), |r| r.to_string())
            ),
        }
    }

    /// A `[n]` constant, or zeros if the optional input is absent.
    fn bias(&self, op: &Op, k: usize, n: usize) -> Result<Vec<f32>> {
        if !self.has(op, k) {
            return Ok(vec![0.0; n]);
        }
        let (s, v) = self.constant(op, k)?;
        if s != [n] {
            bail!("{} input {k}: bias shape {s:?}, expected [{n}]", op.name);
        }
        Ok(v)
    }
}

fn fused(op: &Op, code: u8) -> Result<DenseAct> {
    Ok(match code {
        0 => DenseAct::Identity,
        1 => DenseAct::Relu,
        2 => DenseAct::Clip { lo: -1.0, hi: 1.0 },
        3 => DenseAct::Clip { lo: 0.0, hi: 6.0 },
        4 => DenseAct::Tanh,
        c => bail!("{}: fused activation {c} is not supported", op.name),
    })
}

fn options<'a>(op: &Op<'a>, tag: u8) -> Result<Option<Table<'a>>> {
    match op.opts {
        Some(t) if op.opt_type == tag => Ok(Some(t)),
        None if op.opt_type == 0 => Ok(None),
        _ => bail!(
            "{}: unexpected options (union tag {}, expected {tag})",
            op.name,
            op.opt_type
        ),
    }
}

/// Where the running value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `[1, T, width]`: one vector per frame.
    Frames,
    /// One vector per sequence (after the reduction over time).
    Pooled,
}

/// Imports a `.tflite` flatbuffer.
///
/// # Errors
/// A corrupt flatbuffer, a WHILE-loop graph (with what to export instead), an operator or an
/// option this importer does not support (named, with the operator's index).
pub fn import(bytes: &[u8]) -> Result<FloatModel> {
    let buf = Buf::new(bytes);
    let root = buf.root()?;
    let codes = root
        .tables(1)?
        .iter()
        .map(|c| {
            let dep = c.u8(0, 0)? as i8 as i32;
            let code = c.i32(3, 0)?;
            Ok((dep.max(code), c.string(1)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let subgraphs = root.tables(2)?;
    let buffers = root.tables(4)?;
    let Some(sg) = subgraphs.first() else {
        bail!("the model has no subgraph");
    };
    // Refusals that concern the whole file, whichever subgraph they are in.
    for (s, g) in subgraphs.iter().enumerate() {
        for (i, o) in g.tables(3)?.iter().enumerate() {
            let name = op_name(&codes, o.u32(0, 0)?)?;
            let at = if s == 0 {
                format!("op {i}")
            } else {
                format!("op {i} of subgraph {s}")
            };
            match name.as_str() {
                "WHILE" => bail!("{at} ({name}): a WHILE-loop graph: {WHILE_HINT}"),
                "BIDIRECTIONAL_SEQUENCE_LSTM" | "BIDIRECTIONAL_SEQUENCE_RNN" => bail!(
                    "{at} ({name}) is not supported: tinyrnn imports the form the converter writes for a Keras Bidirectional layer (REVERSE_V2, two UNIDIRECTIONAL_SEQUENCE ops, CONCATENATION)"
                ),
                _ => {}
            }
        }
    }
    let mut g = Graph {
        bytes,
        buffers,
        tensors: sg
            .tables(0)?
            .iter()
            .enumerate()
            .map(|(i, t)| read_tensor(t).with_context(|| format!("tensor {i}")))
            .collect::<Result<Vec<_>>>()?,
        alias: HashMap::new(),
    };
    let ops = sg
        .tables(3)?
        .iter()
        .map(|o| {
            Ok(Op {
                name: op_name(&codes, o.u32(0, 0)?)?,
                inputs: o.i32s(1)?,
                outputs: o.i32s(2)?,
                opt_type: o.u8(3, 0)?,
                opts: o.table(4)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (inputs, outputs) = (sg.i32s(1)?, sg.i32s(2)?);
    let ([input], [output]) = (&inputs[..], &outputs[..]) else {
        bail!(
            "the model has {} inputs and {} outputs (one of each is supported)",
            inputs.len(),
            outputs.len()
        );
    };
    let tin = g.tensor(*input)?.clone();
    let tout = g.tensor(*output)?.clone();
    for (what, t) in [("input", &tin), ("output", &tout)] {
        if t.dtype != FLOAT32 {
            bail!(
                "the model's {what} '{}' is {} (converted with inference_{what}_type): convert with float input and output (the converter's default); tinyrnn quantizes the model itself",
                t.name,
                type_name(t.dtype)
            );
        }
    }
    let input_size = match tin.sig[..] {
        [b, _, f] if (b == 1 || b == -1) && f > 0 => f as usize,
        _ => bail!(
            "the model's input '{}' has shape {:?}; expected [1, time, features]",
            tin.name,
            tin.sig
        ),
    };
    let time_dim = tin.sig[1];

    let mut cur = *input;
    let mut width = input_size;
    let mut phase = Phase::Frames;
    let mut pre: Vec<FloatDense> = Vec::new();
    let mut layers: Vec<FloatLayer> = Vec::new();
    let mut pool = Pool::Last;
    let mut dense: Vec<FloatDense> = Vec::new();
    let mut softmax = false;
    // Ops already read as part of a matched pattern (a Bidirectional or unrolled layer).
    let mut taken: Vec<usize> = Vec::new();
    // The UNPACK of unrolled layers and their fixed length.
    let mut unrolled: Option<(usize, usize)> = None;
    // The time axis of the running sequence: 1 of [1, T, F]; an unrolled layer's packed
    // sequence may put it first ([T, 1, H]).
    let mut time_axis = 1usize;
    for (i, op) in ops.iter().enumerate() {
        if taken.contains(&i) {
            continue;
        }
        let ctx = || format!("op {i} ({})", op.name);
        let &[data_in, ..] = &op.inputs[..] else {
            bail!("{}: no input", ctx());
        };
        let &[out, ..] = &op.outputs[..] else {
            bail!("{}: no output", ctx());
        };
        if op.name == "DEQUANTIZE" && data_in != cur && g.is_const(data_in) {
            let (o, s) = (
                usize::try_from(out).ok().filter(|&o| o < g.tensors.len()),
                usize::try_from(data_in).ok(),
            );
            let (Some(o), Some(s)) = (o, s) else {
                bail!("{}: tensor index out of range", ctx());
            };
            g.alias.insert(o, s);
            continue;
        }
        let supported = matches!(
            op.name.as_str(),
            "QUANTIZE"
                | "DEQUANTIZE"
                | "FULLY_CONNECTED"
                | "UNIDIRECTIONAL_SEQUENCE_LSTM"
                | "UNIDIRECTIONAL_SEQUENCE_RNN"
                | "UNPACK"
                | "REVERSE_V2"
                | "STRIDED_SLICE"
                | "MEAN"
                | "REDUCE_MAX"
                | "SUM"
                | "RESHAPE"
                | "SQUEEZE"
                | "EXPAND_DIMS"
                | "RELU"
                | "RELU6"
                | "LOGISTIC"
                | "TANH"
                | "SOFTMAX"
        );
        if !supported {
            let hint = match op.name.as_str() {
                "SPLIT" | "SPLIT_V" | "SLICE" | "GATHER" => {
                    ": it splits the sequence into time steps some other way than the UNPACK of an unrolled recurrent layer (Keras `unroll=True`), the form tinyrnn imports"
                }
                "VAR_HANDLE" | "READ_VARIABLE" | "ASSIGN_VARIABLE" | "CALL_ONCE" => {
                    ": resource variables belong to a WHILE-loop graph; import the .keras file or a tf_keras conversion instead"
                }
                _ => "",
            };
            bail!("{} is not supported{hint}", ctx());
        }
        if data_in != cur {
            bail!(
                "{}: its input 0 ('{}') is not the running value ('{}'): only a chain of operators from the model's input to its output is supported",
                ctx(),
                g.tensor(data_in).map(|t| t.name.clone()).unwrap_or_default(),
                g.tensor(cur)?.name
            );
        }
        if softmax
            && !matches!(
                op.name.as_str(),
                "QUANTIZE" | "DEQUANTIZE" | "RESHAPE" | "SQUEEZE"
            )
        {
            bail!("{}: operators after SOFTMAX are not supported", ctx());
        }
        let tout_op = g.tensor(out).with_context(ctx)?.clone();
        match op.name.as_str() {
            "QUANTIZE" | "DEQUANTIZE" => {}
            "RESHAPE" | "SQUEEZE" | "EXPAND_DIMS" => {
                let tin_op = g.tensor(data_in)?;
                let keeps = match phase {
                    Phase::Frames => {
                        tout_op.sig.len() == 3
                            && tout_op.sig[2] as i64 == width as i64
                            && tin_op.sig.len() == 3
                    }
                    Phase::Pooled => {
                        tout_op
                            .sig
                            .last()
                            .is_some_and(|&d| d as i64 == width as i64)
                            && tout_op.sig[..tout_op.sig.len() - 1]
                                .iter()
                                .all(|&d| d == 1 || d == -1)
                    }
                };
                if !keeps {
                    bail!(
                        "{}: reshapes {:?} to {:?}, which is not a no-op on the per-{} vector of width {width}",
                        ctx(),
                        tin_op.sig,
                        tout_op.sig,
                        if phase == Phase::Frames { "frame" } else { "sequence" }
                    );
                }
            }
            "FULLY_CONNECTED" => {
                let o = options(op, opt::FULLY_CONNECTED).with_context(ctx)?;
                let act = fused(op, o.map_or(Ok(0), |o| o.u8(0, 0))?)?;
                let (n, w) = g.matrix(op, 1, None, width).with_context(ctx)?;
                let b = g.bias(op, 2, n).with_context(ctx)?;
                let d = FloatDense {
                    out_size: n,
                    in_size: width,
                    weight: w,
                    bias: b,
                    act,
                };
                match phase {
                    Phase::Frames if !layers.is_empty() => bail!(
                        "{}: a per-frame dense layer after a recurrent layer is not supported",
                        ctx()
                    ),
                    Phase::Frames => {
                        if tout_op.sig.len() != 3 {
                            bail!(
                                "{}: flattens the sequence (output shape {:?}); a per-frame dense layer keeps [1, time, units]",
                                ctx(),
                                tout_op.sig
                            );
                        }
                        pre.push(d);
                    }
                    Phase::Pooled => dense.push(d),
                }
                width = n;
            }
            "RELU" | "RELU6" | "LOGISTIC" | "TANH" => {
                let act = match op.name.as_str() {
                    "RELU" => DenseAct::Relu,
                    "RELU6" => DenseAct::Clip { lo: 0.0, hi: 6.0 },
                    "LOGISTIC" => DenseAct::Sigmoid,
                    _ => DenseAct::Tanh,
                };
                let last = match phase {
                    Phase::Frames if layers.is_empty() => pre.last_mut(),
                    Phase::Frames => None,
                    Phase::Pooled => dense.last_mut(),
                };
                match last {
                    Some(d) if d.act == DenseAct::Identity => d.act = act,
                    Some(_) => bail!("{}: a second activation on one dense layer", ctx()),
                    None => bail!(
                        "{}: an activation that does not follow a dense layer is not supported",
                        ctx()
                    ),
                }
            }
            "SOFTMAX" => {
                let o = options(op, opt::SOFTMAX).with_context(ctx)?;
                let beta = o.map_or(Ok(0.0), |o| o.f32(0, 0.0))?;
                if beta != 1.0 {
                    bail!("{}: beta {beta} (only 1 is supported)", ctx());
                }
                if phase != Phase::Pooled {
                    bail!("{}: a softmax over each frame is not supported", ctx());
                }
                softmax = true;
            }
            "UNIDIRECTIONAL_SEQUENCE_LSTM" | "UNIDIRECTIONAL_SEQUENCE_RNN" => {
                if phase != Phase::Frames {
                    bail!("{}: a recurrent layer after the reduction over time", ctx());
                }
                let l = if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM" {
                    lstm(&g, op, width)
                } else {
                    rnn(&g, op, width)
                }
                .with_context(ctx)?;
                if tout_op.sig.len() != 3 {
                    bail!(
                        "{}: output shape {:?}; expected the whole sequence [1, time, units]",
                        ctx(),
                        tout_op.sig
                    );
                }
                width = l.hidden_size;
                layers.push(l);
            }
            "UNPACK" => {
                if phase != Phase::Frames {
                    bail!("{}: splits a pooled vector", ctx());
                }
                if !layers.is_empty() {
                    bail!(
                        "{}: an unrolled layer after a sequence op is not supported",
                        ctx()
                    );
                }
                let u = unroll::unrolled(&g, &ops, i, cur, width).with_context(ctx)?;
                taken.extend(u.used);
                width = u.layers.last().map_or(width, FloatLayer::out_size);
                unrolled = Some((i, u.steps));
                // A last backward or bidirectional layer's output is its final state(s): a
                // backward direction's is its state after frame 0.
                pool = match u.layers.last().map(|l| l.direction) {
                    Some(tinyrnn::Direction::Forward) | None => Pool::Last,
                    Some(_) => Pool::FinalStates,
                };
                layers.extend(u.layers);
                cur = u.out;
                if let Some(t) = u.time {
                    // The whole sequence, read by the reduction over time (the arm below).
                    time_axis = t;
                } else {
                    phase = Phase::Pooled;
                }
                continue;
            }
            "REVERSE_V2" => {
                if phase != Phase::Frames {
                    bail!("{}: reverses a pooled vector", ctx());
                }
                let axes = g.ints(op, 1).with_context(ctx)?;
                if axes != [1] && axes != [-2] {
                    bail!(
                        "{}: reverses axes {axes:?}; only the time axis of a Bidirectional layer is supported",
                        ctx()
                    );
                }
                let (l, used, merged) =
                    bidirectional(&g, &ops, i, cur, width, time_dim).with_context(ctx)?;
                taken.extend(used);
                width = l.out_size();
                layers.push(l);
                pool = Pool::FinalStates;
                phase = Phase::Pooled;
                cur = merged;
                continue;
            }
            "STRIDED_SLICE" => {
                if phase != Phase::Frames {
                    bail!("{}: slices a pooled vector", ctx());
                }
                last_step(&g, op, width, time_dim, &tout_op).with_context(ctx)?;
                pool = Pool::Last;
                phase = Phase::Pooled;
            }
            _ => {
                // MEAN / REDUCE_MAX / SUM
                if phase != Phase::Frames {
                    bail!("{}: reduces a pooled vector", ctx());
                }
                options(op, opt::REDUCER).with_context(ctx)?;
                let axes = g.ints(op, 1).with_context(ctx)?;
                let rank = g.tensor(data_in).with_context(ctx)?.sig.len() as i64;
                let time =
                    |&a: &i64| (-rank..rank).contains(&a) && a.rem_euclid(rank) == time_axis as i64;
                if !matches!(&axes[..], [a] if time(a)) {
                    bail!(
                        "{}: reduces axes {axes:?}; only the time axis ({time_axis}) is supported",
                        ctx()
                    );
                }
                pool = match op.name.as_str() {
                    "MEAN" => Pool::Mean,
                    "REDUCE_MAX" => Pool::Max,
                    _ => Pool::Sum,
                };
                phase = Phase::Pooled;
            }
        }
        cur = out;
    }
    if cur != *output {
        bail!(
            "the operator chain ends at tensor '{}', not at the model's output '{}'",
            g.tensor(cur)?.name,
            tout.name
        );
    }
    if layers.is_empty() {
        bail!("the model has no recurrent layer (UNIDIRECTIONAL_SEQUENCE_LSTM or _RNN)");
    }
    if phase != Phase::Pooled {
        bail!("the model outputs a whole sequence; a reduction over time (last step, MEAN) is expected before the output");
    }
    let mut output_act = OutputAct::Identity;
    let mut head = dense.pop();
    if let Some(h) = &mut head {
        match (h.act, softmax) {
            (DenseAct::Identity, true) => output_act = OutputAct::Softmax,
            (DenseAct::Identity, false) => {}
            (DenseAct::Sigmoid, false) => output_act = OutputAct::Sigmoid,
            (DenseAct::Tanh, false) => output_act = OutputAct::Tanh,
            (a, true) => bail!(
                "the last dense layer has activation {} before the softmax",
                a.name()
            ),
            (_, false) => {}
        }
        if output_act != OutputAct::Identity {
            h.act = DenseAct::Identity;
        }
    } else if softmax {
        output_act = OutputAct::Softmax;
    }
    // A last dense layer with relu/clip activation is a hidden head layer, not the head.
    if head.as_ref().is_some_and(|h| h.act != DenseAct::Identity) {
        dense.extend(head.take());
    }
    let m = FloatModel {
        input_size,
        norm: None,
        pre: pre.into_iter().map(FrameOp::Dense).collect(),
        layers,
        pool,
        mlp: dense.into_iter().map(FrameOp::Dense).collect(),
        head,
        output_act,
        name: String::new(),
    };
    if let Some((at, steps)) = unrolled {
        m.validate().map_err(|e| anyhow!("{e}"))?;
        let quantized = g.tensors.iter().any(|t| t.quant.is_some());
        let tol = if quantized {
            UNROLL_TOL_QUANT
        } else {
            UNROLL_TOL
        };
        let err = unroll::check(&g, &ops, *input, *output, &m, steps, tol)?;
        let how = if m.streams() {
            "read as streaming layer(s)"
        } else {
            "read as backward/bidirectional layer(s) (window mode: each run reads the whole sequence)"
        };
        eprintln!(
            "note: op {at} (UNPACK): {} unrolled recurrent layer(s) (Keras unroll=True), unrolled for {steps} time steps, {how} (outputs within {err:.0e} of the graph's on random {steps}-step inputs); tinyrnn runs sequences of any length: a longer or shorter one is what re-unrolling for its length would compute",
            m.layers.len()
        );
    }
    Ok(m)
}

/// How far the imported model's outputs may be from the unrolled graph's own (evaluated in
/// f64 on random inputs) for a float file: both compute the same equations in f64 with the
/// same constants, so only summation order differs.
const UNROLL_TOL: f64 = 1e-9;
/// The same for a quantized file: the converter stores the first step's folded constants
/// (the zero initial state's gate biases) and split biases as separate quantized tensors,
/// which differ from the recurrent projection's bias by their rounding.
const UNROLL_TOL_QUANT: f64 = 1e-2;

/// Keras `Bidirectional(LSTM(..))` / `Bidirectional(SimpleRNN(..))` (`merge_mode="concat"`,
/// `return_sequences=False`) as the TFLite converter writes it, from the `REVERSE_V2` at
/// `ops[at]` of the running sequence `x`:
///
/// ```text
/// xr = REVERSE_V2(x, time axis)
/// fwd = SEQUENCE_OP(x)          bwd = SEQUENCE_OP(xr)          (LSTM or RNN, the same op)
/// y = CONCATENATION(fwd[:, -1], bwd[:, -1], last axis)
/// ```
///
/// `bwd[:, -1]` is the backward direction's state after it has read the whole sequence from
/// the last frame to the first: the IR's [`Pool::FinalStates`] `[fwd_{T−1}; bwd_0]`. Matched
/// by dataflow (each intermediate tensor read by exactly the next op of the pattern), not by
/// order or names. Returns the layer ([`tinyrnn::Direction::Bidirectional`]), the indices of
/// the ops it used and the merged tensor.
fn bidirectional(
    g: &Graph,
    ops: &[Op],
    at: usize,
    x: i32,
    width: usize,
    time: i32,
) -> Result<(FloatLayer, Vec<usize>, i32)> {
    const NOT: &str = "not a Keras Bidirectional layer (concat merge, return_sequences=False)";
    let readers = |t: i32| -> Vec<usize> {
        ops.iter()
            .enumerate()
            .filter(|(_, o)| o.inputs.contains(&t))
            .map(|(j, _)| j)
            .collect()
    };
    let out0 = |j: usize| -> Result<i32> {
        ops[j]
            .outputs
            .first()
            .copied()
            .ok_or_else(|| anyhow!("op {j} ({}): no output", ops[j].name))
    };
    let only_reader = |t: i32, what: &str| -> Result<usize> {
        match readers(t)[..] {
            [j] if j > at => Ok(j),
            ref r => bail!("the {what} is read by {} operators: {NOT}", r.len()),
        }
    };
    let is_seq = |o: &Op| {
        matches!(
            o.name.as_str(),
            "UNIDIRECTIONAL_SEQUENCE_LSTM" | "UNIDIRECTIONAL_SEQUENCE_RNN"
        )
    };
    let rev = out0(at)?;
    let bwd = only_reader(rev, "reversed sequence")?;
    if !is_seq(&ops[bwd]) || ops[bwd].inputs.first() != Some(&rev) {
        bail!(
            "the reversed sequence is read by op {bwd} ({}): {NOT}",
            ops[bwd].name
        );
    }
    let mut x_readers = readers(x);
    x_readers.retain(|&j| j != at);
    let &[fwd] = &x_readers[..] else {
        bail!(
            "the sequence is read by {} operators besides the REVERSE_V2: {NOT}",
            x_readers.len()
        );
    };
    if fwd < at || ops[fwd].name != ops[bwd].name || ops[fwd].inputs.first() != Some(&x) {
        bail!(
            "the sequence is read by op {fwd} ({}), the reversed one by op {bwd} ({}): {NOT}",
            ops[fwd].name,
            ops[bwd].name
        );
    }
    let layer = |j: usize| -> Result<FloatLayer> {
        let op = &ops[j];
        let l = if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM" {
            lstm(g, op, width)
        } else {
            rnn(g, op, width)
        }
        .with_context(|| format!("op {j} ({})", op.name))?;
        let t = g.tensor(out0(j)?)?;
        if t.sig.len() != 3 {
            bail!(
                "op {j} ({}): output shape {:?}; expected the whole sequence [1, time, units]",
                op.name,
                t.sig
            );
        }
        Ok(l)
    };
    let (f, b) = (layer(fwd)?, layer(bwd)?);
    let last = |j: usize, what: &str| -> Result<usize> {
        let s = only_reader(out0(j)?, what)?;
        if ops[s].name != "STRIDED_SLICE" || ops[s].inputs.first() != Some(&out0(j)?) {
            bail!(
                "the {what} is read by op {s} ({}), not by a slice of its last step (return_sequences=True is not supported)",
                ops[s].name
            );
        }
        let t = g.tensor(out0(s)?)?;
        last_step(g, &ops[s], f.hidden_size, time, t)
            .with_context(|| format!("op {s} (STRIDED_SLICE)"))?;
        Ok(s)
    };
    let (sf, sb) = (last(fwd, "forward output")?, last(bwd, "backward output")?);
    let cat = only_reader(out0(sf)?, "forward last step")?;
    let c = &ops[cat];
    if c.name != "CONCATENATION" || c.inputs[..] != [out0(sf)?, out0(sb)?] {
        bail!(
            "op {cat} ({}) does not concatenate [forward, backward] last steps (Keras merge_mode=\"concat\"): {NOT}",
            c.name
        );
    }
    let o = options(c, opt::CONCATENATION)?;
    let axis = o.map_or(Ok(0), |o| o.i32(0, 0))?;
    let act = o.map_or(Ok(0), |o| o.u8(1, 0))?;
    let merged = out0(cat)?;
    let rank = g.tensor(merged)?.sig.len() as i32;
    if (axis != -1 && axis != rank - 1) || act != 0 {
        bail!(
            "op {cat} (CONCATENATION): axis {axis} of rank {rank}, fused activation {act}: {NOT}"
        );
    }
    if f.hidden_size != b.hidden_size {
        bail!(
            "the directions have {} and {} units",
            f.hidden_size,
            b.hidden_size
        );
    }
    let mut l = f;
    l.direction = tinyrnn::Direction::Bidirectional;
    l.backward = Some(Box::new(b));
    Ok((l, vec![fwd, bwd, sf, sb, cat], merged))
}

/// `UNIDIRECTIONAL_SEQUENCE_LSTM` (inputs: 0 x, 1–4 input weights i f c o, 5–8 recurrent
/// weights, 9–11 peepholes, 12–15 biases, 16–17 projection, 18–19 states, 20–23 layer norm).
fn lstm(g: &Graph, op: &Op, width: usize) -> Result<FloatLayer> {
    let o = options(op, opt::UNIDIRECTIONAL_SEQUENCE_LSTM)?;
    let get = |id: usize| o.map_or(Ok(0.0), |o| o.f32(id, 0.0));
    let act = o.map_or(Ok(0), |o| o.u8(0, 0))?;
    if act != 4 {
        bail!(
            "cell activation {} (only TANH is supported)",
            fused(op, act)?.name()
        );
    }
    let (cell_clip, proj_clip) = (get(1)?, get(2)?);
    // 0 = no clipping (the schema's default); the converter writes 10 for Keras LSTMs.
    let cell_clip = match cell_clip {
        0.0 => None,
        c if c > 0.0 && c.is_finite() => Some(c),
        c => bail!("cell_clip {c} is not a positive bound"),
    };
    if proj_clip != 0.0 {
        bail!("proj_clip {proj_clip}: tinyrnn's LSTM has no projection clipping");
    }
    if o.map_or(Ok(0), |o| o.u8(3, 0))? != 0 {
        bail!("time_major inputs are not supported");
    }
    if o.map_or(Ok(0), |o| o.u8(5, 0))? != 0 {
        bail!("diagonal recurrent weights are not supported");
    }
    if !g.has(op, 1) {
        bail!("no input gate (CIFG LSTM) is not supported");
    }
    if g.has(op, 16) || g.has(op, 17) {
        bail!("an LSTM with projection is not supported");
    }
    if (20..24).any(|k| g.has(op, k)) {
        bail!("a layer-normalized LSTM is not supported");
    }
    let (h, _) = g.matrix(op, 1, None, width)?;
    let mut w_ih = Vec::with_capacity(4 * h * width);
    let mut w_hh = Vec::with_capacity(4 * h * h);
    let mut b_ih = Vec::with_capacity(4 * h);
    for k in 0..4 {
        w_ih.extend(g.matrix(op, 1 + k, Some(h), width)?.1);
        w_hh.extend(g.matrix(op, 5 + k, Some(h), h)?.1);
        if !g.has(op, 12 + k) {
            bail!("LSTM input {}: gate bias missing", 12 + k);
        }
        b_ih.extend(g.bias(op, 12 + k, h)?);
    }
    let peep = (9..12).filter(|&k| g.has(op, k)).count();
    let peephole = match peep {
        0 => None,
        3 => {
            let mut p = Vec::with_capacity(3 * h);
            for k in 9..12 {
                p.extend(g.bias(op, k, h)?);
            }
            Some(p)
        }
        _ => bail!("{peep} of 3 peephole inputs (a CIFG LSTM) is not supported"),
    };
    let peepholes = peephole.is_some();
    let mut l = FloatLayer::forward(
        CellKind::Lstm { peepholes },
        width,
        h,
        [w_ih, w_hh, b_ih, vec![0.0; 4 * h]],
    );
    l.peephole = peephole;
    l.cell_clip = cell_clip;
    Ok(l)
}

/// `UNIDIRECTIONAL_SEQUENCE_RNN` (inputs: 0 x, 1 input weights, 2 recurrent weights, 3 bias,
/// 4 state).
fn rnn(g: &Graph, op: &Op, width: usize) -> Result<FloatLayer> {
    let o = options(op, opt::SEQUENCE_RNN)?;
    if o.map_or(Ok(0), |o| o.u8(0, 0))? != 0 {
        bail!("time_major inputs are not supported");
    }
    let act = match o.map_or(Ok(0), |o| o.u8(1, 0))? {
        4 => RnnAct::Tanh,
        1 => RnnAct::Relu,
        a => bail!(
            "activation {} (TANH or RELU are supported)",
            fused(op, a)?.name()
        ),
    };
    let (h, w_ih) = g.matrix(op, 1, None, width)?;
    let (_, w_hh) = g.matrix(op, 2, Some(h), h)?;
    let b_ih = g.bias(op, 3, h)?;
    Ok(FloatLayer::forward(
        CellKind::Rnn(act),
        width,
        h,
        [w_ih, w_hh, b_ih, vec![0.0; h]],
    ))
}

/// Checks that a `STRIDED_SLICE` of `[1, T, width]` takes the last time step of everything.
fn last_step(g: &Graph, op: &Op, width: usize, time: i32, out: &Tensor) -> Result<()> {
    let o = options(op, opt::STRIDED_SLICE)?;
    let m = |id: usize| o.map_or(Ok(0), |o| o.i32(id, 0));
    let (bm, em, ellipsis, newax, shrink) = (m(0)?, m(1)?, m(2)?, m(3)?, m(4)?);
    if ellipsis != 0 || newax != 0 || o.map_or(Ok(0), |o| o.u8(5, 0))? != 0 {
        bail!("ellipsis/new-axis/offset slicing is not supported");
    }
    let (b, e, s) = (g.ints(op, 1)?, g.ints(op, 2)?, g.ints(op, 3)?);
    if b.len() != 3 || e.len() != 3 || s.len() != 3 {
        bail!("slices {} axes; expected [batch, time, features]", b.len());
    }
    let bit = |mask: i32, a: usize| mask & (1 << a) != 0;
    let whole = |a: usize, dim: i64| {
        s[a] == 1
            && (bit(bm, a) || b[a] == 0)
            && (bit(em, a) || e[a] == dim || (a == 0 && bit(shrink, 0)))
    };
    let last = s[1] == 1
        && (b[1] == -1 || (time > 0 && b[1] == time as i64 - 1))
        && !bit(bm, 1)
        && (bit(shrink, 1) || bit(em, 1) || (time > 0 && e[1] == time as i64));
    if !(whole(0, 1) && last && whole(2, width as i64) && !bit(shrink, 2)) {
        bail!(
            "slice begin {b:?} end {e:?} strides {s:?} (masks begin {bm} end {em} shrink {shrink}) is not the last time step"
        );
    }
    if out.sig.last().is_none_or(|&d| d as i64 != width as i64) {
        bail!("output shape {:?}", out.sig);
    }
    Ok(())
}

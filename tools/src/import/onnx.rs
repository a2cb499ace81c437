//! ONNX → [`FloatModel`] by symbolic evaluation of the graph.
//!
//! Every value the output depends on is evaluated, in graph order, to one of:
//!
//! * a **constant** tensor (initializers, `Constant`, and anything computed from them:
//!   constant folding of Transpose/Gather/Slice/Concat/Reshape/arithmetic…);
//! * a **symbolic shape** (a small integer vector whose entries may be the batch or time
//!   size, from `Shape` of the data);
//! * **zeros** of a symbolic shape (`ConstantOfShape`/`Expand` of 0: a zero initial state);
//! * **the sequence**: the tensor derived from the graph input, described by the meaning
//!   of each axis (batch, time, features, size-1) and by what it holds (the input with a
//!   pending per-feature affine map, or the hidden state of recurrent layer *k*, possibly
//!   through a dense head and an output activation).
//!
//! A recurrent node (`LSTM`/`GRU`/`RNN`) consumes the sequence and appends a layer; the
//! graph output must end up as the last layer's hidden state (or its head). Nothing
//! depends on the exporter's exact op sequence, so batch-first or not, `Squeeze` vs
//! `Reshape`, `Gather(-1)` vs `Slice`, `Gemm` vs `MatMul + Add` all work; anything the
//! evaluator cannot give a meaning is a one-line error naming the node and op.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tinyrnn::{CellKind, OutputAct, RnnAct};

use super::onnx_tensor::{broadcast, resolve_slice, ExternalData, Tensor};
use super::proto::{self, AttributeProto, NodeProto};
use super::ImportOptions;
use crate::ir::{FloatDense, FloatLayer, FloatModel, Norm};

/// A dimension that may be symbolic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    /// Known size.
    K(i64),
    /// Leading axis `i` of the graph input, role not yet known.
    Free(u8),
    Batch,
    Time,
    /// Unknown (only where it cannot matter: shapes of zero tensors).
    Any,
}

/// Meaning of one axis of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ax {
    /// Leading axis `i` of the graph input, role not yet known (batch or time).
    Free(u8),
    Batch,
    /// Every time step.
    Time,
    /// A size-1 time axis holding the last step.
    TimeLast,
    /// A size-1 axis (num_directions, unsqueezed, …).
    Unit,
    /// Features / hidden units / outputs, of this width.
    Feat(usize),
    /// Several layers' states stacked (`Concat` of `Y_h`s), one per `parts` entry.
    Stack(usize),
}

/// A dense map applied to a layer's hidden state.
#[derive(Debug, Clone, PartialEq)]
struct Dense {
    out: usize,
    inp: usize,
    /// `[out][inp]`.
    w: Vec<f64>,
    b: Vec<f64>,
}

/// What the sequence holds.
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// The graph input after `x·a + b` per feature.
    Input { a: Vec<f64>, b: Vec<f64> },
    /// State of recurrent layer `layer` (`h`, or `c` if `cell`), then an optional dense
    /// map, then an output activation.
    Rec {
        layer: usize,
        cell: bool,
        head: Option<Dense>,
        act: OutputAct,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Seq {
    axes: Vec<Ax>,
    /// One entry, or one per index of the `Stack` axis.
    parts: Vec<Stage>,
    /// Only the last time step is present (the time axis was selected away).
    last: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Const(Tensor),
    /// 1-D (or scalar) integer vector with symbolic entries.
    Sym {
        v: Vec<Dim>,
        scalar: bool,
    },
    /// All zeros, of these dims.
    Zeros(Vec<Dim>),
    Seq(Seq),
    /// An omitted optional input / unused output.
    Absent,
}

const RECURRENT: [&str; 3] = ["LSTM", "GRU", "RNN"];

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}
fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i)
}
fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}
fn attr_f(n: &NodeProto, name: &str) -> Option<f32> {
    attr(n, name).map(|a| a.f)
}
fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}
fn attr_strs(n: &NodeProto, name: &str) -> Option<Vec<String>> {
    attr(n, name).map(|a| {
        a.strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    })
}

fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        bail!("axis {axis} out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// Imports an ONNX model (see the module docs) read from the file `model_path`: tensors
/// stored as external data are read from files in its folder (see [`ExternalData`]).
///
/// # Errors
/// Malformed protobuf, unsupported ops/attributes (named), unrolled graphs (with a hint),
/// missing or malformed external data.
pub fn import(bytes: &[u8], opts: &ImportOptions, model_path: &Path) -> Result<FloatModel> {
    let model = proto::decode_model(bytes).map_err(|e| {
        anyhow!("not an ONNX model, a safetensors file or a tinyrnn blob (protobuf: {e})")
    })?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| anyhow!("not an ONNX model (no graph)"))?;
    if graph.node.is_empty() {
        bail!("not an ONNX model, or an empty graph (no nodes)");
    }
    if graph.output.is_empty() {
        bail!("the graph has no output");
    }
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    if !ops
        .iter()
        .any(|o| RECURRENT.contains(o) || *o == "Loop" || *o == "Scan")
    {
        let count = |op: &str| ops.iter().filter(|o| **o == op).count();
        bail!(
            "no LSTM/GRU/RNN node in the graph ({} nodes: {} MatMul/Gemm, {} Sigmoid, {} Tanh): \
             this looks like an unrolled export (torch.onnx.export's default dynamo exporter); \
             re-export with torch.onnx.export(..., dynamo=False)",
            ops.len(),
            count("MatMul") + count("Gemm"),
            count("Sigmoid"),
            count("Tanh")
        );
    }
    let mut ev = Eval::new(opts, ExternalData::beside(model_path));
    for t in &graph.initializer {
        let v = Tensor::from_proto_in(t, Some(&ev.ext))
            .with_context(|| format!("initializer `{}`", t.name))?;
        ev.vals.insert(t.name.clone(), Val::Const(v));
    }
    // The data input: the graph inputs that are not initializers.
    let data_inputs: Vec<&proto::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !ev.vals.contains_key(&i.name))
        .collect();
    let out_name = graph.output[0].name.clone();
    // Which nodes the first output needs.
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (k, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            producer.insert(o.as_str(), k);
        }
    }
    let mut needed = vec![false; graph.node.len()];
    let mut stack = vec![out_name.as_str()];
    let mut seen: HashSet<&str> = HashSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(&k) = producer.get(name) {
            needed[k] = true;
            for i in &graph.node[k].input {
                if !i.is_empty() {
                    stack.push(i.as_str());
                }
            }
        }
    }
    let used_inputs: Vec<&&proto::ValueInfoProto> = data_inputs
        .iter()
        .filter(|i| seen.contains(i.name.as_str()))
        .collect();
    let input = match used_inputs.len() {
        1 => used_inputs[0],
        0 => bail!("the output `{out_name}` does not depend on any graph input"),
        _ => bail!(
            "the graph has {} data inputs ({}): only one input sequence is supported (initial states must be initializers, not inputs)",
            used_inputs.len(),
            used_inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dims: Vec<Option<i64>> = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| s.dim.iter().map(|d| d.dim_value).collect())
        .unwrap_or_default();
    let features = match dims.last() {
        Some(Some(f)) if *f > 0 => *f as usize,
        _ => bail!(
            "input `{}` must have a fixed last (feature) dimension, got {:?}",
            input.name,
            dims
        ),
    };
    let axes = match dims.len() {
        3 => vec![Ax::Free(0), Ax::Free(1), Ax::Feat(features)],
        2 => vec![Ax::Free(0), Ax::Feat(features)],
        r => bail!(
            "input `{}` has rank {r}: expected [batch, time, features] or [time, batch, features]",
            input.name
        ),
    };
    ev.features = features;
    if dims.len() == 3 {
        for (slot, d) in ev.fixed.iter_mut().zip(&dims) {
            *slot = d.and_then(|d| usize::try_from(d).ok()).filter(|&d| d > 0);
        }
    }
    ev.vals.insert(
        input.name.clone(),
        Val::Seq(Seq {
            axes,
            parts: vec![Stage::Input {
                a: vec![1.0; features],
                b: vec![0.0; features],
            }],
            last: false,
        }),
    );
    for (k, node) in graph.node.iter().enumerate() {
        if !needed[k] {
            continue;
        }
        let label = if node.name.is_empty() {
            format!("node {k} ({})", node.op_type)
        } else {
            format!("node `{}` ({})", node.name, node.op_type)
        };
        let outs = ev.node(node).with_context(|| label.clone())?;
        for (name, v) in node.output.iter().zip(outs) {
            if !name.is_empty() {
                ev.vals.insert(name.clone(), v);
            }
        }
    }
    let out = ev
        .vals
        .get(&out_name)
        .cloned()
        .ok_or_else(|| anyhow!("the output `{out_name}` is never computed"))?;
    ev.finish(out, &out_name)
}

struct Eval<'o> {
    opts: &'o ImportOptions,
    /// Where tensors stored as external data are read from.
    ext: ExternalData,
    vals: HashMap<String, Val>,
    layers: Vec<FloatLayer>,
    features: usize,
    /// Normalization folded from the input's affine glue.
    norm: Option<Norm>,
    /// Role of the input's leading axes once a recurrent node has revealed it.
    free: [Option<Ax>; 2],
    /// Fixed sizes of the input's leading axes, when the graph input declares them (the
    /// default exporter without `dynamic_shapes` bakes the example's batch and time sizes
    /// into its `Reshape` targets).
    fixed: [Option<usize>; 2],
}

impl<'o> Eval<'o> {
    fn new(opts: &'o ImportOptions, ext: ExternalData) -> Self {
        Eval {
            opts,
            ext,
            vals: HashMap::new(),
            layers: Vec::new(),
            features: 0,
            norm: None,
            free: [None, None],
            fixed: [None, None],
        }
    }

    /// The fixed size of a leading (batch / time) axis of the sequence, if the input
    /// declares it.
    fn fixed_size(&self, a: Ax) -> Option<usize> {
        match a {
            Ax::Free(i) => self.fixed.get(i as usize).copied().flatten(),
            Ax::Batch | Ax::Time => (0..2)
                .find(|&i| self.free[i] == Some(a))
                .and_then(|i| self.fixed[i]),
            _ => None,
        }
    }

    fn ax(&self, a: Ax) -> Ax {
        match a {
            Ax::Free(i) => self.free[i as usize].unwrap_or(a),
            other => other,
        }
    }

    fn dim(&self, d: Dim) -> Dim {
        match d {
            Dim::Free(i) => match self.free[i as usize] {
                Some(Ax::Batch) => Dim::Batch,
                Some(Ax::Time) => Dim::Time,
                _ => d,
            },
            other => other,
        }
    }

    fn input(&self, n: &NodeProto, i: usize) -> Result<Val> {
        match n.input.get(i) {
            None => Ok(Val::Absent),
            Some(s) if s.is_empty() => Ok(Val::Absent),
            Some(s) => self
                .vals
                .get(s)
                .cloned()
                .ok_or_else(|| anyhow!("input `{s}` is not defined before this node")),
        }
    }

    fn konst(&self, n: &NodeProto, i: usize, what: &str) -> Result<Tensor> {
        match self.input(n, i)? {
            Val::Const(t) => Ok(t),
            Val::Sym { v, scalar } => sym_to_const(&v, scalar)
                .ok_or_else(|| anyhow!("{what} depends on the batch/time size")),
            Val::Absent => bail!("{what} is missing"),
            _ => bail!("{what} must be a constant"),
        }
    }

    fn opt_ints(&self, n: &NodeProto, attr_name: &str, input: usize) -> Result<Option<Vec<i64>>> {
        if let Some(v) = attr_ints(n, attr_name) {
            return Ok(Some(v));
        }
        match self.input(n, input)? {
            Val::Absent => Ok(None),
            _ => Ok(Some(self.konst(n, input, attr_name)?.as_i64())),
        }
    }

    fn node(&mut self, n: &NodeProto) -> Result<Vec<Val>> {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            bail!(
                "unsupported op `{}::{}` (custom domain)",
                n.domain,
                n.op_type
            );
        }
        let op = n.op_type.as_str();
        let one = |v: Val| Ok(vec![v]);
        match op {
            "Constant" => {
                if let Some(a) = attr(n, "value") {
                    let t = a
                        .t
                        .as_ref()
                        .ok_or_else(|| anyhow!("Constant without a tensor"))?;
                    return one(Val::Const(Tensor::from_proto_in(t, Some(&self.ext))?));
                }
                if let Some(v) = attr_ints(n, "value_ints") {
                    return one(Val::Const(Tensor::ints(&v)));
                }
                if let Some(a) = attr(n, "value_int") {
                    return one(Val::Const(Tensor::new(vec![], vec![a.i as f64], true)));
                }
                if let Some(a) = attr(n, "value_float") {
                    return one(Val::Const(Tensor::new(vec![], vec![a.f as f64], false)));
                }
                if let Some(a) = attr(n, "value_floats") {
                    let d: Vec<f64> = a.floats.iter().map(|&v| v as f64).collect();
                    return one(Val::Const(Tensor::new(vec![d.len()], d, false)));
                }
                bail!("unsupported Constant (no value / value_int(s) / value_float(s))")
            }
            "Identity" | "Dropout" => one(self.input(n, 0)?),
            "Cast" | "CastLike" => {
                let v = self.input(n, 0)?;
                let to_int = match attr_i(n, "to") {
                    Some(t) => !matches!(
                        t as i32,
                        proto::dtype::FLOAT
                            | proto::dtype::DOUBLE
                            | proto::dtype::FLOAT16
                            | proto::dtype::BFLOAT16
                    ),
                    None => false,
                };
                one(match v {
                    Val::Const(mut t) => {
                        if to_int {
                            t.data.iter_mut().for_each(|x| *x = x.trunc());
                        }
                        t.int = to_int;
                        Val::Const(t)
                    }
                    other => other,
                })
            }
            "Shape" => self.shape(n),
            "Size" => bail!("unsupported op `Size`"),
            "ConstantOfShape" => self.constant_of_shape(n),
            "Expand" => self.expand(n),
            "Gather" => self.gather(n),
            "Unsqueeze" => self.unsqueeze(n),
            "Squeeze" => self.squeeze(n),
            "Slice" => self.slice(n),
            "Concat" => self.concat(n),
            "Transpose" => self.transpose(n),
            "Reshape" => self.reshape(n),
            "Flatten" => self.flatten(n),
            "Add" | "Sub" | "Mul" | "Div" => self.arith(n, op),
            "Neg" => match self.input(n, 0)? {
                Val::Const(t) => one(Val::Const(Tensor {
                    data: t.data.iter().map(|v| -v).collect(),
                    ..t
                })),
                _ => bail!("Neg of a non-constant is not supported"),
            },
            "Sqrt" | "Reciprocal" => match self.input(n, 0)? {
                Val::Const(t) => {
                    let f: fn(f64) -> f64 = if op == "Sqrt" { f64::sqrt } else { f64::recip };
                    one(Val::Const(Tensor {
                        data: t.data.iter().map(|&v| f(v)).collect(),
                        int: false,
                        ..t
                    }))
                }
                _ => bail!("{op} of a non-constant is not supported"),
            },
            "MatMul" => self.matmul(n),
            "Gemm" => self.gemm(n),
            "Softmax" | "Sigmoid" | "Tanh" => self.activation(n, op),
            "LSTM" | "GRU" | "RNN" => self.recurrent(n, op),
            "Loop" | "Scan" => bail!(
                "unsupported op `{op}`: this looks like a scripted/unrolled export; re-export with torch.onnx.export(..., dynamo=False)"
            ),
            other => bail!("unsupported ONNX op `{other}`"),
        }
    }

    // ------------------------------------------------------------------ shape glue

    fn seq_dims(&self, s: &Seq) -> Vec<Dim> {
        s.axes
            .iter()
            .map(|&a| match self.ax(a) {
                Ax::Free(i) => Dim::Free(i),
                Ax::Batch => Dim::Batch,
                Ax::Time => Dim::Time,
                Ax::TimeLast | Ax::Unit => Dim::K(1),
                Ax::Feat(n) | Ax::Stack(n) => Dim::K(n as i64),
            })
            .collect()
    }

    fn shape(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let dims: Vec<Dim> = match self.input(n, 0)? {
            Val::Seq(s) => self.seq_dims(&s),
            Val::Zeros(d) => d,
            Val::Const(t) => t.dims.iter().map(|&d| Dim::K(d as i64)).collect(),
            Val::Sym { v, scalar } => {
                if scalar {
                    vec![]
                } else {
                    vec![Dim::K(v.len() as i64)]
                }
            }
            Val::Absent => bail!("Shape of a missing input"),
        };
        let r = dims.len() as i64;
        let clampi = |v: i64| {
            let v = if v < 0 { v + r } else { v };
            v.clamp(0, r) as usize
        };
        let start = clampi(attr_i(n, "start").unwrap_or(0));
        let end = clampi(attr_i(n, "end").unwrap_or(r));
        let v = if end > start {
            dims[start..end].to_vec()
        } else {
            vec![]
        };
        Ok(vec![make_sym(v, false)])
    }

    fn shape_arg(&self, v: Val, what: &str) -> Result<Vec<Dim>> {
        match v {
            Val::Const(t) => Ok(t.as_i64().into_iter().map(Dim::K).collect()),
            Val::Sym { v, .. } => Ok(v.into_iter().map(|d| self.dim(d)).collect()),
            _ => bail!("{what} must be a shape"),
        }
    }

    fn constant_of_shape(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let dims = self.shape_arg(self.input(n, 0)?, "the shape")?;
        let value = match attr(n, "value").and_then(|a| a.t.as_ref()) {
            Some(t) => Tensor::from_proto_in(t, Some(&self.ext))?,
            None => Tensor::new(vec![1], vec![0.0], false),
        };
        let v = value.data.first().copied().unwrap_or(0.0);
        if v == 0.0 {
            return Ok(vec![Val::Zeros(dims)]);
        }
        match sym_to_const(&dims, false) {
            Some(shape) => {
                let d: Vec<usize> = shape.as_i64().iter().map(|&x| x.max(0) as usize).collect();
                let count = Tensor::element_count(&d)?;
                Ok(vec![Val::Const(Tensor::new(d, vec![v; count], value.int))])
            }
            None => bail!("ConstantOfShape with value {v} and a data-dependent shape"),
        }
    }

    fn expand(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let x = self.input(n, 0)?;
        let shape = self.shape_arg(self.input(n, 1)?, "the Expand shape")?;
        match x {
            Val::Const(t) if t.data.iter().all(|&v| v == 0.0) => {
                let r = shape.len().max(t.dims.len());
                let mut out = Vec::with_capacity(r);
                for k in 0..r {
                    let td = if k + t.dims.len() >= r {
                        Some(t.dims[k + t.dims.len() - r])
                    } else {
                        None
                    };
                    let sd = if k + shape.len() >= r {
                        Some(shape[k + shape.len() - r])
                    } else {
                        None
                    };
                    out.push(match (td, sd) {
                        (Some(a), Some(Dim::K(1))) | (Some(a), None) => Dim::K(a as i64),
                        (_, Some(d)) => d,
                        (None, None) => Dim::Any,
                    });
                }
                Ok(vec![Val::Zeros(out)])
            }
            Val::Const(t) => match sym_to_const(&shape, false) {
                Some(s) => {
                    let target: Vec<usize> =
                        s.as_i64().iter().map(|&d| d.max(1) as usize).collect();
                    let dims = broadcast(&t.dims, &target)?;
                    Ok(vec![Val::Const(t.expand_to(&dims)?)])
                }
                None => bail!("Expand of a non-zero constant to a data-dependent shape"),
            },
            Val::Zeros(d) => Ok(vec![Val::Zeros(if shape.len() >= d.len() {
                shape
            } else {
                d
            })]),
            _ => bail!("Expand of the data sequence is not supported"),
        }
    }

    fn gather(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let x = self.input(n, 0)?;
        let idx = self.konst(n, 1, "Gather indices")?;
        let axis = attr_i(n, "axis").unwrap_or(0);
        match x {
            Val::Const(t) => {
                let a = norm_axis(axis, t.dims.len())?;
                Ok(vec![Val::Const(t.gather(a, &idx)?)])
            }
            Val::Sym { v, scalar } => {
                if scalar || norm_axis(axis, 1)? != 0 {
                    bail!("Gather on a scalar shape value");
                }
                let len = v.len() as i64;
                let mut out = Vec::new();
                for i in idx.as_i64() {
                    let j = if i < 0 { i + len } else { i };
                    if j < 0 || j >= len {
                        bail!("Gather index {i} out of range for a shape of rank {len}");
                    }
                    out.push(v[j as usize]);
                }
                Ok(vec![make_sym(out, idx.dims.is_empty())])
            }
            Val::Zeros(d) => {
                let a = norm_axis(axis, d.len())?;
                let mut out = d[..a].to_vec();
                out.extend(idx.dims.iter().map(|&k| Dim::K(k as i64)));
                out.extend_from_slice(&d[a + 1..]);
                Ok(vec![Val::Zeros(out)])
            }
            Val::Seq(s) => {
                let a = norm_axis(axis, s.axes.len())?;
                let ids = idx.as_i64();
                if ids.len() != 1 {
                    bail!("Gather of {} indices on the data sequence", ids.len());
                }
                let keep = !idx.dims.is_empty();
                Ok(vec![Val::Seq(self.select(s, a, ids[0], keep)?)])
            }
            Val::Absent => bail!("Gather of a missing input"),
        }
    }

    /// Selects index `i` of axis `a` of the sequence (keeping a size-1 axis if `keep`).
    fn select(&self, mut s: Seq, a: usize, i: i64, keep: bool) -> Result<Seq> {
        match self.ax(s.axes[a]) {
            Ax::Time | Ax::Free(_) if i == -1 => {
                if matches!(self.ax(s.axes[a]), Ax::Free(_)) {
                    bail!("selects step -1 of an input axis before any recurrent layer");
                }
                s.last = true;
                if keep {
                    s.axes[a] = Ax::TimeLast;
                } else {
                    s.axes.remove(a);
                }
            }
            Ax::Time => bail!(
                "selects time step {i} of the sequence: only the last step (index -1) is supported"
            ),
            Ax::TimeLast | Ax::Unit if i == 0 || i == -1 => {
                if !keep {
                    s.axes.remove(a);
                }
            }
            Ax::Stack(n) => {
                let j = if i < 0 { i + n as i64 } else { i };
                if j < 0 || j >= n as i64 {
                    bail!("index {i} out of range for {n} stacked layer states");
                }
                s.parts = vec![s.parts[j as usize].clone()];
                if keep {
                    s.axes[a] = Ax::Unit;
                } else {
                    s.axes.remove(a);
                }
            }
            other => bail!("selects index {i} of a {other:?} axis of the data sequence"),
        }
        Ok(s)
    }

    fn unsqueeze(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let axes = self
            .opt_ints(n, "axes", 1)?
            .ok_or_else(|| anyhow!("Unsqueeze without axes"))?;
        match self.input(n, 0)? {
            Val::Const(t) => {
                let r = t.dims.len() + axes.len();
                let mut dims = t.dims.clone();
                let mut ax: Vec<usize> = axes
                    .iter()
                    .map(|&a| norm_axis(a, r))
                    .collect::<Result<_>>()?;
                ax.sort_unstable();
                for a in ax {
                    dims.insert(a, 1);
                }
                Ok(vec![Val::Const(t.reshaped(dims)?)])
            }
            Val::Sym { v, scalar } => {
                if scalar && axes.len() == 1 {
                    Ok(vec![make_sym(v, false)])
                } else {
                    bail!("Unsqueeze of a shape vector to rank > 1")
                }
            }
            Val::Zeros(mut d) => {
                let r = d.len() + axes.len();
                let mut ax: Vec<usize> = axes
                    .iter()
                    .map(|&a| norm_axis(a, r))
                    .collect::<Result<_>>()?;
                ax.sort_unstable();
                for a in ax {
                    d.insert(a, Dim::K(1));
                }
                Ok(vec![Val::Zeros(d)])
            }
            Val::Seq(mut s) => {
                let r = s.axes.len() + axes.len();
                let mut ax: Vec<usize> = axes
                    .iter()
                    .map(|&a| norm_axis(a, r))
                    .collect::<Result<_>>()?;
                ax.sort_unstable();
                for a in ax {
                    s.axes.insert(a, Ax::Unit);
                }
                Ok(vec![Val::Seq(s)])
            }
            Val::Absent => bail!("Unsqueeze of a missing input"),
        }
    }

    fn squeeze(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let axes = self.opt_ints(n, "axes", 1)?;
        match self.input(n, 0)? {
            Val::Const(t) => {
                let ax: Vec<usize> = match &axes {
                    Some(a) => a
                        .iter()
                        .map(|&x| norm_axis(x, t.dims.len()))
                        .collect::<Result<_>>()?,
                    None => (0..t.dims.len()).filter(|&k| t.dims[k] == 1).collect(),
                };
                let dims: Vec<usize> = t
                    .dims
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !ax.contains(k))
                    .map(|(_, &d)| d)
                    .collect();
                Ok(vec![Val::Const(t.reshaped(dims)?)])
            }
            Val::Sym { v, .. } => {
                if v.len() == 1 {
                    Ok(vec![make_sym(v, true)])
                } else {
                    bail!("Squeeze of a shape vector of length {}", v.len())
                }
            }
            Val::Zeros(d) => {
                let ax: Vec<usize> = match &axes {
                    Some(a) => a
                        .iter()
                        .map(|&x| norm_axis(x, d.len()))
                        .collect::<Result<_>>()?,
                    None => (0..d.len()).filter(|&k| d[k] == Dim::K(1)).collect(),
                };
                Ok(vec![Val::Zeros(
                    d.iter()
                        .enumerate()
                        .filter(|(k, _)| !ax.contains(k))
                        .map(|(_, &x)| x)
                        .collect(),
                )])
            }
            Val::Seq(mut s) => {
                let ax: Vec<usize> = match &axes {
                    Some(a) => a
                        .iter()
                        .map(|&x| norm_axis(x, s.axes.len()))
                        .collect::<Result<_>>()?,
                    None => (0..s.axes.len())
                        .filter(|&k| matches!(self.ax(s.axes[k]), Ax::Unit | Ax::TimeLast))
                        .collect(),
                };
                for &a in &ax {
                    match self.ax(s.axes[a]) {
                        Ax::Unit | Ax::TimeLast => {}
                        Ax::Stack(1) => s.parts.truncate(1),
                        other => bail!("Squeeze of a {other:?} axis of the data sequence"),
                    }
                }
                s.axes = s
                    .axes
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !ax.contains(k))
                    .map(|(_, &x)| x)
                    .collect();
                Ok(vec![Val::Seq(s)])
            }
            Val::Absent => bail!("Squeeze of a missing input"),
        }
    }

    fn slice(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let x = self.input(n, 0)?;
        let (starts, ends, axes, steps) = if attr(n, "starts").is_some() {
            (
                attr_ints(n, "starts").unwrap_or_default(),
                attr_ints(n, "ends").unwrap_or_default(),
                attr_ints(n, "axes"),
                None,
            )
        } else {
            (
                self.konst(n, 1, "Slice starts")?.as_i64(),
                self.konst(n, 2, "Slice ends")?.as_i64(),
                match self.input(n, 3)? {
                    Val::Absent => None,
                    _ => Some(self.konst(n, 3, "Slice axes")?.as_i64()),
                },
                match self.input(n, 4)? {
                    Val::Absent => None,
                    _ => Some(self.konst(n, 4, "Slice steps")?.as_i64()),
                },
            )
        };
        if starts.len() != ends.len() {
            bail!("Slice with {} starts and {} ends", starts.len(), ends.len());
        }
        let rank = match &x {
            Val::Const(t) => t.dims.len(),
            Val::Sym { .. } => 1,
            Val::Zeros(d) => d.len(),
            Val::Seq(s) => s.axes.len(),
            Val::Absent => bail!("Slice of a missing input"),
        };
        let axes: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&v| norm_axis(v, rank))
                .collect::<Result<_>>()?,
            None => (0..starts.len()).collect(),
        };
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        let ranges: Vec<(usize, i64, i64, i64)> = (0..starts.len())
            .map(|k| (axes[k], starts[k], ends[k], steps[k]))
            .collect();
        match x {
            Val::Const(t) => Ok(vec![Val::Const(t.slice(&ranges)?)]),
            Val::Sym { v, .. } => {
                let (_, s, e, st) = ranges[0];
                let (first, len) = resolve_slice(v.len() as i64, s, e, st)?;
                let out = (0..len)
                    .map(|i| v[(first + i as i64 * st) as usize])
                    .collect();
                Ok(vec![make_sym(out, false)])
            }
            Val::Zeros(mut d) => {
                for (a, s, e, st) in ranges {
                    if let Dim::K(len) = d[a] {
                        d[a] = Dim::K(resolve_slice(len, s, e, st)?.1 as i64);
                    } else if !(s == 0 && e >= i32::MAX as i64 && st == 1) {
                        d[a] = Dim::Any;
                    }
                }
                Ok(vec![Val::Zeros(d)])
            }
            Val::Seq(mut s) => {
                for (a, st_, en, step) in ranges {
                    let full = st_ == 0 && en >= i32::MAX as i64 && step == 1;
                    match self.ax(s.axes[a]) {
                        _ if full => {}
                        Ax::Time if st_ == -1 && step == 1 && en >= i32::MAX as i64 => {
                            s.axes[a] = Ax::TimeLast;
                            s.last = true;
                        }
                        Ax::Unit | Ax::TimeLast => {
                            if resolve_slice(1, st_, en, step)?.1 != 1 {
                                bail!("Slice leaves an empty axis");
                            }
                        }
                        Ax::Feat(w) => {
                            if resolve_slice(w as i64, st_, en, step)? != (0, w) {
                                bail!("Slice of the feature axis of the data sequence is not supported");
                            }
                        }
                        Ax::Stack(m) => {
                            let (first, len) = resolve_slice(m as i64, st_, en, step)?;
                            if len == 0 {
                                bail!("Slice leaves no stacked layer state");
                            }
                            s.parts = (0..len)
                                .map(|i| s.parts[(first + i as i64 * step) as usize].clone())
                                .collect();
                            s.axes[a] = if len == 1 { Ax::Unit } else { Ax::Stack(len) };
                        }
                        Ax::Time => bail!(
                            "Slice [{st_}:{en}:{step}] of the time axis: only the last step ([-1:]) is supported"
                        ),
                        other => bail!("Slice of a {other:?} axis of the data sequence"),
                    }
                }
                Ok(vec![Val::Seq(s)])
            }
            Val::Absent => unreachable!(),
        }
    }

    fn concat(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let axis = attr_i(n, "axis").ok_or_else(|| anyhow!("Concat without axis"))?;
        if n.input.is_empty() {
            bail!("Concat without inputs");
        }
        let vals: Vec<Val> = (0..n.input.len())
            .map(|i| self.input(n, i))
            .collect::<Result<_>>()?;
        if vals.iter().all(|v| matches!(v, Val::Const(_))) {
            let ts: Vec<Tensor> = vals
                .into_iter()
                .map(|v| match v {
                    Val::Const(t) => t,
                    _ => unreachable!(),
                })
                .collect();
            let a = norm_axis(axis, ts[0].dims.len())?;
            return Ok(vec![Val::Const(Tensor::concat(&ts, a)?)]);
        }
        if vals.iter().any(|v| matches!(v, Val::Seq(_))) {
            return self.concat_seq(vals, axis);
        }
        if vals.iter().any(|v| matches!(v, Val::Zeros(_))) {
            let mut dims: Option<Vec<Dim>> = None;
            for v in &vals {
                let d = match v {
                    Val::Zeros(d) => d.clone(),
                    Val::Const(t) if t.data.iter().all(|&x| x == 0.0) => {
                        t.dims.iter().map(|&k| Dim::K(k as i64)).collect()
                    }
                    _ => bail!("Concat of zeros with non-zero values"),
                };
                dims = Some(match dims {
                    None => d,
                    Some(mut acc) => {
                        let a = norm_axis(axis, acc.len())?;
                        acc[a] = match (acc[a], d.get(a).copied().unwrap_or(Dim::Any)) {
                            (Dim::K(x), Dim::K(y)) => Dim::K(x + y),
                            _ => Dim::Any,
                        };
                        acc
                    }
                });
            }
            return Ok(vec![Val::Zeros(dims.unwrap_or_default())]);
        }
        // Shape vectors.
        let mut out = Vec::new();
        for v in vals {
            match v {
                Val::Sym { v, .. } => out.extend(v),
                Val::Const(t) if t.dims.len() <= 1 => {
                    out.extend(t.as_i64().into_iter().map(Dim::K))
                }
                _ => bail!("Concat of a shape with a non-shape value"),
            }
        }
        Ok(vec![make_sym(out, false)])
    }

    fn concat_seq(&self, vals: Vec<Val>, axis: i64) -> Result<Vec<Val>> {
        let seqs: Vec<Seq> = vals
            .into_iter()
            .map(|v| match v {
                Val::Seq(s) => Ok(s),
                _ => bail!("Concat of the data sequence with other values is not supported"),
            })
            .collect::<Result<_>>()?;
        let a = norm_axis(axis, seqs[0].axes.len())?;
        let mut parts = Vec::new();
        for s in &seqs {
            if s.axes.len() != seqs[0].axes.len() || s.last != seqs[0].last {
                bail!("Concat of differently shaped layer states");
            }
            for (k, (&x, &y)) in s.axes.iter().zip(&seqs[0].axes).enumerate() {
                if k != a && self.ax(x) != self.ax(y) {
                    bail!("Concat of differently shaped layer states");
                }
            }
            match self.ax(s.axes[a]) {
                Ax::Unit | Ax::Stack(_) => parts.extend(s.parts.iter().cloned()),
                other => bail!(
                    "Concat along a {other:?} axis of the data sequence (only stacking layer states is supported)"
                ),
            }
        }
        let mut out = seqs[0].clone();
        out.axes[a] = Ax::Stack(parts.len());
        out.parts = parts;
        Ok(vec![Val::Seq(out)])
    }

    fn transpose(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let x = self.input(n, 0)?;
        let rank = match &x {
            Val::Const(t) => t.dims.len(),
            Val::Zeros(d) => d.len(),
            Val::Seq(s) => s.axes.len(),
            _ => bail!("Transpose of a shape value"),
        };
        let perm: Vec<usize> = match attr_ints(n, "perm") {
            Some(p) => p
                .iter()
                .map(|&v| norm_axis(v, rank))
                .collect::<Result<_>>()?,
            None => (0..rank).rev().collect(),
        };
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if perm.len() != rank || sorted.iter().enumerate().any(|(k, &p)| k != p) {
            bail!("Transpose perm {perm:?} is not a permutation of rank {rank}");
        }
        Ok(vec![match x {
            Val::Const(t) => Val::Const(t.transpose(&perm)?),
            Val::Zeros(d) => Val::Zeros(perm.iter().map(|&p| d[p]).collect()),
            Val::Seq(mut s) => {
                s.axes = perm.iter().map(|&p| s.axes[p]).collect();
                Val::Seq(s)
            }
            _ => unreachable!(),
        }])
    }

    fn reshape(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let x = self.input(n, 0)?;
        let target = self.shape_arg(self.input(n, 1)?, "the Reshape shape")?;
        let allowzero = attr_i(n, "allowzero").unwrap_or(0) != 0;
        match x {
            Val::Const(t) => {
                let spec = sym_to_const(&target, false)
                    .ok_or_else(|| anyhow!("Reshape of a constant to a data-dependent shape"))?
                    .as_i64();
                let mut dims = Vec::new();
                let mut infer = None;
                for (k, &d) in spec.iter().enumerate() {
                    dims.push(match d {
                        0 if !allowzero => *t
                            .dims
                            .get(k)
                            .ok_or_else(|| anyhow!("Reshape copies a missing dim"))?,
                        -1 => {
                            infer = Some(k);
                            1
                        }
                        d if d >= 0 => d as usize,
                        d => bail!("Reshape dim {d}"),
                    });
                }
                if let Some(k) = infer {
                    let known = Tensor::element_count(&dims)?;
                    if known == 0 {
                        bail!("Reshape with -1 and a zero dim");
                    }
                    dims[k] = t.len() / known;
                }
                Ok(vec![Val::Const(t.reshaped(dims)?)])
            }
            Val::Sym { v, .. } => {
                let scalar = target.is_empty();
                Ok(vec![make_sym(v, scalar)])
            }
            Val::Zeros(_) => Ok(vec![Val::Zeros(
                target
                    .iter()
                    .map(|&d| match d {
                        Dim::K(k) if k > 0 => Dim::K(k),
                        Dim::K(_) => Dim::Any,
                        other => other,
                    })
                    .collect(),
            )]),
            Val::Seq(s) => {
                let dims = self.seq_dims(&s);
                let target: Vec<Dim> = target
                    .iter()
                    .enumerate()
                    .map(|(k, &d)| match d {
                        Dim::K(0) if !allowzero => dims.get(k).copied().unwrap_or(Dim::Any),
                        other => other,
                    })
                    .collect();
                Ok(vec![Val::Seq(self.regroup(s, &target)?)])
            }
            Val::Absent => bail!("Reshape of a missing input"),
        }
    }

    /// Reshape of the sequence that only adds or removes size-1 axes.
    fn regroup(&self, mut s: Seq, target: &[Dim]) -> Result<Seq> {
        let big: Vec<Ax> = s
            .axes
            .iter()
            .map(|&a| self.ax(a))
            .filter(|a| !matches!(a, Ax::Unit | Ax::TimeLast))
            .collect();
        let mut out = Vec::new();
        let mut it = big.iter();
        let wanted = target.iter().filter(|d| **d != Dim::K(1)).count();
        if wanted != big.len() {
            bail!(
                "Reshape of the data sequence to {:?} regroups its axes {:?} (only adding/removing size-1 axes is supported)",
                target,
                s.axes
            );
        }
        for &d in target {
            if d == Dim::K(1) {
                out.push(Ax::Unit);
                continue;
            }
            let a = *it.next().ok_or_else(|| anyhow!("Reshape mismatch"))?;
            let ok = match (d, a) {
                (Dim::K(-1), _) | (Dim::Any, _) => true,
                (Dim::Batch, Ax::Batch) | (Dim::Time, Ax::Time) => true,
                (Dim::Free(i), Ax::Free(j)) => i == j,
                (Dim::K(k), Ax::Feat(w)) | (Dim::K(k), Ax::Stack(w)) => k as usize == w,
                (Dim::K(k), Ax::Batch | Ax::Time | Ax::Free(_)) => {
                    usize::try_from(k).ok() == self.fixed_size(a)
                }
                _ => false,
            };
            if !ok {
                bail!(
                    "Reshape of the data sequence to {:?} does not keep its axes {:?}",
                    target,
                    s.axes
                );
            }
            out.push(a);
        }
        if s.axes.iter().any(|&a| self.ax(a) == Ax::TimeLast) {
            s.last = true;
        }
        s.axes = out;
        Ok(s)
    }

    fn flatten(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let axis = attr_i(n, "axis").unwrap_or(1);
        match self.input(n, 0)? {
            Val::Seq(s) => {
                let a = if axis < 0 {
                    (axis + s.axes.len() as i64).max(0) as usize
                } else {
                    (axis as usize).min(s.axes.len())
                };
                let dims = self.seq_dims(&s);
                let side = |ds: &[Dim]| -> Result<Dim> {
                    let big: Vec<Dim> = ds.iter().copied().filter(|d| *d != Dim::K(1)).collect();
                    match big.len() {
                        0 => Ok(Dim::K(1)),
                        1 => Ok(big[0]),
                        _ => bail!("Flatten merges axes {ds:?} of the data sequence"),
                    }
                };
                let target = vec![side(&dims[..a])?, side(&dims[a..])?];
                Ok(vec![Val::Seq(self.regroup(s, &target)?)])
            }
            Val::Const(t) => {
                let a = norm_axis(axis, t.dims.len() + 1)?;
                let l: usize = t.dims[..a].iter().product();
                let r: usize = t.dims[a..].iter().product();
                Ok(vec![Val::Const(t.reshaped(vec![l, r])?)])
            }
            _ => bail!("Flatten of a shape value"),
        }
    }

    // ------------------------------------------------------------------ arithmetic

    fn arith(&self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        let a = self.input(n, 0)?;
        let b = self.input(n, 1)?;
        let f: fn(f64, f64) -> f64 = match op {
            "Add" => |x, y| x + y,
            "Sub" => |x, y| x - y,
            "Mul" => |x, y| x * y,
            _ => |x, y| x / y,
        };
        match (a, b) {
            (Val::Const(x), Val::Const(y)) => {
                let mut t = x.binop(&y, f)?;
                if op == "Div" && t.int {
                    t.data.iter_mut().for_each(|v| *v = v.trunc());
                }
                Ok(vec![Val::Const(t)])
            }
            (Val::Seq(s), Val::Const(c)) => Ok(vec![Val::Seq(self.seq_arith(s, &c, op, false)?)]),
            (Val::Const(c), Val::Seq(s)) => Ok(vec![Val::Seq(self.seq_arith(s, &c, op, true)?)]),
            (Val::Seq(_), Val::Seq(_)) => bail!(
                "{op} of two data-dependent tensors (residual connections etc. are not supported)"
            ),
            (x @ (Val::Sym { .. } | Val::Const(_)), y @ (Val::Sym { .. } | Val::Const(_))) => {
                let (xv, xs) = to_sym(&x)?;
                let (yv, ys) = to_sym(&y)?;
                let len = xv.len().max(yv.len());
                if (xv.len() != len && xv.len() != 1) || (yv.len() != len && yv.len() != 1) {
                    bail!(
                        "{op} of shape vectors of lengths {} and {}",
                        xv.len(),
                        yv.len()
                    );
                }
                let mut out = Vec::with_capacity(len);
                for k in 0..len {
                    let p = xv[if xv.len() == 1 { 0 } else { k }];
                    let q = yv[if yv.len() == 1 { 0 } else { k }];
                    out.push(match (p, q) {
                        (Dim::K(u), Dim::K(v)) => Dim::K(f(u as f64, v as f64).trunc() as i64),
                        (d, Dim::K(1)) if op == "Mul" || op == "Div" => d,
                        (Dim::K(1), d) if op == "Mul" => d,
                        (d, Dim::K(0)) if op == "Add" || op == "Sub" => d,
                        (Dim::K(0), d) if op == "Add" => d,
                        _ => bail!("{op} of the symbolic sizes {p:?} and {q:?}"),
                    });
                }
                Ok(vec![make_sym(out, xs && ys)])
            }
            (Val::Zeros(d), Val::Const(_)) | (Val::Const(_), Val::Zeros(d)) if op == "Mul" => {
                Ok(vec![Val::Zeros(d)])
            }
            _ => bail!("{op} of these operands is not supported"),
        }
    }

    /// `seq op c` (or `c op seq` if `rev`).
    fn seq_arith(&self, mut s: Seq, c: &Tensor, op: &str, rev: bool) -> Result<Seq> {
        if s.parts.len() != 1 {
            bail!("{op} on stacked layer states");
        }
        let last = *s
            .axes
            .last()
            .ok_or_else(|| anyhow!("{op} on a rank-0 value"))?;
        let width = match self.ax(last) {
            Ax::Feat(w) => w,
            other => bail!("{op} on the data sequence whose last axis is {other:?} (not features)"),
        };
        if c.is_empty() {
            bail!("{op} with an empty constant");
        }
        // The constant must vary along the feature axis only.
        if c.dims.len() > s.axes.len()
            || c.dims[..c.dims.len().saturating_sub(1)]
                .iter()
                .any(|&d| d != 1)
        {
            bail!(
                "{op} with a constant of shape {:?}: only per-feature constants are supported",
                c.dims
            );
        }
        let cv: Vec<f64> = match c.dims.last() {
            None | Some(1) => vec![c.data[0]; width],
            Some(&w) if w == width => c.data.clone(),
            Some(&w) => bail!("{op} with {w} values on {width} features"),
        };
        let stage = s.parts.pop().unwrap_or(Stage::Input {
            a: vec![],
            b: vec![],
        });
        let stage = match stage {
            Stage::Input { mut a, mut b } => {
                for j in 0..width {
                    let k = cv[j];
                    match (op, rev) {
                        ("Add", _) => b[j] += k,
                        ("Sub", false) => b[j] -= k,
                        ("Sub", true) => {
                            a[j] = -a[j];
                            b[j] = k - b[j];
                        }
                        ("Mul", _) => {
                            a[j] *= k;
                            b[j] *= k;
                        }
                        ("Div", false) => {
                            a[j] /= k;
                            b[j] /= k;
                        }
                        _ => bail!("dividing a constant by the input is not supported"),
                    }
                }
                Stage::Input { a, b }
            }
            Stage::Rec {
                layer,
                cell,
                head: Some(mut d),
                act: OutputAct::Identity,
            } => {
                for (r, &k) in cv.iter().enumerate() {
                    match (op, rev) {
                        ("Add", _) => d.b[r] += k,
                        ("Sub", false) => d.b[r] -= k,
                        ("Mul", _) | ("Div", false) => {
                            let m = if op == "Mul" { k } else { 1.0 / k };
                            d.b[r] *= m;
                            for w in &mut d.w[r * d.inp..(r + 1) * d.inp] {
                                *w *= m;
                            }
                        }
                        _ => bail!("{op} with the head output as the second operand is not supported"),
                    }
                }
                Stage::Rec {
                    layer,
                    cell,
                    head: Some(d),
                    act: OutputAct::Identity,
                }
            }
            Stage::Rec { .. } => bail!(
                "{op} on a recurrent layer's state (or after the output activation) is not supported"
            ),
        };
        s.parts.push(stage);
        Ok(s)
    }

    fn dense_on(&self, s: Seq, w: Vec<f64>, out: usize, inp: usize, b: Vec<f64>) -> Result<Seq> {
        let mut s = s;
        if s.parts.len() != 1 {
            bail!("a dense layer on stacked layer states");
        }
        let last = s.axes.len() - 1;
        match self.ax(s.axes[last]) {
            Ax::Feat(wd) if wd == inp => {}
            other => bail!("a dense layer of input width {inp} on a {other:?} axis"),
        }
        let stage = match s.parts.pop() {
            Some(Stage::Rec {
                layer,
                cell,
                head,
                act: OutputAct::Identity,
            }) => {
                let head = match head {
                    None => Dense { out, inp, w, b },
                    Some(d) => {
                        // Two dense maps with nothing in between: compose them.
                        let mut cw = vec![0.0; out * d.inp];
                        let mut cb = b.clone();
                        for r in 0..out {
                            for k in 0..inp {
                                let wk = w[r * inp + k];
                                cb[r] += wk * d.b[k];
                                for j in 0..d.inp {
                                    cw[r * d.inp + j] += wk * d.w[k * d.inp + j];
                                }
                            }
                        }
                        Dense {
                            out,
                            inp: d.inp,
                            w: cw,
                            b: cb,
                        }
                    }
                };
                Stage::Rec {
                    layer,
                    cell,
                    head: Some(head),
                    act: OutputAct::Identity,
                }
            }
            Some(Stage::Input { .. }) => bail!(
                "a dense layer (MatMul/Gemm) before the first recurrent layer is not supported"
            ),
            _ => bail!("a dense layer after an output activation is not supported"),
        };
        s.parts.push(stage);
        s.axes[last] = Ax::Feat(out);
        Ok(s)
    }

    fn matmul(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let a = self.input(n, 0)?;
        let b = self.input(n, 1)?;
        match (a, b) {
            (Val::Seq(s), Val::Const(w)) => {
                if w.dims.len() != 2 {
                    bail!("MatMul with a weight of shape {:?} (expected 2-D)", w.dims);
                }
                let (inp, out) = (w.dims[0], w.dims[1]);
                let wt = w.transpose(&[1, 0])?.data;
                Ok(vec![Val::Seq(self.dense_on(
                    s,
                    wt,
                    out,
                    inp,
                    vec![0.0; out],
                )?)])
            }
            (Val::Const(x), Val::Const(y)) if x.dims.len() == 2 && y.dims.len() == 2 => {
                let (m, k, n2) = (x.dims[0], x.dims[1], y.dims[1]);
                if y.dims[0] != k {
                    bail!("MatMul of {:?} and {:?}", x.dims, y.dims);
                }
                let mut d = vec![0.0; m * n2];
                for i in 0..m {
                    for j in 0..n2 {
                        d[i * n2 + j] =
                            (0..k).map(|t| x.data[i * k + t] * y.data[t * n2 + j]).sum();
                    }
                }
                Ok(vec![Val::Const(Tensor::new(vec![m, n2], d, false))])
            }
            _ => bail!("MatMul: only (data, constant weight) is supported"),
        }
    }

    fn gemm(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let a = self.input(n, 0)?;
        if attr_i(n, "transA").unwrap_or(0) != 0 {
            bail!("Gemm with transA=1 is not supported");
        }
        let s = match a {
            Val::Seq(s) => s,
            _ => bail!("Gemm: only (data, constant weight) is supported"),
        };
        let w = self.konst(n, 1, "Gemm B")?;
        if w.dims.len() != 2 {
            bail!("Gemm with B of shape {:?}", w.dims);
        }
        let alpha = attr_f(n, "alpha").unwrap_or(1.0) as f64;
        let beta = attr_f(n, "beta").unwrap_or(1.0) as f64;
        let w = if attr_i(n, "transB").unwrap_or(0) != 0 {
            w
        } else {
            w.transpose(&[1, 0])?
        };
        let (out, inp) = (w.dims[0], w.dims[1]);
        let wd: Vec<f64> = w.data.iter().map(|v| v * alpha).collect();
        let b = match self.input(n, 2)? {
            Val::Absent => vec![0.0; out],
            _ => {
                let c = self.konst(n, 2, "Gemm C")?;
                let v = c.expand_to(&[out])?.data;
                v.iter().map(|x| x * beta).collect()
            }
        };
        Ok(vec![Val::Seq(self.dense_on(s, wd, out, inp, b)?)])
    }

    fn activation(&self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        let mut s = match self.input(n, 0)? {
            Val::Seq(s) => s,
            Val::Const(_) => bail!("{op} of a constant is not supported"),
            _ => bail!("{op} of a shape value"),
        };
        if s.parts.len() != 1 {
            bail!("{op} on stacked layer states");
        }
        let act = match op {
            "Softmax" => {
                let axis = attr_i(n, "axis").unwrap_or(-1);
                let a = norm_axis(axis, s.axes.len())?;
                if !matches!(self.ax(s.axes[a]), Ax::Feat(_)) || a + 1 != s.axes.len() {
                    bail!("Softmax over axis {axis}, which is not the output feature axis");
                }
                OutputAct::Softmax
            }
            "Sigmoid" => OutputAct::Sigmoid,
            _ => OutputAct::Tanh,
        };
        let stage = match s.parts.pop() {
            Some(Stage::Rec {
                layer,
                cell,
                head,
                act: OutputAct::Identity,
            }) => Stage::Rec {
                layer,
                cell,
                head,
                act,
            },
            Some(Stage::Input { .. }) => bail!("{op} on the input is not supported"),
            _ => bail!("two output activations in a row are not supported"),
        };
        s.parts.push(stage);
        Ok(vec![Val::Seq(s)])
    }

    // ------------------------------------------------------------------ recurrent nodes

    fn recurrent(&mut self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        for a in ["clip", "activation_alpha", "activation_beta"] {
            if attr(n, a).is_some() {
                bail!("attribute `{a}` is not supported");
            }
        }
        if attr_i(n, "input_forget").unwrap_or(0) != 0 {
            bail!("attribute `input_forget`=1 is not supported");
        }
        let direction = attr_s(n, "direction").unwrap_or_else(|| "forward".into());
        if direction != "forward" {
            bail!("direction={direction} is not supported (only forward recurrent layers)");
        }
        let layout = attr_i(n, "layout").unwrap_or(0);
        if layout != 0 && layout != 1 {
            bail!("layout={layout}");
        }
        let gates = match op {
            "LSTM" => 4,
            "GRU" => 3,
            _ => 1,
        };
        let acts: Vec<String> = attr_strs(n, "activations")
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let cell = match op {
            "LSTM" => {
                if !acts.is_empty() && acts != ["sigmoid", "tanh", "tanh"] {
                    bail!(
                        "activations={acts:?} are not supported (LSTM needs Sigmoid, Tanh, Tanh)"
                    );
                }
                CellKind::Lstm { peepholes: false }
            }
            "GRU" => {
                if !acts.is_empty() && acts != ["sigmoid", "tanh"] {
                    bail!("activations={acts:?} are not supported (GRU needs Sigmoid, Tanh)");
                }
                let lbr = attr_i(n, "linear_before_reset").unwrap_or(0);
                CellKind::Gru {
                    linear_before_reset: lbr != 0,
                }
            }
            _ => {
                let act = match acts.first().map(|s| s.as_str()) {
                    None | Some("tanh") if acts.len() <= 1 => RnnAct::Tanh,
                    Some("relu") if acts.len() == 1 => RnnAct::Relu,
                    _ => bail!("activations={acts:?} are not supported (RNN needs Tanh or Relu)"),
                };
                if let Some(want) = self.opts.rnn_activation {
                    if want != act {
                        bail!("--rnn-activation {want:?} contradicts the graph's activations={acts:?}");
                    }
                }
                CellKind::Rnn(act)
            }
        };
        let x = match self.input(n, 0)? {
            Val::Seq(s) => s,
            _ => bail!("input X is not the data sequence"),
        };
        let w = self.konst(n, 1, "W")?;
        let r = self.konst(n, 2, "R")?;
        if w.dims.len() != 3 || r.dims.len() != 3 || w.dims[0] != 1 || r.dims[0] != 1 {
            bail!(
                "W {:?} / R {:?}: expected [1, G·H, I] / [1, G·H, H]",
                w.dims,
                r.dims
            );
        }
        let h = r.dims[2];
        if let Some(hs) = attr_i(n, "hidden_size") {
            if hs as usize != h {
                bail!("hidden_size={hs} but R has shape {:?}", r.dims);
            }
        }
        let input_size = w.dims[2];
        if w.dims[1] != gates * h || r.dims[1] != gates * h {
            bail!(
                "W {:?} / R {:?} do not hold {gates} gates of hidden size {h}",
                w.dims,
                r.dims
            );
        }
        let b = match self.input(n, 3)? {
            Val::Absent | Val::Zeros(_) => vec![0.0; 2 * gates * h],
            _ => {
                let b = self.konst(n, 3, "B")?;
                if b.len() != 2 * gates * h {
                    bail!("B has shape {:?}, expected [1, {}]", b.dims, 2 * gates * h);
                }
                b.data
            }
        };
        match self.input(n, 4)? {
            Val::Absent => {}
            _ => {
                bail!("input `sequence_lens` is not supported (pass --lengths to tinyrnn instead)")
            }
        }
        // The data: [T, B, I] (layout 0) or [B, T, I] (layout 1).
        if x.last || x.parts.len() != 1 || x.axes.len() != 3 {
            bail!(
                "input X has axes {:?}: expected [time, batch, features]",
                x.axes
            );
        }
        let (ti, bi) = if layout == 0 { (0, 1) } else { (1, 0) };
        match self.ax(x.axes[2]) {
            Ax::Feat(f) if f == input_size => {}
            other => {
                bail!("input X has {other:?} on its last axis but W expects {input_size} features")
            }
        }
        for (pos, role) in [(ti, Ax::Time), (bi, Ax::Batch)] {
            match self.ax(x.axes[pos]) {
                Ax::Free(i) => self.free[i as usize] = Some(role),
                a if a == role => {}
                Ax::Unit if role == Ax::Batch => {}
                other => bail!(
                    "input X has a {other:?} axis where layout={layout} puts the {} axis",
                    if role == Ax::Time { "time" } else { "batch" }
                ),
            }
        }
        // Which stage feeds this layer.
        let k = self.layers.len();
        let mut norm = None;
        match &x.parts[0] {
            Stage::Input { a, b } => {
                if k != 0 {
                    bail!("a second recurrent stack reading the raw input");
                }
                if a.iter().any(|&v| v != 1.0) || b.iter().any(|&v| v != 0.0) {
                    if let Some(j) = a.iter().position(|&v| v == 0.0) {
                        bail!("the input normalization multiplies feature {j} by 0");
                    }
                    norm = Some(Norm {
                        offset: a.iter().zip(b).map(|(&a, &b)| (-b / a) as f32).collect(),
                        scale: a.iter().map(|&a| a as f32).collect(),
                    });
                }
            }
            Stage::Rec {
                layer,
                cell: false,
                head: None,
                act: OutputAct::Identity,
            } if *layer + 1 == k => {}
            Stage::Rec { .. } => bail!(
                "input X is not the hidden state of the previous recurrent layer (dense layers, activations or cell states between recurrent layers are not supported)"
            ),
        }
        let init = |v: Val, what: &str| -> Result<Option<Vec<f32>>> {
            match v {
                Val::Absent | Val::Zeros(_) => Ok(None),
                Val::Const(t) => {
                    let d = &t.dims;
                    if d.len() != 3 || d[2] != h || d[0] * d[1] == 0 || t.len() % h != 0 {
                        bail!("{what} has shape {d:?}, expected [1, batch, {h}]");
                    }
                    let rows: Vec<&[f64]> = t.data.chunks_exact(h).collect();
                    if rows.iter().any(|r| *r != rows[0]) {
                        bail!("{what} differs between sequences of the batch: per-sequence initial states are not supported");
                    }
                    if rows[0].iter().all(|&v| v == 0.0) {
                        Ok(None)
                    } else {
                        Ok(Some(rows[0].iter().map(|&v| v as f32).collect()))
                    }
                }
                Val::Seq(_) => bail!("{what} computed from the input is not supported"),
                Val::Sym { .. } => bail!("{what} is a shape value"),
            }
        };
        let h0 = init(self.input(n, 5)?, "initial_h")?;
        let (c0, p) = if op == "LSTM" {
            let c0 = init(self.input(n, 6)?, "initial_c")?;
            let p = match self.input(n, 7)? {
                Val::Absent | Val::Zeros(_) => None,
                _ => {
                    let p = self.konst(n, 7, "P")?;
                    if p.len() != 3 * h {
                        bail!("P has shape {:?}, expected [1, {}]", p.dims, 3 * h);
                    }
                    // ONNX i, o, f → IR i, f, o
                    Some(reorder(&p.data, h, 1, &[0, 2, 1]))
                }
            };
            (c0, p)
        } else {
            (None, None)
        };
        // ONNX gate order → PyTorch order.
        let order: &[usize] = match op {
            "LSTM" => &[0, 2, 3, 1], // i, o, f, c → i, f, g(c), o
            "GRU" => &[1, 0, 2],     // z, r, h → r, z, n
            _ => &[0],
        };
        let gh = gates * h;
        let cell = match cell {
            CellKind::Lstm { .. } => CellKind::Lstm {
                peepholes: p.is_some(),
            },
            c => c,
        };
        let p = p.filter(|v| v.iter().any(|&x| x != 0.0));
        let cell = match cell {
            CellKind::Lstm { .. } => CellKind::Lstm {
                peepholes: p.is_some(),
            },
            c => c,
        };
        let layer = FloatLayer {
            cell,
            input_size,
            hidden_size: h,
            w_ih: to_f32(reorder(&w.data, h, input_size, order)),
            w_hh: to_f32(reorder(&r.data, h, h, order)),
            b_ih: to_f32(reorder(&b[..gh], h, 1, order)),
            b_hh: to_f32(reorder(&b[gh..], h, 1, order)),
            peephole: p.map(to_f32),
            h0,
            c0,
        };
        if k == 0 {
            self.norm = norm;
        }
        self.layers.push(layer);
        let rec = |cell: bool| Stage::Rec {
            layer: k,
            cell,
            head: None,
            act: OutputAct::Identity,
        };
        let y_axes = if layout == 0 {
            vec![Ax::Time, Ax::Unit, Ax::Batch, Ax::Feat(h)]
        } else {
            vec![Ax::Batch, Ax::Time, Ax::Unit, Ax::Feat(h)]
        };
        let yh_axes = if layout == 0 {
            vec![Ax::Unit, Ax::Batch, Ax::Feat(h)]
        } else {
            vec![Ax::Batch, Ax::Unit, Ax::Feat(h)]
        };
        let mut outs = vec![
            Val::Seq(Seq {
                axes: y_axes,
                parts: vec![rec(false)],
                last: false,
            }),
            Val::Seq(Seq {
                axes: yh_axes.clone(),
                parts: vec![rec(false)],
                last: true,
            }),
        ];
        if op == "LSTM" {
            outs.push(Val::Seq(Seq {
                axes: yh_axes,
                parts: vec![rec(true)],
                last: true,
            }));
        }
        Ok(outs)
    }

    fn finish(mut self, out: Val, name: &str) -> Result<FloatModel> {
        let s = match out {
            Val::Seq(s) => s,
            _ => bail!("the output `{name}` does not depend on the input"),
        };
        if s.parts.len() != 1 {
            bail!("the output `{name}` stacks the states of several layers");
        }
        let nl = self.layers.len();
        let (head, act) = match s.parts.into_iter().next() {
            Some(Stage::Rec {
                layer,
                cell: false,
                head,
                act,
            }) if layer + 1 == nl => (head, act),
            Some(Stage::Rec { cell: true, .. }) => {
                bail!("the output `{name}` is an LSTM cell state (Y_c): not supported")
            }
            Some(Stage::Rec { layer, .. }) => bail!(
                "the output `{name}` comes from recurrent layer {layer}, not from the last one ({})",
                nl - 1
            ),
            _ => bail!("the output `{name}` does not go through a recurrent layer"),
        };
        for &a in &s.axes {
            match self.ax(a) {
                Ax::Batch | Ax::Time | Ax::TimeLast | Ax::Unit | Ax::Feat(_) => {}
                other => bail!("the output `{name}` has a {other:?} axis"),
            }
        }
        if let Some(want) = self.opts.output_act {
            if want != act {
                bail!(
                    "--output-activation {want:?} contradicts the graph, whose output activation is {act:?}"
                );
            }
        }
        let head = head.map(|d| FloatDense {
            out_size: d.out,
            in_size: d.inp,
            weight: to_f32(d.w),
            bias: to_f32(d.b),
        });
        let layers = std::mem::take(&mut self.layers);
        Ok(FloatModel {
            input_size: self.features,
            norm: self.norm.take(),
            layers,
            head,
            output_act: act,
            name: String::new(),
        })
    }
}

fn to_f32(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|x| x as f32).collect()
}

/// Reorders blocks of `h` rows (each `cols` wide): output block `i` = input block `order[i]`.
fn reorder(data: &[f64], h: usize, cols: usize, order: &[usize]) -> Vec<f64> {
    let block = h * cols;
    let mut out = Vec::with_capacity(data.len());
    for &o in order {
        out.extend_from_slice(&data[o * block..(o + 1) * block]);
    }
    out
}

fn make_sym(v: Vec<Dim>, scalar: bool) -> Val {
    match sym_to_const(&v, scalar) {
        Some(t) => Val::Const(t),
        None => Val::Sym { v, scalar },
    }
}

fn sym_to_const(v: &[Dim], scalar: bool) -> Option<Tensor> {
    let mut out = Vec::with_capacity(v.len());
    for d in v {
        match d {
            Dim::K(k) => out.push(*k as f64),
            _ => return None,
        }
    }
    let dims = if scalar { vec![] } else { vec![out.len()] };
    Some(Tensor::new(dims, out, true))
}

fn to_sym(v: &Val) -> Result<(Vec<Dim>, bool)> {
    match v {
        Val::Sym { v, scalar } => Ok((v.clone(), *scalar)),
        Val::Const(t) if t.dims.len() <= 1 => Ok((
            t.as_i64().into_iter().map(Dim::K).collect(),
            t.dims.is_empty(),
        )),
        _ => bail!("not a shape vector"),
    }
}

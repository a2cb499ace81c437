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
//!   of each axis (batch, time, features, size-1), by what it holds (the input with a
//!   pending per-feature affine map, or the hidden state of recurrent layer *k*, possibly
//!   through a dense head and an output activation) and by whether its time axis runs
//!   backwards (a whole-sequence `ReverseSequence`, as Keras's export writes for
//!   `Bidirectional` and `go_backwards=True`).
//!
//! A recurrent node (`LSTM`/`GRU`/`RNN`) consumes the sequence and appends a layer; the
//! graph output must end up as the last layer's hidden state (or its head). Nothing
//! depends on the exporter's exact op sequence, so batch-first or not, `Squeeze` vs
//! `Reshape`, `Gather(-1)` vs `Slice`, `Gemm` vs `MatMul + Add` all work; anything the
//! evaluator cannot give a meaning is a one-line error naming the node and op.
//!
//! Layout, one file per concern:
//!
//! * this file: [`import`] (graph walking: the nodes the output needs, its one data input,
//!   evaluation in graph order) and the evaluator's state and `finish`;
//! * `ops.rs`: the table of every op with its family and function (dispatch, the
//!   unrolled-export check and the "unsupported op" message all read it);
//! * `value.rs`: the values above;
//! * one file per op family: `recurrent.rs` (LSTM/GRU/RNN attributes, gate order),
//!   `dense.rs` (MatMul/Gemm, in the pre-net or the head), `activation.rs` (output and
//!   dense activations, LayerNorm, BatchNorm), `pool.rs` (ReduceMean/Max/Sum over time),
//!   `shape.rs` (shape glue), `fold.rs` (constants, casts and arithmetic folded into
//!   constants, the input normalization or a dense layer; `ReverseSequence` in
//!   `shape.rs`), `loops.rs` (Keras 3's `Loop` export of GRU/SimpleRNN/LSTM: the body
//!   matched against the cell equations; over a time-reversed sequence a reverse layer,
//!   joined with the forward `Loop` over the same sequence into a bidirectional one);
//! * `fuse.rs`: decomposed GELU / LayerNorm rewritten into one node before evaluation.
//!
//! The sequence's stages map onto the model: the input (with its normalization), then the
//! per-frame pre-net (`Stage::Pre`), then recurrent layers, a reduction over time, hidden
//! head layers and the final dense layer with the output activation (`Stage::Rec`).

mod activation;
mod dense;
mod fold;
mod fuse;
mod loops;
mod ops;
mod pool;
mod recurrent;
mod shape;
#[cfg(test)]
mod testing;
mod value;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::onnx_tensor::{ExternalData, Tensor};
use super::proto::{self, AttributeProto, NodeProto};
use super::ImportOptions;
use crate::ir::{FloatLayer, FloatModel, FrameOp, Norm};
use value::{sym_to_const, Ax, Dim, Seq, Stage, Val};

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
    check_not_unrolled(graph)?;
    let fused_graph = proto::GraphProto {
        node: fuse::fuse(graph, &ExternalData::beside(model_path)),
        ..graph.clone()
    };
    let graph = &fused_graph;
    let mut ev = Eval::new(opts, ExternalData::beside(model_path));
    for t in &graph.initializer {
        let v = Tensor::from_proto_in(t, Some(&ev.ext))
            .with_context(|| format!("initializer `{}`", t.name))?;
        ev.vals.insert(t.name.clone(), Val::Const(v));
    }
    let out_name = graph.output[0].name.clone();
    let (needed, seen) = needed_nodes(graph, &out_name);
    // The data input: the graph input, not an initializer, that the output depends on.
    let used_inputs: Vec<&proto::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !ev.vals.contains_key(&i.name) && seen.contains(i.name.as_str()))
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
    ev.bind_input(input)?;
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

/// Refuses a graph with no recurrent node (nor a `Loop`/`Scan`, refused later with its
/// own hint): an export that unrolled the recurrence.
fn check_not_unrolled(graph: &proto::GraphProto) -> Result<()> {
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    if !ops
        .iter()
        .any(|o| ops::is_recurrent(o) || *o == "Loop" || *o == "Scan")
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
    Ok(())
}

/// Which nodes the output `out_name` depends on (by index), and every value name it
/// depends on (including itself and the graph inputs and initializers it reads).
fn needed_nodes<'g>(
    graph: &'g proto::GraphProto,
    out_name: &'g str,
) -> (Vec<bool>, HashSet<&'g str>) {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (k, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            producer.insert(o.as_str(), k);
        }
    }
    let mut needed = vec![false; graph.node.len()];
    let mut stack = vec![out_name];
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
            // A `Loop` body reads outer values by name (the sequence it steps through).
            for a in &graph.node[k].attribute {
                if let Some(g) = a.g.as_deref() {
                    subgraph_reads(g, &mut stack);
                }
            }
        }
    }
    (needed, seen)
}

/// Every value name the nodes of subgraph `g` (and their own subgraphs) read: its own
/// values too, which name no node of the outer graph and so add nothing there.
fn subgraph_reads<'g>(g: &'g proto::GraphProto, out: &mut Vec<&'g str>) {
    for n in &g.node {
        out.extend(n.input.iter().filter(|i| !i.is_empty()).map(String::as_str));
        for a in &n.attribute {
            if let Some(sub) = a.g.as_deref() {
                subgraph_reads(sub, out);
            }
        }
    }
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
    /// The per-frame pre-net before the first recurrent layer.
    pre: Vec<FrameOp>,
    /// Role of the input's leading axes once a recurrent node has revealed it.
    free: [Option<Ax>; 2],
    /// Fixed sizes of the input's leading axes, when the graph input declares them (the
    /// default exporter without `dynamic_shapes` bakes the example's batch and time sizes
    /// into its `Reshape` targets).
    fixed: [Option<usize>; 2],
    /// What each Loop-made layer read (by layer index, see `loops.rs`), until a Loop over
    /// the same sequence in the other direction joins it into a bidirectional layer.
    loop_inputs: HashMap<usize, Seq>,
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
            pre: Vec::new(),
            free: [None, None],
            fixed: [None, None],
            loop_inputs: HashMap::new(),
        }
    }

    /// Binds the graph input `input` as the sequence, from its declared dims: `[batch,
    /// time, features]` or `[time, batch, features]` (which is which is learned from the
    /// first recurrent node), or `[·, features]`.
    fn bind_input(&mut self, input: &proto::ValueInfoProto) -> Result<()> {
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
        self.features = features;
        if dims.len() == 3 {
            for (slot, d) in self.fixed.iter_mut().zip(&dims) {
                *slot = d.and_then(|d| usize::try_from(d).ok()).filter(|&d| d > 0);
            }
        }
        self.vals.insert(
            input.name.clone(),
            Val::Seq(Seq {
                axes,
                parts: vec![Stage::Input {
                    a: vec![1.0; features],
                    b: vec![0.0; features],
                }],
                last: false,
                rev: false,
            }),
        );
        Ok(())
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
        match ops::lookup(&n.op_type) {
            Some(op) => (op.eval)(self, n),
            None => bail!("{}", ops::unsupported(&n.op_type)),
        }
    }

    fn finish(mut self, out: Val, name: &str) -> Result<FloatModel> {
        let mut s = match out {
            Val::Seq(s) => s,
            _ => bail!("the output `{name}` does not depend on the input"),
        };
        // A bidirectional layer's `Y_h` as the output ([2, batch, H]): per sequence its
        // final states `[fwd; bwd]`, as `cat(h_n[-2], h_n[-1])`.
        if let Some(joined) = Stage::join_directions(&s.parts, s.last) {
            let dir = s.axes.iter().position(|&a| self.ax(a) == Ax::Stack(2));
            let feat = s
                .axes
                .iter()
                .position(|&a| matches!(self.ax(a), Ax::Feat(_)));
            match (dir, feat) {
                (Some(d), Some(f)) if d < f => {
                    s.axes[d] = Ax::Unit;
                    s.parts = vec![joined];
                }
                _ => bail!(
                    "the output `{name}` holds the two directions of a bidirectional layer in an order other than [forward; reverse] per sequence"
                ),
            }
        }
        if s.parts.len() != 1 {
            bail!("the output `{name}` stacks the states of several layers");
        }
        if s.rev {
            bail!("the output `{name}` is a sequence in reversed time order (the per-step output of a go_backwards=True layer with return_sequences=True, as Keras returns it): not supported");
        }
        let nl = self.layers.len();
        let (pool, mlp, head, act) = match s.parts.into_iter().next() {
            Some(Stage::Rec {
                layer,
                cell: false,
                pool,
                mlp,
                head,
                act,
            }) if layer + 1 == nl => (pool, mlp, head, act),
            Some(Stage::Rec { cell: true, .. }) => {
                bail!("the output `{name}` is an LSTM cell state (Y_c): not supported")
            }
            Some(Stage::Rec { layer, .. }) => bail!(
                "the output `{name}` comes from recurrent layer {layer}, not from the last one ({})",
                nl - 1
            ),
            Some(Stage::Dir { layer, .. }) => {
                return Err(Stage::one_direction(layer, "the graph output"))
            }
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
        let head = head.map(|d| d.float(tinyrnn::DenseAct::Identity));
        let layers = std::mem::take(&mut self.layers);
        Ok(FloatModel {
            input_size: self.features,
            norm: self.norm.take(),
            pre: std::mem::take(&mut self.pre),
            layers,
            pool,
            mlp,
            head,
            output_act: act,
            name: String::new(),
        })
    }
}

fn to_f32(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|x| x as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::testing::node;
    use super::*;

    fn graph(nodes: Vec<NodeProto>) -> proto::GraphProto {
        proto::GraphProto {
            node: nodes,
            ..Default::default()
        }
    }

    fn to(mut n: NodeProto, out: &str) -> NodeProto {
        n.output = vec![out.into()];
        n
    }

    #[test]
    fn only_the_nodes_the_output_needs() {
        let g = graph(vec![
            to(node("Shape", &["x"], vec![]), "unused"),
            to(node("LSTM", &["x", "W", "R"], vec![]), "y"),
            to(node("Squeeze", &["y"], vec![]), "out"),
            to(node("Tanh", &["unused"], vec![]), "other"),
        ]);
        let (needed, seen) = needed_nodes(&g, "out");
        assert_eq!(needed, [false, true, true, false]);
        let mut names: Vec<&str> = seen.into_iter().collect();
        names.sort_unstable();
        assert_eq!(names, ["R", "W", "out", "x", "y"]);
        assert!(check_not_unrolled(&g).is_ok());
    }

    #[test]
    fn unrolled_graph_is_refused_with_a_hint() {
        let g = graph(vec![
            node("MatMul", &[], vec![]),
            node("Gemm", &[], vec![]),
            node("Sigmoid", &[], vec![]),
            node("Add", &[], vec![]),
        ]);
        assert_eq!(
            check_not_unrolled(&g).unwrap_err().to_string(),
            "no LSTM/GRU/RNN node in the graph (4 nodes: 2 MatMul/Gemm, 1 Sigmoid, 0 Tanh): \
             this looks like an unrolled export (torch.onnx.export's default dynamo exporter); \
             re-export with torch.onnx.export(..., dynamo=False)"
        );
        assert!(check_not_unrolled(&graph(vec![node("Loop", &[], vec![])])).is_ok());
    }
}

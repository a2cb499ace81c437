//! Decomposed ops fused back before evaluation: exporters that target an opset without
//! `Gelu` (< 20) or `LayerNormalization` (< 17) write them as element-wise arithmetic on the
//! data, which the evaluator cannot give a meaning node by node. Recognised here:
//!
//! * exact GELU: `x · 0.5 · (1 + Erf(x / √2))` (`Div` by √2 or `Mul` by 1/√2, the two
//!   `Mul`s in any order);
//! * GELU, tanh approximation: `x · 0.5 · (1 + Tanh(√(2/π) · (x + 0.044715 · x³)))` (`x³`
//!   as `Pow(x, 3)` or `x · (x · x)`);
//! * LayerNorm: `d = x − ReduceMean(x)`, `d / Sqrt(ReduceMean(d²) + eps)`, then optional
//!   `· gamma` and `+ beta` (`d²` as `Pow(d, 2)` or `d · d`).
//!
//! The last node of a match is replaced by one `Gelu` / `LayerNormalization` node reading
//! `x` (named after it, "fused"); the other nodes of the match are then no longer needed by
//! the output. A partial match changes nothing (its nodes are refused as usual).

use std::collections::HashMap;

use super::super::onnx_tensor::{ExternalData, Tensor};
use super::super::proto::{attr_type, AttributeProto, GraphProto, NodeProto};
use super::{attr, attr_i, attr_ints};

struct G<'a> {
    nodes: &'a [NodeProto],
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    graph: &'a GraphProto,
    ext: &'a ExternalData,
}

fn near(v: Option<f64>, want: f64) -> bool {
    v.is_some_and(|v| (v - want).abs() <= 1e-4 * want.abs().max(1.0))
}

impl<'a> G<'a> {
    fn new(graph: &'a GraphProto, ext: &'a ExternalData) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (k, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), k);
            }
            for i in &n.input {
                consumers.entry(i.as_str()).or_default().push(k);
            }
        }
        G {
            nodes: &graph.node,
            producer,
            consumers,
            graph,
            ext,
        }
    }

    /// The node producing `name`, if it is of op `op`.
    fn prod(&self, name: &str, op: &str) -> Option<&'a NodeProto> {
        let n = &self.nodes[*self.producer.get(name)?];
        (n.op_type == op).then_some(n)
    }

    /// The only node reading `name`, if it is of op `op`.
    fn only(&self, name: &str, op: &str) -> Option<(usize, &'a NodeProto)> {
        match self.consumers.get(name).map(Vec::as_slice) {
            Some(&[k]) if self.nodes[k].op_type == op => Some((k, &self.nodes[k])),
            _ => None,
        }
    }

    /// The other operand of a binary node that reads `this`.
    fn other<'n>(n: &'n NodeProto, this: &str) -> Option<&'n str> {
        match &n.input[..] {
            [a, b] if a == this => Some(b),
            [a, b] if b == this => Some(a),
            _ => None,
        }
    }

    /// A constant tensor: an initializer or a `Constant` node's value.
    fn tensor(&self, name: &str) -> Option<Tensor> {
        if let Some(t) = self.graph.initializer.iter().find(|t| t.name == name) {
            return Tensor::from_proto_in(t, Some(self.ext)).ok();
        }
        let c = self.prod(name, "Constant")?;
        if let Some(t) = attr(c, "value").and_then(|a| a.t.as_ref()) {
            return Tensor::from_proto_in(t, Some(self.ext)).ok();
        }
        if let Some(a) = attr(c, "value_float") {
            return Some(Tensor::new(vec![], vec![a.f as f64], false));
        }
        attr_ints(c, "value_ints").map(|v| Tensor::ints(&v))
    }

    fn scalar(&self, name: &str) -> Option<f64> {
        self.tensor(name)
            .filter(|t| t.len() == 1)
            .map(|t| t.data[0])
    }

    /// `(x op c)` with the constant `c ≈ want` (either operand for `Mul`/`Add`).
    fn with_const(&self, n: &'a NodeProto, want: f64) -> Option<&'a str> {
        let [a, b] = &n.input[..] else { return None };
        let commutes = n.op_type == "Mul" || n.op_type == "Add";
        if near(self.scalar(b), want) {
            Some(a)
        } else if commutes && near(self.scalar(a), want) {
            Some(b)
        } else {
            None
        }
    }

    /// `x · 0.5 · s` from the node output `s` on (two `Mul`s, any order): the last node.
    fn half_times(&self, s: &str, x: &str) -> Option<usize> {
        let (i1, m1) = self.only(s, "Mul")?;
        let o1 = Self::other(m1, s)?;
        let out1 = m1.output.first()?;
        if o1 == x {
            let (i2, m2) = self.only(out1, "Mul")?;
            return near(self.scalar(Self::other(m2, out1)?), 0.5).then_some(i2);
        }
        if near(self.scalar(o1), 0.5) {
            let (i2, m2) = self.only(out1, "Mul")?;
            return (Self::other(m2, out1)? == x).then_some(i2);
        }
        let h = self.prod(o1, "Mul")?;
        (self.with_const(h, 0.5)? == x).then_some(i1)
    }

    /// Exact GELU around the `Erf` node `e`: (x, last node).
    fn gelu_erf(&self, e: &'a NodeProto) -> Option<(&'a str, usize)> {
        let inner = e.input.first()?;
        let x = match self.prod(inner, "Div") {
            Some(d) => self.with_const(d, std::f64::consts::SQRT_2)?,
            None => self.with_const(self.prod(inner, "Mul")?, std::f64::consts::FRAC_1_SQRT_2)?,
        };
        let (_, add) = self.only(e.output.first()?, "Add")?;
        self.with_const(add, 1.0)?;
        Some((x, self.half_times(add.output.first()?, x)?))
    }

    /// `x³` as `Pow(x, 3)`, `x · (x · x)` or `(x · x) · x`: x.
    fn cube(&self, name: &str) -> Option<&'a str> {
        if let Some(p) = self.prod(name, "Pow") {
            return near(self.scalar(p.input.get(1)?), 3.0).then(|| p.input[0].as_str());
        }
        let m = self.prod(name, "Mul")?;
        let [a, b] = &m.input[..] else { return None };
        for (x, sq) in [(a, b), (b, a)] {
            if let Some(s) = self.prod(sq, "Mul") {
                if s.input.len() == 2 && s.input[0] == *x && s.input[1] == *x {
                    return Some(x);
                }
            }
        }
        None
    }

    /// GELU (tanh) around the `Tanh` node `t`: (x, last node).
    fn gelu_tanh(&self, t: &'a NodeProto) -> Option<(&'a str, usize)> {
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let s = self.with_const(self.prod(t.input.first()?, "Mul")?, k)?;
        let add = self.prod(s, "Add")?;
        let [a, b] = &add.input[..] else { return None };
        let x = [(a, b), (b, a)].into_iter().find_map(|(x, c)| {
            let m = self.prod(c, "Mul")?;
            (self.cube(self.with_const(m, 0.044715)?)? == x.as_str()).then_some(x.as_str())
        })?;
        let (_, add1) = self.only(t.output.first()?, "Add")?;
        self.with_const(add1, 1.0)?;
        Some((x, self.half_times(add1.output.first()?, x)?))
    }

    fn axes(&self, n: &NodeProto) -> Option<Vec<i64>> {
        attr_ints(n, "axes").or_else(|| Some(self.tensor(n.input.get(1)?)?.as_i64()))
    }

    /// LayerNorm from the `ReduceMean` node `r1`: (x, axis, eps, gamma, beta, last node).
    #[allow(clippy::type_complexity)]
    fn layer_norm(&self, r1: &'a NodeProto) -> Option<(&'a str, i64, f32, String, String, usize)> {
        let x = r1.input.first()?.as_str();
        let axes = self.axes(r1)?;
        if axes.len() != 1 || attr_i(r1, "keepdims").unwrap_or(1) == 0 {
            return None;
        }
        let mean = r1.output.first()?;
        let (_, sub) = self.only(mean, "Sub")?;
        if sub.input.len() != 2 || sub.input[0] != x || sub.input[1] != *mean {
            return None;
        }
        let d = sub.output.first()?.as_str();
        let readers = self.consumers.get(d)?;
        let mut sq = None;
        let mut div = None;
        for &k in readers {
            let n = &self.nodes[k];
            match n.op_type.as_str() {
                "Pow" if n.input[0] == d && near(self.scalar(n.input.get(1)?), 2.0) => sq = Some(n),
                "Mul" if n.input.len() == 2 && n.input[0] == d && n.input[1] == d => sq = Some(n),
                "Div" if n.input[0] == d => div = Some((k, n)),
                _ => return None,
            }
        }
        let (sq, (mut last, div)) = (sq?, div?);
        let (_, r2) = self.only(sq.output.first()?, "ReduceMean")?;
        if self.axes(r2)? != axes || attr_i(r2, "keepdims").unwrap_or(1) == 0 {
            return None;
        }
        let (_, add) = self.only(r2.output.first()?, "Add")?;
        let eps_name = Self::other(add, r2.output.first()?)?;
        let eps = self.scalar(eps_name)? as f32;
        let (_, sqrt) = self.only(add.output.first()?, "Sqrt")?;
        if div.input.get(1)? != sqrt.output.first()? {
            return None;
        }
        let mut out = div.output.first()?.as_str();
        let (mut gamma, mut beta) = (String::new(), String::new());
        if let Some((k, m)) = self.only(out, "Mul") {
            let g = Self::other(m, out)?;
            if self.tensor(g).is_some() {
                gamma = g.to_string();
                out = m.output.first()?;
                last = k;
                if let Some((k, a)) = self.only(out, "Add") {
                    let b = Self::other(a, out)?;
                    if self.tensor(b).is_some() {
                        beta = b.to_string();
                        last = k;
                    }
                }
            }
        }
        Some((x, axes[0], eps, gamma, beta, last))
    }
}

fn fused(
    last: &NodeProto,
    op: &str,
    inputs: Vec<String>,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    let name = if last.name.is_empty() {
        format!("{op} (fused)")
    } else {
        format!("{} ({op} fused)", last.name)
    };
    NodeProto {
        input: inputs,
        output: vec![last.output.first().cloned().unwrap_or_default()],
        name,
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::STRING,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The graph's nodes with every decomposed GELU / LayerNorm replaced (see the module docs).
pub(super) fn fuse(graph: &GraphProto, ext: &ExternalData) -> Vec<NodeProto> {
    let g = G::new(graph, ext);
    let mut out = graph.node.clone();
    for n in &graph.node {
        match n.op_type.as_str() {
            "Erf" => {
                if let Some((x, last)) = g.gelu_erf(n) {
                    let a = vec![attr_string("approximate", "none")];
                    out[last] = fused(&graph.node[last], "Gelu", vec![x.into()], a);
                }
            }
            "Tanh" => {
                if let Some((x, last)) = g.gelu_tanh(n) {
                    let a = vec![attr_string("approximate", "tanh")];
                    out[last] = fused(&graph.node[last], "Gelu", vec![x.into()], a);
                }
            }
            "ReduceMean" => {
                if let Some((x, axis, eps, gamma, beta, last)) = g.layer_norm(n) {
                    let a = vec![
                        AttributeProto {
                            name: "axis".into(),
                            r#type: attr_type::INT,
                            i: axis,
                            ..Default::default()
                        },
                        AttributeProto {
                            name: "epsilon".into(),
                            r#type: attr_type::FLOAT,
                            f: eps,
                            ..Default::default()
                        },
                    ];
                    out[last] = fused(
                        &graph.node[last],
                        "LayerNormalization",
                        vec![x.into(), gamma, beta],
                        a,
                    );
                }
            }
            _ => {}
        }
    }
    out
}

//! `Loop` nodes as Keras 3's ONNX export (tf2onnx) writes them for `GRU` (both
//! `reset_after`), `SimpleRNN` and an unfused `LSTM`: a while loop whose body is one step of
//! the cell, reading the time step with `Gather(sequence, counter)`, the weights as loop
//! invariants (or outer initializers), and giving the new state as a carried value plus a
//! per-step scan output.
//!
//! The body is recognized by what it computes, not by node names: the nodes the new
//! state depends on are evaluated symbolically, each value being a constant, an **affine
//! form** `x·Wx + h·Wh + b` of the step's input `x` and previous state `h` (MatMul by
//! constants, bias adds, column `Slice`/`Split` are exact on these), or an expression over
//! such forms (`Sigmoid`, `Tanh`, `Relu`, `Mul`, `Add`, `1 − ·`, a `MatMul` of an
//! expression). The new state must then match one cell equation exactly:
//!
//! ```text
//! SimpleRNN      h' = tanh(A) | relu(A)
//! LSTM           c' = σ(A_f)·c + σ(A_i)·tanh(A_g),   h' = σ(A_o)·tanh(c')
//! GRU            h' = σ(A_z)·h + (1 − σ(A_z))·tanh(N)
//!   reset_after  N  = X_n + σ(A_r)·H_n            (X_n of x only, H_n of h only)
//!   reset before N  = X_n + (σ(A_r)·h)·U_n
//! ```
//!
//! and the weights are read off the affine forms. Any other body (another activation such
//! as `HardSigmoid`, an op outside this list, another combination) is refused, naming the
//! node.
//!
//! Direction. Keras exports a `go_backwards=True` layer, and a `Bidirectional` layer's
//! backward direction, as the same `Loop` over a `ReverseSequence` of the layer's input
//! (`Seq::rev`): that `Loop` is a reverse layer. Its carried state after the last
//! iteration is the reverse layer's final state (its state after frame 0, what Keras
//! returns without `return_sequences`); its scan output holds the steps in the order the
//! loop ran them, i.e. time-reversed (what a `go_backwards=True, return_sequences=True`
//! layer returns; `Bidirectional` reverses it back before its `Concat`). When the previous
//! layer is a `Loop` layer of the opposite direction, same cell and sizes, over the same
//! sequence, the two are one bidirectional layer: the values already computed from the
//! first become its direction (`Stage::Dir`), and only `[forward; backward]` concatenated on
//! the feature axis means anything downstream (`Bidirectional`'s merge_mode `concat`; an
//! `Add`/`Mul` of the two is refused). A `Loop` reading a reverse layer's per-step output
//! is refused, as the `.keras` importer refuses a recurrent layer after a
//! `go_backwards=True, return_sequences=True` one.

use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use tinyrnn::{CellKind, DenseAct, Direction, OutputAct, Pool, RnnAct};

use super::super::onnx_tensor::{resolve_slice, Tensor};
use super::super::proto::{GraphProto, NodeProto};
use super::value::{input_norm, Ax, Seq, Stage, Val};
use super::{attr, attr_i, attr_ints, Eval};
use crate::ir::FloatLayer;

/// `x·wx + h·wh + b` over `n` columns (`wx` is `[I, n]`, `wh` is `[H, n]`, row-major).
#[derive(Debug, Clone, PartialEq)]
struct Aff {
    n: usize,
    wx: Vec<f64>,
    wh: Vec<f64>,
    b: Vec<f64>,
}

impl Aff {
    fn cols(&self, lo: usize, cnt: usize, i: usize, h: usize) -> Aff {
        let pick = |w: &[f64], rows: usize| -> Vec<f64> {
            (0..rows)
                .flat_map(|r| w[r * self.n + lo..r * self.n + lo + cnt].iter().copied())
                .collect()
        };
        Aff {
            n: cnt,
            wx: pick(&self.wx, i),
            wh: pick(&self.wh, h),
            b: self.b[lo..lo + cnt].to_vec(),
        }
    }
    fn zip(&self, o: &Aff, f: impl Fn(f64, f64) -> f64) -> Aff {
        let z = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
        Aff {
            n: self.n,
            wx: z(&self.wx, &o.wx),
            wh: z(&self.wh, &o.wh),
            b: z(&self.b, &o.b),
        }
    }
    fn has_x(&self) -> bool {
        self.wx.iter().any(|&v| v != 0.0)
    }
    fn has_h(&self) -> bool {
        self.wh.iter().any(|&v| v != 0.0)
    }
}

/// A symbolic value of the body.
#[derive(Debug)]
enum Ex {
    Aff(Aff),
    /// The previous cell state `c` (LSTM).
    C,
    Sig(Rc<Ex>),
    Tanh(Rc<Ex>),
    Relu(Rc<Ex>),
    Add(Rc<Ex>, Rc<Ex>),
    Mul(Rc<Ex>, Rc<Ex>),
    OneMinus(Rc<Ex>),
    MatMul(Rc<Ex>, Vec<f64>, usize, usize),
}

#[derive(Debug, Clone)]
enum B {
    C(Tensor),
    E(Rc<Ex>),
    /// The step counter (and the counter + 1).
    Counter,
    CounterNext,
}

struct Body<'a> {
    i: usize,
    h: usize,
    env: HashMap<String, B>,
    producer: HashMap<&'a str, &'a NodeProto>,
}

fn label(n: &NodeProto) -> String {
    format!("loop body node `{}` ({})", n.name, n.op_type)
}

impl Eval<'_> {
    /// `Less`/`And` outside a loop body: the loop condition Keras computes before a `Loop`
    /// (only a `Loop` may read it: anything else gets an absent value and fails).
    pub(super) fn loop_cond(&mut self, _n: &NodeProto) -> Result<Vec<Val>> {
        Ok(vec![Val::Absent])
    }

    /// A `Loop` node: one recurrent layer if its body is a cell step (module docs).
    pub(super) fn keras_loop(&mut self, n: &NodeProto) -> Result<Vec<Val>> {
        let body = attr(n, "body")
            .and_then(|a| a.g.as_deref())
            .ok_or_else(|| anyhow!("Loop without a body"))?;
        let nc = n.input.len().saturating_sub(2);
        if body.input.len() != nc + 2 || body.output.len() < nc + 1 {
            bail!("Loop body signature does not match its inputs");
        }
        let scans = body.output.len() - 1 - nc;
        // Carried values: counter, invariants (weights, limits), and the states.
        let mut states = Vec::new();
        let mut env: HashMap<String, B> = HashMap::new();
        env.insert(body.input[0].name.clone(), B::Counter);
        let mut inits = Vec::new();
        for j in 0..nc {
            let bi = &body.input[2 + j].name;
            let bo = &body.output[1 + j].name;
            let init = self.input(n, 2 + j)?;
            if bi == bo {
                if let Val::Const(t) = &init {
                    env.insert(bi.clone(), B::C(t.clone()));
                }
            } else {
                match &init {
                    Val::Const(t) if t.int && t.len() == 1 => {
                        if t.data[0] != 0.0 {
                            bail!("loop counter starts at {}", t.data[0]);
                        }
                        env.insert(bi.clone(), B::Counter);
                    }
                    Val::Zeros(_) => states.push(j),
                    Val::Const(t) if !t.int && t.data.iter().all(|&v| v == 0.0) => states.push(j),
                    _ => bail!(
                        "loop-carried value `{bi}`: not a zero initial state, counter or invariant"
                    ),
                }
            }
            inits.push(init);
        }
        if states.is_empty() || states.len() > 2 || scans > 1 {
            bail!(
                "Loop with {} carried states and {scans} scan outputs is not a recurrent layer",
                states.len()
            );
        }
        let mut producer = HashMap::new();
        for bn in &body.node {
            for o in &bn.output {
                producer.insert(o.as_str(), bn);
            }
        }
        for t in &body.initializer {
            let v = Tensor::from_proto_in(t, Some(&self.ext))
                .with_context(|| format!("loop body initializer `{}`", t.name))?;
            env.insert(t.name.clone(), B::C(v));
        }
        // The input sequence: the outer value a Gather by the counter reads.
        let gather = body
            .node
            .iter()
            .find(|g| {
                g.op_type == "Gather"
                    && g.input.len() == 2
                    && g.output.len() == 1
                    && matches!(self.vals.get(&g.input[0]), Some(Val::Seq(_)))
            })
            .ok_or_else(|| anyhow!("the Loop body reads no time step of the input sequence"))?;
        let Some(Val::Seq(x)) = self.vals.get(&gather.input[0]).cloned() else {
            unreachable!()
        };
        if x.last || x.parts.len() != 1 || x.axes.len() != 3 {
            bail!(
                "the Loop's sequence has axes {:?}: expected [time, batch, features]",
                x.axes
            );
        }
        let i = match self.ax(x.axes[2]) {
            Ax::Feat(f) => f,
            other => bail!("the Loop's sequence has {other:?} on its last axis"),
        };
        // The hidden width: the last dimension of the zero initial state.
        let h = match &inits[states[0]] {
            Val::Zeros(d) => match d.last() {
                Some(super::value::Dim::K(k)) if *k > 0 => *k as usize,
                _ => bail!("the Loop's initial state has dims {d:?}: no fixed width"),
            },
            Val::Const(t) if !t.dims.is_empty() => t.dims[t.dims.len() - 1],
            _ => bail!("the Loop's initial state has no fixed width"),
        };
        // The body's symbolic weights hold [h, h] and [h, i] matrices; a width read from a
        // file is bounded like every other file-shaped tensor.
        let max = crate::import::onnx_tensor::MAX_ELEMENTS;
        if h.checked_mul(h.max(i)).is_none_or(|n| n > max) {
            bail!("the Loop's state width {h} (input width {i}) is too large");
        }
        let mut b = Body {
            i,
            h,
            env,
            producer,
        };
        // States: h is the one the scan output (or the only state) follows.
        let eye = |n: usize| -> Vec<f64> {
            (0..n * n)
                .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
                .collect()
        };
        let (hj, cj) = match states.len() {
            1 => (states[0], None),
            _ => {
                // The state whose new value is the scan output.
                let Some(scan) = body.output.get(1 + nc).map(|o| &o.name) else {
                    bail!("a Loop with two carried states and no scan output is not a recurrent layer");
                };
                let same = |j: usize| {
                    let mut a = body.output[1 + j].name.as_str();
                    let mut s = scan.as_str();
                    for _ in 0..4 {
                        if a == s {
                            return true;
                        }
                        let identity =
                            |p: &&&NodeProto| p.op_type == "Identity" && !p.input.is_empty();
                        if let Some(p) = b.producer.get(s).filter(identity) {
                            s = &p.input[0];
                        } else if let Some(p) = b.producer.get(a).filter(identity) {
                            a = &p.input[0];
                        }
                    }
                    false
                };
                if same(states[0]) {
                    (states[0], Some(states[1]))
                } else {
                    (states[1], Some(states[0]))
                }
            }
        };
        b.env.insert(
            body.input[2 + hj].name.clone(),
            B::E(Rc::new(Ex::Aff(Aff {
                n: h,
                wx: vec![0.0; i * h],
                wh: eye(h),
                b: vec![0.0; h],
            }))),
        );
        if let Some(cj) = cj {
            b.env
                .insert(body.input[2 + cj].name.clone(), B::E(Rc::new(Ex::C)));
        }
        b.env.insert(
            gather.output[0].clone(),
            B::E(Rc::new(Ex::Aff(Aff {
                n: i,
                wx: eye(i),
                wh: vec![0.0; h * i],
                b: vec![0.0; i],
            }))),
        );
        let new_h = self.body_value(&mut b, &body.output[1 + hj].name)?;
        let new_c = match cj {
            Some(cj) => Some(self.body_value(&mut b, &body.output[1 + cj].name)?),
            None => None,
        };
        if !matches!(b.env.get(&gather.input[1]), Some(B::Counter)) {
            bail!("the Loop body reads the sequence at an index that is not the step counter");
        }
        check_condition(body, &b.producer)?;
        let layer = match_cell(&new_h, new_c.as_deref(), i, h).ok_or_else(|| {
            anyhow!(
                "the Loop body is not an LSTM, GRU or SimpleRNN step (Keras export): not supported"
            )
        })?;
        // Over a time-reversed sequence: a reverse layer, or the other direction of the
        // previous Loop's layer (Keras's Bidirectional: both read the same sequence).
        let mut layer = layer;
        if x.rev {
            layer.direction = Direction::Reverse;
        }
        let key = self.loop_key(&x);
        let merged = match self.layers.len().checked_sub(1) {
            Some(m) if self.loop_inputs.get(&m) == Some(&key) => {
                let l = &self.layers[m];
                let opposite = l.direction != layer.direction
                    && matches!(l.direction, Direction::Forward | Direction::Reverse);
                (opposite
                    && l.cell == layer.cell
                    && l.input_size == layer.input_size
                    && l.hidden_size == layer.hidden_size)
                    .then_some(m)
            }
            _ => None,
        };
        let dir = u8::from(x.rev);
        let k = match merged {
            Some(m) => {
                self.join_loop_layers(m, layer)?;
                m
            }
            None => {
                self.push_loop_layer(layer, &x)?;
                let k = self.layers.len() - 1;
                self.loop_inputs.insert(k, key);
                k
            }
        };
        // The carried state after the last iteration is the final state; the scan output
        // holds every step in the order the Loop ran them (reversed if `x.rev`).
        let stage = |cell: bool, last: bool| match merged {
            Some(m) => Stage::Dir {
                layer: m,
                dir,
                cell,
            },
            None if x.rev && last => Stage::Rec {
                layer: k,
                cell,
                pool: Pool::FinalStates,
                mlp: Vec::new(),
                head: None,
                act: OutputAct::Identity,
            },
            None => Stage::hidden(k, cell),
        };
        let rec = |cell: bool, last: bool, axes: Vec<Ax>| {
            Val::Seq(Seq {
                axes,
                parts: vec![stage(cell, last)],
                last,
                rev: x.rev && !last,
            })
        };
        let mut outs = Vec::new();
        for (j, init) in inits.into_iter().enumerate() {
            outs.push(if j == hj {
                rec(false, true, vec![Ax::Batch, Ax::Feat(h)])
            } else if Some(j) == cj {
                rec(true, true, vec![Ax::Batch, Ax::Feat(h)])
            } else if body.input[2 + j].name == body.output[1 + j].name {
                init
            } else {
                Val::Absent
            });
        }
        if scans == 1 {
            outs.push(rec(false, false, vec![Ax::Time, Ax::Batch, Ax::Feat(h)]));
        }
        Ok(outs)
    }

    /// What a Loop layer reads, compared between the two directions of a bidirectional
    /// layer: the sequence with its axes' roles resolved, in time order.
    fn loop_key(&self, x: &Seq) -> Seq {
        Seq {
            axes: x.axes.iter().map(|&a| self.ax(a)).collect(),
            rev: false,
            ..x.clone()
        }
    }

    /// Makes layer `m` (a Loop layer, forward or reverse) and `other` (the opposite
    /// direction over the same sequence) one bidirectional layer `m`, and rewrites the
    /// values computed so far from layer `m` alone into its direction (`Stage::Dir`): its
    /// per-step output, or its final state. Anything else already applied to that one
    /// direction is refused.
    fn join_loop_layers(&mut self, m: usize, other: FloatLayer) -> Result<()> {
        let old_rev = self.layers[m].direction == Direction::Reverse;
        let d = u8::from(old_rev);
        let name = if old_rev { "backward" } else { "forward" };
        for v in self.vals.values_mut() {
            let Val::Seq(s) = v else { continue };
            let last = s.last;
            for p in &mut s.parts {
                let Stage::Rec {
                    layer,
                    cell,
                    pool,
                    mlp,
                    head,
                    act,
                } = p
                else {
                    continue;
                };
                if *layer != m {
                    continue;
                }
                let plain = mlp.is_empty() && head.is_none() && *act == OutputAct::Identity;
                let ok = plain
                    && match (old_rev, *pool) {
                        (false, Pool::Last) => true,
                        (true, Pool::Last) => !last,
                        (true, Pool::FinalStates) => last,
                        _ => false,
                    };
                if !ok {
                    bail!(
                        "the {name} Loop's output of recurrent layer {m} is used on its own ({} over time{}) as well as joined with the other direction over the same sequence: only the two directions concatenated [forward; backward] (Keras Bidirectional, merge_mode \"concat\") are supported",
                        pool.name(),
                        if plain { "" } else { ", then a dense layer or activation" }
                    );
                }
                *p = Stage::Dir {
                    layer: m,
                    dir: d,
                    cell: *cell,
                };
            }
        }
        let old = self.layers[m].clone();
        let (mut fwd, mut bwd) = if old_rev { (other, old) } else { (old, other) };
        bwd.direction = Direction::Forward;
        fwd.direction = Direction::Bidirectional;
        fwd.backward = Some(Box::new(bwd));
        self.layers[m] = fwd;
        self.loop_inputs.remove(&m);
        Ok(())
    }

    /// Sets the sequence's axes (time first) and appends the layer (the input stage as in
    /// `recurrent.rs`: a pending affine map becomes the input normalization).
    fn push_loop_layer(&mut self, layer: FloatLayer, x: &Seq) -> Result<()> {
        for (pos, role) in [(0, Ax::Time), (1, Ax::Batch)] {
            match self.ax(x.axes[pos]) {
                Ax::Free(i) => self.free[i as usize] = Some(role),
                a if a == role => {}
                Ax::Unit if role == Ax::Batch => {}
                other => bail!("the Loop's sequence has a {other:?} axis where the time-major layout puts {role:?}"),
            }
        }
        let k = self.layers.len();
        match &x.parts[0] {
            Stage::Input { .. } | Stage::Pre { .. } if k != 0 => {
                bail!("a second recurrent stack reading the raw input")
            }
            Stage::Input { a, b } => self.norm = input_norm(a, b)?,
            Stage::Pre { a, b, ops, dense } => {
                self.norm = input_norm(a, b)?;
                self.pre.clone_from(ops);
                self.pre
                    .extend(dense.clone().map(|d| d.close(DenseAct::Identity)));
            }
            s if k > 0 && s.is_plain_state(k - 1) => {
                if self.layers[k - 1].direction == Direction::Reverse {
                    bail!("the Loop reads the per-step output of a reverse (go_backwards=True, return_sequences=True) layer, which Keras hands on in reversed time order; only a GlobalAveragePooling1D/GlobalMaxPooling1D may follow such a layer");
                }
            }
            Stage::Rec { .. } | Stage::Dir { .. } => {
                bail!("the Loop's input is not the hidden state of the previous recurrent layer")
            }
        }
        self.layers.push(layer);
        Ok(())
    }

    fn body_const(&self, env: &HashMap<String, B>, name: &str) -> Option<Tensor> {
        match env.get(name) {
            Some(B::C(t)) => Some(t.clone()),
            Some(_) => None,
            None => match self.vals.get(name) {
                Some(Val::Const(t)) => Some(t.clone()),
                _ => None,
            },
        }
    }

    /// The symbolic value of `name` in the body (evaluating its producers on demand).
    fn body_value(&mut self, b: &mut Body<'_>, name: &str) -> Result<Rc<Ex>> {
        match self.body_eval(b, name, 0)? {
            B::E(e) => Ok(e),
            _ => bail!("the Loop's state `{name}` is not computed from the input and state"),
        }
    }

    fn body_eval(&mut self, b: &mut Body<'_>, name: &str, depth: usize) -> Result<B> {
        if let Some(v) = b.env.get(name) {
            return Ok(v.clone());
        }
        if let Some(t) = self.body_const(&b.env, name) {
            return Ok(B::C(t));
        }
        if depth > 200 {
            bail!("the Loop body is too deep");
        }
        let n = *b.producer.get(name).ok_or_else(|| {
            anyhow!("the Loop body reads `{name}`, which is neither computed nor a constant")
        })?;
        let mut ins = Vec::new();
        for inp in &n.input {
            ins.push(if inp.is_empty() {
                None
            } else {
                Some(self.body_eval(b, inp, depth + 1)?)
            });
        }
        let outs = self.body_node(b, n, &ins).with_context(|| label(n))?;
        for (o, v) in n.output.iter().zip(outs) {
            b.env.insert(o.clone(), v);
        }
        b.env
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("{}: output `{name}` not computed", label(n)))
    }

    fn body_node(&mut self, b: &Body<'_>, n: &NodeProto, ins: &[Option<B>]) -> Result<Vec<B>> {
        let op = n.op_type.as_str();
        let all_const = ins.iter().all(|v| matches!(v, None | Some(B::C(_))));
        if all_const && op != "Split" {
            // Constant folding with the outer evaluator's ops.
            for (name, v) in n.input.iter().zip(ins) {
                if let Some(B::C(t)) = v {
                    self.vals.insert(name.clone(), Val::Const(t.clone()));
                }
            }
            return self
                .node(n)?
                .into_iter()
                .map(|v| match v {
                    Val::Const(t) => Ok(B::C(t)),
                    _ => bail!("not a constant"),
                })
                .collect();
        }
        // Missing operands read as absent (`ins[0]`, `ins[1]` below), never out of bounds.
        let mut padded = ins.to_vec();
        padded.resize(ins.len().max(2), None);
        let ins = &padded[..];
        let e = |k: usize| -> Result<Rc<Ex>> {
            match ins.get(k) {
                Some(Some(B::E(e))) => Ok(e.clone()),
                _ => bail!("input {k} is not a value of the step"),
            }
        };
        let c = |k: usize| -> Option<&Tensor> {
            match ins.get(k) {
                Some(Some(B::C(t))) => Some(t),
                _ => None,
            }
        };
        let aff = |x: &Rc<Ex>| -> Option<Aff> {
            match &**x {
                Ex::Aff(a) => Some(a.clone()),
                _ => None,
            }
        };
        let (i, h) = (b.i, b.h);
        let one = |x: Ex| Ok(vec![B::E(Rc::new(x))]);
        match op {
            "Identity" | "Squeeze" | "Unsqueeze" | "Cast" => Ok(vec![ins[0].clone().ok_or_else(|| anyhow!("no input"))?]),
            "Add" if matches!(ins[0], Some(B::Counter)) || matches!(ins[1], Some(B::Counter)) => {
                let k = c(0).or(c(1));
                if k.is_some_and(|t| t.len() == 1 && t.data[0] == 1.0) {
                    Ok(vec![B::CounterNext])
                } else {
                    bail!("the step counter is not incremented by 1")
                }
            }
            "Gather" => bail!("a Gather that is not the time step of the input sequence"),
            "MatMul" => {
                let w = c(1).ok_or_else(|| anyhow!("MatMul by a non-constant"))?;
                let x = e(0)?;
                if w.dims.len() != 2 {
                    bail!("MatMul weight of shape {:?}", w.dims);
                }
                let (rows, m) = (w.dims[0], w.dims[1]);
                match aff(&x) {
                    Some(a) => {
                        if a.n != rows {
                            bail!("MatMul of {} columns by {:?}", a.n, w.dims);
                        }
                        let mm = |v: &[f64], r: usize| -> Vec<f64> {
                            let mut out = vec![0.0; r * m];
                            for row in 0..r {
                                for k in 0..rows {
                                    let s = v[row * rows + k];
                                    if s != 0.0 {
                                        for col in 0..m {
                                            out[row * m + col] += s * w.data[k * m + col];
                                        }
                                    }
                                }
                            }
                            out
                        };
                        one(Ex::Aff(Aff {
                            n: m,
                            wx: mm(&a.wx, i),
                            wh: mm(&a.wh, h),
                            b: mm(&a.b, 1),
                        }))
                    }
                    None => one(Ex::MatMul(x, w.data.clone(), rows, m)),
                }
            }
            "Add" | "Sub" => {
                let sub = op == "Sub";
                match (&ins[0], &ins[1]) {
                    (Some(B::E(x)), Some(B::E(y))) => match (aff(x), aff(y)) {
                        (Some(p), Some(q)) if p.n == q.n => {
                            one(Ex::Aff(p.zip(&q, |u, v| if sub { u - v } else { u + v })))
                        }
                        _ if !sub => one(Ex::Add(x.clone(), y.clone())),
                        _ => bail!("Sub of two non-affine values"),
                    },
                    (Some(B::E(x)), Some(B::C(t))) | (Some(B::C(t)), Some(B::E(x))) => {
                        let const_first = matches!(ins[0], Some(B::C(_)));
                        if sub && const_first {
                            if t.data.iter().all(|&v| v == 1.0) {
                                return one(Ex::OneMinus(x.clone()));
                            }
                            bail!("constant minus a value other than 1 − x");
                        }
                        let a = aff(x).ok_or_else(|| anyhow!("a constant added to a non-affine value"))?;
                        let bias: Vec<f64> = match t.len() {
                            1 => vec![t.data[0]; a.n],
                            l if l == a.n => t.data.clone(),
                            _ => bail!("bias of shape {:?} for {} columns", t.dims, a.n),
                        };
                        let mut r = a;
                        for (o, v) in r.b.iter_mut().zip(&bias) {
                            *o = if sub { *o - v } else { *o + v };
                        }
                        one(Ex::Aff(r))
                    }
                    _ => bail!("unexpected operands"),
                }
            }
            "Mul" => one(Ex::Mul(e(0)?, e(1)?)),
            "Sigmoid" => one(Ex::Sig(e(0)?)),
            "Tanh" => one(Ex::Tanh(e(0)?)),
            "Relu" => one(Ex::Relu(e(0)?)),
            "Slice" | "Split" => {
                if op == "Split" && all_const {
                    let t = c(0).ok_or_else(|| anyhow!("no input"))?;
                    let axis = attr_i(n, "axis").unwrap_or(0);
                    let ax = super::norm_axis(axis, t.dims.len())?;
                    let parts = split_sizes(n, c(1), t.dims[ax])?;
                    let mut lo = 0i64;
                    let mut outs = Vec::new();
                    for p in parts {
                        let r = [(ax, lo, lo + p as i64, 1)];
                        outs.push(B::C(t.slice(&r)?));
                        lo += p as i64;
                    }
                    return Ok(outs);
                }
                let a = aff(&e(0)?).ok_or_else(|| anyhow!("{op} of a non-affine value"))?;
                if op == "Split" {
                    let axis = attr_i(n, "axis").unwrap_or(0);
                    if axis != -1 && axis != 1 {
                        bail!("Split on axis {axis} of a [batch, units] value");
                    }
                    let parts = split_sizes(n, c(1), a.n)?;
                    let mut lo = 0;
                    let mut outs = Vec::new();
                    for p in parts {
                        outs.push(B::E(Rc::new(Ex::Aff(a.cols(lo, p, i, h)))));
                        lo += p;
                    }
                    return Ok(outs);
                }
                let starts = c(1).map(|t| t.as_i64()).unwrap_or_default();
                let ends = c(2).map(|t| t.as_i64()).unwrap_or_default();
                let axes = c(3).map(|t| t.as_i64()).unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = c(4).map(|t| t.as_i64()).unwrap_or_else(|| vec![1; starts.len()]);
                if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
                    bail!("Slice bounds are not constant");
                }
                let (mut lo, mut cnt) = (0, a.n);
                for k in 0..starts.len() {
                    let ax = super::norm_axis(axes[k], 2)?;
                    if ax == 0 {
                        if starts[k] != 0 || ends[k] < i32::MAX as i64 || steps[k] != 1 {
                            bail!("Slice of the batch axis");
                        }
                    } else {
                        if steps[k] != 1 {
                            bail!("Slice with step {}", steps[k]);
                        }
                        let (f, c) = resolve_slice(a.n as i64, starts[k], ends[k], 1)?;
                        lo = f as usize;
                        cnt = c;
                    }
                }
                one(Ex::Aff(a.cols(lo, cnt, i, h)))
            }
            other => bail!("op `{other}` in a recurrent cell step is not supported (LSTM, GRU and SimpleRNN with sigmoid/tanh/relu only)"),
        }
    }
}

/// The body's condition output must be a loop-bound test (`Less`/`And`/`Cast`/`Identity`
/// of the step counters, the carried bounds and constants): a data-dependent early exit
/// would not be a recurrent layer over the whole sequence.
fn check_condition(body: &GraphProto, producer: &HashMap<&str, &NodeProto>) -> Result<()> {
    let mut stack = vec![body.output[0].name.as_str()];
    let mut seen = std::collections::HashSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name) {
            continue;
        }
        let Some(n) = producer.get(name) else {
            continue; // a body input, an initializer or an outer value
        };
        match n.op_type.as_str() {
            "Less" | "Greater" | "And" | "Cast" | "Identity" | "Add" => {}
            _ => bail!(
                "{}: the loop condition depends on a computed value, not only on the step count",
                label(n)
            ),
        }
        for i in &n.input {
            if producer
                .get(i.as_str())
                .is_some_and(|p| p.op_type == "Gather" || p.op_type == "MatMul")
            {
                bail!("{}: the loop condition reads the data", label(n));
            }
            stack.push(i);
        }
    }
    Ok(())
}

fn split_sizes(n: &NodeProto, input: Option<&Tensor>, total: usize) -> Result<Vec<usize>> {
    if let Some(t) = input {
        return Ok(t.as_i64().into_iter().map(|v| v.max(0) as usize).collect());
    }
    if let Some(s) = attr_ints(n, "split") {
        return Ok(s.into_iter().map(|v| v.max(0) as usize).collect());
    }
    let k = attr_i(n, "num_outputs")
        .map_or(n.output.len(), |v| v as usize)
        .max(1);
    if !total.is_multiple_of(k) {
        bail!("Split of {total} into {k} equal parts");
    }
    Ok(vec![total / k; k])
}

fn as_aff(e: &Ex) -> Option<&Aff> {
    match e {
        Ex::Aff(a) => Some(a),
        _ => None,
    }
}

fn sig(e: &Ex) -> Option<&Aff> {
    match e {
        Ex::Sig(a) => as_aff(a),
        _ => None,
    }
}

/// Both operand orders of a commutative node.
fn pairs(a: &Rc<Ex>, b: &Rc<Ex>) -> [(Rc<Ex>, Rc<Ex>); 2] {
    [(a.clone(), b.clone()), (b.clone(), a.clone())]
}

fn is_h(e: &Ex, h: usize) -> bool {
    as_aff(e).is_some_and(|a| {
        !a.has_x()
            && a.b.iter().all(|&v| v == 0.0)
            && (0..h * h).all(|k| a.wh[k] == if k / h == k % h { 1.0 } else { 0.0 })
    })
}

/// Transposes `[rows, n]` affine weights into `[n, rows]` IR rows.
fn t(w: &[f64], rows: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..n {
            out[c * rows + r] = w[r * n + c] as f32;
        }
    }
    out
}

fn layer(cell: CellKind, i: usize, h: usize, gates: &[(&Aff, Option<&Aff>)]) -> FloatLayer {
    let mut l = FloatLayer::forward(cell, i, h, Default::default());
    for (a, rec) in gates {
        l.w_ih.extend(t(&a.wx, i, h));
        match rec {
            Some(r) => {
                l.w_hh.extend(t(&r.wh, h, h));
                l.b_hh.extend(r.b.iter().map(|&v| v as f32));
            }
            None => {
                l.w_hh.extend(t(&a.wh, h, h));
                l.b_hh.extend(std::iter::repeat_n(0.0, h));
            }
        }
        l.b_ih.extend(a.b.iter().map(|&v| v as f32));
    }
    l
}

/// Matches the new state against the cell equations (module docs).
fn match_cell(new_h: &Rc<Ex>, new_c: Option<&Ex>, i: usize, h: usize) -> Option<FloatLayer> {
    let ok = |a: &Aff| a.n == h;
    if let Some(c) = new_c {
        // LSTM: h' = σ(A_o)·tanh(c'), c' = σ(A_f)·c + σ(A_i)·tanh(A_g).
        let Ex::Mul(p, q) = &**new_h else { return None };
        let ao = pairs(p, q).into_iter().find_map(|(x, y)| {
            let ao = sig(&x)?.clone();
            match &*y {
                Ex::Tanh(z) if std::ptr::eq(&**z, c) => Some(ao),
                _ => None,
            }
        })?;
        let Ex::Add(p, q) = c else { return None };
        let (af, ai, ag) = pairs(p, q).into_iter().find_map(|(x, y)| {
            let Ex::Mul(x1, x2) = &*x else { return None };
            let af = pairs(x1, x2)
                .into_iter()
                .find_map(|(u, v)| matches!(*v, Ex::C).then(|| sig(&u).cloned()).flatten())?;
            let Ex::Mul(y1, y2) = &*y else { return None };
            let (ai, ag) = pairs(y1, y2).into_iter().find_map(|(u, v)| {
                let ai = sig(&u)?.clone();
                match &*v {
                    Ex::Tanh(g) => Some((ai, as_aff(g)?.clone())),
                    _ => None,
                }
            })?;
            Some((af, ai, ag))
        })?;
        if ![&ai, &af, &ag, &ao].iter().all(|a| ok(a)) {
            return None;
        }
        return Some(layer(
            CellKind::Lstm { peepholes: false },
            i,
            h,
            &[(&ai, None), (&af, None), (&ag, None), (&ao, None)],
        ));
    }
    match &**new_h {
        Ex::Tanh(a) | Ex::Relu(a) => {
            let a = as_aff(a).filter(|a| ok(a))?;
            let act = if matches!(**new_h, Ex::Tanh(_)) {
                RnnAct::Tanh
            } else {
                RnnAct::Relu
            };
            Some(layer(CellKind::Rnn(act), i, h, &[(a, None)]))
        }
        Ex::Add(p, q) => {
            // GRU: h' = σ(A_z)·h + (1 − σ(A_z))·tanh(N).
            pairs(p, q).into_iter().find_map(|(x, y)| {
                let Ex::Mul(x1, x2) = &*x else { return None };
                let (zs, az) = pairs(x1, x2).into_iter().find_map(|(u, v)| {
                    (is_h(&v, h))
                        .then(|| sig(&u).map(|a| (u.clone(), a.clone())))
                        .flatten()
                })?;
                let Ex::Mul(y1, y2) = &*y else { return None };
                let nn = pairs(y1, y2)
                    .into_iter()
                    .find_map(|(u, v)| match (&*u, &*v) {
                        (Ex::OneMinus(z), Ex::Tanh(nn)) if Rc::ptr_eq(z, &zs) => Some(nn.clone()),
                        _ => None,
                    })?;
                let Ex::Add(n1, n2) = &*nn else { return None };
                pairs(n1, n2).into_iter().find_map(|(u, v)| {
                    let xn = as_aff(&u).filter(|a| !a.has_h() && ok(a))?;
                    match &*v {
                        // reset_after: σ(A_r)·H_n
                        Ex::Mul(r1, r2) => pairs(r1, r2).into_iter().find_map(|(s, hn)| {
                            let ar = sig(&s)?;
                            let hn = as_aff(&hn).filter(|a| !a.has_x() && ok(a))?;
                            (ok(ar) && ok(&az)).then(|| {
                                layer(
                                    CellKind::Gru {
                                        linear_before_reset: true,
                                    },
                                    i,
                                    h,
                                    &[(ar, None), (&az, None), (xn, Some(hn))],
                                )
                            })
                        }),
                        // reset before: (σ(A_r)·h)·U_n
                        Ex::MatMul(m, u, rows, cols) if *rows == h && *cols == h => {
                            let Ex::Mul(r1, r2) = &**m else { return None };
                            pairs(r1, r2).into_iter().find_map(|(s, hh)| {
                                let ar = sig(&s)?;
                                if !is_h(&hh, h) || !ok(ar) || !ok(&az) {
                                    return None;
                                }
                                let hn = Aff {
                                    n: h,
                                    wx: vec![0.0; i * h],
                                    wh: u.clone(),
                                    b: vec![0.0; h],
                                };
                                Some(layer(
                                    CellKind::Gru {
                                        linear_before_reset: false,
                                    },
                                    i,
                                    h,
                                    &[(ar, None), (&az, None), (xn, Some(&hn))],
                                ))
                            })
                        }
                        _ => None,
                    }
                })
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: usize = 2;
    const H: usize = 3;

    /// An affine form with distinct entries (seeded), `x`-only / `h`-only / both.
    fn form(seed: u64, x: bool, h: bool) -> Aff {
        let mut s = seed;
        let mut r = |on: bool, n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if on {
                        ((s >> 40) as f64 / (1u64 << 24) as f64) - 0.5
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        Aff {
            n: H,
            wx: r(x, I * H),
            wh: r(h, H * H),
            b: r(true, H),
        }
    }

    fn rc(e: Ex) -> Rc<Ex> {
        Rc::new(e)
    }

    fn state_h() -> Rc<Ex> {
        let eye = (0..H * H)
            .map(|k| if k / H == k % H { 1.0 } else { 0.0 })
            .collect();
        rc(Ex::Aff(Aff {
            n: H,
            wx: vec![0.0; I * H],
            wh: eye,
            b: vec![0.0; H],
        }))
    }

    /// Keras's reset_after GRU step: h' = z·h + (1 − z)·tanh(x_n + r·h_n), with `z2` the
    /// sigmoid node used in `1 − z` (the same node for a real GRU).
    fn gru(z: &Rc<Ex>, z2: &Rc<Ex>, r: Aff, xn: Aff, hn: Aff) -> Rc<Ex> {
        let n = rc(Ex::Add(
            rc(Ex::Aff(xn)),
            rc(Ex::Mul(rc(Ex::Sig(rc(Ex::Aff(r)))), rc(Ex::Aff(hn)))),
        ));
        rc(Ex::Add(
            rc(Ex::Mul(z.clone(), state_h())),
            rc(Ex::Mul(rc(Ex::OneMinus(z2.clone())), rc(Ex::Tanh(n)))),
        ))
    }

    #[test]
    fn gru_reset_after_is_matched_with_ir_gate_order() {
        let (az, ar, xn, hn) = (
            form(1, true, true),
            form(2, true, true),
            form(3, true, false),
            form(4, false, true),
        );
        let z = rc(Ex::Sig(rc(Ex::Aff(az.clone()))));
        let l = match_cell(&gru(&z, &z, ar.clone(), xn.clone(), hn.clone()), None, I, H)
            .expect("a GRU step");
        assert_eq!(
            l.cell,
            CellKind::Gru {
                linear_before_reset: true
            }
        );
        // IR rows r, z, n; w_ih row j of gate g is column j of that gate's x form.
        let col = |a: &Aff, j: usize| (0..I).map(|k| a.wx[k * H + j] as f32).collect::<Vec<_>>();
        assert_eq!(l.w_ih[..I], col(&ar, 0)[..]);
        assert_eq!(l.w_ih[H * I..H * I + I], col(&az, 0)[..]);
        assert_eq!(l.w_ih[2 * H * I..2 * H * I + I], col(&xn, 0)[..]);
        // b_hn stays on the recurrent side (reset_after), z/r biases are summed on b_ih.
        assert_eq!(l.b_hh[2 * H], hn.b[0] as f32);
        assert_eq!(l.b_hh[0], 0.0);
        assert_eq!(l.b_ih[H], az.b[0] as f32);
    }

    #[test]
    fn foreign_bodies_are_not_matched() {
        let (az, ar, xn, hn) = (
            form(1, true, true),
            form(2, true, true),
            form(3, true, false),
            form(4, false, true),
        );
        let z = rc(Ex::Sig(rc(Ex::Aff(az.clone()))));
        // `1 − z` over another sigmoid than the update gate's.
        let other = rc(Ex::Sig(rc(Ex::Aff(az.clone()))));
        assert!(match_cell(
            &gru(&z, &other, ar.clone(), xn.clone(), hn.clone()),
            None,
            I,
            H
        )
        .is_none());
        // The candidate's input part reading h: not a GRU.
        assert!(match_cell(
            &gru(&z, &z, ar.clone(), form(5, true, true), hn),
            None,
            I,
            H
        )
        .is_none());
        // A sigmoid RNN (no such cell).
        assert!(match_cell(&rc(Ex::Sig(rc(Ex::Aff(ar.clone())))), None, I, H).is_none());
        // tanh RNN: matched.
        let l = match_cell(&rc(Ex::Tanh(rc(Ex::Aff(ar)))), None, I, H).unwrap();
        assert_eq!(l.cell, CellKind::Rnn(RnnAct::Tanh));
        // LSTM whose h' reads tanh of something else than c'.
        let g = |s| rc(Ex::Sig(rc(Ex::Aff(form(s, true, true)))));
        let c = rc(Ex::Add(
            rc(Ex::Mul(g(6), rc(Ex::C))),
            rc(Ex::Mul(
                g(7),
                rc(Ex::Tanh(rc(Ex::Aff(form(8, true, true))))),
            )),
        ));
        let good = rc(Ex::Mul(g(9), rc(Ex::Tanh(c.clone()))));
        let l = match_cell(&good, Some(&c), I, H).unwrap();
        // IR gate order i, f, g, o (Keras's i, f, c, o).
        let b0: Vec<f32> = [7, 6, 8, 9]
            .iter()
            .map(|&s| form(s, true, true).b[0] as f32)
            .collect();
        assert_eq!((0..4).map(|k| l.b_ih[k * H]).collect::<Vec<_>>(), b0);
        let c2 = rc(Ex::Add(
            rc(Ex::Mul(g(6), rc(Ex::C))),
            rc(Ex::Mul(
                g(7),
                rc(Ex::Tanh(rc(Ex::Aff(form(8, true, true))))),
            )),
        ));
        let bad = rc(Ex::Mul(g(9), rc(Ex::Tanh(c2))));
        assert!(match_cell(&bad, Some(&c), I, H).is_none());
    }
}

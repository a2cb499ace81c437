//! Unrolled recurrent layers in a `.tflite` graph (Keras `unroll=True`, what the TFLite
//! converter emits for a fixed-length Keras 3 `SimpleRNN`, `GRU` or `LSTM` without a WHILE
//! loop): recognized by dataflow, the weights taken from the cell's first full time step,
//! then checked.
//!
//! ```text
//! x_0 … x_{T−1} = UNPACK(sequence)                 (after RESHAPE [1, T, F] → [T, 1, F])
//! per step t:  FULLY_CONNECTED(x_t, W, b)          the input projection, one per step
//!              FULLY_CONNECTED(h_{t−1}, U, b_h)    the recurrent projection(s); step 0's are
//!                                                  constant-folded (zero initial state)
//!              SPLIT / STRIDED_SLICE / ADD / SUB / MUL / LOGISTIC / TANH / RELU   the gates
//! PACK(h_0 … h_{T−1})   (return_sequences: read by the next unrolled layer's UNPACK, or
//!                        by a MEAN / REDUCE_MAX / SUM over its time axis: pooling
//!                        `Mean` / `Max` / `Sum`, GlobalAverage/MaxPooling1D)
//! or h_{T−1}            (read by the rest of the graph: pooling `Last`)
//! ```
//!
//! Backward and bidirectional layers (`go_backwards=True`, `Bidirectional(..)`): each `x_t` is
//! read by one input projection per direction, told apart by their weights; a direction
//! whose first projection (of `x_0`) feeds fewer cell ops than its last (of `x_{T−1}`) is a
//! backward one and is read with its steps in reverse order (its "step 0" reads `x_{T−1}`,
//! its final state is the one after `x_0`). Alone it is a reverse layer (only its final state
//! may leave it: a `PACK` of its outputs is in reversed time order, refused); with a forward
//! copy, their outputs must meet in one `CONCATENATION([forward, backward])` on the feature
//! axis — of the final states, or (return_sequences) of the forward `PACK` and the backward
//! `PACK` re-reversed by a `REVERSE_V2` of the time axis — a bidirectional layer (Keras
//! merge_mode `concat`); an op reading both directions (`ADD`/`MUL` of another merge_mode) is
//! refused naming it. These layers run in window mode.
//!
//! The cell's ops are those downstream of the input projections up to the first op that is not one of the
//! cell's (the `PACK`, the head's `FULLY_CONNECTED`): the tensors leaving them are the
//! layer's output. The cell is told by the weights of the recurrent projections, with
//! `W: [g·H, F]`:
//!
//! | recurrent weights | cell (Keras gate order → tinyrnn's) |
//! |---|---|
//! | one `[H, H]`, `g = 1` | `SimpleRNN` (tanh, or relu) |
//! | one `[3H, H]` (with the recurrent bias `b_h`) | `GRU(reset_after=True)`, `z, r, h` → `r, z, n` |
//! | `[2H, H]` and `[H, H]` (the second reads `r ⊙ h`) | `GRU(reset_after=False)` |
//! | one `[4H, H]` | `LSTM`, `i, f, c, o` = `i, f, g, o` |
//!
//! Every step must use the same input weights and bias (the same tensor or equal values) and
//! the recurrent weights must be the same in every step; a deviation is refused naming the
//! op and the tensor. The structure of each step is then checked by numbers: the whole graph
//! is evaluated (in f64, on the dequantized constants) on random sequences of length `T` and
//! compared with the imported model; a step that computes anything else (a missing or
//! extra op, a constant changed in one step) is refused naming the first time step whose
//! hidden state no tensor of the graph holds.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use tinyrnn::model::{CellKind, RnnAct};

use super::{fused, Graph, Op};
use crate::ir::{FloatLayer, FloatModel};

/// `BuiltinOptions` union tags read here.
mod opt {
    pub const CONCATENATION: u8 = 10;
    pub const SOFTMAX: u8 = 9;
    pub const ADD: u8 = 11;
    pub const MUL: u8 = 21;
    pub const SUB: u8 = 28;
    pub const SPLIT: u8 = 35;
    pub const PACK: u8 = 59;
    pub const UNPACK: u8 = 64;
}

/// Ops that may be part of an unrolled cell.
fn cell_op(name: &str) -> bool {
    matches!(
        name,
        "FULLY_CONNECTED"
            | "ADD"
            | "SUB"
            | "MUL"
            | "LOGISTIC"
            | "TANH"
            | "RELU"
            | "SPLIT"
            | "STRIDED_SLICE"
            | "RESHAPE"
            | "QUANTIZE"
            | "DEQUANTIZE"
    )
}

/// One unrolled layer (or a stack of them): what the importer keeps.
pub(super) struct Unrolled {
    pub layers: Vec<FloatLayer>,
    /// Indices of the ops read as part of the layers.
    pub used: Vec<usize>,
    /// The last layer's output `h_{T−1}` (`[1, H]`), or its whole sequence when `time` is set.
    pub out: i32,
    /// `Some(axis)` when the last layer's whole sequence (`PACK` `[T, 1, H]`, maybe reshaped,
    /// e.g. to `[1, T, H]`) is read by a `MEAN` / `REDUCE_MAX` / `SUM`: its time axis, the one
    /// that reduction must reduce (checked by the caller).
    pub time: Option<usize>,
    /// The fixed sequence length.
    pub steps: usize,
}

fn out0(ops: &[Op], j: usize) -> Result<i32> {
    ops[j]
        .outputs
        .first()
        .copied()
        .ok_or_else(|| anyhow!("op {j} ({}): no output", ops[j].name))
}

/// Which ops read each tensor.
fn readers(ops: &[Op]) -> HashMap<i32, Vec<usize>> {
    let mut r: HashMap<i32, Vec<usize>> = HashMap::new();
    for (j, o) in ops.iter().enumerate() {
        for &t in &o.inputs {
            if t >= 0 {
                let e = r.entry(t).or_default();
                if e.last() != Some(&j) {
                    e.push(j);
                }
            }
        }
    }
    r
}

/// Checks an `UNPACK` of the running value `[T, 1, F]` / `[1, T, F]` along its time axis and
/// returns its `T` outputs.
fn time_steps(g: &Graph, op: &Op, x: i32, width: usize) -> Result<Vec<i32>> {
    if op.inputs.first() != Some(&x) {
        bail!("it does not split the running sequence");
    }
    let o = super::options(op, opt::UNPACK)?;
    let num = o.map_or(Ok(0), |o| o.i32(0, 0))?;
    let axis = o.map_or(Ok(0), |o| o.i32(1, 0))?;
    let s = &g.tensor(x)?.shape;
    let axis = if axis < 0 {
        axis + s.len() as i32
    } else {
        axis
    };
    let ok = s.len() == 3
        && s.last() == Some(&(width as i32))
        && ((axis == 0 && s[1] == 1) || (axis == 1 && s[0] == 1))
        && s[axis as usize] == num
        && num >= 1
        && op.outputs.len() == num as usize;
    if !ok {
        bail!(
            "splits shape {s:?} along axis {axis} into {num}; expected the time steps of [1, T, {width}]"
        );
    }
    Ok(op.outputs.clone())
}

/// Follows the glue ops (`RESHAPE`, `QUANTIZE`, `DEQUANTIZE`) from tensor `t`, adding them to
/// `used`: the op reading the result (the only reader) and the tensor it reads.
fn through_glue(
    ops: &[Op],
    rd: &HashMap<i32, Vec<usize>>,
    mut t: i32,
    used: &mut Vec<usize>,
) -> Result<(usize, i32)> {
    loop {
        let r = rd.get(&t).map_or(&[][..], |v| &v[..]);
        let &[j] = r else {
            bail!(
                "the output of an unrolled layer is read by {} ops; expected one",
                r.len()
            );
        };
        match ops[j].name.as_str() {
            "RESHAPE" | "QUANTIZE" | "DEQUANTIZE" => {
                used.push(j);
                t = out0(ops, j)?;
            }
            _ => return Ok((j, t)),
        }
    }
}

/// The input projections of the time steps `xs`: each `x_t` is read by one
/// `FULLY_CONNECTED` per direction. Returns one list per direction (in time order), told
/// apart by their weights (those of time step 1's readers).
fn projections(
    g: &Graph,
    ops: &[Op],
    rd: &HashMap<i32, Vec<usize>>,
    xs: &[i32],
) -> Result<Vec<Vec<usize>>> {
    let readers = |t: usize| -> Result<Vec<usize>> {
        let x = xs[t];
        let r = rd.get(&x).map_or(&[][..], |v| &v[..]);
        let ok = (1..=2).contains(&r.len())
            && r.iter()
                .all(|&j| ops[j].name == "FULLY_CONNECTED" && ops[j].inputs.first() == Some(&x));
        if !ok {
            bail!(
                "time step {t}'s input is read by {}; expected one FULLY_CONNECTED (the input projection) per direction",
                r.iter()
                    .map(|&j| format!("op {j} ({})", ops[j].name))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(r.to_vec())
    };
    let refs = readers(1)?;
    let mut dirs: Vec<Vec<usize>> = vec![Vec::with_capacity(xs.len()); refs.len()];
    for t in 0..xs.len() {
        let r = readers(t)?;
        if r.len() != refs.len() {
            bail!(
                "time step {t}'s input is read by {} input projections, time step 1's by {}",
                r.len(),
                refs.len()
            );
        }
        for (d, &rf) in refs.iter().enumerate() {
            let mut m = Vec::new();
            for &j in &r {
                if same_const(g, &ops[rf], 1, &ops[j], 1)? {
                    m.push(j);
                }
            }
            match m[..] {
                [j] => dirs[d].push(j),
                _ => bail!(
                    "time step {t}: {} of its input projections have the weights {} of op {rf} (FULLY_CONNECTED) of time step 1; expected one",
                    m.len(),
                    tname(g, &ops[rf], 1)
                ),
            }
        }
    }
    Ok(dirs)
}

/// How many cell ops are downstream of op `j`'s output.
fn reach(ops: &[Op], j: usize) -> Result<usize> {
    let mut live: std::collections::HashSet<i32> = ops[j].outputs.iter().copied().collect();
    let mut n = 0;
    for op in &ops[j + 1..] {
        if cell_op(&op.name) && op.inputs.iter().any(|t| live.contains(t)) {
            n += 1;
            live.extend(op.outputs.iter().copied());
        }
    }
    Ok(n)
}

/// Reads the unrolled layer(s) starting at the `UNPACK` `ops[at]` of the running value `x`
/// (`width` features per frame).
pub(super) fn unrolled(g: &Graph, ops: &[Op], at: usize, x: i32, width: usize) -> Result<Unrolled> {
    let rd = readers(ops);
    let mut layers: Vec<FloatLayer> = Vec::new();
    let mut used = vec![at];
    let mut width = width;
    let mut unpack = at;
    let mut xs = time_steps(g, &ops[at], x, width).with_context(|| format!("op {at} (UNPACK)"))?;
    let steps = xs.len();
    if steps < 3 {
        bail!("op {at} (UNPACK): {steps} time steps; an unrolled layer is read from at least 3");
    }
    loop {
        let k = layers.len();
        let ctx = || format!("the unrolled layer {k} split by op {unpack} (UNPACK)");
        let dirs = projections(g, ops, &rd, &xs).with_context(ctx)?;
        // Each direction's steps in the order it computes them: a forward cell's first step
        // feeds every later one, a backward (go_backwards) cell's starts from x_{T−1}.
        let mut read = Vec::new();
        for xfc in dirs {
            let (first, last) = (reach(ops, xfc[0])?, reach(ops, xfc[steps - 1])?);
            if first == last {
                bail!(
                    "{}: the cell ops after time step 0's and time step {}'s input projections (ops {} and {}) do not tell a forward from a backward layer",
                    ctx(),
                    steps - 1,
                    xfc[0],
                    xfc[steps - 1]
                );
            }
            let backward = last > first;
            let order: Vec<usize> = if backward {
                xfc.iter().rev().copied().collect()
            } else {
                xfc
            };
            let (layer, region, exit) = layer(g, ops, &rd, &order, width).with_context(ctx)?;
            read.push((backward, layer, region, exit));
        }
        let (layer, exit) = match read.len() {
            1 => {
                let (backward, mut layer, region, exit) = read.pop().expect("one direction");
                used.extend(region);
                if backward {
                    if let Exit::Pack(p) = exit {
                        bail!(
                            "{}: a backward (go_backwards=True) layer returning sequences: op {p} (PACK) stacks its outputs in reversed time order, which tinyrnn's layers do not produce",
                            ctx()
                        );
                    }
                    layer.direction = tinyrnn::Direction::Reverse;
                }
                (layer, exit)
            }
            _ => {
                if read.iter().filter(|r| r.0).count() != 1 {
                    bail!(
                        "{}: two cells read the time steps in the same order; expected a forward and a backward one (Bidirectional)",
                        ctx()
                    );
                }
                read.sort_by_key(|r| r.0);
                let (_, b, rb, eb) = read.pop().expect("two directions");
                let (_, mut f, rf, ef) = read.pop().expect("two directions");
                if let Some(j) = rf.iter().find(|j| rb.contains(j)) {
                    bail!(
                        "{}: op {j} ({}) combines the forward and the backward direction; only Bidirectional merge_mode \"concat\" is supported",
                        ctx(),
                        ops[*j].name
                    );
                }
                if (b.cell, b.input_size, b.hidden_size) != (f.cell, f.input_size, f.hidden_size) {
                    bail!(
                        "{}: the backward cell ({} of {}) differs from the forward one ({} of {})",
                        ctx(),
                        b.cell.name(),
                        b.hidden_size,
                        f.cell.name(),
                        f.hidden_size
                    );
                }
                used.extend(rf);
                used.extend(rb);
                // The merge: CONCATENATION([forward, backward]) on the feature axis, of
                // the final states or (return_sequences) of the stacked outputs, the
                // backward ones re-reversed by a REVERSE_V2 of the time axis.
                let (cf, tf, cb, tb, exit) = match (ef, eb) {
                    (Exit::Last(hf), Exit::Last(hb)) => {
                        let (cf, tf) = through_glue(ops, &rd, hf, &mut used).with_context(ctx)?;
                        let (cb, tb) = through_glue(ops, &rd, hb, &mut used).with_context(ctx)?;
                        (cf, tf, cb, tb, None)
                    }
                    (Exit::Pack(pf), Exit::Pack(pb)) => {
                        used.extend([pf, pb]);
                        let (cf, tf) =
                            through_glue(ops, &rd, out0(ops, pf)?, &mut used).with_context(ctx)?;
                        let (r, tr) =
                            through_glue(ops, &rd, out0(ops, pb)?, &mut used).with_context(ctx)?;
                        if ops[r].name != "REVERSE_V2" {
                            bail!(
                                "{}: op {r} ({}) reads the backward direction's outputs; expected a REVERSE_V2 of the time axis (Keras Bidirectional re-reverses them)",
                                ctx(),
                                ops[r].name
                            );
                        }
                        let rank = g.tensor(tr)?.shape.len() as i64;
                        let axes = g.ints(&ops[r], 1).with_context(ctx)?;
                        let time = if g.tensor(tr)?.shape.first() == Some(&(steps as i32)) {
                            0
                        } else {
                            1
                        };
                        if axes.len() != 1 || axis_of(axes[0], rank as usize)? != time {
                            bail!(
                                "{}: op {r} (REVERSE_V2) reverses axes {axes:?}, not the time axis {time}",
                                ctx()
                            );
                        }
                        used.push(r);
                        let (cb, tb) =
                            through_glue(ops, &rd, out0(ops, r)?, &mut used).with_context(ctx)?;
                        (cf, tf, cb, tb, Some(()))
                    }
                    _ => bail!(
                        "{}: one direction returns sequences and the other does not",
                        ctx()
                    ),
                };
                let c = &ops[cf];
                if cf != cb || c.name != "CONCATENATION" || c.inputs[..] != [tf, tb] {
                    bail!(
                        "{}: op {cf} ({}) reads the forward direction's output and op {cb} ({}) the backward one's; expected one CONCATENATION of [forward, backward] (Bidirectional merge_mode \"concat\")",
                        ctx(),
                        ops[cf].name,
                        ops[cb].name
                    );
                }
                let o = super::options(c, opt::CONCATENATION).with_context(ctx)?;
                let axis = o.map_or(Ok(0), |o| o.i32(0, 0))?;
                let rank = g.tensor(tf)?.shape.len();
                if axis_of(i64::from(axis), rank)? + 1 != rank
                    || o.map_or(Ok(0), |o| o.u8(1, 0))? != 0
                {
                    bail!(
                        "op {cf} (CONCATENATION): axis {axis} (or a fused activation); expected the feature axis of the two directions"
                    );
                }
                used.push(cf);
                let cat = out0(ops, cf)?;
                f.direction = tinyrnn::Direction::Bidirectional;
                f.backward = Some(Box::new(b));
                (
                    f,
                    if exit.is_some() {
                        Exit::Seq(cat)
                    } else {
                        Exit::Last(cat)
                    },
                )
            }
        };
        width = layer.out_size();
        layers.push(layer);
        let seq = match exit {
            Exit::Last(h) => {
                return Ok(Unrolled {
                    layers,
                    used,
                    out: h,
                    time: None,
                    steps,
                })
            }
            Exit::Pack(p) => {
                used.push(p);
                out0(ops, p)?
            }
            Exit::Seq(t) => t,
        };
        // PACK [T, 1, H] → (glue) → UNPACK: the next unrolled layer; or → MEAN / REDUCE_MAX /
        // SUM over time: the last layer, pooled.
        let (j, t) = through_glue(ops, &rd, seq, &mut used).with_context(|| {
            "the whole sequence (return_sequences) of an unrolled layer: only another unrolled layer or a MEAN / REDUCE_MAX / SUM over time is supported after it"
        })?;
        match ops[j].name.as_str() {
            "UNPACK" => {}
            "MEAN" | "REDUCE_MAX" | "SUM" => {
                // PACK stacks along axis 0 (a bidirectional CONCATENATION keeps the time
                // axis of its PACKs) and a RESHAPE keeps the order: the values are
                // time-major, so the time axis is the one of length T with only 1s before it
                // and the features after it.
                let s = &g.tensor(t)?.shape;
                let time = s.iter().position(|&d| d == steps as i32).filter(|&a| {
                    s.last() == Some(&(width as i32))
                        && a + 1 < s.len()
                        && s
                            .iter()
                            .enumerate()
                            .all(|(k, &d)| k == a || k + 1 == s.len() || d == 1)
                });
                let Some(time) = time else {
                    bail!(
                        "op {j} ({}) reads the whole sequence of an unrolled layer reshaped to {s:?}; expected [T, 1, {width}] or [1, T, {width}] with T = {steps}",
                        ops[j].name
                    );
                };
                return Ok(Unrolled {
                    layers,
                    used,
                    out: t,
                    time: Some(time),
                    steps,
                });
            }
            n => bail!(
                "op {j} ({n}) reads the whole sequence of an unrolled layer (return_sequences): only another unrolled layer or a MEAN / REDUCE_MAX / SUM over time is supported after it"
            ),
        }
        xs = time_steps(g, &ops[j], t, width).with_context(|| format!("op {j} (UNPACK)"))?;
        if xs.len() != steps {
            bail!("op {j} (UNPACK): {} time steps after {steps}", xs.len());
        }
        used.push(j);
        unpack = j;
    }
}

enum Exit {
    /// `h_{T−1}`, read by the rest of the graph.
    Last(i32),
    /// The `PACK` of `h_0 … h_{T−1}` (in the order the cell computes them).
    Pack(usize),
    /// A bidirectional layer's whole output sequence `[1, T, 2H]` (return_sequences).
    Seq(i32),
}

/// Same tensor, or equal dequantized values.
fn same_const(g: &Graph, a: &Op, ka: usize, b: &Op, kb: usize) -> Result<bool> {
    let (ia, ib) = (a.inputs.get(ka).copied(), b.inputs.get(kb).copied());
    if ia == ib {
        return Ok(true);
    }
    let (pa, pb) = (g.has(a, ka), g.has(b, kb));
    if !pa || !pb {
        return Ok(pa == pb);
    }
    let ((sa, va), (sb, vb)) = (g.constant(a, ka)?, g.constant(b, kb)?);
    if sa != sb {
        return Ok(false);
    }
    // Quantized constants (an int32 bias is scaled by its step's input scale): equal within
    // the coarser rounding step of the two.
    let step = |op: &Op, k: usize| -> f64 {
        let t = g.tensors.get(op.inputs[k] as usize);
        t.and_then(|t| t.quant.as_ref()).map_or(0.0, |q| {
            q.scale.iter().fold(0.0f64, |m, &s| m.max(f64::from(s)))
        })
    };
    let tol = step(a, ka).max(step(b, kb));
    Ok(va
        .iter()
        .zip(&vb)
        .all(|(x, y)| (f64::from(*x) - f64::from(*y)).abs() <= tol))
}

fn tname(g: &Graph, op: &Op, k: usize) -> String {
    op.inputs
        .get(k)
        .and_then(|&i| g.tensor(i).ok())
        .map_or_else(|| "(none)".to_string(), |t| format!("'{}'", t.name))
}

/// One unrolled layer (one direction) from the input projections `xfc` of its time steps,
/// in the order it computes them: the layer, the ops it consists of and where its output
/// goes.
fn layer(
    g: &Graph,
    ops: &[Op],
    rd: &HashMap<i32, Vec<usize>>,
    xfc: &[usize],
    width: usize,
) -> Result<(FloatLayer, Vec<usize>, Exit)> {
    let steps = xfc.len();
    // The cell's ops: downstream of the input projections, through cell ops only; `dep[t]` =
    // the last step (in the cell's order) a tensor depends on.
    // Two passes: the first collects the recurrent weights of the steps before the last; the
    // second stops at a FULLY_CONNECTED of the last step with other weights (the head).
    let mut rec_w: Vec<usize> = Vec::new(); // ops whose weights are the recurrent ones
    let mut dep: HashMap<i32, usize> = HashMap::new();
    let mut region = Vec::new();
    for pass in 0..2 {
        dep.clear();
        for (k, &j) in xfc.iter().enumerate() {
            dep.insert(out0(ops, j)?, k);
        }
        region.clear();
        region.extend_from_slice(xfc);
        for (j, op) in ops.iter().enumerate() {
            if xfc.contains(&j) {
                continue;
            }
            let d = op.inputs.iter().filter_map(|t| dep.get(t)).max().copied();
            let Some(d) = d else { continue };
            if !cell_op(&op.name) {
                continue;
            }
            if op.name == "FULLY_CONNECTED" {
                if pass == 0 && d + 2 <= steps {
                    rec_w.push(j);
                }
                if pass == 1 && d + 1 == steps {
                    let mut known = false;
                    for &r in &rec_w {
                        known |= same_const(g, &ops[r], 1, op, 1)?;
                    }
                    if !known {
                        continue;
                    }
                }
            }
            region.push(j);
            for &o in &op.outputs {
                dep.insert(o, d);
            }
        }
    }
    let inside: Vec<bool> = (0..ops.len()).map(|j| region.contains(&j)).collect();
    // Tensors leaving the cell ops.
    let mut exits: Vec<(i32, usize)> = Vec::new(); // (tensor, reader)
    for &j in &region {
        for &o in &ops[j].outputs {
            for &r in rd.get(&o).map_or(&[][..], |v| &v[..]) {
                if !inside[r] {
                    exits.push((o, r));
                }
            }
        }
    }
    let exit = match &exits[..] {
        [] => bail!("no op reads the cell's output"),
        [(h, r)] if ops[*r].name != "PACK" => {
            if dep.get(h) != Some(&(steps - 1)) {
                bail!(
                    "op {r} ({}) reads tensor '{}' of time step {:?}, not the last step's hidden state",
                    ops[*r].name,
                    g.tensor(*h)?.name,
                    dep.get(h)
                );
            }
            Exit::Last(*h)
        }
        _ => {
            let p = exits[0].1;
            let pk = &ops[p];
            let hs: Vec<i32> = pk.inputs.clone();
            let ok = pk.name == "PACK"
                && exits.iter().all(|&(_, r)| r == p)
                && hs.len() == steps
                && hs.iter().enumerate().all(|(k, h)| dep.get(h) == Some(&k));
            if !ok {
                let names: Vec<String> = exits
                    .iter()
                    .map(|&(_, r)| format!("op {r} ({})", ops[r].name))
                    .collect();
                bail!(
                    "the cell's tensors are read by {}; expected the last step's hidden state read by one op, or every step's by one PACK (return_sequences)",
                    names.join(", ")
                );
            }
            let o = super::options(pk, opt::PACK)?;
            let axis = o.map_or(Ok(0), |o| o.i32(1, 0))?;
            if axis != 0 {
                bail!(
                    "op {p} (PACK) stacks along axis {axis}; expected the time axis 0 of [T, 1, H]"
                );
            }
            Exit::Pack(p)
        }
    };
    for &j in xfc {
        let o = super::options(&ops[j], super::opt::FULLY_CONNECTED)?;
        if o.map_or(Ok(0), |o| o.u8(0, 0))? != 0 {
            bail!("op {j} (FULLY_CONNECTED): a fused activation on the input projection");
        }
    }
    let ref1 = &ops[xfc[1]];
    let (gh, w_ih) = g
        .matrix(ref1, 1, None, width)
        .with_context(|| format!("op {} (FULLY_CONNECTED)", xfc[1]))?;
    for (t, &j) in xfc.iter().enumerate() {
        if !same_const(g, ref1, 1, &ops[j], 1)? {
            bail!(
                "op {j} (FULLY_CONNECTED) of time step {t}: input weights {} differ from time step 1's {}",
                tname(g, &ops[j], 1),
                tname(g, ref1, 1)
            );
        }
        // Step 0 may carry the folded bias of the zero initial state.
        if t > 0 && !same_const(g, ref1, 2, &ops[j], 2)? {
            bail!(
                "op {j} (FULLY_CONNECTED) of time step {t}: input bias {} differs from time step 1's {}",
                tname(g, &ops[j], 2),
                tname(g, ref1, 2)
            );
        }
    }
    let mut b_ih = g.bias(ref1, 2, gh)?;
    // Recurrent projections: the other FULLY_CONNECTED ops of the cell; their distinct
    // weights (by value), each with the ops using it.
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new(); // (first op, ops)
    for &j in &region {
        let op = &ops[j];
        if op.name != "FULLY_CONNECTED" || xfc.contains(&j) {
            continue;
        }
        let mut found = false;
        for (first, v) in &mut groups {
            if same_const(g, &ops[*first], 1, op, 1)? {
                v.push(j);
                found = true;
                break;
            }
        }
        if !found {
            groups.push((j, vec![j]));
        }
    }
    // Every recurrent weight is used once per step after the first (whose recurrent term is
    // folded for the zero initial state) or once per step.
    if groups
        .iter()
        .any(|(_, v)| v.len() != steps - 1 && v.len() != steps)
    {
        // Name the weights used by the fewest steps against the most used ones.
        let odd = groups.iter().min_by_key(|(_, v)| v.len());
        let common = groups.iter().max_by_key(|(_, v)| v.len());
        if let (Some((o, ov)), Some((c, cv))) = (odd, common) {
            bail!(
                "op {o} (FULLY_CONNECTED): recurrent weights {} used by {} of the {steps} time steps, {} by {}; every step must use the same recurrent weights",
                tname(g, &ops[*o], 1),
                ov.len(),
                tname(g, &ops[*c], 1),
                cv.len()
            );
        }
    }
    for (_, v) in &groups {
        for &j in v {
            let o = super::options(&ops[j], super::opt::FULLY_CONNECTED)?;
            if o.map_or(Ok(0), |o| o.u8(0, 0))? != 0 {
                bail!("op {j} (FULLY_CONNECTED): a fused activation on a recurrent projection");
            }
            if !same_const(g, &ops[v[0]], 2, &ops[j], 2)? {
                bail!(
                    "op {j} (FULLY_CONNECTED): recurrent bias {} differs from op {}'s {}",
                    tname(g, &ops[j], 2),
                    v[0],
                    tname(g, &ops[v[0]], 2)
                );
            }
        }
    }
    let shapes: Vec<Vec<usize>> = groups
        .iter()
        .map(|(f, _)| g.constant(&ops[*f], 1).map(|(s, _)| s))
        .collect::<Result<_>>()?;
    let h = match &shapes[..] {
        [s] | [s, _] if s.len() == 2 => s[1],
        _ => bail!(
            "{} distinct recurrent weights ({}); expected those of a SimpleRNN, GRU or LSTM cell",
            groups.len(),
            groups
                .iter()
                .map(|(f, _)| format!("op {f}: {}", tname(g, &ops[*f], 1)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let rec = |k: usize, rows: usize| -> Result<(Vec<f32>, Vec<f32>)> {
        let op = &ops[groups[k].0];
        let (_, w) = g.matrix(op, 1, Some(rows), h)?;
        Ok((w, g.bias(op, 2, rows)?))
    };
    let dims: Vec<usize> = shapes
        .iter()
        .map(|s| if s.len() == 2 { s[0] } else { 0 })
        .collect();
    let (cell, w_hh, b_hh) = match (gh / h.max(1), gh % h.max(1), &dims[..]) {
        (1, 0, [r]) if *r == h => {
            let (w, b) = rec(0, h)?;
            // Keras SimpleRNN: tanh by default; relu if the cell applies one.
            let relu = region.iter().any(|&j| ops[j].name == "RELU");
            (CellKind::Rnn(if relu { RnnAct::Relu } else { RnnAct::Tanh }), w, b)
        }
        (3, 0, [r]) if *r == 3 * h => {
            let (w, b) = rec(0, 3 * h)?;
            (
                CellKind::Gru {
                    linear_before_reset: true,
                },
                w,
                b,
            )
        }
        (3, 0, [a, b]) if (*a, *b) == (2 * h, h) || (*a, *b) == (h, 2 * h) => {
            let (zr, h_) = if *a == 2 * h { (0, 1) } else { (1, 0) };
            let (mut w, mut b) = rec(zr, 2 * h)?;
            let (w2, b2) = rec(h_, h)?;
            w.extend(w2);
            b.extend(b2);
            (
                CellKind::Gru {
                    linear_before_reset: false,
                },
                w,
                b,
            )
        }
        (4, 0, [r]) if *r == 4 * h => {
            let (w, b) = rec(0, 4 * h)?;
            (CellKind::Lstm { peepholes: false }, w, b)
        }
        _ => bail!(
            "input projection of {gh} rows and recurrent weights {shapes:?}: not a SimpleRNN, GRU or LSTM cell"
        ),
    };
    // A bias added after the sum of the projections (the int8 converter moves it there): a
    // constant of g·H values added in every step.
    let mut late: Vec<(usize, usize)> = Vec::new(); // (op, constant input)
    for &j in &region {
        let op = &ops[j];
        if op.name != "ADD" {
            continue;
        }
        for (k, &t) in op.inputs.iter().enumerate().take(2) {
            if g.is_const(t) {
                if let Ok((s, _)) = g.constant(op, k) {
                    if s.iter().product::<usize>() == gh && gh > h {
                        late.push((j, k));
                    }
                }
            }
        }
    }
    if let Some(&(j0, k0)) = late.first() {
        for &(j, k) in &late {
            if !same_const(g, &ops[j0], k0, &ops[j], k)? {
                bail!(
                    "op {j} (ADD): bias {} differs from op {j0}'s {}",
                    tname(g, &ops[j], k),
                    tname(g, &ops[j0], k0)
                );
            }
        }
        let (_, v) = g.constant(&ops[j0], k0)?;
        b_ih.iter_mut().zip(&v).for_each(|(a, b)| *a += b);
    }
    // Keras GRU z, r, h → tinyrnn r, z, n.
    let (mut w_ih, mut w_hh, mut b_ih, mut b_hh) = (w_ih, w_hh, b_ih, b_hh);
    if let CellKind::Gru { .. } = cell {
        let swap = |v: &mut Vec<f32>, n: usize| {
            let (z, r) = v.split_at_mut(n);
            z.swap_with_slice(&mut r[..n]);
        };
        swap(&mut w_ih, h * width);
        swap(&mut w_hh, h * h);
        swap(&mut b_ih, h);
        swap(&mut b_hh, h);
    }
    let used = region;
    Ok((
        FloatLayer::forward(cell, width, h, [w_ih, w_hh, b_ih, b_hh]),
        used,
        exit,
    ))
}

/// Every evaluated tensor's values.
type Values = HashMap<i32, Vec<f64>>;

/// Values of the graph's tensors, computed in f64 from the dequantized constants.
struct Eval<'g, 'a> {
    g: &'g Graph<'a>,
    v: HashMap<i32, Vec<f64>>,
}

impl Eval<'_, '_> {
    fn get(&mut self, op: &Op, k: usize) -> Result<Vec<f64>> {
        let i = *op
            .inputs
            .get(k)
            .ok_or_else(|| anyhow!("{}: input {k} missing", op.name))?;
        if let Some(v) = self.v.get(&i) {
            return Ok(v.clone());
        }
        let (_, v) = self.g.constant(op, k)?;
        let v: Vec<f64> = v.into_iter().map(f64::from).collect();
        self.v.insert(i, v.clone());
        Ok(v)
    }

    fn shape(&self, i: i32) -> Result<Vec<usize>> {
        self.g
            .tensor(i)?
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| anyhow!("dynamic dimension {d}")))
            .collect()
    }
}

fn act(code: u8, x: f64) -> f64 {
    match code {
        1 => x.max(0.0),
        2 => x.clamp(-1.0, 1.0),
        3 => x.clamp(0.0, 6.0),
        4 => x.tanh(),
        _ => x,
    }
}

fn axis_of(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| anyhow!("axis {a} of rank {rank}"))
}

/// Evaluates subgraph 0 on one input `[1, T, F]` and returns its output and every tensor's
/// value.
fn evaluate(
    g: &Graph,
    ops: &[Op],
    input: i32,
    output: i32,
    x: &[f64],
) -> Result<(Vec<f64>, Values)> {
    let mut e = Eval {
        g,
        v: HashMap::new(),
    };
    e.v.insert(input, x.to_vec());
    for (j, op) in ops.iter().enumerate() {
        let ctx = || format!("op {j} ({})", op.name);
        let Some(&out) = op.outputs.first() else {
            continue;
        };
        let fused_of = |tag: u8| -> Result<u8> {
            let o = super::options(op, tag)?;
            o.map_or(Ok(0), |o| o.u8(0, 0))
        };
        let y: Vec<f64> = match op.name.as_str() {
            "RESHAPE" | "SQUEEZE" | "EXPAND_DIMS" | "QUANTIZE" | "DEQUANTIZE" => {
                e.get(op, 0).with_context(ctx)?
            }
            "FULLY_CONNECTED" => {
                let xv = e.get(op, 0).with_context(ctx)?;
                let (ws, w) = g.constant(op, 1).with_context(ctx)?;
                let [n, k] = ws[..] else {
                    bail!("{}: weight shape {ws:?}", ctx());
                };
                if k == 0 || xv.len() % k != 0 {
                    bail!("{}: input of {} values for {k} columns", ctx(), xv.len());
                }
                let b = if g.has(op, 2) {
                    e.get(op, 2).with_context(ctx)?
                } else {
                    vec![0.0; n]
                };
                if b.len() != n {
                    bail!("{}: bias of {} values for {n} rows", ctx(), b.len());
                }
                let code = fused_of(super::opt::FULLY_CONNECTED).with_context(ctx)?;
                fused(op, code)?;
                let mut y = Vec::with_capacity(xv.len() / k * n);
                for row in xv.chunks(k) {
                    for r in 0..n {
                        let s: f64 = (0..k).map(|c| f64::from(w[r * k + c]) * row[c]).sum();
                        y.push(act(code, s + b[r]));
                    }
                }
                y
            }
            "ADD" | "SUB" | "MUL" => {
                let (a, b) = (
                    e.get(op, 0).with_context(ctx)?,
                    e.get(op, 1).with_context(ctx)?,
                );
                let tag = match op.name.as_str() {
                    "ADD" => opt::ADD,
                    "SUB" => opt::SUB,
                    _ => opt::MUL,
                };
                let code = fused_of(tag).with_context(ctx)?;
                let n = a.len().max(b.len());
                if n % a.len().max(1) != 0
                    || n % b.len().max(1) != 0
                    || a.is_empty()
                    || b.is_empty()
                {
                    bail!("{}: operands of {} and {} values", ctx(), a.len(), b.len());
                }
                (0..n)
                    .map(|i| {
                        let (p, q) = (a[i % a.len()], b[i % b.len()]);
                        act(
                            code,
                            match op.name.as_str() {
                                "ADD" => p + q,
                                "SUB" => p - q,
                                _ => p * q,
                            },
                        )
                    })
                    .collect()
            }
            "LOGISTIC" => e
                .get(op, 0)?
                .iter()
                .map(|&v| 1.0 / (1.0 + (-v).exp()))
                .collect(),
            "TANH" => e.get(op, 0)?.iter().map(|&v| v.tanh()).collect(),
            "RELU" => e.get(op, 0)?.iter().map(|&v| v.max(0.0)).collect(),
            "RELU6" => e.get(op, 0)?.iter().map(|&v| v.clamp(0.0, 6.0)).collect(),
            "SOFTMAX" => {
                let o = super::options(op, opt::SOFTMAX).with_context(ctx)?;
                let beta = f64::from(o.map_or(Ok(0.0), |o| o.f32(0, 0.0))?);
                let v = e.get(op, 0)?;
                let s = e.shape(op.inputs[0])?;
                let c = *s.last().unwrap_or(&1);
                let mut y = Vec::with_capacity(v.len());
                for row in v.chunks(c.max(1)) {
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let ex: Vec<f64> = row.iter().map(|&r| ((r - m) * beta).exp()).collect();
                    let sum: f64 = ex.iter().sum();
                    y.extend(ex.iter().map(|&v| v / sum));
                }
                y
            }
            "UNPACK" | "SPLIT" => {
                let (data_k, axis) = if op.name == "UNPACK" {
                    let o = super::options(op, opt::UNPACK)?;
                    (0, i64::from(o.map_or(Ok(0), |o| o.i32(1, 0))?))
                } else {
                    super::options(op, opt::SPLIT).with_context(ctx)?;
                    let a = g.ints(op, 0).with_context(ctx)?;
                    let &[a] = &a[..] else {
                        bail!("{}: axis {a:?}", ctx());
                    };
                    (1, a)
                };
                let v = e.get(op, data_k).with_context(ctx)?;
                let s = e.shape(op.inputs[data_k])?;
                let a = axis_of(axis, s.len()).with_context(ctx)?;
                let parts = op.outputs.len();
                if parts == 0 || s[a] % parts != 0 {
                    bail!("{}: {parts} parts of {}", ctx(), s[a]);
                }
                let outer: usize = s[..a].iter().product();
                let inner: usize = s[a + 1..].iter().product::<usize>() * (s[a] / parts);
                if outer * parts * inner != v.len() {
                    bail!("{}: {} values for shape {s:?}", ctx(), v.len());
                }
                for (p, &o) in op.outputs.iter().enumerate() {
                    let mut y = Vec::with_capacity(outer * inner);
                    for q in 0..outer {
                        let base = (q * parts + p) * inner;
                        y.extend_from_slice(&v[base..base + inner]);
                    }
                    e.v.insert(o, y);
                }
                continue;
            }
            "PACK" | "CONCATENATION" => {
                let (axis, code) = if op.name == "PACK" {
                    let o = super::options(op, opt::PACK)?;
                    (i64::from(o.map_or(Ok(0), |o| o.i32(1, 0))?), 0)
                } else {
                    let o = super::options(op, opt::CONCATENATION)?;
                    (
                        i64::from(o.map_or(Ok(0), |o| o.i32(0, 0))?),
                        o.map_or(Ok(0), |o| o.u8(1, 0))?,
                    )
                };
                let s = e.shape(out)?;
                let a = axis_of(axis, s.len()).with_context(ctx)?;
                let outer: usize = s[..a].iter().product();
                let mut parts = Vec::new();
                for k in 0..op.inputs.len() {
                    parts.push(e.get(op, k).with_context(ctx)?);
                }
                let mut y = Vec::new();
                for q in 0..outer {
                    for p in &parts {
                        let inner = p.len() / outer.max(1);
                        y.extend(p[q * inner..(q + 1) * inner].iter().map(|&v| act(code, v)));
                    }
                }
                y
            }
            "STRIDED_SLICE" => {
                let v = e.get(op, 0).with_context(ctx)?;
                let s = e.shape(op.inputs[0])?;
                let o = super::options(op, super::opt::STRIDED_SLICE).with_context(ctx)?;
                let m = |id: usize| o.map_or(Ok(0), |o| o.i32(id, 0));
                let (bm, em, ellipsis, newax) = (m(0)?, m(1)?, m(2)?, m(3)?);
                if ellipsis != 0 || newax != 0 || o.map_or(Ok(0), |o| o.u8(5, 0))? != 0 {
                    bail!("{}: ellipsis/new-axis/offset slicing", ctx());
                }
                let (b, en, st) = (g.ints(op, 1)?, g.ints(op, 2)?, g.ints(op, 3)?);
                if v.len() != s.iter().product::<usize>() {
                    bail!("{}: {} values for shape {s:?}", ctx(), v.len());
                }
                if b.len() != s.len() || en.len() != s.len() || st.len() != s.len() {
                    bail!("{}: slice of rank {} for shape {s:?}", ctx(), b.len());
                }
                let bit = |mask: i32, a: usize| mask & (1 << a) != 0;
                let mut idx: Vec<Vec<usize>> = Vec::new();
                for a in 0..s.len() {
                    let d = s[a] as i64;
                    let step = st[a];
                    if step == 0 {
                        bail!("{}: stride 0", ctx());
                    }
                    let norm = |x: i64| if x < 0 { x + d } else { x };
                    let (lo, hi) = if step > 0 { (0, d) } else { (-1, d - 1) };
                    let start = if bit(bm, a) {
                        if step > 0 {
                            0
                        } else {
                            d - 1
                        }
                    } else {
                        norm(b[a]).clamp(lo, hi)
                    };
                    let stop = if bit(em, a) {
                        if step > 0 {
                            d
                        } else {
                            -1
                        }
                    } else {
                        norm(en[a]).clamp(lo, hi)
                    };
                    let mut v = Vec::new();
                    let mut i = start;
                    while (step > 0 && i < stop) || (step < 0 && i > stop) {
                        v.push(i as usize);
                        i += step;
                    }
                    idx.push(v);
                }
                let strides: Vec<usize> =
                    (0..s.len()).map(|a| s[a + 1..].iter().product()).collect();
                let mut y = vec![0usize];
                for (a, ix) in idx.iter().enumerate() {
                    let sa = strides[a];
                    y = y
                        .iter()
                        .flat_map(|&base| ix.iter().map(move |&i| base + i * sa))
                        .collect();
                }
                y.iter().map(|&i| v[i]).collect()
            }
            "REVERSE_V2" => {
                let v = e.get(op, 0).with_context(ctx)?;
                let s = e.shape(op.inputs[0])?;
                let axes = g.ints(op, 1).with_context(ctx)?;
                let &[a] = &axes[..] else {
                    bail!("{}: axes {axes:?}", ctx());
                };
                let a = axis_of(a, s.len()).with_context(ctx)?;
                if v.len() != s.iter().product::<usize>() {
                    bail!("{}: {} values for shape {s:?}", ctx(), v.len());
                }
                let outer: usize = s[..a].iter().product();
                let inner: usize = s[a + 1..].iter().product();
                let mut y = Vec::with_capacity(v.len());
                for q in 0..outer {
                    for i in (0..s[a]).rev() {
                        let base = (q * s[a] + i) * inner;
                        y.extend_from_slice(&v[base..base + inner]);
                    }
                }
                y
            }
            "MEAN" | "REDUCE_MAX" | "SUM" => {
                // Over the given axes (keep_dims changes the shape only, not the order).
                let v = e.get(op, 0).with_context(ctx)?;
                let s = e.shape(op.inputs[0])?;
                if v.len() != s.iter().product::<usize>() {
                    bail!("{}: {} values for shape {s:?}", ctx(), v.len());
                }
                let mut red = vec![false; s.len()];
                for a in g.ints(op, 1).with_context(ctx)? {
                    red[axis_of(a, s.len()).with_context(ctx)?] = true;
                }
                let n: usize = (0..s.len()).filter(|&a| red[a]).map(|a| s[a]).product();
                let kept: usize = v.len() / n.max(1);
                let max = op.name == "REDUCE_MAX";
                let mut y = vec![if max { f64::NEG_INFINITY } else { 0.0 }; kept];
                for (i, &x) in v.iter().enumerate() {
                    // The output index: the input's multi-index without the reduced axes.
                    let (mut rest, mut o, mut stride) = (i, 0, 1);
                    for a in (0..s.len()).rev() {
                        let k = rest % s[a];
                        rest /= s[a];
                        if !red[a] {
                            o += k * stride;
                            stride *= s[a];
                        }
                    }
                    y[o] = if max { y[o].max(x) } else { y[o] + x };
                }
                if op.name == "MEAN" {
                    y.iter_mut().for_each(|v| *v /= n as f64);
                }
                y
            }
            n => bail!("op {j} ({n}) cannot be evaluated to check the unrolled layer"),
        };
        e.v.insert(out, y);
    }
    let y =
        e.v.get(&output)
            .cloned()
            .ok_or_else(|| anyhow!("the graph's output is not computed"))?;
    Ok((y, e.v))
}

/// A small deterministic generator for the check's random inputs.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

/// Checks the imported model against the graph itself: 4 random sequences of the unrolled
/// length `steps` (features uniform in [−2, 2]), evaluated by both; the outputs must agree
/// within `tol`. On a mismatch, names the first time step of the first unrolled layer whose
/// hidden state no tensor of the graph holds.
pub(super) fn check(
    g: &Graph,
    ops: &[Op],
    input: i32,
    output: i32,
    m: &FloatModel,
    steps: usize,
    tol: f64,
) -> Result<f64> {
    let f = m.input_size;
    let mut rng = Lcg(0x5eed);
    let mut worst = 0.0f64;
    for _ in 0..4 {
        let x: Vec<f64> = (0..steps * f).map(|_| rng.next() * 4.0 - 2.0).collect();
        let (y, vals) = evaluate(g, ops, input, output, &x)?;
        let frames32: Vec<Vec<f32>> = x
            .chunks(f)
            .map(|c| c.iter().map(|&v| v as f32).collect())
            .collect();
        // The graph computes in f64 from the f64 input; the model reads f32 frames: feed it
        // the same values (exact in f32 after this rounding).
        let xr: Vec<f64> = frames32.iter().flatten().map(|&v| f64::from(v)).collect();
        let (y, vals) = if xr != x {
            evaluate(g, ops, input, output, &xr)?
        } else {
            (y, vals)
        };
        let frames: Vec<&[f32]> = frames32.iter().map(|v| &v[..]).collect();
        let last = &m.run_window(&frames, &mut ());
        if last.len() != y.len() {
            bail!(
                "the graph's output has {} values, the imported model's {}",
                y.len(),
                last.len()
            );
        }
        let err = y
            .iter()
            .zip(last)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        worst = worst.max(err);
        if err > tol {
            // Localize: the first layer's h_t, step by step.
            let l = &m.layers[0];
            let (mut h, mut c) = l.initial_hc();
            let mut at = None;
            let order: Vec<usize> = if l.direction == tinyrnn::Direction::Reverse {
                (0..frames32.len()).rev().collect()
            } else {
                (0..frames32.len()).collect()
            };
            for (k, &t) in order.iter().enumerate() {
                let xt: Vec<f64> = m.normalize(&frames32[t]);
                l.step(0, &xt, &mut h, &mut c, &mut ());
                let held = vals.values().any(|v| {
                    v.len() == h.len()
                        && v.iter()
                            .zip(&h)
                            .all(|(a, b)| (a - b).abs() <= tol.max(1e-6))
                });
                if !held {
                    at = Some(k);
                    break;
                }
            }
            let what = l.cell.name();
            return Err(match at {
                Some(t) => anyhow!(
                    "the unrolled {what} layer's time step {t} does not compute the cell of its other steps: no tensor of the graph holds its hidden state (outputs differ by {err:.1e} on random inputs)"
                ),
                None => anyhow!(
                    "the unrolled graph does not compute the imported {what} model: outputs differ by {err:.1e} on random inputs"
                ),
            });
        }
    }
    Ok(worst)
}

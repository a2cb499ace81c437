//! The evaluator's values: constants, symbolic shapes, zeros and the data sequence.

use anyhow::{bail, Result};
use tinyrnn::OutputAct;

use super::super::onnx_tensor::Tensor;

/// A dimension that may be symbolic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dim {
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
pub(super) enum Ax {
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
pub(super) struct Dense {
    pub(super) out: usize,
    pub(super) inp: usize,
    /// `[out][inp]`.
    pub(super) w: Vec<f64>,
    pub(super) b: Vec<f64>,
}

/// What the sequence holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Stage {
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
pub(super) struct Seq {
    pub(super) axes: Vec<Ax>,
    /// One entry, or one per index of the `Stack` axis.
    pub(super) parts: Vec<Stage>,
    /// Only the last time step is present (the time axis was selected away).
    pub(super) last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
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

pub(super) fn make_sym(v: Vec<Dim>, scalar: bool) -> Val {
    match sym_to_const(&v, scalar) {
        Some(t) => Val::Const(t),
        None => Val::Sym { v, scalar },
    }
}

pub(super) fn sym_to_const(v: &[Dim], scalar: bool) -> Option<Tensor> {
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

pub(super) fn to_sym(v: &Val) -> Result<(Vec<Dim>, bool)> {
    match v {
        Val::Sym { v, scalar } => Ok((v.clone(), *scalar)),
        Val::Const(t) if t.dims.len() <= 1 => Ok((
            t.as_i64().into_iter().map(Dim::K).collect(),
            t.dims.is_empty(),
        )),
        _ => bail!("not a shape vector"),
    }
}

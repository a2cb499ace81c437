//! The evaluator's values: constants, symbolic shapes, zeros and the data sequence.

use anyhow::{bail, Result};
use tinyrnn::{DenseAct, OutputAct, Pool};

use super::super::onnx_tensor::Tensor;
use crate::ir::{FloatDense, FrameOp, Norm};

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

impl Dense {
    /// The identity map of this width (carries an activation that follows no dense layer).
    pub(super) fn identity(width: usize) -> Dense {
        let mut w = vec![0.0; width * width];
        (0..width).for_each(|i| w[i * width + i] = 1.0);
        Dense {
            out: width,
            inp: width,
            w,
            b: vec![0.0; width],
        }
    }

    /// The finished layer with activation `act`.
    pub(super) fn float(self, act: DenseAct) -> FloatDense {
        FloatDense {
            out_size: self.out,
            in_size: self.inp,
            weight: self.w.into_iter().map(|x| x as f32).collect(),
            bias: self.b.into_iter().map(|x| x as f32).collect(),
            act,
        }
    }

    /// The finished layer with activation `act`, as a frame op.
    pub(super) fn close(self, act: DenseAct) -> FrameOp {
        FrameOp::Dense(self.float(act))
    }
}

/// What the sequence holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Stage {
    /// The graph input after `x·a + b` per feature.
    Input { a: Vec<f64>, b: Vec<f64> },
    /// The graph input after `x·a + b` per feature (the normalization), then the per-frame
    /// pre-net `ops`, then an open dense map `dense` (no activation yet: a following
    /// `Add`/`Mul` folds into it, an activation closes it into `ops`).
    Pre {
        a: Vec<f64>,
        b: Vec<f64>,
        ops: Vec<FrameOp>,
        dense: Option<Dense>,
    },
    /// State of recurrent layer `layer` (`h`, or `c` if `cell`), reduced over time by
    /// `pool`, then the finished hidden head layers `mlp`, then an optional open dense map
    /// `head`, then an output activation (a `Sigmoid`/`Tanh` that a dense layer follows
    /// becomes that layer's predecessor's activation).
    Rec {
        layer: usize,
        cell: bool,
        pool: Pool,
        mlp: Vec<FrameOp>,
        head: Option<Dense>,
        act: OutputAct,
    },
    /// One direction (`dir` 0: forward, 1: reverse) of bidirectional recurrent layer
    /// `layer`: `h` (or `c` if `cell`) at every step, or its final state if the sequence is
    /// `last`. Only both directions together, concatenated `[fwd; bwd]` on the feature axis
    /// (see [`Stage::join_directions`]), mean anything to the model.
    Dir { layer: usize, dir: u8, cell: bool },
}

impl Stage {
    /// `[fwd; bwd]` of bidirectional layer `layer` on the feature axis, if `parts` are its
    /// two directions in that order: every step (`Rec` with `Pool::Last`, what `Y` is after
    /// merging its direction axis) or, for final states (`last`), `Pool::FinalStates`
    /// (`cat(h_n[-2], h_n[-1])`).
    pub(super) fn join_directions(parts: &[Stage], last: bool) -> Option<Stage> {
        match parts {
            [Stage::Dir {
                layer: l0,
                dir: 0,
                cell: c0,
            }, Stage::Dir {
                layer: l1,
                dir: 1,
                cell: c1,
            }] if l0 == l1 && c0 == c1 => Some(Stage::Rec {
                layer: *l0,
                cell: *c0,
                pool: if last { Pool::FinalStates } else { Pool::Last },
                mlp: Vec::new(),
                head: None,
                act: OutputAct::Identity,
            }),
            _ => None,
        }
    }

    /// The refusal for an op applied to one direction of a bidirectional layer alone.
    pub(super) fn one_direction(layer: usize, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{what} on one direction of bidirectional recurrent layer {layer} alone: only both directions concatenated ([forward; reverse] on the feature axis) are supported"
        )
    }

    /// Recurrent layer `layer`'s hidden state, nothing applied.
    pub(super) fn hidden(layer: usize, cell: bool) -> Stage {
        Stage::Rec {
            layer,
            cell,
            pool: Pool::Last,
            mlp: Vec::new(),
            head: None,
            act: OutputAct::Identity,
        }
    }

    /// Whether this is a recurrent layer's plain state (what a recurrent layer above reads).
    pub(super) fn is_plain_state(&self, want_layer: usize) -> bool {
        matches!(self, Stage::Rec { layer, cell: false, pool: Pool::Last, mlp, head: None, act: OutputAct::Identity } if *layer == want_layer && mlp.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Seq {
    pub(super) axes: Vec<Ax>,
    /// One entry, or one per index of the `Stack` axis.
    pub(super) parts: Vec<Stage>,
    /// Only the last time step is present (the time axis was selected away).
    pub(super) last: bool,
    /// The time axis runs backwards (a `ReverseSequence` of the whole sequence, or the
    /// per-step output of a `Loop` over such a sequence, which Keras's ONNX export writes
    /// for `Bidirectional` and `go_backwards=True`): step `t` holds what the stage holds
    /// at time `T−1−t`. Always `false` once `last` (the selection fixed the meaning).
    pub(super) rev: bool,
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
    /// A 1-D integer vector of `len` entries, each `value` (`Expand` of a scalar shape
    /// value: the `sequence_lens` of a `ReverseSequence` over whole sequences).
    Filled {
        value: Dim,
        len: Dim,
    },
    Seq(Seq),
    /// An omitted optional input / unused output.
    Absent,
}

/// The input normalization a `Stage::Input`/`Stage::Pre` carries (`x·a + b` per feature) as
/// the model's `(x − offset)·scale`, or `None` for the identity.
pub(super) fn input_norm(a: &[f64], b: &[f64]) -> Result<Option<Norm>> {
    if a.iter().all(|&v| v == 1.0) && b.iter().all(|&v| v == 0.0) {
        return Ok(None);
    }
    if let Some(j) = a.iter().position(|&v| v == 0.0) {
        bail!("the input normalization multiplies feature {j} by 0");
    }
    Ok(Some(Norm {
        offset: a.iter().zip(b).map(|(&a, &b)| (-b / a) as f32).collect(),
        scale: a.iter().map(|&a| a as f32).collect(),
    }))
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

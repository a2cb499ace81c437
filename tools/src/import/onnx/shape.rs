//! Shape glue: `Shape`, `ConstantOfShape`, `Expand`, `Gather`, `Unsqueeze`, `Squeeze`,
//! `Slice`, `Concat`, `Transpose`, `Reshape`, `Flatten` on constants, symbolic shapes, zeros
//! and the data sequence (where they may only move size-1 axes or pick the last step).

use anyhow::{anyhow, bail, Result};

use super::super::onnx_tensor::{broadcast, resolve_slice, Tensor};
use super::super::proto::NodeProto;
use tinyrnn::Pool;

use super::value::{make_sym, sym_to_const, Ax, Dim, Seq, Stage, Val};
use super::{attr, attr_i, attr_ints, norm_axis, Eval};

impl Eval<'_> {
    pub(super) fn seq_dims(&self, s: &Seq) -> Vec<Dim> {
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

    pub(super) fn shape(&self, n: &NodeProto) -> Result<Vec<Val>> {
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
            Val::Filled { .. } => bail!("Shape of a sequence-length vector"),
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

    pub(super) fn shape_arg(&self, v: Val, what: &str) -> Result<Vec<Dim>> {
        match v {
            Val::Const(t) => Ok(t.as_i64().into_iter().map(Dim::K).collect()),
            Val::Sym { v, .. } => Ok(v.into_iter().map(|d| self.dim(d)).collect()),
            _ => bail!("{what} must be a shape"),
        }
    }

    pub(super) fn constant_of_shape(&self, n: &NodeProto) -> Result<Vec<Val>> {
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

    pub(super) fn expand(&self, n: &NodeProto) -> Result<Vec<Val>> {
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
            // A scalar shape value broadcast to a vector: `[value; len]`.
            Val::Sym { v, .. } if v.len() == 1 && shape.len() == 1 => {
                Ok(vec![if shape[0] == Dim::K(1) {
                    make_sym(v, false)
                } else {
                    Val::Filled {
                        value: v[0],
                        len: shape[0],
                    }
                }])
            }
            Val::Zeros(d) => Ok(vec![Val::Zeros(if shape.len() >= d.len() {
                shape
            } else {
                d
            })]),
            _ => bail!("Expand of the data sequence is not supported"),
        }
    }

    pub(super) fn gather(&self, n: &NodeProto) -> Result<Vec<Val>> {
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
            Val::Filled { .. } => bail!("Gather of a sequence-length vector"),
            Val::Absent => bail!("Gather of a missing input"),
        }
    }

    /// Selects index `i` of axis `a` of the sequence (keeping a size-1 axis if `keep`).
    pub(super) fn select(&self, mut s: Seq, a: usize, i: i64, keep: bool) -> Result<Seq> {
        match self.ax(s.axes[a]) {
            Ax::Time | Ax::Free(_) if i == -1 => {
                if matches!(self.ax(s.axes[a]), Ax::Free(_)) {
                    bail!("selects step -1 of an input axis before any recurrent layer");
                }
                self.take_last(&mut s)?;
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

    /// Marks the sequence as its last time step (`last`; the caller drops or resizes the
    /// time axis). Of a layer's output in time order that is its state after the last
    /// frame; of a time-reversed one (`rev`) the step at time 0, which only for a reverse
    /// layer (or the reverse direction of a bidirectional one) is a final state.
    pub(super) fn take_last(&self, s: &mut Seq) -> Result<()> {
        let rev = s.rev;
        for p in &mut s.parts {
            match p {
                Stage::Dir { layer, dir, .. } if (*dir == 1) != rev => {
                    return Err(Stage::one_direction(
                        *layer,
                        if rev {
                            "selecting the first step (the last of the time-reversed sequence)"
                        } else {
                            "selecting the last step"
                        },
                    ));
                }
                Stage::Dir { .. } => {}
                Stage::Rec { layer, pool, .. } if rev => {
                    let reverse = self.layers.get(*layer).map(|l| l.direction)
                        == Some(tinyrnn::Direction::Reverse);
                    if !reverse || *pool != Pool::Last {
                        bail!("selects the last step of a time-reversed sequence (its step at time 0): only a reverse layer's final state is supported");
                    }
                    *pool = Pool::FinalStates;
                }
                _ if rev => bail!(
                    "selects the last step of a time-reversed sequence (its step at time 0): only a reverse layer's final state is supported"
                ),
                _ => {}
            }
        }
        s.last = true;
        s.rev = false;
        Ok(())
    }

    /// `ReverseSequence` of the whole of every sequence (`sequence_lens` = the time size
    /// for each batch entry) along the sequence's time axis: the same values with `rev`
    /// flipped (see [`Seq::rev`]). Keras's ONNX export reverses the input this way before
    /// the `Loop` of a `go_backwards=True` layer or of a `Bidirectional` layer's backward
    /// direction, and that `Loop`'s per-step output back again for `return_sequences`.
    pub(super) fn reverse_sequence(&mut self, n: &NodeProto) -> Result<Vec<Val>> {
        let mut s = match self.input(n, 0)? {
            Val::Seq(s) => s,
            _ => bail!(
                "ReverseSequence of a value that does not depend on the input is not supported"
            ),
        };
        if s.last {
            bail!("ReverseSequence of a single time step");
        }
        let time_axis = attr_i(n, "time_axis").unwrap_or(0);
        let batch_axis = attr_i(n, "batch_axis").unwrap_or(1);
        let r = s.axes.len();
        let (ta, ba) = (norm_axis(time_axis, r)?, norm_axis(batch_axis, r)?);
        if ta == ba {
            bail!("ReverseSequence with time_axis = batch_axis = {time_axis}");
        }
        for (pos, role, what) in [(ta, Ax::Time, "time_axis"), (ba, Ax::Batch, "batch_axis")] {
            match self.ax(s.axes[pos]) {
                Ax::Free(i) => self.free[i as usize] = Some(role),
                a if a == role => {}
                other => bail!(
                    "ReverseSequence with {what}={} over a {other:?} axis of the data sequence: only reversing its time axis (batch_axis its batch axis) is supported",
                    if pos == ta { time_axis } else { batch_axis }
                ),
            }
        }
        let t_fixed = self.fixed_size(Ax::Time);
        let whole = match self.input(n, 1)? {
            Val::Filled { value, len } => {
                self.dim(value) == Dim::Time && matches!(self.dim(len), Dim::Batch | Dim::K(1))
            }
            Val::Const(t) => t_fixed
                .is_some_and(|tt| !t.data.is_empty() && t.data.iter().all(|&v| v == tt as f64)),
            _ => false,
        };
        if !whole {
            bail!("ReverseSequence with sequence_lens other than the full time size of every sequence: reversing only part of a sequence is not supported");
        }
        s.rev = !s.rev;
        Ok(vec![Val::Seq(s)])
    }

    pub(super) fn unsqueeze(&self, n: &NodeProto) -> Result<Vec<Val>> {
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
            Val::Filled { .. } => bail!("Unsqueeze of a sequence-length vector"),
            Val::Absent => bail!("Unsqueeze of a missing input"),
        }
    }

    pub(super) fn squeeze(&self, n: &NodeProto) -> Result<Vec<Val>> {
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
            Val::Filled { .. } => bail!("Squeeze of a sequence-length vector"),
            Val::Absent => bail!("Squeeze of a missing input"),
        }
    }

    pub(super) fn slice(&self, n: &NodeProto) -> Result<Vec<Val>> {
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
            Val::Filled { .. } => bail!("Slice of a sequence-length vector"),
            Val::Absent => bail!("Slice of a missing input"),
        };
        let axes: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&v| norm_axis(v, rank))
                .collect::<Result<_>>()?,
            // no axes: the first `starts.len()` axes, which must exist
            None if starts.len() > rank => bail!(
                "Slice with {} starts (and no axes) of a rank-{rank} value",
                starts.len()
            ),
            None => (0..starts.len()).collect(),
        };
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if axes.len() != starts.len() || steps.len() != starts.len() {
            bail!(
                "Slice with {} starts, {} axes and {} steps",
                starts.len(),
                axes.len(),
                steps.len()
            );
        }
        let ranges: Vec<(usize, i64, i64, i64)> = (0..starts.len())
            .map(|k| (axes[k], starts[k], ends[k], steps[k]))
            .collect();
        match x {
            Val::Const(t) => Ok(vec![Val::Const(t.slice(&ranges)?)]),
            Val::Sym { v, .. } => {
                let &[(_, s, e, st)] = &ranges[..] else {
                    bail!("Slice of a shape vector over {} axes", ranges.len());
                };
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
                            self.take_last(&mut s)?;
                            s.axes[a] = Ax::TimeLast;
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
            Val::Filled { .. } | Val::Absent => unreachable!(),
        }
    }

    pub(super) fn concat(&self, n: &NodeProto) -> Result<Vec<Val>> {
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

    pub(super) fn concat_seq(&self, vals: Vec<Val>, axis: i64) -> Result<Vec<Val>> {
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
            if s.rev != seqs[0].rev {
                bail!("Concat of a time-reversed sequence with one in time order (a backward direction's per-step output that was not reversed back)");
            }
            for (k, (&x, &y)) in s.axes.iter().zip(&seqs[0].axes).enumerate() {
                if k != a && self.ax(x) != self.ax(y) {
                    bail!("Concat of differently shaped layer states");
                }
            }
            match self.ax(s.axes[a]) {
                Ax::Unit | Ax::Stack(_) => parts.extend(s.parts.iter().cloned()),
                Ax::Feat(_) if seqs.len() == 2 && s.parts.len() == 1 => {
                    parts.extend(s.parts.iter().cloned())
                }
                other => bail!(
                    "Concat along a {other:?} axis of the data sequence (only stacking layer states, or the two directions of a bidirectional layer on the feature axis, is supported)"
                ),
            }
        }
        let mut out = seqs[0].clone();
        if let Ax::Feat(_) = self.ax(out.axes[a]) {
            // [fwd; bwd] of a bidirectional layer: its output, or cat(h_n[-2], h_n[-1]).
            let joined = Stage::join_directions(&parts, out.last).ok_or_else(|| {
                anyhow!(
                    "Concat on the feature axis of values other than the forward and the reverse direction of one bidirectional layer, in that order"
                )
            })?;
            let width: usize = seqs
                .iter()
                .map(|s| match self.ax(s.axes[a]) {
                    Ax::Feat(w) => w,
                    _ => 0,
                })
                .sum();
            out.axes[a] = Ax::Feat(width);
            out.parts = vec![joined];
            return Ok(vec![Val::Seq(out)]);
        }
        out.axes[a] = Ax::Stack(parts.len());
        out.parts = parts;
        Ok(vec![Val::Seq(out)])
    }

    pub(super) fn transpose(&self, n: &NodeProto) -> Result<Vec<Val>> {
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

    pub(super) fn reshape(&self, n: &NodeProto) -> Result<Vec<Val>> {
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
            Val::Filled { .. } => bail!("Reshape of a sequence-length vector"),
            Val::Absent => bail!("Reshape of a missing input"),
        }
    }

    /// Reshape of the sequence that only adds or removes size-1 axes, or merges a
    /// bidirectional layer's direction axis into the feature axis that follows it
    /// (`[.., 2, .., H]` → `[.., 2H]`: its output `[fwd; bwd]`).
    pub(super) fn regroup(&self, mut s: Seq, target: &[Dim]) -> Result<Seq> {
        let mut big: Vec<Ax> = s
            .axes
            .iter()
            .map(|&a| self.ax(a))
            .filter(|a| !matches!(a, Ax::Unit | Ax::TimeLast))
            .collect();
        let wanted = target.iter().filter(|d| **d != Dim::K(1)).count();
        if wanted + 1 == big.len() {
            let at = big
                .windows(2)
                .position(|w| matches!(w, [Ax::Stack(2), Ax::Feat(_)]));
            if let (Some(i), Some(joined)) = (at, Stage::join_directions(&s.parts, s.last)) {
                if let Ax::Feat(h) = big[i + 1] {
                    big.splice(i..i + 2, [Ax::Feat(2 * h)]);
                    s.parts = vec![joined];
                }
            }
        }
        let mut out = Vec::new();
        let mut it = big.iter();
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

    pub(super) fn flatten(&self, n: &NodeProto) -> Result<Vec<Val>> {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, int, ints, konst, node};
    use super::super::value::Stage;
    use super::*;
    use crate::import::ImportOptions;

    /// Recurrent layer 0's output `Y` with `layout=1` after the num_directions squeeze:
    /// `[batch, time, hidden]`.
    fn y(h: usize) -> Val {
        Val::Seq(Seq {
            axes: vec![Ax::Batch, Ax::Time, Ax::Feat(h)],
            parts: vec![Stage::hidden(0, false)],
            last: false,
            rev: false,
        })
    }

    fn seq(v: &Val) -> &Seq {
        match v {
            Val::Seq(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn err(r: Result<Vec<Val>>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    /// `out[:, -1]` written as `Gather(-1, axis=1)` or `Slice([-1:], axis=1)` + `Squeeze`.
    #[test]
    fn last_step() {
        let opts = ImportOptions::default();
        let ev = eval(
            &opts,
            vec![
                ("y", y(4)),
                ("m1", Val::Const(Tensor::new(vec![], vec![-1.0], true))),
                ("zero", Val::Const(Tensor::new(vec![], vec![0.0], true))),
                ("starts", Val::Const(Tensor::ints(&[-1]))),
                ("ends", Val::Const(Tensor::ints(&[i64::MAX]))),
                ("axes", Val::Const(Tensor::ints(&[1]))),
            ],
        );
        let g = ev
            .gather(&node("Gather", &["y", "m1"], vec![int("axis", 1)]))
            .unwrap();
        assert!(seq(&g[0]).last);
        assert_eq!(seq(&g[0]).axes, [Ax::Batch, Ax::Feat(4)]);
        let s = ev
            .slice(&node("Slice", &["y", "starts", "ends", "axes"], vec![]))
            .unwrap();
        assert!(seq(&s[0]).last);
        assert_eq!(seq(&s[0]).axes, [Ax::Batch, Ax::TimeLast, Ax::Feat(4)]);
        assert_eq!(
            err(ev.gather(&node("Gather", &["y", "zero"], vec![int("axis", 1)]))),
            "selects time step 0 of the sequence: only the last step (index -1) is supported"
        );
        assert_eq!(
            err(ev.gather(&node("Gather", &["y", "m1"], vec![int("axis", 3)]))),
            "axis 3 out of range for rank 3"
        );
    }

    /// `Shape` of the sequence is symbolic in batch and time, constant in the features;
    /// `Gather` of its feature entry is a constant.
    #[test]
    fn shape_of_the_sequence() {
        let opts = ImportOptions::default();
        let mut ev = eval(
            &opts,
            vec![
                ("y", y(4)),
                ("two", Val::Const(Tensor::new(vec![], vec![2.0], true))),
            ],
        );
        let s = ev.shape(&node("Shape", &["y"], vec![])).unwrap();
        assert_eq!(
            s,
            [Val::Sym {
                v: vec![Dim::Batch, Dim::Time, Dim::K(4)],
                scalar: false
            }]
        );
        ev.vals.insert("s".into(), s[0].clone());
        let f = ev.gather(&node("Gather", &["s", "two"], vec![])).unwrap();
        assert_eq!(f, [Val::Const(Tensor::new(vec![], vec![4.0], true))]);
        let tail = ev
            .shape(&node("Shape", &["y"], vec![int("start", -2)]))
            .unwrap();
        assert_eq!(
            tail,
            [Val::Sym {
                v: vec![Dim::Time, Dim::K(4)],
                scalar: false
            }]
        );
    }

    #[test]
    fn reshape_and_transpose_keep_the_axes() {
        let opts = ImportOptions::default();
        let ev = eval(
            &opts,
            vec![
                ("y", y(4)),
                ("flat", Val::Const(Tensor::ints(&[-1, 4]))),
                ("keep", Val::Const(Tensor::ints(&[0, 0, 1, 4]))),
                ("w", konst(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
            ],
        );
        let t = ev
            .transpose(&node("Transpose", &["y"], vec![ints("perm", &[1, 0, 2])]))
            .unwrap();
        assert_eq!(seq(&t[0]).axes, [Ax::Time, Ax::Batch, Ax::Feat(4)]);
        let r = ev
            .reshape(&node("Reshape", &["y", "keep"], vec![]))
            .unwrap();
        assert_eq!(
            seq(&r[0]).axes,
            [Ax::Batch, Ax::Time, Ax::Unit, Ax::Feat(4)]
        );
        assert!(err(ev.reshape(&node("Reshape", &["y", "flat"], vec![])))
            .contains("(only adding/removing size-1 axes is supported)"));
        // Transpose of a constant is folded.
        let wt = ev.transpose(&node("Transpose", &["w"], vec![])).unwrap();
        assert_eq!(wt, [konst(&[3, 2], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0])]);
    }

    /// A bidirectional layer's `Y` `[T, 2, B, H]` (layout 0): `Transpose(0, 2, 1, 3)` then
    /// `Reshape([0, 0, -1])` merges its direction axis into the features, `[fwd; bwd]`
    /// (every step, `Pool::Last`); `Y_h` `[2, B, H]`: `Gather(-2)`, `Gather(-1)` and a
    /// `Concat` on the features give the final states (`Pool::FinalStates`); the other
    /// order, or one direction alone, is refused.
    #[test]
    fn bidirectional_directions_join() {
        let opts = ImportOptions::default();
        let dirs = |last: bool, axes: Vec<Ax>| {
            Val::Seq(Seq {
                axes,
                parts: (0..2)
                    .map(|dir| Stage::Dir {
                        layer: 0,
                        dir,
                        cell: false,
                    })
                    .collect(),
                last,
                rev: false,
            })
        };
        let mut ev = eval(
            &opts,
            vec![
                (
                    "y",
                    dirs(false, vec![Ax::Time, Ax::Stack(2), Ax::Batch, Ax::Feat(4)]),
                ),
                ("yh", dirs(true, vec![Ax::Stack(2), Ax::Batch, Ax::Feat(4)])),
                ("shape", Val::Const(Tensor::ints(&[0, 0, -1]))),
                ("m1", Val::Const(Tensor::new(vec![], vec![-1.0], true))),
                ("m2", Val::Const(Tensor::new(vec![], vec![-2.0], true))),
            ],
        );
        let t = ev
            .transpose(&node(
                "Transpose",
                &["y"],
                vec![ints("perm", &[0, 2, 1, 3])],
            ))
            .unwrap();
        ev.vals.insert("t".into(), t[0].clone());
        let r = ev
            .reshape(&node("Reshape", &["t", "shape"], vec![]))
            .unwrap();
        assert_eq!(seq(&r[0]).axes, [Ax::Time, Ax::Batch, Ax::Feat(8)]);
        assert_eq!(seq(&r[0]).parts, [Stage::hidden(0, false)]);
        let f = ev.gather(&node("Gather", &["yh", "m2"], vec![])).unwrap();
        let b = ev.gather(&node("Gather", &["yh", "m1"], vec![])).unwrap();
        ev.vals.insert("f".into(), f[0].clone());
        ev.vals.insert("b".into(), b[0].clone());
        let c = ev
            .concat(&node("Concat", &["f", "b"], vec![int("axis", 1)]))
            .unwrap();
        assert_eq!(seq(&c[0]).axes, [Ax::Batch, Ax::Feat(8)]);
        assert!(matches!(
            seq(&c[0]).parts[..],
            [Stage::Rec {
                layer: 0,
                cell: false,
                pool: tinyrnn::Pool::FinalStates,
                ..
            }]
        ));
        assert_eq!(
            err(ev.concat(&node("Concat", &["b", "f"], vec![int("axis", 1)]))),
            "Concat on the feature axis of values other than the forward and the reverse direction of one bidirectional layer, in that order"
        );
        for (k, name) in [(0.0, "fy"), (1.0, "by")] {
            let z = Val::Const(Tensor::new(vec![], vec![k], true));
            ev.vals.insert("k".into(), z);
            let y = ev
                .gather(&node("Gather", &["y", "k"], vec![int("axis", 1)]))
                .unwrap();
            ev.vals.insert(name.into(), y[0].clone());
        }
        // The forward direction's last step is its final state; the reverse direction's
        // last step is its first one (it runs from the end).
        let fl = ev
            .gather(&node("Gather", &["fy", "m1"], vec![int("axis", 0)]))
            .unwrap();
        assert_eq!(
            seq(&fl[0]).parts,
            [Stage::Dir {
                layer: 0,
                dir: 0,
                cell: false
            }]
        );
        assert!(seq(&fl[0]).last);
        assert_eq!(
            err(ev.gather(&node("Gather", &["by", "m1"], vec![int("axis", 0)]))),
            "selecting the last step on one direction of bidirectional recurrent layer 0 alone: only both directions concatenated ([forward; reverse] on the feature axis) are supported"
        );
    }

    /// `ReverseSequence` of whole sequences (`Expand` of the time size to one length per
    /// batch entry) flips the sequence's `rev` and gives the input axes their roles; a
    /// partial one, or one over the feature axis, is refused. The last step of a
    /// time-reversed sequence is only a reverse layer's final state.
    #[test]
    fn reverse_sequence_of_whole_sequences() {
        let opts = ImportOptions::default();
        let x = Val::Seq(Seq {
            axes: vec![Ax::Free(0), Ax::Free(1), Ax::Feat(3)],
            parts: vec![Stage::Input {
                a: vec![1.0; 3],
                b: vec![0.0; 3],
            }],
            last: false,
            rev: false,
        });
        let mut ev = eval(
            &opts,
            vec![
                ("x", x),
                (
                    "t",
                    Val::Sym {
                        v: vec![Dim::Free(1)],
                        scalar: true,
                    },
                ),
                (
                    "b",
                    Val::Sym {
                        v: vec![Dim::Free(0)],
                        scalar: false,
                    },
                ),
                ("five", Val::Const(Tensor::ints(&[5]))),
            ],
        );
        let lens = ev.expand(&node("Expand", &["t", "b"], vec![])).unwrap();
        assert_eq!(
            lens[0],
            Val::Filled {
                value: Dim::Free(1),
                len: Dim::Free(0)
            }
        );
        ev.vals.insert("lens".into(), lens[0].clone());
        let axes = vec![int("time_axis", 1), int("batch_axis", 0)];
        let r = ev
            .reverse_sequence(&node("ReverseSequence", &["x", "lens"], axes.clone()))
            .unwrap();
        assert!(seq(&r[0]).rev);
        assert_eq!(ev.free, [Some(Ax::Batch), Some(Ax::Time)]);
        ev.vals.insert("r".into(), r[0].clone());
        let rr = ev
            .reverse_sequence(&node("ReverseSequence", &["r", "lens"], axes.clone()))
            .unwrap();
        assert!(!seq(&rr[0]).rev);
        assert_eq!(
            err(ev.reverse_sequence(&node("ReverseSequence", &["x", "five"], axes))),
            "ReverseSequence with sequence_lens other than the full time size of every sequence: reversing only part of a sequence is not supported"
        );
        assert_eq!(
            err(ev.reverse_sequence(&node(
                "ReverseSequence",
                &["x", "lens"],
                vec![int("time_axis", 2), int("batch_axis", 0)]
            ))),
            "ReverseSequence with time_axis=2 over a Feat(3) axis of the data sequence: only reversing its time axis (batch_axis its batch axis) is supported"
        );
        // Layer 0 (none here: not a reverse layer), time-reversed: its last step is refused.
        let mut y = seq(&y(4)).clone();
        y.rev = true;
        ev.vals.insert("yr".into(), Val::Seq(y));
        ev.vals.insert("m1".into(), Val::Const(Tensor::ints(&[-1])));
        assert_eq!(
            err(ev.gather(&node("Gather", &["yr", "m1"], vec![int("axis", 1)]))),
            "selects the last step of a time-reversed sequence (its step at time 0): only a reverse layer's final state is supported"
        );
    }
}

//! Reductions over time: `ReduceMean`, `ReduceMax`, `ReduceSum` of a recurrent layer's
//! output over its time axis (PyTorch `out.mean(dim=1)`, `out.max(dim=1).values`,
//! `out.sum(dim=1)`) become the model's [`Pool`].

use anyhow::{bail, Result};
use tinyrnn::Pool;

use super::super::proto::NodeProto;
use super::value::{Ax, Stage, Val};
use super::{attr_i, norm_axis, Eval};

impl Eval<'_> {
    pub(super) fn reduce(&self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        let pool = match op {
            "ReduceMean" => Pool::Mean,
            "ReduceMax" => Pool::Max,
            _ => Pool::Sum,
        };
        let mut s = match self.input(n, 0)? {
            Val::Seq(s) => s,
            _ => bail!("{op} of a value that does not depend on the input is not supported"),
        };
        let axes = self.opt_ints(n, "axes", 1)?.unwrap_or_default();
        let axis = match axes[..] {
            [a] => norm_axis(a, s.axes.len())?,
            _ => bail!(
                "{op} over axes {axes:?}: only a reduction over the time axis alone is supported"
            ),
        };
        match self.ax(s.axes[axis]) {
            Ax::Time => {}
            other => bail!(
                "{op} over a {other:?} axis: only a reduction over the time axis of a recurrent layer's output is supported"
            ),
        }
        if s.last || s.parts.len() != 1 {
            bail!("{op} over time of a value that is not every step of one recurrent layer");
        }
        match s.parts.last_mut() {
            Some(st @ Stage::Rec { .. }) if st.is_plain_state(layer_of(st)) => {
                if let Stage::Rec { pool: p, .. } = st {
                    *p = pool;
                }
            }
            Some(Stage::Rec { cell: true, .. }) => {
                bail!("{op} over time of an LSTM cell state is not supported")
            }
            _ => bail!(
                "{op} over time of a value other than a recurrent layer's output (a dense layer or activation before the reduction) is not supported"
            ),
        }
        if attr_i(n, "keepdims").unwrap_or(1) != 0 {
            s.axes[axis] = Ax::Unit;
        } else {
            s.axes.remove(axis);
        }
        s.last = true;
        // Mean, max and sum do not depend on the order of the steps.
        s.rev = false;
        Ok(vec![Val::Seq(s)])
    }
}

fn layer_of(st: &Stage) -> usize {
    match st {
        Stage::Rec { layer, .. } => *layer,
        _ => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, int, ints, konst, node};
    use super::super::value::Seq;
    use super::*;
    use crate::import::ImportOptions;

    /// Layer 0's output `[batch, time, hidden]`.
    fn y(h: usize) -> Val {
        Val::Seq(Seq {
            axes: vec![Ax::Batch, Ax::Time, Ax::Feat(h)],
            parts: vec![Stage::hidden(0, false)],
            last: false,
            rev: false,
        })
    }

    fn err(r: Result<Vec<Val>>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn reductions_over_time_become_the_pool() {
        let opts = ImportOptions::default();
        let mut ev = eval(&opts, vec![("y", y(4)), ("w", konst(&[4, 2], &[0.0; 8]))]);
        for (op, pool) in [
            ("ReduceMean", Pool::Mean),
            ("ReduceMax", Pool::Max),
            ("ReduceSum", Pool::Sum),
        ] {
            let n = node(op, &["y"], vec![ints("axes", &[1]), int("keepdims", 0)]);
            match &ev.reduce(&n, op).unwrap()[0] {
                Val::Seq(s) => {
                    assert_eq!(s.axes, [Ax::Batch, Ax::Feat(4)], "{op}");
                    assert!(matches!(s.parts[..], [Stage::Rec { pool: p, .. }] if p == pool));
                }
                other => panic!("{other:?}"),
            }
        }
        let feat = node("ReduceMean", &["y"], vec![ints("axes", &[-1])]);
        assert_eq!(
            err(ev.reduce(&feat, "ReduceMean")),
            "ReduceMean over a Feat(4) axis: only a reduction over the time axis of a recurrent layer's output is supported"
        );
        // A dense layer before the reduction is refused (max does not commute with it).
        let d = ev.matmul(&node("MatMul", &["y", "w"], vec![])).unwrap();
        ev.vals.insert("d".into(), d[0].clone());
        let n = node("ReduceMax", &["d"], vec![ints("axes", &[1])]);
        assert!(err(ev.reduce(&n, "ReduceMax"))
            .contains("a dense layer or activation before the reduction"));
    }
}

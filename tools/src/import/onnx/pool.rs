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
        Ok(vec![Val::Seq(s)])
    }
}

fn layer_of(st: &Stage) -> usize {
    match st {
        Stage::Rec { layer, .. } => *layer,
        _ => usize::MAX,
    }
}

//! Output activations: `Softmax` (over the feature axis), `Sigmoid`, `Tanh`.

use anyhow::{bail, Result};
use tinyrnn::OutputAct;

use super::super::proto::NodeProto;
use super::value::{Ax, Stage, Val};
use super::{attr_i, norm_axis, Eval};

impl Eval<'_> {
    pub(super) fn activation(&self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, int, node, state};
    use super::*;
    use crate::import::ImportOptions;

    fn act(v: &Val) -> OutputAct {
        match v {
            Val::Seq(s) => match &s.parts[..] {
                [Stage::Rec { act, .. }] => *act,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn activations_on_the_state() {
        let opts = ImportOptions::default();
        let mut ev = eval(&opts, vec![("h", state(3))]);
        for (op, want) in [
            ("Sigmoid", OutputAct::Sigmoid),
            ("Tanh", OutputAct::Tanh),
            ("Softmax", OutputAct::Softmax),
        ] {
            let out = ev.activation(&node(op, &["h"], vec![]), op).unwrap();
            assert_eq!(act(&out[0]), want, "{op}");
        }
        let y = ev
            .activation(&node("Softmax", &["h"], vec![int("axis", 1)]), "Softmax")
            .unwrap();
        assert_eq!(act(&y[0]), OutputAct::Softmax);
        ev.vals.insert("y".into(), y[0].clone());
        assert_eq!(
            format!(
                "{:#}",
                ev.activation(&node("Sigmoid", &["y"], vec![]), "Sigmoid")
                    .unwrap_err()
            ),
            "two output activations in a row are not supported"
        );
    }

    #[test]
    fn softmax_only_over_features() {
        let opts = ImportOptions::default();
        let ev = eval(&opts, vec![("h", state(3))]);
        let n = node("Softmax", &["h"], vec![int("axis", 0)]);
        assert_eq!(
            format!("{:#}", ev.activation(&n, "Softmax").unwrap_err()),
            "Softmax over axis 0, which is not the output feature axis"
        );
    }
}

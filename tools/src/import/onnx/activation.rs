//! Activations and norms: the output activations `Softmax` (over the feature axis),
//! `Sigmoid`, `Tanh`; the dense activations `Relu`, `LeakyRelu`, `Clip` (ReLU6/hardtanh),
//! `Gelu` (exact or tanh; the decomposed forms are fused first, see `fuse.rs`), which close
//! the open dense layer of the pre-net or the head; `LayerNormalization`; and
//! `BatchNormalization`, folded into the dense layer before it.

use anyhow::{bail, Result};
use tinyrnn::{DenseAct, OutputAct};

use super::super::onnx_tensor::Tensor;
use super::super::proto::NodeProto;
use super::dense::settle;
use super::value::{Ax, Dense, Seq, Stage, Val};
use super::{attr_f, attr_i, attr_s, norm_axis, Eval};
use crate::ir::{FloatLayerNorm, FrameOp};

impl Eval<'_> {
    /// `Sigmoid`, `Tanh`, `Softmax`: on the head, the tentative output activation (a
    /// `Sigmoid`/`Tanh` that more layers follow becomes a hidden activation); on the input,
    /// a pre-net activation.
    pub(super) fn activation(&self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        let mut s = match self.input(n, 0)? {
            Val::Seq(s) => s,
            Val::Const(_) => bail!("{op} of a constant is not supported"),
            _ => bail!("{op} of a shape value"),
        };
        if s.parts.len() != 1 {
            bail!("{op} on stacked layer states");
        }
        let out_act = match op {
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
        if matches!(s.parts[0], Stage::Input { .. } | Stage::Pre { .. }) {
            let act = match out_act {
                OutputAct::Sigmoid => DenseAct::Sigmoid,
                OutputAct::Tanh => DenseAct::Tanh,
                _ => bail!("{op} before the first recurrent layer is not supported"),
            };
            return self.dense_act_on(s, act).map(|s| vec![Val::Seq(s)]);
        }
        if let Stage::Dir { layer, .. } = s.parts[0] {
            return Err(Stage::one_direction(layer, op));
        }
        let width = self.width(&s, op)?;
        if let Some(Stage::Rec { mlp, head, act, .. }) = s.parts.last_mut() {
            settle(mlp, head, act, width)?;
            *act = out_act;
        }
        Ok(vec![Val::Seq(s)])
    }

    /// `Relu`, `LeakyRelu`, `Clip`, `Gelu` (and `Sigmoid`/`Tanh` in the pre-net): closes the
    /// open dense layer with this activation.
    pub(super) fn dense_activation(&self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        let s = match self.input(n, 0)? {
            Val::Seq(s) => s,
            _ => bail!("{op} of a value that does not depend on the input is not supported"),
        };
        let act = match op {
            "Relu" => DenseAct::Relu,
            "LeakyRelu" => DenseAct::LeakyRelu {
                alpha: attr_f(n, "alpha").unwrap_or(0.01),
            },
            "Gelu" => match attr_s(n, "approximate").as_deref() {
                None | Some("none") => DenseAct::Gelu,
                Some("tanh") => DenseAct::GeluTanh,
                Some(other) => bail!("Gelu approximate={other:?} is not supported"),
            },
            _ => {
                // Clip: bounds as inputs (opset ≥ 11) or attributes (older).
                let bound = |i: usize, name: &str| -> Result<Option<f32>> {
                    if let Some(v) = attr_f(n, name) {
                        return Ok(Some(v));
                    }
                    match self.input(n, i)? {
                        Val::Absent => Ok(None),
                        _ => {
                            let t = self.konst(n, i, name)?;
                            match t.data[..] {
                                [v] => Ok(Some(v as f32)),
                                _ => bail!("Clip {name} has {} values", t.len()),
                            }
                        }
                    }
                };
                match (bound(1, "min")?, bound(2, "max")?) {
                    (Some(0.0), None) => DenseAct::Relu,
                    (Some(lo), Some(hi)) if lo <= hi => DenseAct::Clip { lo, hi },
                    (lo, hi) => bail!(
                        "Clip with min {lo:?} and max {hi:?} is not supported (both bounds, min ≤ max, or min 0 alone)"
                    ),
                }
            }
        };
        Ok(vec![Val::Seq(self.dense_act_on(s, act)?)])
    }

    /// Closes the open dense map of the sequence (an identity map if none is open) with
    /// the activation `act`.
    pub(super) fn dense_act_on(&self, mut s: Seq, act: DenseAct) -> Result<Seq> {
        if s.parts.len() != 1 {
            bail!("{} on stacked layer states", act.name());
        }
        let width = self.width(&s, act.name())?;
        let stage = match s.parts.pop() {
            Some(Stage::Input { a, b }) => Stage::Pre {
                a,
                b,
                ops: vec![Dense::identity(width).close(act)],
                dense: None,
            },
            Some(Stage::Pre {
                a,
                b,
                mut ops,
                dense,
            }) => {
                ops.push(dense.unwrap_or_else(|| Dense::identity(width)).close(act));
                Stage::Pre {
                    a,
                    b,
                    ops,
                    dense: None,
                }
            }
            Some(Stage::Rec {
                layer,
                cell,
                pool,
                mut mlp,
                mut head,
                act: mut out_act,
            }) => {
                settle(&mut mlp, &mut head, &mut out_act, width)?;
                mlp.push(head.unwrap_or_else(|| Dense::identity(width)).close(act));
                Stage::Rec {
                    layer,
                    cell,
                    pool,
                    mlp,
                    head: None,
                    act: out_act,
                }
            }
            Some(Stage::Dir { layer, .. }) => return Err(Stage::one_direction(layer, act.name())),
            None => bail!("an activation on an empty value"),
        };
        s.parts.push(stage);
        Ok(s)
    }

    /// `LayerNormalization` over the feature axis (closes the open dense map first).
    pub(super) fn layer_norm(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let s = match self.input(n, 0)? {
            Val::Seq(s) => s,
            _ => bail!("LayerNormalization of a value that does not depend on the input"),
        };
        let width = self.width(&s, "LayerNormalization")?;
        let axis = attr_i(n, "axis").unwrap_or(-1);
        if norm_axis(axis, s.axes.len())? + 1 != s.axes.len() {
            bail!("LayerNormalization over axis {axis}: only the last (feature) axis is supported");
        }
        let per_feature = |i: usize, what: &str, default: f64| -> Result<Vec<f32>> {
            let t = match self.input(n, i)? {
                Val::Absent => return Ok(vec![default as f32; width]),
                _ => self.konst(n, i, what)?,
            };
            Ok(t.expand_to(&[width])?
                .data
                .iter()
                .map(|&v| v as f32)
                .collect())
        };
        let ln = FloatLayerNorm {
            gamma: per_feature(1, "LayerNormalization scale", 1.0)?,
            beta: per_feature(2, "LayerNormalization bias", 0.0)?,
            eps: attr_f(n, "epsilon").unwrap_or(1e-5),
        };
        Ok(vec![Val::Seq(self.layer_norm_on(s, ln)?)])
    }

    /// Appends a LayerNorm to the pre-net or the head.
    pub(super) fn layer_norm_on(&self, mut s: Seq, ln: FloatLayerNorm) -> Result<Seq> {
        if s.parts.len() != 1 {
            bail!("LayerNormalization on stacked layer states");
        }
        let width = self.width(&s, "LayerNormalization")?;
        let op = FrameOp::LayerNorm(ln);
        let stage = match s.parts.pop() {
            Some(Stage::Input { a, b }) => Stage::Pre {
                a,
                b,
                ops: vec![op],
                dense: None,
            },
            Some(Stage::Pre {
                a,
                b,
                mut ops,
                dense,
            }) => {
                ops.extend(dense.map(|d| d.close(DenseAct::Identity)));
                ops.push(op);
                Stage::Pre {
                    a,
                    b,
                    ops,
                    dense: None,
                }
            }
            Some(Stage::Rec {
                layer,
                cell,
                pool,
                mut mlp,
                mut head,
                mut act,
            }) => {
                settle(&mut mlp, &mut head, &mut act, width)?;
                mlp.extend(head.map(|d| d.close(DenseAct::Identity)));
                mlp.push(op);
                Stage::Rec {
                    layer,
                    cell,
                    pool,
                    mlp,
                    head: None,
                    act,
                }
            }
            Some(Stage::Dir { layer, .. }) => {
                return Err(Stage::one_direction(layer, "LayerNormalization"))
            }
            None => bail!("LayerNormalization on an empty value"),
        };
        s.parts.push(stage);
        Ok(s)
    }

    /// `BatchNormalization` (inference) over the feature axis, folded into the dense map
    /// before it (or into the input normalization).
    pub(super) fn batch_norm(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let s = match self.input(n, 0)? {
            Val::Seq(s) => s,
            _ => bail!("BatchNormalization of a value that does not depend on the input"),
        };
        if attr_i(n, "training_mode").unwrap_or(0) != 0 {
            bail!("BatchNormalization with training_mode=1 is not supported");
        }
        if s.axes.len() != 2 {
            bail!(
                "BatchNormalization of a rank-{} value: only [batch, features] (a BatchNorm1d on the pooled vector or in the head) is supported",
                s.axes.len()
            );
        }
        let width = self.width(&s, "BatchNormalization")?;
        let eps = attr_f(n, "epsilon").unwrap_or(1e-5) as f64;
        let get = |i: usize, what: &str| -> Result<Vec<f64>> {
            Ok(self.konst(n, i, what)?.expand_to(&[width])?.data)
        };
        let (scale, bias, mean, var) = (
            get(1, "scale")?,
            get(2, "B")?,
            get(3, "input_mean")?,
            get(4, "input_var")?,
        );
        // y = (x − mean)·k + B with k = scale / sqrt(var + eps).
        let k: Vec<f64> = scale
            .iter()
            .zip(&var)
            .map(|(&g, &v)| g / (v + eps).sqrt())
            .collect();
        let c: Vec<f64> = (0..width).map(|j| bias[j] - mean[j] * k[j]).collect();
        let s = self.seq_arith(s, &Tensor::new(vec![width], k, false), "Mul", false)?;
        let s = self.seq_arith(s, &Tensor::new(vec![width], c, false), "Add", false)?;
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
            "a layer after Softmax is not supported (Softmax must be the output activation)"
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

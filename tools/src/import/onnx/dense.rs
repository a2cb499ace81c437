//! Dense layers: `MatMul` and `Gemm` with a constant weight, applied to the input (the
//! per-frame pre-net) or to a recurrent layer's (pooled) state (the head); consecutive
//! dense maps with nothing in between are composed into one.

use anyhow::{bail, Result};
use tinyrnn::{DenseAct, OutputAct};

use super::super::onnx_tensor::Tensor;
use super::super::proto::NodeProto;
use super::value::{Ax, Dense, Seq, Stage, Val};
use super::{attr_f, attr_i, Eval};
use crate::ir::FrameOp;

/// `W·(prev) + b` after the open dense map `prev` (two dense maps with nothing in between
/// compose into one), or a new open map.
fn compose(open: &mut Option<Dense>, w: Vec<f64>, out: usize, inp: usize, b: Vec<f64>) {
    *open = Some(match open.take() {
        None => Dense { out, inp, w, b },
        Some(d) => {
            let mut cw = vec![0.0; out * d.inp];
            let mut cb = b;
            for r in 0..out {
                for k in 0..inp {
                    let wk = w[r * inp + k];
                    cb[r] += wk * d.b[k];
                    for j in 0..d.inp {
                        cw[r * d.inp + j] += wk * d.w[k * d.inp + j];
                    }
                }
            }
            Dense {
                out,
                inp: d.inp,
                w: cw,
                b: cb,
            }
        }
    });
}

/// A layer follows the head's tentative output activation: a `Sigmoid`/`Tanh` becomes the
/// activation of the open dense map (or of an identity map of width `width`), closed into
/// `mlp`; after a `Softmax` nothing may follow.
pub(super) fn settle(
    mlp: &mut Vec<FrameOp>,
    head: &mut Option<Dense>,
    act: &mut OutputAct,
    width: usize,
) -> Result<()> {
    let hidden = match *act {
        OutputAct::Identity => return Ok(()),
        OutputAct::Sigmoid => DenseAct::Sigmoid,
        OutputAct::Tanh => DenseAct::Tanh,
        OutputAct::Softmax => {
            bail!("a layer after Softmax is not supported (Softmax must be the output activation)")
        }
    };
    let d = head.take().unwrap_or_else(|| Dense::identity(width));
    mlp.push(d.close(hidden));
    *act = OutputAct::Identity;
    Ok(())
}

impl Eval<'_> {
    /// The width of the sequence's last (feature) axis.
    pub(super) fn width(&self, s: &Seq, what: &str) -> Result<usize> {
        match s.axes.last().map(|&a| self.ax(a)) {
            Some(Ax::Feat(w)) => Ok(w),
            other => bail!("{what} on a {other:?} axis (not the features)"),
        }
    }

    /// Applies the dense map `[out, inp]` to the sequence: in the pre-net, in the head, or
    /// composed with the open dense map before it.
    pub(super) fn dense_on(
        &self,
        s: Seq,
        w: Vec<f64>,
        out: usize,
        inp: usize,
        b: Vec<f64>,
    ) -> Result<Seq> {
        let mut s = s;
        if s.parts.len() != 1 {
            bail!("a dense layer on stacked layer states");
        }
        let last = s.axes.len() - 1;
        match self.ax(s.axes[last]) {
            Ax::Feat(wd) if wd == inp => {}
            other => bail!("a dense layer of input width {inp} on a {other:?} axis"),
        }
        let stage = match s.parts.pop() {
            Some(Stage::Input { a, b: nb }) => Stage::Pre {
                a,
                b: nb,
                ops: Vec::new(),
                dense: Some(Dense { out, inp, w, b }),
            },
            Some(Stage::Pre {
                a,
                b: nb,
                ops,
                mut dense,
            }) => {
                compose(&mut dense, w, out, inp, b);
                Stage::Pre {
                    a,
                    b: nb,
                    ops,
                    dense,
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
                settle(&mut mlp, &mut head, &mut act, inp)?;
                compose(&mut head, w, out, inp, b);
                Stage::Rec {
                    layer,
                    cell,
                    pool,
                    mlp,
                    head,
                    act,
                }
            }
            Some(Stage::Dir { layer, .. }) => {
                return Err(Stage::one_direction(layer, "a dense layer"))
            }
            None => bail!("a dense layer on an empty value"),
        };
        s.parts.push(stage);
        s.axes[last] = Ax::Feat(out);
        Ok(s)
    }

    pub(super) fn matmul(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let a = self.input(n, 0)?;
        let b = self.input(n, 1)?;
        match (a, b) {
            (Val::Seq(s), Val::Const(w)) => {
                if w.dims.len() != 2 {
                    bail!("MatMul with a weight of shape {:?} (expected 2-D)", w.dims);
                }
                let (inp, out) = (w.dims[0], w.dims[1]);
                let wt = w.transpose(&[1, 0])?.data;
                Ok(vec![Val::Seq(self.dense_on(
                    s,
                    wt,
                    out,
                    inp,
                    vec![0.0; out],
                )?)])
            }
            (Val::Const(x), Val::Const(y)) if x.dims.len() == 2 && y.dims.len() == 2 => {
                let (m, k, n2) = (x.dims[0], x.dims[1], y.dims[1]);
                if y.dims[0] != k {
                    bail!("MatMul of {:?} and {:?}", x.dims, y.dims);
                }
                let mut d = vec![0.0; m * n2];
                for i in 0..m {
                    for j in 0..n2 {
                        d[i * n2 + j] =
                            (0..k).map(|t| x.data[i * k + t] * y.data[t * n2 + j]).sum();
                    }
                }
                Ok(vec![Val::Const(Tensor::new(vec![m, n2], d, false))])
            }
            _ => bail!("MatMul: only (data, constant weight) is supported"),
        }
    }

    pub(super) fn gemm(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let a = self.input(n, 0)?;
        if attr_i(n, "transA").unwrap_or(0) != 0 {
            bail!("Gemm with transA=1 is not supported");
        }
        let s = match a {
            Val::Seq(s) => s,
            _ => bail!("Gemm: only (data, constant weight) is supported"),
        };
        let w = self.konst(n, 1, "Gemm B")?;
        if w.dims.len() != 2 {
            bail!("Gemm with B of shape {:?}", w.dims);
        }
        let alpha = attr_f(n, "alpha").unwrap_or(1.0) as f64;
        let beta = attr_f(n, "beta").unwrap_or(1.0) as f64;
        let w = if attr_i(n, "transB").unwrap_or(0) != 0 {
            w
        } else {
            w.transpose(&[1, 0])?
        };
        let (out, inp) = (w.dims[0], w.dims[1]);
        let wd: Vec<f64> = w.data.iter().map(|v| v * alpha).collect();
        let b = match self.input(n, 2)? {
            Val::Absent => vec![0.0; out],
            _ => {
                let c = self.konst(n, 2, "Gemm C")?;
                let v = c.expand_to(&[out])?.data;
                v.iter().map(|x| x * beta).collect()
            }
        };
        Ok(vec![Val::Seq(self.dense_on(s, wd, out, inp, b)?)])
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, float, int, konst, node, state};
    use super::*;
    use crate::import::ImportOptions;

    fn head(v: &Val) -> (&Dense, &[Ax]) {
        match v {
            Val::Seq(s) => match &s.parts[..] {
                [Stage::Rec { head: Some(d), .. }] => (d, &s.axes),
                other => panic!("no head: {other:?}"),
            },
            other => panic!("not the sequence: {other:?}"),
        }
    }

    /// `Gemm(h, B, C)` = `alpha·h·Bᵀ + beta·C` with `transB=1`: the head is `alpha·B`,
    /// `beta·C`.
    #[test]
    fn gemm_alpha_beta_trans_b() {
        let opts = ImportOptions::default();
        let mut ev = eval(
            &opts,
            vec![
                ("h", state(2)),
                ("B", konst(&[2, 2], &[1.0, 2.0, 3.0, 4.0])),
                ("C", konst(&[2], &[1.0, 1.0])),
            ],
        );
        let n = node(
            "Gemm",
            &["h", "B", "C"],
            vec![int("transB", 1), float("alpha", 2.0), float("beta", 0.5)],
        );
        let out = ev.gemm(&n).unwrap();
        let (d, axes) = head(&out[0]);
        assert_eq!((d.out, d.inp), (2, 2));
        assert_eq!(d.w, [2.0, 4.0, 6.0, 8.0]);
        assert_eq!(d.b, [0.5, 0.5]);
        assert_eq!(axes, [Ax::Batch, Ax::Feat(2)]);
        ev.vals.insert("h".into(), konst(&[2], &[0.0, 0.0]));
        assert_eq!(
            format!("{:#}", ev.gemm(&n).unwrap_err()),
            "Gemm: only (data, constant weight) is supported"
        );
        let t = node("Gemm", &["h", "B"], vec![int("transA", 1)]);
        assert_eq!(
            format!("{:#}", ev.gemm(&t).unwrap_err()),
            "Gemm with transA=1 is not supported"
        );
    }

    /// `(h·B1 + c)·B2 + C2` becomes one dense map: `W = B2ᵀ·B1ᵀ`, `b = B2ᵀ·c + C2`.
    #[test]
    fn matmul_add_gemm_compose() {
        let opts = ImportOptions::default();
        let mut ev = eval(
            &opts,
            vec![
                ("h", state(2)),
                ("B1", konst(&[2, 2], &[1.0, 2.0, 3.0, 4.0])),
                ("c", konst(&[2], &[1.0, -1.0])),
                ("B2", konst(&[2, 1], &[1.0, 1.0])),
                ("C2", konst(&[1], &[0.5])),
            ],
        );
        let y1 = ev.matmul(&node("MatMul", &["h", "B1"], vec![])).unwrap();
        assert_eq!(head(&y1[0]).0.w, [1.0, 3.0, 2.0, 4.0]);
        ev.vals.insert("y1".into(), y1[0].clone());
        let y2 = ev.arith(&node("Add", &["y1", "c"], vec![]), "Add").unwrap();
        assert_eq!(head(&y2[0]).0.b, [1.0, -1.0]);
        ev.vals.insert("y2".into(), y2[0].clone());
        let y3 = ev.gemm(&node("Gemm", &["y2", "B2", "C2"], vec![])).unwrap();
        let (d, axes) = head(&y3[0]);
        assert_eq!((d.out, d.inp), (1, 2));
        assert_eq!(d.w, [3.0, 7.0]);
        assert_eq!(d.b, [0.5]);
        assert_eq!(axes, [Ax::Batch, Ax::Feat(1)]);
    }

    /// A dense map on the input starts the pre-net; an activation closes it.
    #[test]
    fn dense_on_the_input_is_the_pre_net() {
        let opts = ImportOptions::default();
        let x = Val::Seq(Seq {
            axes: vec![Ax::Free(0), Ax::Free(1), Ax::Feat(2)],
            parts: vec![Stage::Input {
                a: vec![1.0; 2],
                b: vec![0.0; 2],
            }],
            last: false,
            rev: false,
        });
        let mut ev = eval(
            &opts,
            vec![
                ("x", x),
                ("B", konst(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
            ],
        );
        let y = ev.matmul(&node("MatMul", &["x", "B"], vec![])).unwrap();
        let s = match &y[0] {
            Val::Seq(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        match &s.parts[..] {
            [Stage::Pre {
                ops,
                dense: Some(d),
                ..
            }] => {
                assert!(ops.is_empty());
                assert_eq!((d.out, d.inp), (3, 2));
                assert_eq!(d.w, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.axes[2], Ax::Feat(3));
        let r = ev.dense_act_on(s, DenseAct::Relu).unwrap();
        match &r.parts[..] {
            [Stage::Pre {
                ops, dense: None, ..
            }] => match &ops[..] {
                [FrameOp::Dense(d)] => assert_eq!(d.act, DenseAct::Relu),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        ev.vals.insert("h".into(), state(3));
        assert_eq!(
            format!(
                "{:#}",
                ev.matmul(&node("MatMul", &["h", "B"], vec![])).unwrap_err()
            ),
            "a dense layer of input width 2 on a Feat(3) axis"
        );
    }
}

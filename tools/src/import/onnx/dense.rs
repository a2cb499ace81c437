//! Dense layers: `MatMul` and `Gemm` with a constant weight, applied to a recurrent
//! layer's state (consecutive dense maps are composed into one).

use anyhow::{bail, Result};
use tinyrnn::OutputAct;

use super::super::onnx_tensor::Tensor;
use super::super::proto::NodeProto;
use super::value::{Ax, Dense, Seq, Stage, Val};
use super::{attr_f, attr_i, Eval};

impl Eval<'_> {
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
            Some(Stage::Rec {
                layer,
                cell,
                head,
                act: OutputAct::Identity,
            }) => {
                let head = match head {
                    None => Dense { out, inp, w, b },
                    Some(d) => {
                        // Two dense maps with nothing in between: compose them.
                        let mut cw = vec![0.0; out * d.inp];
                        let mut cb = b.clone();
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
                };
                Stage::Rec {
                    layer,
                    cell,
                    head: Some(head),
                    act: OutputAct::Identity,
                }
            }
            Some(Stage::Input { .. }) => bail!(
                "a dense layer (MatMul/Gemm) before the first recurrent layer is not supported"
            ),
            _ => bail!("a dense layer after an output activation is not supported"),
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

//! Exporter glue folded away: `Constant`, `Identity`/`Dropout`, `Cast`/`CastLike`, the
//! element-wise `Neg`/`Sqrt`/`Reciprocal` of constants, and `Add`/`Sub`/`Mul`/`Div` on
//! constants and shape vectors, or per-feature on the sequence, where they fold into the
//! input normalization or into the dense head.

use anyhow::{anyhow, bail, Result};
use tinyrnn::OutputAct;

use super::super::onnx_tensor::Tensor;
use super::super::proto::{self, NodeProto};
use super::value::{make_sym, to_sym, Ax, Dense, Dim, Seq, Stage, Val};
use super::{attr, attr_i, attr_ints, Eval};

impl Eval<'_> {
    pub(super) fn constant(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let one = |v: Val| Ok(vec![v]);
        if let Some(a) = attr(n, "value") {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| anyhow!("Constant without a tensor"))?;
            return one(Val::Const(Tensor::from_proto_in(t, Some(&self.ext))?));
        }
        if let Some(v) = attr_ints(n, "value_ints") {
            return one(Val::Const(Tensor::ints(&v)));
        }
        if let Some(a) = attr(n, "value_int") {
            return one(Val::Const(Tensor::new(vec![], vec![a.i as f64], true)));
        }
        if let Some(a) = attr(n, "value_float") {
            return one(Val::Const(Tensor::new(vec![], vec![a.f as f64], false)));
        }
        if let Some(a) = attr(n, "value_floats") {
            let d: Vec<f64> = a.floats.iter().map(|&v| v as f64).collect();
            return one(Val::Const(Tensor::new(vec![d.len()], d, false)));
        }
        bail!("unsupported Constant (no value / value_int(s) / value_float(s))")
    }

    /// `Identity`, and `Dropout` (inference: the identity).
    pub(super) fn identity(&self, n: &NodeProto) -> Result<Vec<Val>> {
        Ok(vec![self.input(n, 0)?])
    }

    pub(super) fn cast(&self, n: &NodeProto) -> Result<Vec<Val>> {
        let v = self.input(n, 0)?;
        let to_int = match attr_i(n, "to") {
            Some(t) => !matches!(
                t as i32,
                proto::dtype::FLOAT
                    | proto::dtype::DOUBLE
                    | proto::dtype::FLOAT16
                    | proto::dtype::BFLOAT16
            ),
            None => false,
        };
        Ok(vec![match v {
            Val::Const(mut t) => {
                if to_int {
                    t.data.iter_mut().for_each(|x| *x = x.trunc());
                }
                t.int = to_int;
                Val::Const(t)
            }
            other => other,
        }])
    }

    pub(super) fn neg(&self, n: &NodeProto) -> Result<Vec<Val>> {
        match self.input(n, 0)? {
            Val::Const(t) => Ok(vec![Val::Const(Tensor {
                data: t.data.iter().map(|v| -v).collect(),
                ..t
            })]),
            _ => bail!("Neg of a non-constant is not supported"),
        }
    }

    /// `Sqrt` and `Reciprocal` of a constant.
    pub(super) fn unary(&self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        match self.input(n, 0)? {
            Val::Const(t) => {
                let f: fn(f64) -> f64 = if op == "Sqrt" { f64::sqrt } else { f64::recip };
                Ok(vec![Val::Const(Tensor {
                    data: t.data.iter().map(|&v| f(v)).collect(),
                    int: false,
                    ..t
                })])
            }
            _ => bail!("{op} of a non-constant is not supported"),
        }
    }

    pub(super) fn arith(&self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        let a = self.input(n, 0)?;
        let b = self.input(n, 1)?;
        let f: fn(f64, f64) -> f64 = match op {
            "Add" => |x, y| x + y,
            "Sub" => |x, y| x - y,
            "Mul" => |x, y| x * y,
            _ => |x, y| x / y,
        };
        match (a, b) {
            (Val::Const(x), Val::Const(y)) => {
                let mut t = x.binop(&y, f)?;
                if op == "Div" && t.int {
                    t.data.iter_mut().for_each(|v| *v = v.trunc());
                }
                Ok(vec![Val::Const(t)])
            }
            (Val::Seq(s), Val::Const(c)) => Ok(vec![Val::Seq(self.seq_arith(s, &c, op, false)?)]),
            (Val::Const(c), Val::Seq(s)) => Ok(vec![Val::Seq(self.seq_arith(s, &c, op, true)?)]),
            (Val::Seq(x), Val::Seq(y)) => match (&x.parts[..], &y.parts[..]) {
                ([Stage::Dir { layer, .. }], [Stage::Dir { layer: l2, .. }]) if layer == l2 => bail!(
                    "{op} of the two directions of bidirectional recurrent layer {layer} (Keras Bidirectional merge_mode \"sum\", \"mul\" or \"ave\") is not supported: only the two concatenated, [forward; backward] (merge_mode \"concat\")"
                ),
                _ => bail!(
                    "{op} of two data-dependent tensors (residual connections etc. are not supported)"
                ),
            },
            (x @ (Val::Sym { .. } | Val::Const(_)), y @ (Val::Sym { .. } | Val::Const(_))) => {
                let (xv, xs) = to_sym(&x)?;
                let (yv, ys) = to_sym(&y)?;
                let len = xv.len().max(yv.len());
                if (xv.len() != len && xv.len() != 1) || (yv.len() != len && yv.len() != 1) {
                    bail!(
                        "{op} of shape vectors of lengths {} and {}",
                        xv.len(),
                        yv.len()
                    );
                }
                let mut out = Vec::with_capacity(len);
                for k in 0..len {
                    let p = xv[if xv.len() == 1 { 0 } else { k }];
                    let q = yv[if yv.len() == 1 { 0 } else { k }];
                    out.push(match (p, q) {
                        (Dim::K(u), Dim::K(v)) => Dim::K(f(u as f64, v as f64).trunc() as i64),
                        (d, Dim::K(1)) if op == "Mul" || op == "Div" => d,
                        (Dim::K(1), d) if op == "Mul" => d,
                        (d, Dim::K(0)) if op == "Add" || op == "Sub" => d,
                        (Dim::K(0), d) if op == "Add" => d,
                        _ => bail!("{op} of the symbolic sizes {p:?} and {q:?}"),
                    });
                }
                Ok(vec![make_sym(out, xs && ys)])
            }
            (Val::Zeros(d), Val::Const(_)) | (Val::Const(_), Val::Zeros(d)) if op == "Mul" => {
                Ok(vec![Val::Zeros(d)])
            }
            _ => bail!("{op} of these operands is not supported"),
        }
    }

    /// `seq op c` (or `c op seq` if `rev`).
    pub(super) fn seq_arith(&self, mut s: Seq, c: &Tensor, op: &str, rev: bool) -> Result<Seq> {
        if s.parts.len() != 1 {
            bail!("{op} on stacked layer states");
        }
        let last = *s
            .axes
            .last()
            .ok_or_else(|| anyhow!("{op} on a rank-0 value"))?;
        let width = match self.ax(last) {
            Ax::Feat(w) => w,
            other => bail!("{op} on the data sequence whose last axis is {other:?} (not features)"),
        };
        if c.is_empty() {
            bail!("{op} with an empty constant");
        }
        // The constant must vary along the feature axis only.
        if c.dims.len() > s.axes.len()
            || c.dims[..c.dims.len().saturating_sub(1)]
                .iter()
                .any(|&d| d != 1)
        {
            bail!(
                "{op} with a constant of shape {:?}: only per-feature constants are supported",
                c.dims
            );
        }
        let cv: Vec<f64> = match c.dims.last() {
            None | Some(1) => vec![c.data[0]; width],
            Some(&w) if w == width => c.data.clone(),
            Some(&w) => bail!("{op} with {w} values on {width} features"),
        };
        let stage = s.parts.pop().unwrap_or(Stage::Input {
            a: vec![],
            b: vec![],
        });
        let stage = match stage {
            Stage::Input { mut a, mut b } => {
                for j in 0..width {
                    let k = cv[j];
                    match (op, rev) {
                        ("Add", _) => b[j] += k,
                        ("Sub", false) => b[j] -= k,
                        ("Sub", true) => {
                            a[j] = -a[j];
                            b[j] = k - b[j];
                        }
                        ("Mul", _) => {
                            a[j] *= k;
                            b[j] *= k;
                        }
                        ("Div", false) => {
                            a[j] /= k;
                            b[j] /= k;
                        }
                        _ => bail!("dividing a constant by the input is not supported"),
                    }
                }
                Stage::Input { a, b }
            }
            Stage::Pre {
                a,
                b,
                ops,
                dense: Some(mut d),
            } => {
                fold_rows(&mut d, &cv, op, rev)?;
                Stage::Pre {
                    a,
                    b,
                    ops,
                    dense: Some(d),
                }
            }
            Stage::Pre { .. } => bail!(
                "{op} on the pre-net's output after an activation or LayerNorm is not supported"
            ),
            Stage::Rec {
                layer,
                cell,
                pool,
                mlp,
                head: Some(mut d),
                act: OutputAct::Identity,
            } => {
                fold_rows(&mut d, &cv, op, rev)?;
                Stage::Rec {
                    layer,
                    cell,
                    pool,
                    mlp,
                    head: Some(d),
                    act: OutputAct::Identity,
                }
            }
            Stage::Rec { .. } => {
                bail!("{op} on a recurrent layer's state (or after an activation) is not supported")
            }
            Stage::Dir { layer, .. } => return Err(Stage::one_direction(layer, op)),
        };
        s.parts.push(stage);
        Ok(s)
    }
}

/// `dense op c` per output row: folds an `Add`/`Sub`/`Mul`/`Div` by a per-feature constant
/// into the dense map's weights and bias.
fn fold_rows(d: &mut Dense, cv: &[f64], op: &str, rev: bool) -> Result<()> {
    for (r, &k) in cv.iter().enumerate() {
        match (op, rev) {
            ("Add", _) => d.b[r] += k,
            ("Sub", false) => d.b[r] -= k,
            ("Mul", _) | ("Div", false) => {
                let m = if op == "Mul" { k } else { 1.0 / k };
                d.b[r] *= m;
                for w in &mut d.w[r * d.inp..(r + 1) * d.inp] {
                    *w *= m;
                }
            }
            _ => bail!("{op} with the dense layer's output as the second operand is not supported"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, int, konst, node};
    use super::*;
    use crate::import::ImportOptions;

    fn input(width: usize) -> Val {
        Val::Seq(Seq {
            axes: vec![Ax::Free(0), Ax::Free(1), Ax::Feat(width)],
            parts: vec![Stage::Input {
                a: vec![1.0; width],
                b: vec![0.0; width],
            }],
            last: false,
            rev: false,
        })
    }

    /// `(x - mean) / std` folds into `x·a + b` with `a = 1/std`, `b = -mean/std`.
    #[test]
    fn normalization_folds_into_the_input() {
        let opts = ImportOptions::default();
        let mut ev = eval(
            &opts,
            vec![
                ("x", input(2)),
                ("mean", konst(&[2], &[1.0, 2.0])),
                ("std", konst(&[1, 1, 2], &[2.0, 4.0])),
            ],
        );
        let c = ev
            .arith(&node("Sub", &["x", "mean"], vec![]), "Sub")
            .unwrap();
        ev.vals.insert("c".into(), c[0].clone());
        let y = ev
            .arith(&node("Div", &["c", "std"], vec![]), "Div")
            .unwrap();
        match &y[0] {
            Val::Seq(s) => assert_eq!(
                s.parts,
                [Stage::Input {
                    a: vec![0.5, 0.25],
                    b: vec![-0.5, -0.5]
                }]
            ),
            other => panic!("{other:?}"),
        }
        // `mean - x` negates the scale.
        let r = ev
            .arith(&node("Sub", &["mean", "x"], vec![]), "Sub")
            .unwrap();
        match &r[0] {
            Val::Seq(s) => assert_eq!(
                s.parts,
                [Stage::Input {
                    a: vec![-1.0, -1.0],
                    b: vec![1.0, 2.0]
                }]
            ),
            other => panic!("{other:?}"),
        }
        ev.vals.insert("w3".into(), konst(&[3], &[1.0, 2.0, 3.0]));
        assert_eq!(
            format!(
                "{:#}",
                ev.arith(&node("Mul", &["x", "w3"], vec![]), "Mul")
                    .unwrap_err()
            ),
            "Mul with 3 values on 2 features"
        );
        assert_eq!(
            format!(
                "{:#}",
                ev.arith(&node("Add", &["x", "x"], vec![]), "Add")
                    .unwrap_err()
            ),
            "Add of two data-dependent tensors (residual connections etc. are not supported)"
        );
    }

    #[test]
    fn constants_and_shapes() {
        let opts = ImportOptions::default();
        let ev = eval(
            &opts,
            vec![
                ("f", konst(&[2], &[1.7, -1.7])),
                ("four", konst(&[1], &[4.0])),
                (
                    "shape",
                    Val::Sym {
                        v: vec![Dim::Batch, Dim::K(3)],
                        scalar: false,
                    },
                ),
                ("one", Val::Const(Tensor::ints(&[0, 1]))),
            ],
        );
        // Cast to INT64 (7) truncates toward zero.
        let i = ev.cast(&node("Cast", &["f"], vec![int("to", 7)])).unwrap();
        assert_eq!(i, [Val::Const(Tensor::new(vec![2], vec![1.0, -1.0], true))]);
        let s = ev.unary(&node("Sqrt", &["four"], vec![]), "Sqrt").unwrap();
        assert_eq!(s, [konst(&[1], &[2.0])]);
        let r = ev
            .unary(&node("Reciprocal", &["four"], vec![]), "Reciprocal")
            .unwrap();
        assert_eq!(r, [konst(&[1], &[0.25])]);
        assert_eq!(
            ev.neg(&node("Neg", &["f"], vec![])).unwrap(),
            [konst(&[2], &[-1.7, 1.7])]
        );
        // A symbolic shape plus a constant keeps the symbolic batch size.
        let sum = ev
            .arith(&node("Add", &["shape", "one"], vec![]), "Add")
            .unwrap();
        assert_eq!(
            sum,
            [Val::Sym {
                v: vec![Dim::Batch, Dim::K(4)],
                scalar: false
            }]
        );
        assert_eq!(
            format!(
                "{:#}",
                ev.arith(&node("Mul", &["shape", "four"], vec![]), "Mul")
                    .unwrap_err()
            ),
            "Mul of the symbolic sizes Batch and K(4)"
        );
    }
}

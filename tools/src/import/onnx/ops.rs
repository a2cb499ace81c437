//! The table of every ONNX op the importer evaluates, with its family (the file that
//! implements it). Adding an op is one row here and one function in its family's file;
//! the dispatch, the unrolled-export check and the "unsupported op" message all read
//! this table.

use anyhow::{bail, Result};

use super::super::proto::NodeProto;
use super::value::Val;
use super::Eval;

/// Which file implements an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// `recurrent.rs`: one recurrent layer per node.
    Recurrent,
    /// `dense.rs`: a dense map on a layer's state.
    Dense,
    /// `activation.rs`: output and dense activations.
    Activation,
    /// `activation.rs`: LayerNorm, and BatchNorm folded into the dense layer before it.
    Norm,
    /// `pool.rs`: reductions over time.
    Pool,
    /// `shape.rs`: reshaping glue, constant/symbolic shapes, picking the last step.
    Shape,
    /// `fold.rs`: constants, casts and arithmetic folded into constants, the input
    /// normalization or the head.
    Fold,
    /// Known but refused with a specific hint (not listed as supported).
    Refused,
}

impl Family {
    /// Name used in the "unsupported op" message.
    fn label(self) -> &'static str {
        match self {
            Family::Recurrent => "recurrent",
            Family::Dense => "dense",
            Family::Activation => "activation",
            Family::Norm => "norm",
            Family::Pool => "pooling over time",
            Family::Shape => "shape glue",
            Family::Fold => "constant glue",
            Family::Refused => "refused",
        }
    }

    /// Every family, in the order the "unsupported op" message lists them.
    const ALL: [Family; 8] = [
        Family::Recurrent,
        Family::Dense,
        Family::Activation,
        Family::Norm,
        Family::Pool,
        Family::Shape,
        Family::Fold,
        Family::Refused,
    ];
}

/// Evaluates one node of an op (its inputs are read from the evaluator).
pub(super) type OpFn = fn(&mut Eval<'_>, &NodeProto) -> Result<Vec<Val>>;

/// One row of [`OPS`].
pub(super) struct Op {
    /// The ONNX `op_type` (default domain).
    pub(super) name: &'static str,
    pub(super) family: Family,
    pub(super) eval: OpFn,
}

const fn op(name: &'static str, family: Family, eval: OpFn) -> Op {
    Op { name, family, eval }
}

const UNROLLED: &str = "this looks like a scripted/unrolled export; re-export with torch.onnx.export(..., dynamo=False)";

/// Every op the importer knows.
pub(super) const OPS: &[Op] = &[
    op("LSTM", Family::Recurrent, |e, n| e.recurrent(n, "LSTM")),
    op("GRU", Family::Recurrent, |e, n| e.recurrent(n, "GRU")),
    op("RNN", Family::Recurrent, |e, n| e.recurrent(n, "RNN")),
    op("Gemm", Family::Dense, |e, n| e.gemm(n)),
    op("MatMul", Family::Dense, |e, n| e.matmul(n)),
    op("Softmax", Family::Activation, |e, n| {
        e.activation(n, "Softmax")
    }),
    op("Sigmoid", Family::Activation, |e, n| {
        e.activation(n, "Sigmoid")
    }),
    op("Tanh", Family::Activation, |e, n| e.activation(n, "Tanh")),
    op("Relu", Family::Activation, |e, n| {
        e.dense_activation(n, "Relu")
    }),
    op("LeakyRelu", Family::Activation, |e, n| {
        e.dense_activation(n, "LeakyRelu")
    }),
    op("Clip", Family::Activation, |e, n| {
        e.dense_activation(n, "Clip")
    }),
    op("Gelu", Family::Activation, |e, n| {
        e.dense_activation(n, "Gelu")
    }),
    op("LayerNormalization", Family::Norm, |e, n| e.layer_norm(n)),
    op("BatchNormalization", Family::Norm, |e, n| e.batch_norm(n)),
    op("ReduceMean", Family::Pool, |e, n| e.reduce(n, "ReduceMean")),
    op("ReduceMax", Family::Pool, |e, n| e.reduce(n, "ReduceMax")),
    op("ReduceSum", Family::Pool, |e, n| e.reduce(n, "ReduceSum")),
    op("Shape", Family::Shape, |e, n| e.shape(n)),
    op("ConstantOfShape", Family::Shape, |e, n| {
        e.constant_of_shape(n)
    }),
    op("Expand", Family::Shape, |e, n| e.expand(n)),
    op("Gather", Family::Shape, |e, n| e.gather(n)),
    op("Unsqueeze", Family::Shape, |e, n| e.unsqueeze(n)),
    op("Squeeze", Family::Shape, |e, n| e.squeeze(n)),
    op("Slice", Family::Shape, |e, n| e.slice(n)),
    op("Concat", Family::Shape, |e, n| e.concat(n)),
    op("Transpose", Family::Shape, |e, n| e.transpose(n)),
    op("ReverseSequence", Family::Shape, |e, n| {
        e.reverse_sequence(n)
    }),
    op("Reshape", Family::Shape, |e, n| e.reshape(n)),
    op("Flatten", Family::Shape, |e, n| e.flatten(n)),
    op("Constant", Family::Fold, |e, n| e.constant(n)),
    op("Identity", Family::Fold, |e, n| e.identity(n)),
    op("Dropout", Family::Fold, |e, n| e.identity(n)),
    op("Cast", Family::Fold, |e, n| e.cast(n)),
    op("CastLike", Family::Fold, |e, n| e.cast(n)),
    op("Add", Family::Fold, |e, n| e.arith(n, "Add")),
    op("Sub", Family::Fold, |e, n| e.arith(n, "Sub")),
    op("Mul", Family::Fold, |e, n| e.arith(n, "Mul")),
    op("Div", Family::Fold, |e, n| e.arith(n, "Div")),
    op("Neg", Family::Fold, |e, n| e.neg(n)),
    op("Sqrt", Family::Fold, |e, n| e.unary(n, "Sqrt")),
    op("Reciprocal", Family::Fold, |e, n| e.unary(n, "Reciprocal")),
    op("Size", Family::Refused, |_, _| {
        bail!("unsupported op `Size`")
    }),
    op("Less", Family::Fold, |e, n| e.loop_cond(n)),
    op("And", Family::Fold, |e, n| e.loop_cond(n)),
    op("Loop", Family::Refused, |e, n| e.keras_loop(n)),
    op("Scan", Family::Refused, |_, _| {
        bail!("unsupported op `Scan`: {UNROLLED}")
    }),
];

/// The row of `op_type`, if the importer knows it.
pub(super) fn lookup(op_type: &str) -> Option<&'static Op> {
    OPS.iter().find(|o| o.name == op_type)
}

/// Whether `op_type` is a recurrent node (one the importer turns into a layer).
pub(super) fn is_recurrent(op_type: &str) -> bool {
    lookup(op_type).is_some_and(|o| o.family == Family::Recurrent)
}

/// The one-line error for an op not in [`OPS`]: names it and lists the supported ops by
/// family.
pub(super) fn unsupported(op_type: &str) -> String {
    let families: Vec<String> = Family::ALL
        .iter()
        .filter(|&&f| f != Family::Refused)
        .map(|&f| {
            let names: Vec<&str> = OPS
                .iter()
                .filter(|o| o.family == f)
                .map(|o| o.name)
                .collect();
            format!("{}: {}", f.label(), names.join(" "))
        })
        .collect();
    format!(
        "unsupported ONNX op `{op_type}` (supported: {})",
        families.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_is_listed_once_and_found() {
        for (k, o) in OPS.iter().enumerate() {
            assert!(
                OPS[k + 1..].iter().all(|p| p.name != o.name),
                "{} is listed twice",
                o.name
            );
            assert_eq!(lookup(o.name).map(|r| r.name), Some(o.name));
        }
        assert!(lookup("Selu").is_none());
        assert!(lookup("lstm").is_none(), "op types are case-sensitive");
    }

    #[test]
    fn every_family_has_ops() {
        for f in Family::ALL {
            assert!(OPS.iter().any(|o| o.family == f), "{f:?} has no op");
        }
    }

    #[test]
    fn recurrent_ops() {
        let rec: Vec<&str> = OPS
            .iter()
            .filter(|o| is_recurrent(o.name))
            .map(|o| o.name)
            .collect();
        assert_eq!(rec, ["LSTM", "GRU", "RNN"]);
        assert!(!is_recurrent("Loop"));
    }

    #[test]
    fn unsupported_message_lists_the_table() {
        let m = unsupported("Selu");
        assert!(m.starts_with("unsupported ONNX op `Selu` (supported: recurrent: LSTM GRU RNN; dense: Gemm MatMul; activation: Softmax Sigmoid Tanh Relu LeakyRelu Clip Gelu; norm: LayerNormalization BatchNormalization; pooling over time: ReduceMean ReduceMax ReduceSum; shape glue: Shape "), "{m}");
        for o in OPS {
            assert_eq!(
                m.contains(&format!(" {}", o.name)),
                o.family != Family::Refused,
                "{}",
                o.name
            );
        }
        assert!(!m.contains('\n'));
    }
}

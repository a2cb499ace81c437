//! Builders for the op-family unit tests: nodes, attributes and an evaluator holding
//! named values.

use std::path::Path;

use super::super::onnx_tensor::{ExternalData, Tensor};
use super::super::proto::{attr_type, AttributeProto, NodeProto};
use super::super::ImportOptions;
use super::value::{Ax, Seq, Stage, Val};
use super::Eval;

/// A default-domain node `op(inputs) -> out` with these attributes.
pub(super) fn node(op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec!["out".into()],
        op_type: op.into(),
        attribute: attrs,
        ..Default::default()
    }
}

fn named(name: &str, ty: i32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ty,
        ..Default::default()
    }
}

pub(super) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..named(name, attr_type::INT)
    }
}

pub(super) fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: v,
        ..named(name, attr_type::FLOAT)
    }
}

pub(super) fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..named(name, attr_type::INTS)
    }
}

pub(super) fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: v.as_bytes().to_vec(),
        ..named(name, attr_type::STRING)
    }
}

pub(super) fn strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..named(name, attr_type::STRINGS)
    }
}

/// A float constant of these dims.
pub(super) fn konst(dims: &[usize], data: &[f64]) -> Val {
    Val::Const(Tensor::new(dims.to_vec(), data.to_vec(), false))
}

/// Recurrent layer 0's hidden state at the last step, `[batch, width]`, through no head.
pub(super) fn state(width: usize) -> Val {
    Val::Seq(Seq {
        axes: vec![Ax::Batch, Ax::Feat(width)],
        parts: vec![Stage::hidden(0, false)],
        last: true,
        rev: false,
    })
}

/// An evaluator for a model file `test.onnx` holding the named values.
pub(super) fn eval<'o>(opts: &'o ImportOptions, vals: Vec<(&str, Val)>) -> Eval<'o> {
    let mut ev = Eval::new(opts, ExternalData::beside(Path::new("test.onnx")));
    for (k, v) in vals {
        ev.vals.insert(k.into(), v);
    }
    ev
}

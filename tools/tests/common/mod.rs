//! Helpers shared by the CLI's integration tests: fixture paths, comparing arrays, and
//! building or mutating ONNX graphs with the importer's own protobuf structs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tinyrnn_cli::data;
use tinyrnn_cli::import::proto::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TypeProto, TypeProtoTensor, ValueInfoProto,
};

/// `tests/data/` at the repository root.
/// Runs the built `tinyrnn` binary: (exit status, stdout, stderr).
pub fn cli(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tinyrnn"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("data")
}

/// `tests/data/golden/<case>/<file>`.
pub fn golden(case: &str, file: &str) -> PathBuf {
    data_dir().join("golden").join(case).join(file)
}

/// The golden cases listed in `index.json` (plus the dynamo-exported one).
pub fn golden_cases() -> Vec<String> {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir().join("golden/index.json")).unwrap())
            .unwrap();
    let mut v: Vec<String> = idx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    for c in idx["unsupported"].as_array().into_iter().flatten() {
        v.push(c.as_str().unwrap().to_string());
    }
    v
}

/// `meta.json` of a golden case.
pub fn meta(case: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(golden(case, "meta.json")).unwrap()).unwrap()
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Max |a − b| of two equally long slices.
pub fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

/// Reads a `.npy` as `f64` with its shape.
pub fn npy(path: &Path) -> data::Array {
    data::read_array(path).unwrap()
}

/// Writes `f32` `.npy`.
pub fn write_npy(path: &Path, shape: &[usize], v: &[f32]) {
    data::write_f32(path, shape, v, &[]).unwrap();
}

// ------------------------------------------------------------------ ONNX building

/// Decodes an ONNX file.
pub fn load_onnx(path: &Path) -> ModelProto {
    proto::decode_model(&std::fs::read(path).unwrap()).unwrap()
}

/// Encodes an ONNX model.
pub fn encode(m: &ModelProto) -> Vec<u8> {
    proto::encode_model(m)
}

/// An int attribute.
pub fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: proto::attr_type::INT,
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: proto::attr_type::FLOAT,
        ..Default::default()
    }
}

/// A string attribute.
pub fn attr_s(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: s.as_bytes().to_vec(),
        r#type: proto::attr_type::STRING,
        ..Default::default()
    }
}

/// An ints attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: proto::attr_type::INTS,
        ..Default::default()
    }
}

/// A node.
pub fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs.first().unwrap_or(&"")),
        op_type: op.into(),
        attribute: attrs,
        ..Default::default()
    }
}

/// A float32 initializer.
pub fn tensor_f32(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: proto::dtype::FLOAT,
        float_data: v.to_vec(),
        name: name.into(),
        ..Default::default()
    }
}

/// A float tensor value info with dims (`None` = symbolic).
pub fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: proto::dtype::FLOAT,
                shape: Some(proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| proto::Dimension {
                            dim_value: *d,
                            dim_param: if d.is_none() {
                                Some("dyn".into())
                            } else {
                                None
                            },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// A model around `nodes` with input `x` `[batch, time, f]` and output `y`.
pub fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, f: i64) -> ModelProto {
    ModelProto {
        ir_version: 8,
        graph: Some(GraphProto {
            node: nodes,
            name: "test".into(),
            initializer: inits,
            input: vec![value_info("x", &[None, None, Some(f)])],
            output: vec![value_info("y", &[None, None, None])],
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        ..Default::default()
    }
}

/// An "unrolled" graph with no recurrent node (what the dynamo exporter used to emit).
pub fn unrolled_onnx() -> Vec<u8> {
    let w = tensor_f32("w", &[5, 4], &[0.1; 20]);
    let m = model(
        vec![
            node("MatMul", &["x", "w"], &["a"], vec![]),
            node("Tanh", &["a"], &["b"], vec![]),
            node("Sigmoid", &["b"], &["y"], vec![]),
        ],
        vec![w],
        5,
    );
    encode(&m)
}

/// Finds the first node of `op` in a model.
pub fn find_node<'a>(m: &'a mut ModelProto, op: &str) -> &'a mut NodeProto {
    m.graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type == op)
        .unwrap_or_else(|| panic!("no {op} node"))
}

/// Deterministic uniform numbers in [-1, 1).
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

//! `tinyrnn inspect`: what a model file holds (ONNX, safetensors or a blob), and what it
//! costs on the MCU (flash for the weights, RAM for the state and scratch). For a blob it
//! also prints the tinyrnn cargo features a firmware needs to run it
//! ([`ModelDesc::required_features`](tinyrnn::model::ModelDesc::required_features)), e.g.
//! `features: lstm, int8`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tinyrnn::model::pad4;
use tinyrnn::{CellKind, Direction, Model, OutputAct};

use crate::exec::{self, Runnable};
use crate::import::ImportArgs;
use crate::ir::{FloatModel, FrameOp};

/// Arguments of `tinyrnn inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Model: ONNX, PyTorch safetensors or a tinyrnn blob.
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// For a signed blob: check its signature against this public key file (repeatable);
    /// without it the signature is shown as "not checked".
    #[arg(long, value_name = "P")]
    pub pubkey: Vec<std::path::PathBuf>,
    /// For a blob with a reverse or bidirectional layer: the window length in frames, to
    /// state the window buffer's RAM (`Model::window_words(N)`); without it the RAM is
    /// given per frame.
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// Name of an output activation.
pub fn act_name(a: OutputAct) -> &'static str {
    match a {
        OutputAct::Identity => "identity",
        OutputAct::Sigmoid => "sigmoid",
        OutputAct::Tanh => "tanh",
        OutputAct::Softmax => "softmax",
    }
}

fn state_words(layers: impl Iterator<Item = (CellKind, usize)>) -> usize {
    layers
        .map(|(c, h)| {
            if matches!(c, CellKind::Lstm { .. }) {
                2 * h
            } else {
                h
            }
        })
        .sum()
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()))
}

/// JSON description of a float model.
pub fn float_json(m: &FloatModel, source: &str) -> Value {
    let mut params = 0usize;
    let mut layers = Vec::new();
    let mut scratch = 0usize;
    for l in &m.layers {
        let count = |l: &crate::ir::FloatLayer| {
            l.w_ih.len()
                + l.w_hh.len()
                + l.b_ih.len()
                + l.b_hh.len()
                + l.peephole.as_ref().map_or(0, |p| p.len())
                + l.w_hr.as_ref().map_or(0, |w| w.len())
        };
        // Both directions of a bidirectional layer.
        let n = count(l) + l.backward.as_deref().map_or(0, count);
        params += n;
        let mut s = pad4(l.input_size) + pad4(l.hidden_size);
        if l.cell
            == (CellKind::Gru {
                linear_before_reset: false,
            })
        {
            s += pad4(l.hidden_size);
        }
        scratch = scratch.max(s);
        layers.push(json!({
            "cell": l.cell.name(),
            "direction": l.direction.name(),
            "input_size": l.input_size,
            "hidden_size": l.hidden_size,
            "params": n,
            "max_abs_weight": max_abs(&l.w_ih).max(max_abs(&l.w_hh)),
            "max_abs_bias": max_abs(&l.b_ih).max(max_abs(&l.b_hh)),
            "initial_h": l.h0.is_some(),
            "initial_c": l.c0.is_some(),
            "direction": l.direction.name(),
            "proj_size": l.w_hr.as_ref().map(|_| l.dir_out_size()),
            "output_size": l.out_size(),
        }));
    }
    let ops = |ops: &[FrameOp], params: &mut usize| -> Vec<Value> {
        ops.iter()
            .map(|op| {
                let (name, i, o, n) = match op {
                    FrameOp::Dense(d) => (
                        format!("dense({})", d.act.name()).replace("(identity)", ""),
                        d.in_size,
                        d.out_size,
                        d.weight.len() + d.bias.len(),
                    ),
                    FrameOp::LayerNorm(l) => (
                        "layer_norm".to_string(),
                        l.gamma.len(),
                        l.gamma.len(),
                        2 * l.gamma.len(),
                    ),
                };
                *params += n;
                json!({"op": name, "in_size": i, "out_size": o, "params": n,
                       "weight_bytes": n * 4})
            })
            .collect()
    };
    let pre = ops(&m.pre, &mut params);
    let mlp = ops(&m.mlp, &mut params);
    // as `Model::pool_words` counts them
    let w = m.pooled_size();
    // a windowed model pools over its window buffer; a bidirectional first windowed layer
    // adds its backward direction's words and a frame count (`Model::window_state_words`)
    let first_windowed = m.layers.iter().find(|l| l.direction != Direction::Forward);
    let window_words = first_windowed.map_or(0, |l| {
        if l.direction == Direction::Bidirectional {
            state_words([(l.cell, l.hidden_size)].into_iter()) + 1
        } else {
            0
        }
    });
    let pool_words = match m.pool {
        _ if first_windowed.is_some() => 0,
        tinyrnn::Pool::Last | tinyrnn::Pool::FinalStates => 0,
        tinyrnn::Pool::Max => w,
        tinyrnn::Pool::Sum => 2 * w,
        tinyrnn::Pool::Mean => 2 * w + 2,
    };
    let head = m.head.as_ref().map(|d| {
        params += d.weight.len() + d.bias.len();
        json!({"in_size": d.in_size, "out_size": d.out_size, "params": d.weight.len() + d.bias.len(),
               "max_abs_weight": max_abs(&d.weight)})
    });
    let state =
        state_words(m.layers.iter().map(|l| (l.cell, l.hidden_size))) + pool_words + window_words;
    json!({
        "file_kind": source,
        "precision": "float (imported)",
        "name": m.name,
        "input_size": m.input_size,
        "output_size": m.output_size(),
        "normalization": m.norm.is_some(),
        "pre": pre,
        "layers": layers,
        "pool": m.pool.name(),
        "pool_state_words": pool_words,
        "mlp": mlp,
        "head": head,
        "output_activation": act_name(m.output_act),
        "params": params,
        "flash_bytes_float32": params * 4,
        "state_words": state,
        "state_bytes": state * 4,
        "scratch_words_float32": scratch,
        "scratch_bytes_float32": scratch * 4,
    })
}

fn rq_range(table: &[u8]) -> Option<(f64, f64)> {
    let mut r: Option<(f64, f64)> = None;
    for rec in table.chunks_exact(5) {
        let mult = i32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) as f64;
        let s = mult / 2f64.powi(rec[4] as i32);
        r = Some(match r {
            None => (s, s),
            Some((a, b)) => (a.min(s), b.max(s)),
        });
    }
    r
}

/// JSON description of a blob; `window`: the window length (frames) to size the window
/// buffer of a windowed model for.
pub fn blob_json(m: &Model<'_>, blob_len: usize, window: Option<usize>) -> Value {
    let d = m.desc();
    let p = d.precision;
    let mut params = 0usize;
    let layers: Vec<Value> = d
        .layers
        .iter()
        .map(|l| {
            let (i, h) = (l.input_size as usize, l.hidden_size as usize);
            let g = l.cell.gates();
            // a projected LSTM: w_hh reads P values, plus W_hr [P, H]; per direction
            let hw = l.h_size();
            let n = (g * h * (i + hw)
                + 2 * g * h
                + if l.peephole.is_empty() { 0 } else { 3 * h }
                + if l.proj_size != 0 { hw * h } else { 0 })
                * l.direction.count();
            params += n;
            let weight_bytes = l.weight_bytes();
            let mut v = json!({
                "cell": l.cell.name(),
                "direction": l.direction.name(),
                "input_size": i,
                "hidden_size": h,
                "output_size": l.out_size(),
                "params": n,
                "weight_bytes": weight_bytes,
                "initial_h": !l.h0.is_empty(),
                "initial_c": !l.c0.is_empty(),
            });
            if l.proj_size != 0 {
                v["proj_size"] = json!(l.proj_size);
            }
            if let Ok(b) = <[u8; 4]>::try_from(l.cell_clip) {
                // int paths: Q16.15
                v["cell_clip"] = json!(if p.is_int() {
                    i32::from_le_bytes(b) as f64 / 32768.0
                } else {
                    f32::from_le_bytes(b) as f64
                });
            }
            if p.is_int() {
                v["x_frac"] = json!(l.x_frac);
                v["h_frac"] = json!(l.h_frac);
                if !l.peephole.is_empty() {
                    v["p_frac"] = json!(l.p_frac);
                }
                v["x_format"] = json!(format!("Q{}.{}", 15 - l.x_frac as i32, l.x_frac));
                v["h_format"] = json!(format!("Q{}.{}", 15 - l.h_frac as i32, l.h_frac));
                if let Some((a, b)) = rq_range(l.rq_ih) {
                    v["requant_ih_range"] = json!([a, b]);
                }
                if let Some((a, b)) = rq_range(l.rq_hh) {
                    v["requant_hh_range"] = json!([a, b]);
                }
            }
            v
        })
        .collect();
    let ops = |ops: &[tinyrnn::model::OpDesc<'_>], params: &mut usize| -> Vec<Value> {
        ops.iter()
            .map(|op| {
                *params += op.params();
                let mut v = json!({
                    "op": op.name(),
                    "in_size": op.in_size(),
                    "out_size": op.out_size(),
                    "params": op.params(),
                    "weight_bytes": op.weight_bytes(),
                });
                if p.is_int() {
                    v["x_format"] = json!(format!("Q{}.{}", 15 - op.x_frac() as i32, op.x_frac()));
                    v["y_format"] = json!(format!("Q{}.{}", 15 - op.y_frac() as i32, op.y_frac()));
                }
                v
            })
            .collect()
    };
    let pre = ops(&d.pre, &mut params);
    let mlp = ops(&d.mlp, &mut params);
    let head = d.head.as_ref().map(|hd| {
        let n = hd.out_size as usize * (hd.in_size as usize + 1);
        params += n;
        let mut v = json!({"in_size": hd.in_size, "out_size": hd.out_size, "params": n,
                           "weight_bytes": hd.weight.len() + hd.bias.len() + hd.rq.len()});
        if let Some((a, b)) = rq_range(hd.rq) {
            v["requant_range"] = json!([a, b]);
        }
        v
    });
    let mut out = json!({
        "file_kind": "blob",
        "precision": p.name(),
        "name": d.name,
        "input_size": m.input_size(),
        "output_size": m.output_size(),
        "normalization": d.norm.is_some(),
        "pre": pre,
        "layers": layers,
        "pool": d.pool.name(),
        "pool_state_words": m.pool_words(),
        "mlp": mlp,
        "head": head,
        "output_activation": act_name(d.output_act),
        "params": params,
        "blob_bytes": blob_len,
        "weight_bytes": m.weight_bytes(),
        "state_words": m.state_len(),
        "state_bytes": m.state_len() * 4,
        "scratch_words": m.scratch_len(),
        "scratch_bytes": m.scratch_len() * 4,
        "features": d.required_features().as_slice(),
    });
    if let Some(k) = m.window_layer() {
        out["window_layer"] = json!(k);
        out["window_words_per_frame"] = json!(m.window_frame_words());
        out["window_bytes_per_frame"] = json!(4 * m.window_frame_words());
        out["window_state_words"] = json!(m.window_state_words());
        if let Some(n) = window {
            out["window_frames"] = json!(n);
            out["window_words"] = json!(m.window_words(n));
            out["window_bytes"] = json!(4 * m.window_words(n));
        }
    }
    if p.is_int() {
        out["output_frac"] = json!(d.output_frac);
        out["output_format"] = json!(format!("Q{}.{}", 15 - d.output_frac as i32, d.output_frac));
    }
    out
}

fn text(v: &Value) -> String {
    let mut s = String::new();
    let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let show = |x: Value| match x {
        Value::String(s) => s,
        other => other.to_string(),
    };
    s += &format!(
        "{} ({}), name {}\n",
        show(g("file_kind")),
        show(g("precision")),
        show(g("name"))
    );
    s += &format!(
        "input {} features{}, output {} ({})\n",
        show(g("input_size")),
        if g("normalization") == Value::Bool(true) {
            " (normalized inside the model)"
        } else {
            ""
        },
        show(g("output_size")),
        show(g("output_activation"))
    );
    let op_lines = |s: &mut String, key: &str, what: &str| {
        if let Some(ops) = v.get(key).and_then(|l| l.as_array()) {
            for (k, o) in ops.iter().enumerate() {
                *s += &format!(
                    "{what} {k}: {} {} -> {}, {} params, {} bytes",
                    show(o["op"].clone()),
                    show(o["in_size"].clone()),
                    show(o["out_size"].clone()),
                    show(o["params"].clone()),
                    show(o["weight_bytes"].clone())
                );
                if let Some(x) = o.get("x_format") {
                    *s += &format!(", x {}, y {}", show(x.clone()), show(o["y_format"].clone()));
                }
                s.push('\n');
            }
        }
    };
    op_lines(&mut s, "pre", "pre-net op");
    if let Some(layers) = v.get("layers").and_then(|l| l.as_array()) {
        for (k, l) in layers.iter().enumerate() {
            let mut line = format!(
                "layer {k}: {} {} -> {}, {} params",
                show(l["cell"].clone()),
                show(l["input_size"].clone()),
                show(l["hidden_size"].clone()),
                show(l["params"].clone())
            );
            if let Some(x) = l.get("x_format") {
                line += &format!(", x {}, h {}", show(x.clone()), show(l["h_format"].clone()));
            }
            if let Some(pf) = l.get("p_frac") {
                line += &format!(", peepholes p_frac {}", show(pf.clone()));
            }
            if let Some(c) = l.get("cell_clip") {
                line += &format!(", cell clip {}", show(c.clone()));
            }
            if l.get("initial_h") == Some(&Value::Bool(true)) {
                line += ", initial h";
            }
            if l.get("initial_c") == Some(&Value::Bool(true)) {
                line += ", initial c";
            }
            if let Some(d) = l.get("direction").and_then(Value::as_str) {
                if d != "forward" {
                    line += &format!(", {d}");
                }
            }
            if let Some(p) = l.get("proj_size").and_then(Value::as_u64) {
                line += &format!(", projection to {p}");
            }
            if let Some(o) = l.get("output_size").and_then(Value::as_u64) {
                if Some(o) != l.get("hidden_size").and_then(Value::as_u64) {
                    line += &format!(" (output {o} wide)");
                }
            }
            s += &line;
            s.push('\n');
        }
    }
    if let Some(pool) = v.get("pool") {
        if pool != "last" {
            s += &format!(
                "pool over time: {} ({} state words)\n",
                show(pool.clone()),
                show(g("pool_state_words"))
            );
        }
    }
    op_lines(&mut s, "mlp", "head op");
    match v.get("head") {
        Some(h) if !h.is_null() => {
            s += &format!(
                "head: dense {} -> {}, {} params\n",
                show(h["in_size"].clone()),
                show(h["out_size"].clone()),
                show(h["params"].clone())
            );
        }
        _ if v
            .get("mlp")
            .and_then(|m| m.as_array())
            .is_some_and(|m| !m.is_empty()) =>
        {
            s += "head: none (output = the last head op's)\n"
        }
        _ if v.get("pool").is_some_and(|p| p != "last") => {
            s += "head: none (output = the pooled vector)\n"
        }
        _ => s += "head: none (output = last layer's h)\n",
    }
    if let Some(f) = v.get("output_format") {
        s += &format!("output format: {}\n", show(f.clone()));
    }
    s += &format!("parameters: {}\n", show(g("params")));
    if let Some(b) = v.get("blob_bytes") {
        s += &format!(
            "flash: {} bytes of weights (blob {} bytes)\n",
            show(g("weight_bytes")),
            show(b.clone())
        );
        s += &format!(
            "RAM: state {} words = {} bytes, scratch {} words = {} bytes\n",
            show(g("state_words")),
            show(g("state_bytes")),
            show(g("scratch_words")),
            show(g("scratch_bytes"))
        );
        if let Some(k) = v.get("window_layer") {
            // a bidirectional first windowed layer: its forward direction streams
            let fwd = match v.get("window_state_words").and_then(Value::as_u64) {
                Some(n) if n > 0 => format!(
                    ", except layer {}'s forward direction, run per frame ({n} of the state \
                     words: its backward direction's and a frame count)",
                    show(k.clone())
                ),
                _ => String::new(),
            };
            let per = format!(
                "{} words = {} bytes per frame",
                show(g("window_words_per_frame")),
                show(g("window_bytes_per_frame"))
            );
            match v.get("window_frames") {
                Some(n) => {
                    s += &format!(
                        "RAM: window buffer for {} frames: {} words = {} bytes ({per}); \
                         layers from {} run over the window at each decision{fwd}\n",
                        show(n.clone()),
                        show(g("window_words")),
                        show(g("window_bytes")),
                        show(k.clone())
                    )
                }
                None => {
                    s += &format!(
                        "RAM: window buffer {per} (--window N for a window length); layers \
                         from {} run over the window at each decision{fwd}\n",
                        show(k.clone())
                    )
                }
            }
        }
        if let Some(f) = v.get("features").and_then(|f| f.as_array()) {
            let names: Vec<String> = f.iter().map(|x| show(x.clone())).collect();
            s += &format!(
                "features: {} (the tinyrnn cargo features firmware needs for this blob)\n",
                names.join(", ")
            );
        }
    } else {
        s += &format!(
            "flash: {} bytes as float32 (int8 about a quarter, int16 about half)\n",
            show(g("flash_bytes_float32"))
        );
        s += &format!(
            "RAM: state {} words = {} bytes, scratch (float32 path) {} words = {} bytes\n",
            show(g("state_words")),
            show(g("state_bytes")),
            show(g("scratch_words_float32")),
            show(g("scratch_bytes_float32"))
        );
    }
    s
}

/// Runs `tinyrnn inspect`.
///
/// # Errors
/// Unreadable or invalid model.
pub fn run(args: &Args) -> Result<()> {
    let bytes = crate::data::read_file(&args.model)?;
    if tinyrnn::signed::is_envelope(&bytes) {
        let v = super::verify::envelope_json(&bytes, &args.pubkey)
            .with_context(|| format!("{}", args.model.display()))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print!("{}{}", super::verify::signature_text(&v), text(&v));
        }
        return Ok(());
    }
    if !args.pubkey.is_empty() {
        anyhow::bail!(
            "{}: --pubkey given but the file is not signed",
            args.model.display()
        );
    }
    let m = exec::load(&args.model, &args.import.options())?;
    let v = match &m {
        Runnable::Float(fm) => {
            let bytes = crate::data::read_file(&args.model)?;
            let kind = match crate::import::sniff(&bytes) {
                crate::import::FileKind::Safetensors => "safetensors",
                crate::import::FileKind::Keras => "keras",
                crate::import::FileKind::Hdf5 => "keras-h5",
                crate::import::FileKind::Tflite => "tflite",
                _ => "onnx",
            };
            float_json(fm, kind)
        }
        Runnable::Blob(b) => blob_json(&b.model(), b.bytes.len(), args.window),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", text(&v));
    }
    Ok(())
}

//! The quantizer: a [`FloatModel`] plus calibration statistics → a model blob.
//!
//! The parameters produced here are exactly those the runtime's integer arithmetic
//! (src/DESIGN.md, "Integer cell arithmetic") consumes:
//!
//! * **Input format** `x_frac` of layer 0: the most fractional bits with
//!   `max|x| · HEADROOM · 2^x_frac ≤ 32767` over the (normalized) calibration inputs.
//!   Layer `k > 0` reads layer `k−1`'s `h` in its own format.
//! * **Hidden format** `h_frac`: 15 (Q0.15) for tanh/sigmoid-bounded cells; for a ReLU RNN
//!   and for an LSTM with projection (`h = W_hr·m` is not bounded by 1) chosen like `x_frac`
//!   from the calibrated `max h`.
//! * **LSTM projection** `W_hr`: per-row scales like the other weights, no bias, requant
//!   `scale_row · 2^(h_frac − 15)` (`m = o ⊙ tanh c` is Q0.15). **Cell clip** in `c`'s
//!   Q16.15.
//! * **Weights**: symmetric per output row, `scale_row = max|w_row| / Q` with `Q = 127`
//!   (int8) or `32767` (int16), `q = round(w / scale_row)`; the input-to-hidden and the
//!   hidden-to-hidden matrices have their own scales (they have their own requant records).
//! * **Biases** in accumulator scale `scale_row · 2^-in_frac` (`i32` for int8, `i64` for
//!   int16), bounded by 2^30 / 2^62; a row whose bias would not fit gets a wider scale.
//! * **Requant** per row: the real factor `scale_row · 2^(target − in_frac)` as
//!   `mult / 2^shift`, `mult ∈ [2^30, 2^31)`, where `target` is 12 (Q19.12 pre-activation),
//!   `h_frac` for a ReLU RNN, or `output_frac` for an identity head.
//! * **Peepholes** `i16` with the most fractional bits `p_frac` that hold `max|p|`.
//! * **Head output** `output_frac`: from the calibrated range of the head's output when the
//!   output activation is the identity, else 15 (Q0.15 after sigmoid/tanh/softmax).
//! * `h0` in `h` format, `c0` in Q16.15; normalization as `f32` offset and scale.
//!
//! Everything is computed in `f64` and rounded to nearest; every narrowing saturates and is
//! counted in the [`Report`].

pub mod calib;
pub mod tensor;

use anyhow::{bail, ensure, Context};
use serde::Serialize;
use tinyrnn::fxp::{ACT_FRAC, CELL_FRAC, PRE_FRAC};
use tinyrnn::model::{
    write_blob, DenseDesc, DenseOpDesc, DirWeights, LayerDesc, ModelDesc, NormDesc, OpDesc,
    MAX_NAME, MAX_OPS,
};
use tinyrnn::{CellKind, DenseAct, Model, OutputAct, Pool, Precision, MAX_DIM, MAX_LAYERS};

use crate::ir::{FloatLayer, FloatModel, FrameOp, Probe};
use calib::{CalibStats, Range};
use tensor::{
    choose_frac, f32_bytes, i16_bytes, i32_bytes, pack_f32, pack_i16, pack_i8, pow2, q_i16, q_i32,
    quantize_rows, requant, requant_bytes, RowQuant,
};

/// Safety margin on calibrated ranges when choosing a Q format: values up to
/// `HEADROOM × max seen` stay representable (unseen data may exceed the calibration set a
/// little). The power-of-two grid already leaves on average ~1.4× more.
pub const HEADROOM: f64 = 1.1;

/// Options of [`quantize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantOptions {
    /// Target number format.
    pub precision: Precision,
    /// See [`HEADROOM`].
    pub headroom: f64,
}

impl QuantOptions {
    /// Options for `precision` with the default headroom.
    pub fn new(precision: Precision) -> Self {
        QuantOptions {
            precision,
            headroom: HEADROOM,
        }
    }
}

/// Range, format and saturation of one calibrated tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorReport {
    /// e.g. `layer0.input`, `layer1.c`, `head.output`.
    pub name: String,
    /// Smallest calibrated value.
    pub min: f64,
    /// Largest calibrated value.
    pub max: f64,
    /// Root mean square.
    pub rms: f64,
    /// Fractional bits of its integer format (None for pre-activations of the f32 path).
    pub frac: Option<u8>,
    /// Largest magnitude the format holds.
    pub limit: f64,
    /// Calibration values at or beyond `limit` (saturated, or clamped by an activation for
    /// `pre`).
    pub saturated: u64,
    /// Values seen.
    pub count: u64,
}

/// Quantization of one weight matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightReport {
    /// e.g. `layer0.w_ih`.
    pub name: String,
    /// Largest |weight|.
    pub maxabs: f64,
    /// Smallest and largest per-row scale (real value of one LSB).
    pub scale_min: f64,
    /// See `scale_min`.
    pub scale_max: f64,
    /// Largest |q·scale − w| over the matrix.
    pub max_err: f64,
    /// Largest requant shift used.
    pub shift_max: u8,
    /// Biases that saturated (should be 0).
    pub bias_saturated: u64,
    /// Rows whose scale was widened so their bias fits.
    pub widened_rows: usize,
}

/// Formats of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// Cell kind.
    pub cell: String,
    /// Input width.
    pub input_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Fractional bits of the layer input.
    pub x_frac: u8,
    /// Fractional bits of `h`.
    pub h_frac: u8,
    /// Fractional bits of the peepholes (LSTM with peepholes).
    pub p_frac: Option<u8>,
    /// LSTM projection width `P` (`h = W_hr·m` is `P` wide).
    pub proj_size: Option<usize>,
    /// LSTM cell clip.
    pub cell_clip: Option<f32>,
}

/// What [`quantize`] chose and measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `int8`, `int16` or `float32`.
    pub precision: String,
    /// Calibration sequences.
    pub calib_sequences: usize,
    /// Calibration frames.
    pub calib_frames: usize,
    /// Per layer formats.
    pub layers: Vec<LayerReport>,
    /// Fractional bits of the final output.
    pub output_frac: u8,
    /// Calibrated tensors.
    pub tensors: Vec<TensorReport>,
    /// Quantized weight matrices.
    pub weights: Vec<WeightReport>,
    /// Values of `h0`/`c0`/peepholes that saturated.
    pub other_saturated: u64,
    /// Whether a normalization is folded into the blob.
    pub normalization: bool,
    /// Bytes of weights, biases and requant records.
    pub weight_bytes: usize,
    /// Bytes of the whole blob.
    pub blob_bytes: usize,
}

/// A quantized model.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// The complete blob (header + payload), already validated by `Model::from_blob`.
    pub blob: Vec<u8>,
    /// What was chosen.
    pub report: Report,
}

fn check_finite(name: &str, v: &[f32]) -> anyhow::Result<()> {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        bail!("{name}[{i}] is not finite ({})", v[i]);
    }
    Ok(())
}

/// Checks that every parameter of `model` is finite and that it fits the runtime's limits.
pub fn check_model(model: &FloatModel) -> anyhow::Result<()> {
    model
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid model: {e}"))?;
    ensure!(
        model.layers.len() <= MAX_LAYERS,
        "the model has {} recurrent layers; the runtime supports at most {MAX_LAYERS}",
        model.layers.len()
    );
    let mut dims = vec![("input size", model.input_size)];
    if let Some(n) = &model.norm {
        check_finite("normalization offset", &n.offset)?;
        check_finite("normalization scale", &n.scale)?;
    }
    for (k, l) in model.layers.iter().enumerate() {
        dims.push(("hidden size", l.hidden_size));
        check_finite(&format!("layer {k} weight_ih"), &l.w_ih)?;
        check_finite(&format!("layer {k} weight_hh"), &l.w_hh)?;
        check_finite(&format!("layer {k} bias_ih"), &l.b_ih)?;
        check_finite(&format!("layer {k} bias_hh"), &l.b_hh)?;
        for (n, t) in [("peephole", &l.peephole), ("h0", &l.h0), ("c0", &l.c0)] {
            if let Some(t) = t {
                check_finite(&format!("layer {k} {n}"), t)?;
            }
        }
        if let Some(h0) = &l.h0 {
            ensure!(
                h0.len() == l.dir_out_size(),
                "layer {k}: h0 has {} values",
                h0.len()
            );
        }
        if let Some(c0) = &l.c0 {
            ensure!(
                matches!(l.cell, CellKind::Lstm { .. }) && c0.len() == l.hidden_size,
                "layer {k}: c0 needs an LSTM layer of its width"
            );
        }
        if let Some(w) = &l.w_hr {
            check_finite(&format!("layer {k} weight_hr"), w)?;
            dims.push(("projection size", l.dir_out_size()));
        }
        if let Some(clip) = l.cell_clip {
            ensure!(
                matches!(l.cell, CellKind::Lstm { .. }) && clip.is_finite() && clip > 0.0,
                "layer {k}: cell_clip {clip} needs an LSTM and a positive finite value"
            );
        }
        if let Some(b) = &l.backward {
            check_finite(&format!("layer {k} reverse weight_ih"), &b.w_ih)?;
            check_finite(&format!("layer {k} reverse weight_hh"), &b.w_hh)?;
            check_finite(&format!("layer {k} reverse bias_ih"), &b.b_ih)?;
            check_finite(&format!("layer {k} reverse bias_hh"), &b.b_hh)?;
            for (n, t) in [
                ("peephole", &b.peephole),
                ("h0", &b.h0),
                ("c0", &b.c0),
                ("weight_hr", &b.w_hr),
            ] {
                if let Some(t) = t {
                    check_finite(&format!("layer {k} reverse {n}"), t)?;
                }
            }
            ensure!(
                b.cell_clip == l.cell_clip && b.w_hr.is_some() == l.w_hr.is_some(),
                "layer {k}: the two directions differ in projection or cell_clip"
            );
        }
        ensure!(
            matches!(l.cell, CellKind::Lstm { peepholes: true }) == l.peephole.is_some(),
            "layer {k}: peephole weights do not match the cell kind"
        );
    }
    ensure!(
        model.pre.len() <= MAX_OPS && model.mlp.len() <= MAX_OPS,
        "the model has {} pre-net and {} hidden head ops; the runtime supports at most \
         {MAX_OPS} each",
        model.pre.len(),
        model.mlp.len()
    );
    for (what, ops) in [("pre-net", &model.pre), ("head", &model.mlp)] {
        for (i, op) in ops.iter().enumerate() {
            match op {
                FrameOp::LayerNorm(_) => bail!(
                    "{what} op {i} is a LayerNorm, which the runtime does not run yet (no \
                     integer or f32 kernel)"
                ),
                FrameOp::Dense(d) => {
                    dims.push(("dense op output size", d.out_size));
                    check_finite(&format!("{what} op {i} weight"), &d.weight)?;
                    check_finite(&format!("{what} op {i} bias"), &d.bias)?;
                    match d.act {
                        DenseAct::LeakyRelu { alpha } if !(0.0..=1.0).contains(&alpha) => {
                            bail!("{what} op {i}: LeakyReLU slope {alpha} is outside [0, 1]")
                        }
                        DenseAct::Clip { lo, hi }
                            if !(lo.is_finite() && hi.is_finite() && lo <= hi) =>
                        {
                            bail!("{what} op {i}: clip bounds [{lo}, {hi}] are not finite and ordered")
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    if let Some(h) = &model.head {
        dims.push(("head output size", h.out_size));
        check_finite("head weight", &h.weight)?;
        check_finite("head bias", &h.bias)?;
    }
    for (what, d) in dims {
        ensure!(
            (1..=MAX_DIM).contains(&d),
            "{what} {d} is outside 1..={MAX_DIM} (the runtime's limit)"
        );
    }
    Ok(())
}

/// Owned tensors of one layer (the blob borrows them).
struct OwnedLayer {
    cell: CellKind,
    input_size: u16,
    hidden_size: u16,
    x_frac: u8,
    h_frac: u8,
    p_frac: u8,
    /// 0 without a projection
    proj_size: u16,
    t: [Vec<u8>; 12], // w_ih w_hh b_ih b_hh rq_ih rq_hh peephole h0 c0 w_hr rq_hr cell_clip
    direction: tinyrnn::Direction,
    /// Bidirectional: the reverse direction's tensors, as `t` (its `cell_clip` unused).
    back: Option<[Vec<u8>; 12]>,
}

impl OwnedLayer {
    fn desc(&self) -> LayerDesc<'_> {
        let t = &self.t;
        LayerDesc {
            cell: self.cell,
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            x_frac: self.x_frac,
            h_frac: self.h_frac,
            w_ih: &t[0],
            w_hh: &t[1],
            b_ih: &t[2],
            b_hh: &t[3],
            rq_ih: &t[4],
            rq_hh: &t[5],
            peephole: &t[6],
            p_frac: self.p_frac,
            h0: &t[7],
            c0: &t[8],
            proj_size: self.proj_size,
            w_hr: &t[9],
            rq_hr: &t[10],
            cell_clip: &t[11],
            direction: self.direction,
            backward: self.back.as_ref().map(|b| DirWeights {
                w_ih: &b[0],
                w_hh: &b[1],
                b_ih: &b[2],
                b_hh: &b[3],
                rq_ih: &b[4],
                rq_hh: &b[5],
                peephole: &b[6],
                h0: &b[7],
                c0: &b[8],
                w_hr: &b[9],
                rq_hr: &b[10],
            }),
        }
    }
}

/// Owned head tensors: out size, in size, [weight, bias, rq].
type OwnedHead = (u16, u16, [Vec<u8>; 3]);

/// Integer constants of one precision.
#[derive(Clone, Copy)]
struct IntSpec {
    precision: Precision,
    qmax: i64,
    bias_max: i64,
    max_shift: u8,
}

impl IntSpec {
    fn new(p: Precision) -> Self {
        match p {
            Precision::Int8 => IntSpec {
                precision: p,
                qmax: 127,
                // bias + dot product (|Σ| ≤ 2^30) stays well inside i32
                bias_max: 1 << 30,
                max_shift: 62,
            },
            _ => IntSpec {
                precision: p,
                qmax: i16::MAX as i64,
                bias_max: 1 << 62,
                max_shift: 94,
            },
        }
    }
    fn pack(&self, q: &[i32], rows: usize, cols: usize) -> Vec<u8> {
        match self.precision {
            Precision::Int8 => pack_i8(q, rows, cols),
            _ => pack_i16(q, rows, cols),
        }
    }
    fn bias(&self, b: &[i64]) -> Vec<u8> {
        match self.precision {
            Precision::Int8 => b.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect(),
            _ => b.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        }
    }
}

/// Quantizes one matrix + bias, returning (weights, bias, requant) bytes and its report.
#[allow(clippy::too_many_arguments)]
fn int_matrix(
    spec: IntSpec,
    name: String,
    w: &[f32],
    b: &[f32],
    rows: usize,
    cols: usize,
    in_frac: u8,
    target_frac: u8,
) -> anyhow::Result<([Vec<u8>; 3], WeightReport)> {
    let q: RowQuant = quantize_rows(w, b, rows, cols, in_frac, spec.qmax, spec.bias_max);
    let mut rq = Vec::with_capacity(rows);
    let mut max_err = 0.0f64;
    for r in 0..rows {
        let factor = q.scale[r] * pow2(target_frac as i32 - in_frac as i32);
        rq.push(requant(factor, spec.max_shift).map_err(|e| {
            anyhow::anyhow!("{name} row {r}: requantization factor {} is too large", e.0)
        })?);
        for c in 0..cols {
            let i = r * cols + c;
            max_err = max_err.max((q.w[i] as f64 * q.scale[r] - w[i] as f64).abs());
        }
    }
    let rep = WeightReport {
        maxabs: w.iter().fold(0.0, |m, &v| m.max((v as f64).abs())),
        scale_min: q.scale.iter().cloned().fold(f64::INFINITY, f64::min),
        scale_max: q.scale.iter().cloned().fold(0.0, f64::max),
        max_err,
        shift_max: rq.iter().map(|r| r.shift).max().unwrap_or(0),
        bias_saturated: q.b_sat,
        widened_rows: q.widened_rows,
        name,
    };
    Ok((
        [
            spec.pack(&q.w, rows, cols),
            spec.bias(&q.b),
            requant_bytes(&rq),
        ],
        rep,
    ))
}

/// Adds a calibrated tensor to the report. `frac` is the integer format (if any) and
/// `limit` the magnitude at which it saturates.
/// One quantized pre-net / head dense op: act, x_frac, y_frac, [weight, bias, rq].
type OwnedOp = (DenseAct, u8, u8, u16, u16, [Vec<u8>; 3]);

/// Quantizes `ops` reading values in `frac` (int paths); returns the ops and the output
/// format.
#[allow(clippy::too_many_arguments)]
fn quantize_ops(
    ops: &[FrameOp],
    what: &str,
    p: Precision,
    stats: &CalibStats,
    headroom: f64,
    mut frac: u8,
    tensors: &mut Vec<TensorReport>,
    weights: &mut Vec<WeightReport>,
) -> anyhow::Result<(Vec<OwnedOp>, u8)> {
    let (post, lin) = if what == "pre" {
        (Probe::PreNet, Probe::PreNetLinear)
    } else {
        (Probe::Mlp, Probe::MlpLinear)
    };
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let FrameOp::Dense(d) = op else {
            bail!("{what} op {i}: LayerNorm is not supported by the runtime yet");
        };
        let (o, n) = (d.out_size, d.in_size);
        if !p.is_int() {
            out.push((
                d.act,
                0,
                0,
                o as u16,
                n as u16,
                [pack_f32(&d.weight, o, n), f32_bytes(&d.bias), Vec::new()],
            ));
            continue;
        }
        let (y_frac, target) = match d.act {
            DenseAct::Tanh | DenseAct::Sigmoid => {
                tensors.push(tensor_report(
                    format!("{what}{i}.pre"),
                    &stats.op_range(i, lin),
                    Some(PRE_FRAC as u8),
                    16.0,
                ));
                (15, PRE_FRAC as u8)
            }
            DenseAct::Gelu | DenseAct::GeluTanh => {
                // requant to Q19.12 (the table's input), output in the calibrated format of
                // the activated values (`gelu_q`)
                tensors.push(tensor_report(
                    format!("{what}{i}.pre"),
                    &stats.op_range(i, lin),
                    Some(PRE_FRAC as u8),
                    (1u32 << 19) as f64,
                ));
                let r = stats.op_range(i, post);
                let f = choose_frac(r.maxabs(), headroom);
                tensors.push(tensor_report(
                    format!("{what}{i}.out"),
                    &r,
                    Some(f),
                    i16_limit(f),
                ));
                (f, PRE_FRAC as u8)
            }
            // Listed, not `_`: a new activation must say here how it is calibrated.
            act @ (DenseAct::Identity
            | DenseAct::Relu
            | DenseAct::Clip { .. }
            | DenseAct::LeakyRelu { .. }) => {
                // ReLU / Clip saturate after the activation; identity / leaky need the
                // linear range
                let r = match act {
                    DenseAct::Relu | DenseAct::Clip { .. } => stats.op_range(i, post),
                    _ => stats.op_range(i, lin),
                };
                let f = choose_frac(r.maxabs(), headroom);
                tensors.push(tensor_report(
                    format!("{what}{i}.out"),
                    &r,
                    Some(f),
                    i16_limit(f),
                ));
                (f, f)
            }
        };
        let (t, r) = int_matrix(
            IntSpec::new(p),
            format!("{what}{i}.weight"),
            &d.weight,
            &d.bias,
            o,
            n,
            frac,
            target,
        )?;
        weights.push(r);
        out.push((d.act, frac, y_frac, o as u16, n as u16, t));
        frac = y_frac;
    }
    Ok((out, frac))
}

fn op_desc(o: &OwnedOp) -> OpDesc<'_> {
    OpDesc::Dense(DenseOpDesc {
        act: o.0,
        x_frac: o.1,
        y_frac: o.2,
        dense: DenseDesc {
            out_size: o.3,
            in_size: o.4,
            weight: &o.5[0],
            bias: &o.5[1],
            rq: &o.5[2],
        },
    })
}

fn tensor_report(name: String, r: &Range, frac: Option<u8>, limit: f64) -> TensorReport {
    TensorReport {
        name,
        min: if r.count == 0 { 0.0 } else { r.min },
        max: if r.count == 0 { 0.0 } else { r.max },
        rms: r.rms(),
        frac,
        limit,
        saturated: r.count_at_least(limit),
        count: r.count,
    }
}

/// Magnitude an `i16` with `frac` fractional bits saturates at.
fn i16_limit(frac: u8) -> f64 {
    (i16::MAX as f64 + 0.5) / pow2(frac as i32)
}

/// The tensors of one direction of a layer (`name` in the report): `[w_ih, w_hh, b_ih,
/// b_hh, rq_ih, rq_hh, peephole, h0, c0]`, in the formats `(x_frac, h_frac, p_frac,
/// target)` (target: the requant format of the products).
fn lower_direction(
    l: &FloatLayer,
    name: &str,
    p: Precision,
    rows: usize,
    (x_frac, h_frac, p_frac, target): (u8, u8, u8, u8),
    weights: &mut Vec<WeightReport>,
    other_sat: &mut u64,
) -> anyhow::Result<[Vec<u8>; 12]> {
    let (i, h) = (l.input_size, l.hidden_size);
    // width of h: the projection's P, else H
    let hw = l.dir_out_size();
    if !p.is_int() {
        let opt = |v: &Option<Vec<f32>>| v.as_deref().map(f32_bytes).unwrap_or_default();
        return Ok([
            pack_f32(&l.w_ih, rows, i),
            pack_f32(&l.w_hh, rows, hw),
            f32_bytes(&l.b_ih),
            f32_bytes(&l.b_hh),
            Vec::new(),
            Vec::new(),
            opt(&l.peephole),
            opt(&l.h0),
            opt(&l.c0),
            l.w_hr
                .as_deref()
                .map(|w| pack_f32(w, hw, h))
                .unwrap_or_default(),
            Vec::new(),
            l.cell_clip.map(|v| f32_bytes(&[v])).unwrap_or_default(),
        ]);
    }
    let spec = IntSpec::new(p);
    let ([w_ih, b_ih, rq_ih], r1) = int_matrix(
        spec,
        format!("{name}.w_ih"),
        &l.w_ih,
        &l.b_ih,
        rows,
        i,
        x_frac,
        target,
    )?;
    let ([w_hh, b_hh, rq_hh], r2) = int_matrix(
        spec,
        format!("{name}.w_hh"),
        &l.w_hh,
        &l.b_hh,
        rows,
        hw,
        h_frac,
        target,
    )?;
    weights.push(r1);
    weights.push(r2);
    // h_p = rq_hr[p].apply(W_hr[p]·m): m = o ⊙ tanh c in Q0.15, to h_frac, no bias
    let (w_hr, rq_hr) = match &l.w_hr {
        Some(w) => {
            let ([w, _, rq], r) = int_matrix(
                spec,
                format!("{name}.w_hr"),
                w,
                &vec![0.0; hw],
                hw,
                h,
                ACT_FRAC as u8,
                h_frac,
            )?;
            weights.push(r);
            (w, rq)
        }
        None => (Vec::new(), Vec::new()),
    };
    // Q16.15 like c (c saturates at ±65536: a larger clip never acts)
    let clip = match l.cell_clip {
        Some(v) => i32_bytes(&[q_i32(v as f64, CELL_FRAC as u8, other_sat)]),
        None => Vec::new(),
    };
    let peep = match &l.peephole {
        Some(pp) => {
            let q: Vec<i16> = pp
                .iter()
                .map(|&v| q_i16(v as f64, p_frac, other_sat))
                .collect();
            i16_bytes(&q)
        }
        None => Vec::new(),
    };
    let h0 = match &l.h0 {
        Some(v) => i16_bytes(
            &v.iter()
                .map(|&x| q_i16(x as f64, h_frac, other_sat))
                .collect::<Vec<_>>(),
        ),
        None => Vec::new(),
    };
    let c0 = match &l.c0 {
        Some(v) => i32_bytes(
            &v.iter()
                .map(|&x| q_i32(x as f64, CELL_FRAC as u8, other_sat))
                .collect::<Vec<_>>(),
        ),
        None => Vec::new(),
    };
    Ok([
        w_ih, w_hh, b_ih, b_hh, rq_ih, rq_hh, peep, h0, c0, w_hr, rq_hr, clip,
    ])
}

/// Quantizes `model` to `opts.precision`. Integer precisions need calibration statistics
/// from [`calib::calibrate`] on the same model (with the same normalization).
///
/// # Errors
/// Non-finite parameters, dimensions beyond the runtime's limits, a missing calibration,
/// or a model the integer paths cannot represent (an output activation without a head).
pub fn quantize(
    model: &FloatModel,
    stats: Option<&CalibStats>,
    opts: &QuantOptions,
) -> anyhow::Result<Quantized> {
    check_model(model)?;
    let p = opts.precision;
    let nl = model.layers.len();
    if let Some(s) = stats {
        ensure!(
            s.layers.len() == nl + 1,
            "calibration statistics are for another model"
        );
    }
    let empty = CalibStats {
        sequences: 0,
        frames: 0,
        layers: vec![Default::default(); nl + 1],
        input: Default::default(),
        pre: Vec::new(),
        mlp: Vec::new(),
        backward: Vec::new(),
    };
    let stats = match (p.is_int(), stats) {
        (true, None) => bail!(
            "{} quantization needs calibration data (--calib X.npy)",
            p.name()
        ),
        (_, Some(s)) => s,
        (false, None) => &empty,
    };
    let mut tensors = Vec::new();
    let mut weights = Vec::new();
    let mut layer_reports = Vec::new();
    let mut other_sat = 0u64;
    let mut layers: Vec<OwnedLayer> = Vec::with_capacity(nl);

    // ---- formats
    let mut x_frac = if p.is_int() {
        choose_frac(stats.range(0, Probe::Input).maxabs(), opts.headroom)
    } else {
        0
    };
    let in_frac = if p.is_int() {
        choose_frac(stats.input.maxabs(), opts.headroom)
    } else {
        0
    };
    let (pre_ops, pre_frac) = quantize_ops(
        &model.pre,
        "pre",
        p,
        stats,
        opts.headroom,
        in_frac,
        &mut tensors,
        &mut weights,
    )?;
    if !pre_ops.is_empty() {
        x_frac = pre_frac;
    }
    for (k, l) in model.layers.iter().enumerate() {
        let (i, h, g) = (l.input_size, l.hidden_size, l.gates());
        // width of h: the projection's P, else H
        let hw = l.dir_out_size();
        let rows = g * h;
        let back = l.backward.as_deref();
        // a bidirectional layer's output [fwd; bwd] has one format: both directions' h
        let h_max = stats
            .range(k, Probe::Hidden)
            .maxabs()
            .max(back.map_or(0.0, |_| stats.backward_range(k, Probe::Hidden).maxabs()));
        // a projected LSTM's h = W_hr·m is not bounded by 1: calibrated like a ReLU RNN's
        let h_frac = match (p.is_int(), l.cell.bounded() && l.w_hr.is_none()) {
            (false, _) => 0,
            (true, true) => 15,
            (true, false) => choose_frac(h_max, opts.headroom),
        };
        let target = if l.cell.bounded() {
            PRE_FRAC as u8
        } else {
            h_frac
        };
        // both directions' peepholes share p_frac
        let p_frac = match (p.is_int(), &l.peephole) {
            (true, Some(pp)) => {
                let m = pp
                    .iter()
                    .chain(back.and_then(|b| b.peephole.as_deref()).unwrap_or(&[]))
                    .fold(0.0f64, |m, &v| m.max((v as f64).abs()));
                choose_frac(m, 1.0)
            }
            _ => 0,
        };
        let mut dirs: Vec<(&FloatLayer, String, Range, Range, Range)> = vec![(
            l,
            format!("layer{k}"),
            stats.range(k, Probe::Pre).clone(),
            stats.range(k, Probe::Hidden).clone(),
            stats.range(k, Probe::Cell).clone(),
        )];
        if let Some(b) = back {
            dirs.push((
                b,
                format!("layer{k}.reverse"),
                stats.backward_range(k, Probe::Pre),
                stats.backward_range(k, Probe::Hidden),
                stats.backward_range(k, Probe::Cell),
            ));
        }
        if p.is_int() && k == 0 {
            tensors.push(tensor_report(
                "layer0.input".into(),
                stats.range(k, Probe::Input),
                Some(x_frac),
                i16_limit(x_frac),
            ));
        }
        let mut lowered = Vec::new();
        for (d, name, pre, hid, cel) in &dirs {
            if p.is_int() {
                if l.cell.bounded() {
                    tensors.push(tensor_report(
                        format!("{name}.pre"),
                        pre,
                        Some(PRE_FRAC as u8),
                        16.0,
                    ));
                }
                tensors.push(tensor_report(
                    format!("{name}.h"),
                    hid,
                    Some(h_frac),
                    i16_limit(h_frac),
                ));
                if matches!(l.cell, CellKind::Lstm { .. }) {
                    tensors.push(tensor_report(
                        format!("{name}.c"),
                        cel,
                        Some(CELL_FRAC as u8),
                        65536.0,
                    ));
                }
            }
            let t = lower_direction(
                d,
                name,
                p,
                rows,
                (x_frac, h_frac, p_frac, target),
                &mut weights,
                &mut other_sat,
            )?;
            lowered.push(t);
        }
        let back_t = if lowered.len() > 1 {
            lowered.pop()
        } else {
            None
        };
        let t = lowered.pop().unwrap_or_default();
        layer_reports.push(LayerReport {
            cell: l.cell.name().into(),
            input_size: i,
            hidden_size: h,
            x_frac,
            h_frac,
            p_frac: l.peephole.as_ref().map(|_| p_frac),
            proj_size: l.w_hr.as_ref().map(|_| hw),
            cell_clip: l.cell_clip,
        });
        layers.push(OwnedLayer {
            cell: l.cell,
            input_size: i as u16,
            hidden_size: h as u16,
            x_frac,
            h_frac,
            p_frac,
            proj_size: if l.w_hr.is_some() { hw as u16 } else { 0 },
            t,
            direction: l.direction,
            back: back_t,
        });
        x_frac = h_frac;
    }

    // ---- head and output format
    // pooling over time: a sum may need fewer fractional bits than h
    let pool_frac = match (p.is_int(), model.pool) {
        (true, Pool::Sum) => {
            let r = stats.range(nl, Probe::Pooled);
            let f = choose_frac(r.maxabs(), opts.headroom).min(x_frac);
            tensors.push(tensor_report("pool.sum".into(), r, Some(f), i16_limit(f)));
            f
        }
        _ => 0,
    };
    if model.pool == Pool::Sum && p.is_int() {
        x_frac = pool_frac;
    }
    let (mlp_ops, mlp_frac) = quantize_ops(
        &model.mlp,
        "mlp",
        p,
        stats,
        opts.headroom,
        x_frac,
        &mut tensors,
        &mut weights,
    )?;
    let last_frac = if p.is_int() { mlp_frac } else { 0 };
    let (output_frac, head): (u8, Option<OwnedHead>) = match (&model.head, p) {
        (None, Precision::F32) => (0, None),
        (None, _) => {
            ensure!(
                model.output_act == OutputAct::Identity,
                "an integer model without a dense head cannot apply an output activation \
                 (the output is the last layer's h); quantize to float32 instead"
            );
            (last_frac, None)
        }
        (Some(d), Precision::F32) => (
            0,
            Some((
                d.out_size as u16,
                d.in_size as u16,
                [
                    pack_f32(&d.weight, d.out_size, d.in_size),
                    f32_bytes(&d.bias),
                    Vec::new(),
                ],
            )),
        ),
        (Some(d), _) => {
            let hp = stats.range(nl, Probe::HeadPre);
            let (out_frac, target) = if model.output_act == OutputAct::Identity {
                let f = choose_frac(hp.maxabs(), opts.headroom);
                tensors.push(tensor_report(
                    "head.output".into(),
                    hp,
                    Some(f),
                    i16_limit(f),
                ));
                (f, f)
            } else {
                tensors.push(tensor_report(
                    "head.pre".into(),
                    hp,
                    Some(PRE_FRAC as u8),
                    16.0,
                ));
                (15, PRE_FRAC as u8)
            };
            let (t, r) = int_matrix(
                IntSpec::new(p),
                "head.weight".into(),
                &d.weight,
                &d.bias,
                d.out_size,
                d.in_size,
                last_frac,
                target,
            )?;
            weights.push(r);
            (out_frac, Some((d.out_size as u16, d.in_size as u16, t)))
        }
    };

    // ---- assemble
    let norm = model
        .norm
        .as_ref()
        .map(|n| (f32_bytes(&n.offset), f32_bytes(&n.scale)));
    let mut name = model.name.clone();
    while name.len() > MAX_NAME {
        name.pop();
    }
    let mut desc = ModelDesc {
        precision: p,
        input_size: model.input_size as u16,
        norm: norm.as_ref().map(|(o, s)| NormDesc {
            offset: o,
            scale: s,
        }),
        pre: pre_ops.iter().map(op_desc).collect(),
        layers: heapless::Vec::new(),
        pool: model.pool,
        pool_frac,
        mlp: mlp_ops.iter().map(op_desc).collect(),
        head: head.as_ref().map(|(c, i, t)| DenseDesc {
            out_size: *c,
            in_size: *i,
            weight: &t[0],
            bias: &t[1],
            rq: &t[2],
        }),
        output_act: model.output_act,
        output_frac,
        name: &name,
    };
    for l in &layers {
        desc.layers
            .push(l.desc())
            .map_err(|_| anyhow::anyhow!("too many layers"))?;
    }
    let tensor_bytes: usize = layers
        .iter()
        .flat_map(|l| l.t.iter().chain(l.back.iter().flatten()).map(Vec::len))
        .sum::<usize>()
        + head.as_ref().map_or(0, |h| h.2.iter().map(Vec::len).sum())
        + norm.as_ref().map_or(0, |n| n.0.len() + n.1.len())
        + pre_ops
            .iter()
            .chain(&mlp_ops)
            .map(|o| o.5.iter().map(Vec::len).sum::<usize>())
            .sum::<usize>();
    let nops = pre_ops.len() + mlp_ops.len();
    let mut buf = vec![0u8; tensor_bytes + 64 * (nl + nops + 2) + name.len() + 256];
    let n = write_blob(&desc, &mut buf).context("serializing the blob")?;
    buf.truncate(n);
    let weight_bytes = Model::from_blob(&buf)
        .map_err(|e| anyhow::anyhow!("internal error: the produced blob does not load: {e}"))?
        .weight_bytes();
    let report = Report {
        precision: p.name().into(),
        calib_sequences: stats.sequences,
        calib_frames: stats.frames,
        layers: layer_reports,
        output_frac,
        tensors,
        weights,
        other_saturated: other_sat,
        normalization: model.norm.is_some(),
        weight_bytes,
        blob_bytes: n,
    };
    Ok(Quantized { blob: buf, report })
}

impl Report {
    /// The report as human-readable text (what `tinyrnn quantize` prints).
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "precision {}; calibration: {} sequences, {} frames; normalization folded in: {}",
            self.precision,
            self.calib_sequences,
            self.calib_frames,
            if self.normalization { "yes" } else { "no" }
        );
        let _ = writeln!(s, "formats:");
        for (k, l) in self.layers.iter().enumerate() {
            let _ = write!(
                s,
                "  layer {k}: {} {}->{}  x Q{}.{}  h Q{}.{}",
                l.cell,
                l.input_size,
                l.hidden_size,
                15 - l.x_frac,
                l.x_frac,
                15 - l.h_frac,
                l.h_frac
            );
            if let Some(pf) = l.p_frac {
                let _ = write!(s, "  peephole Q{}.{}", 15 - pf, pf);
            }
            if let Some(np) = l.proj_size {
                let _ = write!(s, "  projection to {np}");
            }
            if let Some(c) = l.cell_clip {
                let _ = write!(s, "  cell clip {c}");
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "  output Q{}.{}",
            15 - self.output_frac,
            self.output_frac
        );
        if !self.tensors.is_empty() {
            let _ = writeln!(
                s,
                "ranges on the calibration set:\n  {:<14} {:>11} {:>11} {:>9} {:>8} {:>10} {:>9}",
                "tensor", "min", "max", "rms", "format", "limit", "saturated"
            );
            for t in &self.tensors {
                let fmt = t.frac.map_or("-".into(), |f| {
                    if t.name.ends_with(".pre") {
                        "Q19.12".into()
                    } else if t.name.ends_with(".c") {
                        "Q16.15".into()
                    } else {
                        format!("Q{}.{}", 15 - f, f)
                    }
                });
                let note = if t.name.ends_with(".pre") {
                    " (clamped by sigmoid/tanh: harmless)"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "  {:<14} {:>11.4} {:>11.4} {:>9.4} {:>8} {:>10.4} {:>9}{note}",
                    t.name, t.min, t.max, t.rms, fmt, t.limit, t.saturated
                );
            }
        }
        if !self.weights.is_empty() {
            let _ = writeln!(
                s,
                "weights (per-row symmetric scales):\n  {:<14} {:>9} {:>10} {:>10} {:>10} {:>6} {:>8}",
                "tensor", "max|w|", "scale min", "scale max", "max err", "shift", "bias sat"
            );
            for w in &self.weights {
                let _ = writeln!(
                    s,
                    "  {:<14} {:>9.4} {:>10.3e} {:>10.3e} {:>10.3e} {:>6} {:>8}{}",
                    w.name,
                    w.maxabs,
                    w.scale_min,
                    w.scale_max,
                    w.max_err,
                    w.shift_max,
                    w.bias_saturated,
                    if w.widened_rows > 0 {
                        format!(" ({} rows widened for their bias)", w.widened_rows)
                    } else {
                        String::new()
                    }
                );
            }
        }
        if self.other_saturated > 0 {
            let _ = writeln!(
                s,
                "saturated initial-state / peephole values: {}",
                self.other_saturated
            );
        }
        let _ = writeln!(
            s,
            "size: {} bytes of weights, {} bytes of blob",
            self.weight_bytes, self.blob_bytes
        );
        s
    }
}

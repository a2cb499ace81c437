//! Test-only helpers (compiled into unit tests, and into the integration tests through
//! `#[path = "../src/testutil.rs"] mod testutil;`): a float model, its f64 reference, and a
//! simple quantizer writing f32 / int16 / int8 blobs with `model::write_blob`.
//!
//! The quantizer follows DESIGN.md's integer arithmetic: per-row weight scales
//! (`max|w| / 127` or `/ 32767`), biases at accumulator scale, requant records to Q19.12
//! (`h_frac` for a ReLU RNN), Q formats from the ranges seen on calibration frames. The real
//! quantizer lives in `tools/`; this one only has to be correct, not clever.
#![allow(dead_code)]

use tinyrnn::fxp::Requant;
use tinyrnn::model::{
    pad4, write_blob, CellKind, DenseDesc, LayerDesc, ModelDesc, NormDesc, OutputAct, Precision,
    RnnAct,
};

/// Every cell variant, in the order the tests iterate them.
pub const CELLS: [CellKind; 6] = [
    CellKind::Rnn(RnnAct::Tanh),
    CellKind::Rnn(RnnAct::Relu),
    CellKind::Gru {
        linear_before_reset: true,
    },
    CellKind::Gru {
        linear_before_reset: false,
    },
    CellKind::Lstm { peepholes: false },
    CellKind::Lstm { peepholes: true },
];

/// xorshift64* (deterministic test data without a dependency).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [−1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f64 / (1u64 << 23) as f64 - 1.0) as f32
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}

#[derive(Debug, Clone)]
pub struct FLayer {
    pub cell: CellKind,
    pub input: usize,
    pub hidden: usize,
    /// `[gates·H, I]` row-major
    pub w_ih: Vec<f32>,
    /// `[gates·H, H]`
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
    /// `[3·H]`, order i, f, o
    pub peephole: Option<Vec<f32>>,
    pub h0: Option<Vec<f32>>,
    pub c0: Option<Vec<f32>>,
}

impl FLayer {
    /// PyTorch-like init: everything uniform in ±1/√H (times `gain`).
    pub fn random(rng: &mut Rng, cell: CellKind, input: usize, hidden: usize, gain: f32) -> Self {
        let g = cell.gates();
        let k = gain / (hidden as f32).sqrt();
        FLayer {
            cell,
            input,
            hidden,
            w_ih: rng.vec(g * hidden * input, k),
            w_hh: rng.vec(g * hidden * hidden, k),
            b_ih: rng.vec(g * hidden, k),
            b_hh: rng.vec(g * hidden, k),
            peephole: match cell {
                CellKind::Lstm { peepholes: true } => Some(rng.vec(3 * hidden, 0.5)),
                _ => None,
            },
            h0: None,
            c0: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FDense {
    pub out: usize,
    /// `[out, in]`
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct FModel {
    pub input: usize,
    /// (offset, scale)
    pub norm: Option<(Vec<f32>, Vec<f32>)>,
    pub layers: Vec<FLayer>,
    pub head: Option<FDense>,
    pub act: OutputAct,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FState {
    pub h: Vec<Vec<f64>>,
    pub c: Vec<Vec<f64>>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn matvec(w: &[f32], cols: usize, x: &[f64], b: &[f32]) -> Vec<f64> {
    w.chunks(cols)
        .zip(b)
        .map(|(row, &b)| b as f64 + row.iter().zip(x).map(|(&w, &x)| w as f64 * x).sum::<f64>())
        .collect()
}

impl FLayer {
    /// PyTorch / ONNX equations in f64 (see the cell modules).
    pub fn step(&self, x: &[f64], h: &mut [f64], c: &mut [f64]) {
        let hs = self.hidden;
        let a = matvec(&self.w_ih, self.input, x, &self.b_ih);
        let b = matvec(&self.w_hh, hs, h, &self.b_hh);
        match self.cell {
            CellKind::Rnn(act) => {
                for j in 0..hs {
                    let p = a[j] + b[j];
                    h[j] = match act {
                        RnnAct::Tanh => p.tanh(),
                        RnnAct::Relu => p.max(0.0),
                    };
                }
            }
            CellKind::Gru {
                linear_before_reset,
            } => {
                let r: Vec<f64> = (0..hs).map(|j| sigmoid(a[j] + b[j])).collect();
                let z: Vec<f64> = (0..hs).map(|j| sigmoid(a[hs + j] + b[hs + j])).collect();
                let n: Vec<f64> = if linear_before_reset {
                    (0..hs)
                        .map(|j| (a[2 * hs + j] + r[j] * b[2 * hs + j]).tanh())
                        .collect()
                } else {
                    let rh: Vec<f64> = (0..hs).map(|j| r[j] * h[j]).collect();
                    let wn = &self.w_hh[2 * hs * hs..];
                    let bn = matvec(wn, hs, &rh, &self.b_hh[2 * hs..]);
                    (0..hs).map(|j| (a[2 * hs + j] + bn[j]).tanh()).collect()
                };
                for j in 0..hs {
                    h[j] = (1.0 - z[j]) * n[j] + z[j] * h[j];
                }
            }
            CellKind::Lstm { .. } => {
                let p = |k: usize, j: usize| {
                    self.peephole.as_ref().map_or(0.0, |p| p[k * hs + j] as f64)
                };
                for j in 0..hs {
                    let pi = a[j] + b[j] + p(0, j) * c[j];
                    let pf = a[hs + j] + b[hs + j] + p(1, j) * c[j];
                    let pg = a[2 * hs + j] + b[2 * hs + j];
                    let cn = sigmoid(pf) * c[j] + sigmoid(pi) * pg.tanh();
                    let po = a[3 * hs + j] + b[3 * hs + j] + p(2, j) * cn;
                    c[j] = cn;
                    h[j] = sigmoid(po) * cn.tanh();
                }
            }
        }
    }
}

impl FModel {
    pub fn output_size(&self) -> usize {
        self.head
            .as_ref()
            .map_or(self.layers.last().unwrap().hidden, |d| d.out)
    }

    pub fn init_state(&self) -> FState {
        FState {
            h: self
                .layers
                .iter()
                .map(|l| match &l.h0 {
                    Some(v) => v.iter().map(|&x| x as f64).collect(),
                    None => vec![0.0; l.hidden],
                })
                .collect(),
            c: self
                .layers
                .iter()
                .map(|l| match &l.c0 {
                    Some(v) => v.iter().map(|&x| x as f64).collect(),
                    None => vec![0.0; l.hidden],
                })
                .collect(),
        }
    }

    pub fn normalize(&self, raw: &[f32]) -> Vec<f64> {
        match &self.norm {
            Some((o, s)) => raw
                .iter()
                .zip(o.iter().zip(s))
                .map(|(&x, (&o, &s))| (x as f64 - o as f64) * s as f64)
                .collect(),
            None => raw.iter().map(|&x| x as f64).collect(),
        }
    }

    pub fn step(&self, st: &mut FState, raw: &[f32]) {
        let x = self.normalize(raw);
        self.step_normalized(st, &x);
    }

    pub fn step_normalized(&self, st: &mut FState, x: &[f64]) {
        let mut x = x.to_vec();
        for (k, l) in self.layers.iter().enumerate() {
            l.step(&x, &mut st.h[k], &mut st.c[k]);
            x = st.h[k].clone();
        }
    }

    /// Head pre-activation (or last h).
    pub fn logits(&self, st: &FState) -> Vec<f64> {
        let h = st.h.last().unwrap();
        match &self.head {
            Some(d) => matvec(&d.weight, h.len(), h, &d.bias),
            None => h.clone(),
        }
    }

    pub fn output(&self, st: &FState) -> Vec<f64> {
        let mut y = self.logits(st);
        match self.act {
            OutputAct::Identity => {}
            OutputAct::Sigmoid => y.iter_mut().for_each(|v| *v = sigmoid(*v)),
            OutputAct::Tanh => y.iter_mut().for_each(|v| *v = v.tanh()),
            OutputAct::Softmax => {
                let m = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = y.iter().map(|v| (v - m).exp()).sum();
                y.iter_mut().for_each(|v| *v = (*v - m).exp() / s);
            }
        }
        y
    }

    /// Outputs after every frame, from the initial state.
    pub fn run(&self, frames: &[Vec<f32>]) -> Vec<Vec<f64>> {
        let mut st = self.init_state();
        frames
            .iter()
            .map(|f| {
                self.step(&mut st, f);
                self.output(&st)
            })
            .collect()
    }

    /// States after every frame.
    pub fn run_states(&self, frames: &[Vec<f32>]) -> Vec<FState> {
        let mut st = self.init_state();
        frames
            .iter()
            .map(|f| {
                self.step(&mut st, f);
                st.clone()
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Quantizer
// ---------------------------------------------------------------------------------------

/// Fractional bits of an i16 format holding `max_abs` (with headroom for the sign).
pub fn frac_for(max_abs: f64) -> u8 {
    if max_abs <= 0.0 {
        return 15;
    }
    (14 - max_abs.log2().floor() as i32).clamp(0, 15) as u8
}

/// `factor = mult / 2^shift` with `mult ∈ [2^30, 2^31)`.
pub fn requant(factor: f64) -> Requant {
    assert!(factor > 0.0 && factor.is_finite());
    let mut e = factor.log2().floor() as i32;
    let mut mult = (factor / 2f64.powi(e) * (1u64 << 30) as f64).round() as i64;
    if mult >= 1 << 31 {
        mult = 1 << 30;
        e += 1;
    }
    let shift = 30 - e;
    assert!(
        (1..=62).contains(&shift),
        "factor {factor} needs shift {shift}"
    );
    Requant {
        mult: mult as i32,
        shift: shift as u8,
    }
}

fn push_requant(out: &mut Vec<u8>, r: Requant) {
    out.extend_from_slice(&r.mult.to_le_bytes());
    out.push(r.shift);
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Weights of `rows × cols` (row-major, unpadded) in precision `p`, padded rows; returns the
/// bytes and the per-row scales (1.0 for f32).
pub fn quant_matrix(w: &[f32], cols: usize, p: Precision) -> (Vec<u8>, Vec<f64>) {
    let cp = pad4(cols);
    let mut bytes = Vec::new();
    let mut scales = Vec::new();
    for row in w.chunks(cols) {
        match p {
            Precision::F32 => {
                let mut r = row.to_vec();
                r.resize(cp, 0.0);
                bytes.extend(f32_bytes(&r));
                scales.push(1.0);
            }
            Precision::Int16 | Precision::Int8 => {
                let qmax = if p == Precision::Int8 { 127.0 } else { 32767.0 };
                let m = row.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
                let s = if m > 0.0 { m / qmax } else { 1.0 };
                let q: Vec<i32> = row
                    .iter()
                    .map(|&v| (v as f64 / s).round().clamp(-qmax, qmax) as i32)
                    .chain(std::iter::repeat(0))
                    .take(cp)
                    .collect();
                if p == Precision::Int8 {
                    for blk in q.chunks(4) {
                        bytes.extend([blk[0], blk[2], blk[1], blk[3]].map(|v| v as i8 as u8));
                    }
                } else {
                    for v in q {
                        bytes.extend((v as i16).to_le_bytes());
                    }
                }
                scales.push(s);
            }
        }
    }
    (bytes, scales)
}

/// Biases at accumulator scale `acc_scale[r]` (int8: i32, int16: i64, f32: f32).
fn quant_bias(b: &[f32], acc_scale: &[f64], p: Precision) -> Vec<u8> {
    match p {
        Precision::F32 => f32_bytes(b),
        Precision::Int8 => b
            .iter()
            .zip(acc_scale)
            .flat_map(|(&v, &s)| {
                ((v as f64 / s)
                    .round()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32)
                    .to_le_bytes()
            })
            .collect(),
        Precision::Int16 => b
            .iter()
            .zip(acc_scale)
            .flat_map(|(&v, &s)| ((v as f64 / s).round() as i64).to_le_bytes())
            .collect(),
    }
}

struct OwnedLayer {
    cell: CellKind,
    input: u16,
    hidden: u16,
    x_frac: u8,
    h_frac: u8,
    p_frac: u8,
    t: [Vec<u8>; 9], // w_ih, w_hh, b_ih, b_hh, rq_ih, rq_hh, peephole, h0, c0
}

/// Ranges seen by the f64 reference on calibration frames.
struct Ranges {
    x0: f64,
    h: Vec<f64>,
    logits: f64,
}

fn calibrate(m: &FModel, calib: &[Vec<f32>]) -> Ranges {
    let mut r = Ranges {
        x0: 0.0,
        h: vec![0.0; m.layers.len()],
        logits: 0.0,
    };
    let mut st = m.init_state();
    let amax = |v: &[f64]| v.iter().fold(0f64, |a, &x| a.max(x.abs()));
    for f in calib {
        r.x0 = r.x0.max(amax(&m.normalize(f)));
        m.step(&mut st, f);
        for (k, h) in st.h.iter().enumerate() {
            r.h[k] = r.h[k].max(amax(h));
        }
        r.logits = r.logits.max(amax(&m.logits(&st)));
    }
    r
}

/// Builds a blob of `m` in precision `p`; Q formats from the ranges on `calib` frames
/// (ReLU `h`, layer-0 input, identity-head output), with ~12% headroom.
pub fn blob(m: &FModel, p: Precision, calib: &[Vec<f32>]) -> Vec<u8> {
    let rg = calibrate(m, calib);
    let int = p.is_int();
    let mut layers = Vec::new();
    let mut x_frac = frac_for(rg.x0 * 1.125);
    for (k, l) in m.layers.iter().enumerate() {
        let h_frac = match l.cell {
            CellKind::Rnn(RnnAct::Relu) => frac_for(rg.h[k] * 1.125),
            _ => 15,
        };
        // pre-activation target: Q.12 for gates, h_frac for relu
        let target = match l.cell {
            CellKind::Rnn(RnnAct::Relu) => h_frac as i32,
            _ => 12,
        };
        let (w_ih, s_ih) = quant_matrix(&l.w_ih, l.input, p);
        let (w_hh, s_hh) = quant_matrix(&l.w_hh, l.hidden, p);
        let acc_ih: Vec<f64> = s_ih
            .iter()
            .map(|s| s * 2f64.powi(-(x_frac as i32)))
            .collect();
        let acc_hh: Vec<f64> = s_hh
            .iter()
            .map(|s| s * 2f64.powi(-(h_frac as i32)))
            .collect();
        let (mut rq_ih, mut rq_hh) = (Vec::new(), Vec::new());
        if int {
            for s in &acc_ih {
                push_requant(&mut rq_ih, requant(s * 2f64.powi(target)));
            }
            for s in &acc_hh {
                push_requant(&mut rq_hh, requant(s * 2f64.powi(target)));
            }
        }
        let mut p_frac = 0;
        let peephole = match &l.peephole {
            None => Vec::new(),
            Some(pv) if !int => f32_bytes(pv),
            Some(pv) => {
                p_frac = frac_for(pv.iter().fold(0f64, |a, &x| a.max((x as f64).abs())));
                pv.iter()
                    .flat_map(|&v| {
                        ((v as f64 * 2f64.powi(p_frac as i32)).round() as i16).to_le_bytes()
                    })
                    .collect()
            }
        };
        let h0 = match &l.h0 {
            None => Vec::new(),
            Some(v) if !int => f32_bytes(v),
            Some(v) => v
                .iter()
                .flat_map(|&x| tinyrnn::fxp::quantize_f32(x, h_frac as u32).to_le_bytes())
                .collect(),
        };
        let c0 = match &l.c0 {
            None => Vec::new(),
            Some(v) if !int => f32_bytes(v),
            Some(v) => v
                .iter()
                .flat_map(|&x| ((x as f64 * 32768.0).round() as i32).to_le_bytes())
                .collect(),
        };
        layers.push(OwnedLayer {
            cell: l.cell,
            input: l.input as u16,
            hidden: l.hidden as u16,
            x_frac: if int { x_frac } else { 0 },
            h_frac: if int { h_frac } else { 0 },
            p_frac,
            t: [
                w_ih,
                w_hh,
                quant_bias(&l.b_ih, &acc_ih, p),
                quant_bias(&l.b_hh, &acc_hh, p),
                rq_ih,
                rq_hh,
                peephole,
                h0,
                c0,
            ],
        });
        x_frac = h_frac;
    }
    let last_frac = x_frac;
    let mut output_frac = if int { last_frac } else { 0 };
    let head = m.head.as_ref().map(|d| {
        let in_size = m.layers.last().unwrap().hidden;
        let (w, s) = quant_matrix(&d.weight, in_size, p);
        let acc: Vec<f64> = s
            .iter()
            .map(|s| s * 2f64.powi(-(last_frac as i32)))
            .collect();
        let mut rq = Vec::new();
        if int {
            let target = if m.act == OutputAct::Identity {
                output_frac = frac_for(rg.logits * 1.125);
                output_frac as i32
            } else {
                output_frac = 15;
                12
            };
            for s in &acc {
                push_requant(&mut rq, requant(s * 2f64.powi(target)));
            }
        }
        (
            d.out as u16,
            in_size as u16,
            w,
            quant_bias(&d.bias, &acc, p),
            rq,
        )
    });
    let norm = m.norm.as_ref().map(|(o, s)| (f32_bytes(o), f32_bytes(s)));

    let mut desc = ModelDesc {
        precision: p,
        input_size: m.input as u16,
        norm: norm.as_ref().map(|(o, s)| NormDesc {
            offset: o,
            scale: s,
        }),
        pre: heapless::Vec::new(),
        layers: heapless::Vec::new(),
        pool: tinyrnn::Pool::Last,
        pool_frac: 0,
        mlp: heapless::Vec::new(),
        head: head.as_ref().map(|(out, ins, w, b, rq)| DenseDesc {
            out_size: *out,
            in_size: *ins,
            weight: w,
            bias: b,
            rq,
        }),
        output_act: m.act,
        output_frac,
        name: "testutil",
    };
    for l in &layers {
        let [w_ih, w_hh, b_ih, b_hh, rq_ih, rq_hh, peephole, h0, c0] = &l.t;
        desc.layers
            .push(LayerDesc {
                cell: l.cell,
                input_size: l.input,
                hidden_size: l.hidden,
                x_frac: l.x_frac,
                h_frac: l.h_frac,
                w_ih,
                w_hh,
                b_ih,
                b_hh,
                rq_ih,
                rq_hh,
                peephole,
                p_frac: l.p_frac,
                h0,
                c0,
                proj_size: 0,
                w_hr: &[],
                rq_hr: &[],
                cell_clip: &[],
                direction: tinyrnn::Direction::Forward,
                backward: None,
            })
            .unwrap();
    }
    let mut buf = vec![0u8; 1 << 20];
    let n = write_blob(&desc, &mut buf).expect("blob fits");
    buf.truncate(n);
    buf
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// candle-nn's PyTorch-checked LSTM / GRU (input 2, hidden 3), see candle-nn/tests/rnn.rs:
/// `weight_ih = cos(arange)`, `weight_hh = sin(arange)`,
/// `bias_ih = [-1, 1, -0.5, 2, …]`, `bias_hh = cos(bias_ih)`.
pub fn candle_layer(cell: CellKind) -> FLayer {
    let g = cell.gates();
    let b: Vec<f32> = [-1.0f32, 1.0, -0.5, 2.0]
        .iter()
        .cycle()
        .take(3 * g)
        .copied()
        .collect();
    FLayer {
        cell,
        input: 2,
        hidden: 3,
        w_ih: (0..6 * g).map(|i| (i as f32).cos()).collect(),
        w_hh: (0..9 * g).map(|i| (i as f32).sin()).collect(),
        b_hh: b.iter().map(|v| v.cos()).collect(),
        b_ih: b,
        peephole: None,
        h0: None,
        c0: None,
    }
}

/// The candle input sequence: `[x, x/2]` for x in 3, 1, 4, 1, 5, 9, 2.
pub fn candle_inputs() -> Vec<Vec<f32>> {
    [3.0f32, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
        .iter()
        .map(|&x| vec![x, x * 0.5])
        .collect()
}

pub fn single_layer(l: FLayer) -> FModel {
    FModel {
        input: l.input,
        norm: None,
        layers: vec![l],
        head: None,
        act: OutputAct::Identity,
    }
}

/// Random frames, uniform in ±`scale`.
pub fn frames(rng: &mut Rng, n: usize, width: usize, scale: f32) -> Vec<Vec<f32>> {
    (0..n).map(|_| rng.vec(width, scale)).collect()
}

/// Decodes an integer or f32 state slice of one layer as f64: h (`h_frac`) and c (Q16.15).
pub fn decode_state(
    state: &[i32],
    p: Precision,
    h_frac: u8,
    hidden: usize,
    lstm: bool,
) -> (Vec<f64>, Vec<f64>) {
    let dec = |w: i32, frac: u32| {
        if p.is_int() {
            w as f64 / 2f64.powi(frac as i32)
        } else {
            f32::from_bits(w as u32) as f64
        }
    };
    let h = state[..hidden]
        .iter()
        .map(|&w| dec(w, h_frac as u32))
        .collect();
    let c = if lstm {
        state[hidden..2 * hidden]
            .iter()
            .map(|&w| dec(w, 15))
            .collect()
    } else {
        vec![]
    };
    (h, c)
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// Runs `frames` through a blob of `m` in precision `p` and returns, after every frame,
/// every layer's decoded `(h, c)`.
pub fn session_states(
    m: &FModel,
    p: Precision,
    math: tinyrnn::F32Math,
    calib: &[Vec<f32>],
    frames: &[Vec<f32>],
) -> Vec<Vec<(Vec<f64>, Vec<f64>)>> {
    let blob = blob(m, p, calib);
    let model = tinyrnn::Model::from_blob(&blob).expect("valid blob");
    let mut s = tinyrnn::Session::<2048, 1024>::new(&model).unwrap();
    s.set_f32_math(math).unwrap();
    frames
        .iter()
        .map(|f| {
            s.step(f).unwrap();
            let mut off = 0;
            model
                .layers()
                .iter()
                .map(|l| {
                    let lstm = matches!(l.cell, CellKind::Lstm { .. });
                    let hsz = l.hidden_size as usize;
                    let st = decode_state(&s.state()[off..], p, l.h_frac, hsz, lstm);
                    off += if lstm { 2 * hsz } else { hsz };
                    st
                })
                .collect()
        })
        .collect()
}

/// Max |error| of `h` and of `c` over all steps, layers and units, session vs f64 reference.
pub fn state_errors(
    m: &FModel,
    p: Precision,
    math: tinyrnn::F32Math,
    calib: &[Vec<f32>],
    frames: &[Vec<f32>],
) -> (f64, f64) {
    let got = session_states(m, p, math, calib, frames);
    let want = m.run_states(frames);
    let (mut eh, mut ec) = (0f64, 0f64);
    for (g, w) in got.iter().zip(&want) {
        for (k, (h, c)) in g.iter().enumerate() {
            eh = eh.max(max_abs_diff(h, &w.h[k]));
            if !c.is_empty() {
                ec = ec.max(max_abs_diff(c, &w.c[k]));
            }
        }
    }
    (eh, ec)
}

// ---------------------------------------------------------------------------------------
// Spec simulator: DESIGN.md's integer arithmetic, written naively (unpadded matrices,
// i64/i128 arithmetic, explicit indices) to check the runtime bit for bit.
// ---------------------------------------------------------------------------------------

pub mod spec {
    use tinyrnn::activation::{exp_q, sigmoid_q, tanh_q};
    use tinyrnn::fxp::{mul_q15, sat_i16, sat_i32, Requant};
    use tinyrnn::model::{pad4, CellKind, LayerDesc, Model, OutputAct, Precision, RnnAct};

    /// Weight `[r][j]` of a padded integer matrix.
    fn weight(bytes: &[u8], p: Precision, cols: usize, r: usize, j: usize) -> i64 {
        let cp = pad4(cols);
        match p {
            Precision::Int8 => {
                let pos = [0, 2, 1, 3][j % 4];
                bytes[r * cp + (j / 4) * 4 + pos] as i8 as i64
            }
            _ => i16::from_le_bytes([bytes[2 * (r * cp + j)], bytes[2 * (r * cp + j) + 1]]) as i64,
        }
    }

    fn bias(bytes: &[u8], p: Precision, r: usize) -> i64 {
        match p {
            Precision::Int8 => {
                i32::from_le_bytes(bytes[4 * r..4 * r + 4].try_into().unwrap()) as i64
            }
            _ => i64::from_le_bytes(bytes[8 * r..8 * r + 8].try_into().unwrap()),
        }
    }

    /// `rq[r].apply(b[r] ⊕ Σ_j W[r,j]·v[j])` with the accumulator width of `p`.
    fn pre(w: &[u8], b: &[u8], rq: &[u8], p: Precision, cols: usize, r: usize, v: &[i16]) -> i32 {
        let dot: i64 = (0..cols)
            .map(|j| weight(w, p, cols, r, j) * v[j] as i64)
            .sum();
        let rq = Requant::read(rq, r);
        match p {
            Precision::Int8 => rq.apply((dot as i32).saturating_add(bias(b, p, r) as i32)),
            _ => rq.apply_wide(dot.saturating_add(bias(b, p, r))),
        }
    }

    fn round_div(v: i64, s: u32) -> i64 {
        (v + (1 << (s - 1))) >> s
    }

    /// One layer step on `x`; `h` (i16 values, `P` of them for a projected LSTM) and `c`
    /// (Q16.15) updated.
    pub fn layer_step(l: &LayerDesc<'_>, p: Precision, x: &[i16], h: &mut [i16], c: &mut [i32]) {
        let (ni, nh) = (l.input_size as usize, l.hidden_size as usize);
        let pre_ih = |r: usize| pre(l.w_ih, l.b_ih, l.rq_ih, p, ni, r, x);
        let hp = h.to_vec();
        let hw = hp.len();
        let pre_hh = |r: usize, v: &[i16]| pre(l.w_hh, l.b_hh, l.rq_hh, p, v.len(), r, v);
        let full = |r: usize| pre_ih(r).saturating_add(pre_hh(r, &hp));
        match l.cell {
            CellKind::Rnn(RnnAct::Tanh) => (0..nh).for_each(|j| h[j] = tanh_q(full(j))),
            CellKind::Rnn(RnnAct::Relu) => (0..nh).for_each(|j| h[j] = sat_i16(full(j).max(0))),
            CellKind::Gru {
                linear_before_reset,
            } => {
                let r: Vec<i16> = (0..nh).map(|j| sigmoid_q(full(j))).collect();
                let z: Vec<i16> = (0..nh).map(|j| sigmoid_q(full(nh + j))).collect();
                let rh: Vec<i16> = (0..nh)
                    .map(|j| round_div(r[j] as i64 * hp[j] as i64, 15) as i16)
                    .collect();
                for j in 0..nh {
                    let n = if linear_before_reset {
                        tanh_q(
                            pre_ih(2 * nh + j)
                                .saturating_add(mul_q15(pre_hh(2 * nh + j, &hp), r[j])),
                        )
                    } else {
                        tanh_q(pre_ih(2 * nh + j).saturating_add(pre_hh(2 * nh + j, &rh)))
                    } as i32;
                    h[j] = sat_i16(n + mul_q15(hp[j] as i32 - n, z[j]));
                }
            }
            CellKind::Lstm { peepholes } => {
                let pf = l.p_frac as u32 + 3;
                let clip = (!l.cell_clip.is_empty())
                    .then(|| i32::from_le_bytes(l.cell_clip.try_into().unwrap()));
                let mut m = vec![0i16; nh];
                let peep = |k: usize, j: usize, c: i32| -> i32 {
                    if !peepholes {
                        return 0;
                    }
                    let o = 2 * (k * nh + j);
                    let w = i16::from_le_bytes([l.peephole[o], l.peephole[o + 1]]) as i64;
                    sat_i32(round_div(w * c as i64, pf))
                };
                for j in 0..nh {
                    let cp = c[j];
                    let i = sigmoid_q(full(j).saturating_add(peep(0, j, cp)));
                    let f = sigmoid_q(full(nh + j).saturating_add(peep(1, j, cp)));
                    let g = tanh_q(full(2 * nh + j));
                    let mut cn = sat_i32(
                        round_div(f as i64 * cp as i64, 15) + round_div(i as i64 * g as i64, 15),
                    );
                    if let Some(k) = clip {
                        cn = cn.clamp(-k, k);
                    }
                    let o = sigmoid_q(full(3 * nh + j).saturating_add(peep(2, j, cn)));
                    c[j] = cn;
                    let t = tanh_q(round_div(cn as i64, 3) as i32);
                    m[j] = round_div(o as i64 * t as i64, 15) as i16;
                }
                if l.proj_size == 0 {
                    h.copy_from_slice(&m);
                } else {
                    // h_p = sat_i16(rq_hr[p].apply(Σ W_hr[p,j]·m_j)), no bias
                    let zero = vec![0u8; 8 * hw];
                    for (q, h_q) in h.iter_mut().enumerate() {
                        *h_q = sat_i16(pre(l.w_hr, &zero, l.rq_hr, p, nh, q, &m));
                    }
                }
            }
        }
    }

    /// DESIGN.md's integer GELU, written from the equations (i128, the tables only).
    fn gelu(x: i32, y_frac: u32, tanh_form: bool) -> i16 {
        use tinyrnn::activation::{GELU_LUT, TANH_LUT};
        // linear interpolation at `u / 2^fb` table steps, saturating at 2^16 from the last node
        let interp = |lut: &[u16], u: i128, fb: u32| -> i128 {
            let k = (u >> fb) as usize;
            if k + 1 >= lut.len() {
                return 65536 << fb;
            }
            let fr = u & ((1 << fb) - 1);
            ((lut[k] as i128) << fb) + (lut[k + 1] as i128 - lut[k] as i128) * fr
        };
        let a = (x as i128).abs();
        let (t, fb) = if tanh_form {
            let k = (((2.0 / std::f64::consts::PI).sqrt() * 2f64.powi(32)).round()) as i128;
            let c =
                ((0.044715 * (2.0 / std::f64::consts::PI).sqrt() * 2f64.powi(32)).round()) as i128;
            let ac = a.min(1 << 15);
            let m = k + ((ac * ac * c) >> 24);
            let u = (ac * m + (1 << 25)) >> 26;
            (interp(&TANH_LUT, u, 12), 12)
        } else {
            (interp(&GELU_LUT, a, 6), 6)
        };
        let p = if x < 0 {
            (1 << (16 + fb)) - t
        } else {
            (1 << (16 + fb)) + t
        };
        let v = if x < 0 { -a * p } else { a * p };
        let s = 29 + fb - y_frac;
        ((v + (1 << (s - 1))) >> s).clamp(-32768, 32767) as i16
    }

    /// One pre-net / hidden head dense op (format 2) on `x`.
    pub fn op_step(op: &tinyrnn::model::OpDesc<'_>, p: Precision, x: &[i16]) -> Vec<i16> {
        use tinyrnn::model::{DenseAct, OpDesc};
        let OpDesc::Dense(d) = op;
        let n = d.dense.in_size as usize;
        let f = d.y_frac as u32;
        (0..d.dense.out_size as usize)
            .map(|r| {
                let y = pre(d.dense.weight, d.dense.bias, d.dense.rq, p, n, r, x);
                match d.act {
                    DenseAct::Relu => sat_i16(y).max(0),
                    DenseAct::Clip { lo, hi } => {
                        let q = |v: f32| tinyrnn::fxp::quantize_f32(v, f);
                        sat_i16(y).clamp(q(lo), q(hi))
                    }
                    DenseAct::LeakyRelu { alpha } => {
                        let v = sat_i16(y) as i64;
                        if v >= 0 {
                            v as i16
                        } else {
                            let a = (alpha as f64 * 32768.0).round() as i64;
                            round_div(v * a, 15) as i16
                        }
                    }
                    DenseAct::Tanh => tanh_q(y),
                    DenseAct::Sigmoid => sigmoid_q(y),
                    DenseAct::Gelu => gelu(y, f, false),
                    DenseAct::GeluTanh => gelu(y, f, true),
                    DenseAct::Identity => sat_i16(y),
                }
            })
            .collect()
    }

    /// Spec state: per layer h and c, and the pooling accumulators.
    pub struct State {
        pub h: Vec<Vec<i16>>,
        pub c: Vec<Vec<i32>>,
        /// Max: the maxima; Sum/Mean: the sums.
        pub acc: Vec<i64>,
        /// Frames pooled.
        pub n: u64,
    }

    impl State {
        pub fn new(m: &Model<'_>) -> State {
            let w = m.pooled_size();
            State {
                h: m.layers()
                    .iter()
                    .map(|l| {
                        let n = l.h_size();
                        if l.h0.is_empty() {
                            vec![0; n]
                        } else {
                            l.h0.chunks(2)
                                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                                .collect()
                        }
                    })
                    .collect(),
                c: m.layers()
                    .iter()
                    .map(|l| {
                        let n = l.hidden_size as usize;
                        if l.c0.is_empty() {
                            vec![0; n]
                        } else {
                            l.c0.chunks(4)
                                .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
                                .collect()
                        }
                    })
                    .collect(),
                acc: match m.pool() {
                    tinyrnn::Pool::Max => vec![i16::MIN as i64; w],
                    _ => vec![0; w],
                },
                n: 0,
            }
        }

        /// One frame `x` (quantized to `m.input_frac()`): pre-net, layers, pooling.
        pub fn step(&mut self, m: &Model<'_>, x: &[i16]) {
            let mut x = x.to_vec();
            for op in m.pre() {
                x = op_step(op, m.precision(), &x);
            }
            for (k, l) in m.layers().iter().enumerate() {
                layer_step(l, m.precision(), &x, &mut self.h[k], &mut self.c[k]);
                x = self.h[k].clone();
            }
            for (a, &v) in self.acc.iter_mut().zip(&x) {
                match m.pool() {
                    tinyrnn::Pool::Max => *a = (*a).max(v as i64),
                    tinyrnn::Pool::Last | tinyrnn::Pool::FinalStates => {}
                    _ => *a += v as i64,
                }
            }
            self.n += 1;
        }

        /// The session's state words.
        pub fn words(&self, m: &Model<'_>) -> Vec<i32> {
            let mut v = Vec::new();
            for (k, l) in m.layers().iter().enumerate() {
                v.extend(self.h[k].iter().map(|&x| x as i32));
                if matches!(l.cell, CellKind::Lstm { .. }) {
                    v.extend(&self.c[k]);
                }
            }
            match m.pool() {
                tinyrnn::Pool::Last | tinyrnn::Pool::FinalStates => {}
                tinyrnn::Pool::Max => v.extend(self.acc.iter().map(|&a| a as i32)),
                pool => {
                    for &a in &self.acc {
                        v.push(a as i32);
                        v.push((a >> 32) as i32);
                    }
                    if pool == tinyrnn::Pool::Mean {
                        v.push(self.n as i32);
                        v.push((self.n >> 32) as i32);
                    }
                }
            }
            v
        }

        /// The pooled vector, then every hidden head op.
        pub fn head_input(&self, m: &Model<'_>) -> Vec<i16> {
            mlp(m, self.pooled(m))
        }

        /// The pooled vector.
        pub fn pooled(&self, m: &Model<'_>) -> Vec<i16> {
            let hf = m.layers().last().unwrap().h_frac as u32;
            let v: Vec<i16> = match m.pool() {
                tinyrnn::Pool::Last | tinyrnn::Pool::FinalStates => self.h.last().unwrap().clone(),
                tinyrnn::Pool::Max => self.acc.iter().map(|&a| a as i16).collect(),
                tinyrnn::Pool::Mean => self
                    .acc
                    .iter()
                    .map(|&a| {
                        let n = self.n as i128;
                        // floor((2a + n) / 2n): round half up
                        let q = (2 * a as i128 + n).div_euclid(2 * n);
                        q.clamp(i16::MIN as i128, i16::MAX as i128) as i16
                    })
                    .collect(),
                tinyrnn::Pool::Sum => {
                    let s = hf - m.desc().pool_frac as u32;
                    self.acc
                        .iter()
                        .map(|&a| {
                            let q = if s == 0 { a } else { round_div(a, s) };
                            q.clamp(i16::MIN as i64, i16::MAX as i64) as i16
                        })
                        .collect()
                }
            };
            v
        }

        pub fn output(&self, m: &Model<'_>) -> Vec<i16> {
            head_output(m, self.pooled(m))
        }
    }

    /// Every hidden head op on the pooled vector.
    pub fn mlp(m: &Model<'_>, mut v: Vec<i16>) -> Vec<i16> {
        for op in m.mlp() {
            v = op_step(op, m.precision(), &v);
        }
        v
    }

    /// The hidden head ops, the head and the output activation on the pooled vector.
    pub fn head_output(m: &Model<'_>, pooled: Vec<i16>) -> Vec<i16> {
        {
            let h = &mlp(m, pooled);
            let d = m.desc();
            let Some(head) = &d.head else {
                return h.clone();
            };
            let p = m.precision();
            let n = head.in_size as usize;
            let y: Vec<i32> = (0..head.out_size as usize)
                .map(|r| pre(head.weight, head.bias, head.rq, p, n, r, h))
                .collect();
            match d.output_act {
                OutputAct::Identity => y.iter().map(|&v| sat_i16(v)).collect(),
                OutputAct::Sigmoid => y.iter().map(|&v| sigmoid_q(v)).collect(),
                OutputAct::Tanh => y.iter().map(|&v| tanh_q(v)).collect(),
                OutputAct::Softmax => {
                    let m = *y.iter().max().unwrap();
                    let e: Vec<u64> = y
                        .iter()
                        .map(|&v| exp_q(v.saturating_sub(m)) as u64)
                        .collect();
                    let s: u64 = e.iter().sum();
                    e.iter()
                        .map(|&e| ((e * 32768 + s / 2) / s).min(32767) as i16)
                        .collect()
                }
            }
        }
    }

    /// One direction's initial `(h, c)`.
    fn initial(l: &LayerDesc<'_>) -> (Vec<i16>, Vec<i32>) {
        let n = l.hidden_size as usize;
        // h is `P` wide for a projected LSTM
        let h = if l.h0.is_empty() {
            vec![0; l.h_size()]
        } else {
            l.h0.chunks(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        };
        let c = if l.c0.is_empty() {
            vec![0; n]
        } else {
            l.c0.chunks(4)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        (h, c)
    }

    /// A whole window of quantized frames (`m.input_frac()`) through a windowed model, the
    /// spec of `Session::step_window` + `output_window_q`: pre-net per frame, every layer
    /// over the whole window (reverse from the last frame, bidirectional `[fwd; bwd]`),
    /// pooling over the last layer's output sequence (`FinalStates`: `[fwd_{T−1}; bwd_0]`),
    /// hidden head, head.
    pub fn run_window(m: &Model<'_>, xs: &[Vec<i16>]) -> Vec<i16> {
        let p = m.precision();
        let mut seq: Vec<Vec<i16>> = xs
            .iter()
            .map(|x| {
                let mut x = x.clone();
                for op in m.pre() {
                    x = op_step(op, p, &x);
                }
                x
            })
            .collect();
        let n = seq.len();
        for l in m.layers() {
            let hs = l.hidden_size as usize;
            let mut out = vec![Vec::new(); n];
            let dirs: Vec<(LayerDesc<'_>, bool)> = match l.direction {
                tinyrnn::Direction::Forward => vec![(*l, false)],
                tinyrnn::Direction::Reverse => vec![(*l, true)],
                tinyrnn::Direction::Bidirectional => {
                    vec![(*l, false), (l.backward_layer().unwrap(), true)]
                }
            };
            for (d, rev) in dirs {
                let (mut h, mut c) = initial(&d);
                let order: Vec<usize> = if rev {
                    (0..n).rev().collect()
                } else {
                    (0..n).collect()
                };
                for t in order {
                    layer_step(&d, p, &seq[t], &mut h, &mut c);
                    out[t].extend_from_slice(&h);
                }
                let _ = hs;
            }
            seq = out;
        }
        let last = m.layers().last().unwrap();
        let w = m.pooled_size();
        let lh = last.h_size(); // `P` for a projected LSTM
        let pooled: Vec<i16> = (0..w)
            .map(|j| {
                if n == 0 {
                    return 0;
                }
                match m.pool() {
                    tinyrnn::Pool::Last => seq[n - 1][j],
                    tinyrnn::Pool::FinalStates => match last.direction {
                        tinyrnn::Direction::Reverse => seq[0][j],
                        tinyrnn::Direction::Bidirectional if j >= lh => seq[0][j],
                        _ => seq[n - 1][j],
                    },
                    tinyrnn::Pool::Max => seq.iter().map(|v| v[j]).max().unwrap(),
                    tinyrnn::Pool::Mean => {
                        let a: i128 = seq.iter().map(|v| v[j] as i128).sum();
                        let n = n as i128;
                        let q = (2 * a + n).div_euclid(2 * n);
                        q.clamp(i16::MIN as i128, i16::MAX as i128) as i16
                    }
                    tinyrnn::Pool::Sum => {
                        let a: i64 = seq.iter().map(|v| v[j] as i64).sum();
                        let s = last.h_frac as u32 - m.desc().pool_frac as u32;
                        let q = if s == 0 { a } else { round_div(a, s) };
                        q.clamp(i16::MIN as i64, i16::MAX as i64) as i16
                    }
                }
            })
            .collect();
        head_output(m, pooled)
    }
}

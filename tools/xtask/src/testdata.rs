//! `cargo xtask make-test-blob`: the bring-up model and recording in `boards/qemu-common/data/`.
//!
//! Everything is generated from a fixed seed, so re-running it reproduces the committed
//! files byte for byte. The model is a small int8 LSTM classifier shaped like the
//! JapaneseVowels one (12 features in, 9 classes out) with input normalization and a dense
//! head; its weights are random, its requantization factors chosen so that gate
//! pre-activations land around ±1–4 (the activations are neither stuck nor saturated).

use std::fs;
use std::path::Path;

use tinyrnn::fxp::Requant;
use tinyrnn::model::{pad4, write_blob, DenseDesc, LayerDesc, ModelDesc, NormDesc};
use tinyrnn::{CellKind, OutputAct, Precision};

use crate::Result;
use tinyrnn_host_npy as npy;

const INPUT: usize = 12;
const HIDDEN: usize = 16;
const CLASSES: usize = 9;
const N_SEQ: usize = 8;
const MAX_LEN: usize = 24;
const X_FRAC: u8 = 11;
const OUT_FRAC: u8 = 8;

/// splitmix64: a tiny deterministic generator (no dependency, same on every host).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform integer in `lo..=hi`.
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    /// Uniform in `[-1, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// `rows × cols` random int8 weights, rows padded to `pad4(cols)` with zeros, each block of
/// four columns stored `c0, c2, c1, c3` (the blob's int8 layout).
fn weights(rng: &mut Rng, rows: usize, cols: usize) -> Vec<u8> {
    let cp = pad4(cols);
    let mut out = Vec::with_capacity(rows * cp);
    for _ in 0..rows {
        let row: Vec<i8> = (0..cp)
            .map(|c| if c < cols { rng.int(-80, 80) as i8 } else { 0 })
            .collect();
        for b in row.chunks_exact(4) {
            out.extend([b[0], b[2], b[1], b[3]].map(|v| v as u8));
        }
    }
    out
}

fn biases(rng: &mut Rng, rows: usize, mag: i64) -> Vec<u8> {
    (0..rows)
        .flat_map(|_| (rng.int(-mag, mag) as i32).to_le_bytes())
        .collect()
}

/// Requant records `mult / 2^shift` with `mult ∈ [2^30, 2^31)`.
fn requants(rng: &mut Rng, rows: usize, shift: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * Requant::BYTES);
    for _ in 0..rows {
        let mult = rng.int(1 << 30, (1 << 31) - 1) as i32;
        out.extend(mult.to_le_bytes());
        out.push(shift);
    }
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `model.trnn`, `recording.npy`, `lengths.npy`, `labels.npy` into `dir`.
pub fn make(dir: &Path) -> Result<()> {
    let mut rng = Rng(0x7E57_B10B);
    let rows = 4 * HIDDEN;
    let (w_ih, w_hh) = (
        weights(&mut rng, rows, INPUT),
        weights(&mut rng, rows, HIDDEN),
    );
    let (b_ih, b_hh) = (
        biases(&mut rng, rows, 150_000),
        biases(&mut rng, rows, 600_000),
    );
    // |Σ w·x| ~ 80·2^11·√12/2 ≈ 3e5 → ×2^-7 ≈ 2300 (≈0.6 in Q.12), likewise for W_hh·h.
    let (rq_ih, rq_hh) = (requants(&mut rng, rows, 37), requants(&mut rng, rows, 39));
    let head_w = weights(&mut rng, CLASSES, HIDDEN);
    let head_b = biases(&mut rng, CLASSES, 1_000_000);
    let head_rq = requants(&mut rng, CLASSES, 43);
    let offset: Vec<f32> = (0..INPUT).map(|f| 0.25 * f as f32 - 1.0).collect();
    let scale: Vec<f32> = (0..INPUT).map(|f| 0.5 + 0.125 * (f % 4) as f32).collect();
    let (offset, scale) = (f32s(&offset), f32s(&scale));

    let layer = LayerDesc {
        cell: CellKind::Lstm { peepholes: false },
        input_size: INPUT as u16,
        hidden_size: HIDDEN as u16,
        x_frac: X_FRAC,
        h_frac: 15,
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: &b_ih,
        b_hh: &b_hh,
        rq_ih: &rq_ih,
        rq_hh: &rq_hh,
        peephole: &[],
        p_frac: 0,
        h0: &[],
        c0: &[],
        proj_size: 0,
        w_hr: &[],
        rq_hr: &[],
        cell_clip: &[],
        direction: tinyrnn::Direction::Forward,
        backward: None,
    };
    let mut layers = heapless::Vec::new();
    layers.push(layer).map_err(|_| "too many layers")?;
    let desc = ModelDesc {
        precision: Precision::Int8,
        input_size: INPUT as u16,
        norm: Some(NormDesc {
            offset: &offset,
            scale: &scale,
        }),
        pre: heapless::Vec::new(),
        layers,
        pool: tinyrnn::Pool::Last,
        pool_frac: 0,
        mlp: heapless::Vec::new(),
        head: Some(DenseDesc {
            out_size: CLASSES as u16,
            in_size: HIDDEN as u16,
            weight: &head_w,
            bias: &head_b,
            rq: &head_rq,
        }),
        output_act: OutputAct::Identity,
        output_frac: OUT_FRAC,
        name: "xtask make-test-blob (random int8 LSTM)",
    };
    let mut buf = vec![0u8; 64 * 1024];
    let n = write_blob(&desc, &mut buf).map_err(|e| format!("write_blob: {e}"))?;
    buf.truncate(n);
    tinyrnn::Model::from_blob(&buf).map_err(|e| format!("generated blob invalid: {e}"))?;

    // Recording: per feature a sinusoid with a random phase and frequency, plus noise, in the
    // raw (un-normalized) units the norm undoes; zero padding after each true length.
    let mut frames = vec![0f32; N_SEQ * MAX_LEN * INPUT];
    let mut lengths = Vec::new();
    let mut labels = Vec::new();
    for i in 0..N_SEQ {
        let len = rng.int(7, MAX_LEN as i64) as usize;
        lengths.push(len as i64);
        labels.push(rng.int(0, CLASSES as i64 - 1));
        let phase: Vec<f64> = (0..INPUT).map(|_| 3.0 * rng.unit()).collect();
        let freq: Vec<f64> = (0..INPUT).map(|_| 0.2 + 0.15 * rng.unit()).collect();
        for t in 0..len {
            for f in 0..INPUT {
                let v = 0.25 * f as f64 - 1.0
                    + 2.0 * (freq[f] * t as f64 + phase[f]).sin()
                    + 0.3 * rng.unit();
                frames[(i * MAX_LEN + t) * INPUT + f] = v as f32;
            }
        }
    }

    fs::create_dir_all(dir)?;
    fs::write(dir.join("model.trnn"), &buf)?;
    npy::write_f32(
        &dir.join("recording.npy"),
        &[N_SEQ, MAX_LEN, INPUT],
        &frames,
    )?;
    npy::write_i64(&dir.join("lengths.npy"), &lengths)?;
    npy::write_i64(&dir.join("labels.npy"), &labels)?;
    println!(
        "wrote {} ({n} bytes) and the recording ({N_SEQ} sequences)",
        dir.display()
    );
    Ok(())
}

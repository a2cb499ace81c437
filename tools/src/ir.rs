//! The host tool's float model: what every importer produces and the quantizer consumes,
//! plus the f64 reference implementation (ground truth for calibration and for `run` on
//! float models).
//!
//! Conventions: PyTorch gate order (LSTM `i, f, g, o`; GRU `r, z, n`), weights row-major and
//! unpadded (`w_ih` is `[gates·H, I]`, `w_hh` is `[gates·H, H]`), peepholes in order
//! `i, f, o`.

use tinyrnn::model::{CellKind, OutputAct};

/// One recurrent layer in float.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLayer {
    /// Cell and variant (the core's enum, so the two cannot drift).
    pub cell: CellKind,
    /// Input width.
    pub input_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// `[gates·H, I]` row-major.
    pub w_ih: Vec<f32>,
    /// `[gates·H, H]` row-major.
    pub w_hh: Vec<f32>,
    /// `[gates·H]`.
    pub b_ih: Vec<f32>,
    /// `[gates·H]`.
    pub b_hh: Vec<f32>,
    /// LSTM peepholes `[3·H]`, order `i, f, o`.
    pub peephole: Option<Vec<f32>>,
    /// Initial hidden state `[H]` (zeros if `None`).
    pub h0: Option<Vec<f32>>,
    /// Initial cell state `[H]` (LSTM; zeros if `None`).
    pub c0: Option<Vec<f32>>,
}

/// Dense head `y = W·h + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatDense {
    /// Output width.
    pub out_size: usize,
    /// Input width.
    pub in_size: usize,
    /// `[out, in]` row-major.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

/// Per-feature input normalization `x = (raw − offset) · scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm {
    /// Subtracted first (the training mean).
    pub offset: Vec<f32>,
    /// Multiplied second (1 / training std).
    pub scale: Vec<f32>,
}

/// A whole float model.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatModel {
    /// Features per frame.
    pub input_size: usize,
    /// Optional normalization applied to raw frames before the first layer.
    pub norm: Option<Norm>,
    /// Recurrent layers, input first.
    pub layers: Vec<FloatLayer>,
    /// Optional dense head.
    pub head: Option<FloatDense>,
    /// Activation on the final output.
    pub output_act: OutputAct,
    /// Where the model came from (file name).
    pub name: String,
}

/// What a calibration observer is shown at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The (normalized) input of layer `k`.
    Input,
    /// `W_ih·x + b_ih` rows of layer `k` (all gates, `[gates·H]`).
    PreIh,
    /// `W_hh·h + b_hh` rows of layer `k` (`[gates·H]`); for a reset-before GRU the `n`
    /// rows hold `W_hn·(r ⊙ h) + b_hn`.
    PreHh,
    /// Full gate pre-activations of layer `k` (what enters sigmoid/tanh/relu, peepholes included).
    Pre,
    /// New hidden state of layer `k`.
    Hidden,
    /// New cell state of layer `k` (LSTM).
    Cell,
    /// Head output before the output activation (`k` = number of layers).
    HeadPre,
    /// Final output after the output activation.
    Output,
}

/// Receives every intermediate vector of the reference run (for calibration).
pub trait Observer {
    /// Called with layer index `k`, the probe, and the values.
    fn observe(&mut self, k: usize, probe: Probe, values: &[f64]);
}

impl Observer for () {
    fn observe(&mut self, _: usize, _: Probe, _: &[f64]) {}
}

/// Recurrent state of the f64 reference: per layer `h` and `c`.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatState {
    /// `h` per layer.
    pub h: Vec<Vec<f64>>,
    /// `c` per layer (empty for non-LSTM).
    pub c: Vec<Vec<f64>>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn matvec(w: &[f32], rows: usize, cols: usize, x: &[f64], b: &[f32], out: &mut [f64]) {
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let mut acc = b[r] as f64;
        for (wi, xi) in row.iter().zip(x) {
            acc += *wi as f64 * xi;
        }
        out[r] = acc;
    }
}

impl FloatLayer {
    /// Number of gates of this layer's cell.
    pub fn gates(&self) -> usize {
        self.cell.gates()
    }

    /// One step of this layer in f64: updates `h` (and `c`) in place.
    pub fn step(&self, k: usize, x: &[f64], h: &mut [f64], c: &mut [f64], obs: &mut dyn Observer) {
        let (hs, g) = (self.hidden_size, self.gates());
        let rows = g * hs;
        let mut pre_ih = vec![0.0; rows];
        let mut pre_hh = vec![0.0; rows];
        obs.observe(k, Probe::Input, x);
        matvec(
            &self.w_ih,
            rows,
            self.input_size,
            x,
            &self.b_ih,
            &mut pre_ih,
        );
        matvec(&self.w_hh, rows, hs, h, &self.b_hh, &mut pre_hh);
        let mut pre = vec![0.0; rows];
        match self.cell {
            CellKind::Rnn(act) => {
                for j in 0..hs {
                    pre[j] = pre_ih[j] + pre_hh[j];
                    h[j] = match act {
                        tinyrnn::RnnAct::Tanh => pre[j].tanh(),
                        tinyrnn::RnnAct::Relu => pre[j].max(0.0),
                    };
                }
            }
            CellKind::Gru {
                linear_before_reset,
            } => {
                let mut r = vec![0.0; hs];
                for j in 0..hs {
                    pre[j] = pre_ih[j] + pre_hh[j];
                    pre[hs + j] = pre_ih[hs + j] + pre_hh[hs + j];
                    r[j] = sigmoid(pre[j]);
                }
                if !linear_before_reset {
                    // n rows of the hidden product use r ⊙ h
                    let rh: Vec<f64> = (0..hs).map(|j| r[j] * h[j]).collect();
                    let wn = &self.w_hh[2 * hs * hs..3 * hs * hs];
                    let mut tmp = vec![0.0; hs];
                    matvec(wn, hs, hs, &rh, &self.b_hh[2 * hs..], &mut tmp);
                    pre_hh[2 * hs..].copy_from_slice(&tmp);
                }
                let mut hn = vec![0.0; hs];
                for j in 0..hs {
                    let z = sigmoid(pre[hs + j]);
                    let n_pre = if linear_before_reset {
                        pre_ih[2 * hs + j] + r[j] * pre_hh[2 * hs + j]
                    } else {
                        pre_ih[2 * hs + j] + pre_hh[2 * hs + j]
                    };
                    pre[2 * hs + j] = n_pre;
                    let n = n_pre.tanh();
                    hn[j] = (1.0 - z) * n + z * h[j];
                }
                h.copy_from_slice(&hn);
            }
            CellKind::Lstm { .. } => {
                let p = self.peephole.as_deref();
                for j in 0..hs {
                    let mut pi = pre_ih[j] + pre_hh[j];
                    let mut pf = pre_ih[hs + j] + pre_hh[hs + j];
                    let pg = pre_ih[2 * hs + j] + pre_hh[2 * hs + j];
                    let mut po = pre_ih[3 * hs + j] + pre_hh[3 * hs + j];
                    if let Some(p) = p {
                        pi += p[j] as f64 * c[j];
                        pf += p[hs + j] as f64 * c[j];
                    }
                    let cn = sigmoid(pf) * c[j] + sigmoid(pi) * pg.tanh();
                    if let Some(p) = p {
                        po += p[2 * hs + j] as f64 * cn;
                    }
                    pre[j] = pi;
                    pre[hs + j] = pf;
                    pre[2 * hs + j] = pg;
                    pre[3 * hs + j] = po;
                    c[j] = cn;
                    h[j] = sigmoid(po) * cn.tanh();
                }
                obs.observe(k, Probe::Cell, c);
            }
        }
        obs.observe(k, Probe::PreIh, &pre_ih);
        obs.observe(k, Probe::PreHh, &pre_hh);
        obs.observe(k, Probe::Pre, &pre);
        obs.observe(k, Probe::Hidden, h);
    }
}

impl FloatModel {
    /// Width of the output vector (head's `C`, else the last layer's `H`).
    pub fn output_size(&self) -> usize {
        match &self.head {
            Some(h) => h.out_size,
            None => self.layers.last().map_or(0, |l| l.hidden_size),
        }
    }

    /// Fresh state (`h0`/`c0` or zeros).
    pub fn initial_state(&self) -> FloatState {
        let h = self
            .layers
            .iter()
            .map(|l| match &l.h0 {
                Some(v) => v.iter().map(|&x| x as f64).collect(),
                None => vec![0.0; l.hidden_size],
            })
            .collect();
        let c = self
            .layers
            .iter()
            .map(|l| match (&l.cell, &l.c0) {
                (CellKind::Lstm { .. }, Some(v)) => v.iter().map(|&x| x as f64).collect(),
                (CellKind::Lstm { .. }, None) => vec![0.0; l.hidden_size],
                _ => Vec::new(),
            })
            .collect();
        FloatState { h, c }
    }

    /// Applies the model's normalization (if any) to a raw frame.
    pub fn normalize(&self, raw: &[f32]) -> Vec<f64> {
        match &self.norm {
            Some(n) => raw
                .iter()
                .zip(n.offset.iter().zip(&n.scale))
                .map(|(&x, (&o, &s))| (x as f64 - o as f64) * s as f64)
                .collect(),
            None => raw.iter().map(|&x| x as f64).collect(),
        }
    }

    /// One step on a raw frame: normalization, every layer.
    pub fn step(&self, state: &mut FloatState, raw: &[f32], obs: &mut dyn Observer) {
        let x0 = self.normalize(raw);
        self.step_normalized(state, &x0, obs);
    }

    /// One step on an already normalized frame (model space; used for generation feedback).
    pub fn step_normalized(&self, state: &mut FloatState, x0: &[f64], obs: &mut dyn Observer) {
        let mut x = x0.to_vec();
        for (k, l) in self.layers.iter().enumerate() {
            l.step(k, &x, &mut state.h[k], &mut state.c[k], obs);
            x = state.h[k].clone();
        }
    }

    /// The output vector for the current state (head + output activation).
    pub fn output(&self, state: &FloatState, obs: &mut dyn Observer) -> Vec<f64> {
        let k = self.layers.len();
        let h = &state.h[k - 1];
        let mut y = match &self.head {
            Some(d) => {
                let mut y = vec![0.0; d.out_size];
                matvec(&d.weight, d.out_size, d.in_size, h, &d.bias, &mut y);
                y
            }
            None => h.clone(),
        };
        obs.observe(k, Probe::HeadPre, &y);
        match self.output_act {
            OutputAct::Identity => {}
            OutputAct::Sigmoid => y.iter_mut().for_each(|v| *v = sigmoid(*v)),
            OutputAct::Tanh => y.iter_mut().for_each(|v| *v = v.tanh()),
            OutputAct::Softmax => {
                let m = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = y.iter().map(|v| (v - m).exp()).sum();
                y.iter_mut().for_each(|v| *v = (*v - m).exp() / s);
            }
        }
        obs.observe(k, Probe::Output, &y);
        y
    }

    /// Runs one sequence of raw frames from the initial state and returns the output after
    /// every step (`[T][C]`).
    pub fn run(&self, frames: &[&[f32]], obs: &mut dyn Observer) -> Vec<Vec<f64>> {
        let mut st = self.initial_state();
        frames
            .iter()
            .map(|f| {
                self.step(&mut st, f, obs);
                self.output(&st, obs)
            })
            .collect()
    }

    /// Checks internal consistency of dimensions (importers call this before returning).
    pub fn validate(&self) -> Result<(), String> {
        let mut prev = self.input_size;
        if self.layers.is_empty() {
            return Err("the model has no recurrent layer".into());
        }
        if let Some(n) = &self.norm {
            if n.offset.len() != prev || n.scale.len() != prev {
                return Err(format!(
                    "normalization has {} / {} values for {prev} input features",
                    n.offset.len(),
                    n.scale.len()
                ));
            }
        }
        for (k, l) in self.layers.iter().enumerate() {
            let (g, h) = (l.gates(), l.hidden_size);
            if l.input_size != prev {
                return Err(format!(
                    "layer {k}: input size {} but the layer below gives {prev}",
                    l.input_size
                ));
            }
            let checks = [
                ("weight_ih", l.w_ih.len(), g * h * l.input_size),
                ("weight_hh", l.w_hh.len(), g * h * h),
                ("bias_ih", l.b_ih.len(), g * h),
                ("bias_hh", l.b_hh.len(), g * h),
            ];
            for (name, got, want) in checks {
                if got != want {
                    return Err(format!(
                        "layer {k}: {name} has {got} values, expected {want}"
                    ));
                }
            }
            if let Some(p) = &l.peephole {
                if p.len() != 3 * h {
                    return Err(format!(
                        "layer {k}: peephole has {} values, expected {}",
                        p.len(),
                        3 * h
                    ));
                }
            }
            prev = h;
        }
        if let Some(d) = &self.head {
            if d.in_size != prev
                || d.weight.len() != d.out_size * d.in_size
                || d.bias.len() != d.out_size
            {
                return Err(format!(
                    "head: [{}, {}] does not fit hidden size {prev}",
                    d.out_size, d.in_size
                ));
            }
        }
        Ok(())
    }
}

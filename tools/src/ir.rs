//! The host tool's float model: what every importer produces and the quantizer consumes,
//! plus the f64 reference implementation (ground truth for calibration and for `run` on
//! float models).
//!
//! Conventions: PyTorch gate order (LSTM `i, f, g, o`; GRU `r, z, n`), weights row-major and
//! unpadded (`w_ih` is `[gates·H, I]`, `w_hh` is `[gates·H, H]`), peepholes in order
//! `i, f, o`.
//!
//! The forward pass of a [`FloatModel`], per frame and at a decision:
//!
//! ```text
//! x   = norm(raw)                       optional per-feature (raw − offset)·scale
//! x   = pre[0..](x)                     per-frame pre-net: dense+activation / LayerNorm
//! h_k = layer_k(x, h_k)                 recurrent stack, x = h_k for the next layer
//! acc = pool(acc, h_last)               Last: h_last; Mean/Max/Sum over every frame so far
//! y   = head(mlp[0..](acc))             hidden head layers, then the final Linear
//! out = output_act(y)                   identity / sigmoid / tanh / softmax
//! ```
//!
//! A model whose layers all run [`Direction::Forward`] streams: [`FloatModel::step`] per
//! frame, [`FloatModel::output`] at any time. A reverse or bidirectional layer needs the
//! whole window: [`FloatModel::run_window`] runs the pre-net per frame, then each layer over
//! the whole window (a reverse pass from the last frame to the first; a bidirectional
//! layer's output at frame `t` is `[fwd_t; bwd_t]`), pools the last layer's output sequence
//! (`FinalStates`: the final state of each direction, `[fwd_{T−1}; bwd_0]`) and applies the
//! head once. For a streaming model it equals the last output of [`FloatModel::run`].
//!
//! An LSTM with projection (`w_hr`, PyTorch `proj_size`) outputs `h = W_hr·(o ⊙ tanh c)`,
//! `P` wide; its `w_hh` is `[4H, P]` and `h0` is `[P]`.

use tinyrnn::model::{CellKind, DenseAct, Direction, OutputAct, Pool};

/// The observer's layer index for the reverse direction of bidirectional layer `k` is
/// `k + BACKWARD_PROBE` (its forward direction reports as `k`).
pub const BACKWARD_PROBE: usize = 1000;

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
    /// LSTM cell-state clipping: `c` is clamped to `[−clip, clip]` after each update
    /// (TFLite's `cell_clip`, which its converter sets to 10 for Keras LSTMs). The quantizer
    /// refuses it until the core supports it.
    pub cell_clip: Option<f32>,
    /// Direction over time (the core's enum).
    pub direction: Direction,
    /// [`Direction::Bidirectional`]: the reverse direction's weights, a layer of the same
    /// cell, sizes, projection and clip, whose own `direction` is `Forward` and which has no
    /// `backward`; `None` for every other direction.
    pub backward: Option<Box<FloatLayer>>,
    /// LSTM projection `W_hr` `[P, H]` row-major (PyTorch `weight_hr_l{k}`), `None` without.
    pub w_hr: Option<Vec<f32>>,
}

/// A dense layer `y = act(W·x + b)`.
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
    /// Activation on the result ([`DenseAct::Identity`] for the model's final `head`, whose
    /// activation is [`FloatModel::output_act`]).
    pub act: DenseAct,
}

/// `LayerNorm` over the feature axis: `y = (x − mean(x)) / sqrt(var(x) + eps) · gamma + beta`
/// (biased variance, as PyTorch and ONNX).
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLayerNorm {
    /// `[size]` scale.
    pub gamma: Vec<f32>,
    /// `[size]` shift.
    pub beta: Vec<f32>,
    /// Added to the variance.
    pub eps: f32,
}

/// One per-frame operation of the pre-net or of the head's hidden part.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameOp {
    /// Dense layer with its activation.
    Dense(FloatDense),
    /// Layer normalization (width unchanged).
    LayerNorm(FloatLayerNorm),
}

impl FrameOp {
    /// Output width given the input width (`LayerNorm` keeps it).
    pub fn out_size(&self, in_size: usize) -> usize {
        match self {
            FrameOp::Dense(d) => d.out_size,
            FrameOp::LayerNorm(_) => in_size,
        }
    }

    /// Applies the op to one vector in f64.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        match self {
            FrameOp::Dense(d) => {
                let mut y = vec![0.0; d.out_size];
                matvec(&d.weight, d.out_size, d.in_size, x, &d.bias, &mut y);
                y.iter_mut().for_each(|v| *v = dense_act(d.act, *v));
                y
            }
            FrameOp::LayerNorm(n) => {
                let len = x.len() as f64;
                let mean = x.iter().sum::<f64>() / len;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / len;
                let inv = 1.0 / (var + n.eps as f64).sqrt();
                x.iter()
                    .zip(n.gamma.iter().zip(&n.beta))
                    .map(|(v, (&g, &b))| (v - mean) * inv * g as f64 + b as f64)
                    .collect()
            }
        }
    }
}

/// A dense activation in f64 (the reference every quantized path is measured against).
pub fn dense_act(act: DenseAct, x: f64) -> f64 {
    match act {
        DenseAct::Identity => x,
        DenseAct::Relu => x.max(0.0),
        DenseAct::Clip { lo, hi } => x.max(lo as f64).min(hi as f64),
        DenseAct::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                alpha as f64 * x
            }
        }
        DenseAct::Tanh => x.tanh(),
        DenseAct::Sigmoid => sigmoid(x),
        DenseAct::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        DenseAct::GeluTanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }
    }
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
    /// Per-frame pre-net between the (normalized) input and the first recurrent layer.
    pub pre: Vec<FrameOp>,
    /// Recurrent layers, input first.
    pub layers: Vec<FloatLayer>,
    /// Reduction of the last layer's outputs over time.
    pub pool: Pool,
    /// Hidden head layers between the pooled vector and the final `head`.
    pub mlp: Vec<FrameOp>,
    /// Optional final dense layer (its `act` is `Identity`; see `output_act`).
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
    /// Output of pre-net op `k` (after its activation).
    PreNet,
    /// Output of pre-net dense op `k` before its activation.
    PreNetLinear,
    /// The pooled vector (`k` = number of layers).
    Pooled,
    /// Output of hidden head op `k` (after its activation).
    Mlp,
    /// Output of hidden head dense op `k` before its activation.
    MlpLinear,
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

/// Recurrent state of the f64 reference: per layer `h` and `c`, and the pooling accumulator.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatState {
    /// `h` per layer.
    pub h: Vec<Vec<f64>>,
    /// `c` per layer (empty for non-LSTM).
    pub c: Vec<Vec<f64>>,
    /// Running sum (`Mean`, `Sum`) or maximum (`Max`) of the last layer's `h` over the frames
    /// stepped so far; empty for `Last`.
    pub pool: Vec<f64>,
    /// Frames stepped since the initial state.
    pub steps: u64,
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

/// Applies hidden/pre-net ops in order, reporting each to the observer.
fn apply_ops(
    ops: &[FrameOp],
    x: &[f64],
    probes: (Probe, Probe),
    obs: &mut dyn Observer,
) -> Vec<f64> {
    let mut x = x.to_vec();
    for (i, op) in ops.iter().enumerate() {
        if let FrameOp::Dense(d) = op {
            let mut lin = vec![0.0; d.out_size];
            matvec(&d.weight, d.out_size, d.in_size, &x, &d.bias, &mut lin);
            obs.observe(i, probes.1, &lin);
        }
        x = op.apply(&x);
        obs.observe(i, probes.0, &x);
    }
    x
}

impl FloatLayer {
    /// A forward layer from its tensors (PyTorch layout and gate order, see the fields), with
    /// nothing else: no peepholes, initial state, cell clip, projection or backward direction.
    /// Importers set those fields on the result when the file has them.
    pub fn forward(
        cell: CellKind,
        input_size: usize,
        hidden_size: usize,
        [w_ih, w_hh, b_ih, b_hh]: [Vec<f32>; 4],
    ) -> Self {
        FloatLayer {
            cell,
            input_size,
            hidden_size,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            peephole: None,
            h0: None,
            c0: None,
            cell_clip: None,
            direction: Direction::Forward,
            backward: None,
            w_hr: None,
        }
    }

    /// Number of gates of this layer's cell.
    pub fn gates(&self) -> usize {
        self.cell.gates()
    }

    /// Checks one direction's tensor sizes (`what` names the layer in the message).
    fn check_tensors(&self, what: &str) -> Result<(), String> {
        let (g, h, p) = (self.gates(), self.hidden_size, self.dir_out_size());
        if let Some(w) = &self.w_hr {
            if !matches!(self.cell, CellKind::Lstm { .. }) || h == 0 || w.len() % h != 0 || p == 0 {
                return Err(format!(
                    "{what}: projection weight_hr of {} values on a {} layer of hidden size {h}",
                    w.len(),
                    self.cell.name()
                ));
            }
        }
        let checks = [
            ("weight_ih", self.w_ih.len(), g * h * self.input_size),
            ("weight_hh", self.w_hh.len(), g * h * p),
            ("bias_ih", self.b_ih.len(), g * h),
            ("bias_hh", self.b_hh.len(), g * h),
        ];
        for (name, got, want) in checks {
            if got != want {
                return Err(format!("{what}: {name} has {got} values, expected {want}"));
            }
        }
        if let Some(v) = &self.peephole {
            if v.len() != 3 * h {
                return Err(format!(
                    "{what}: peephole has {} values, expected {}",
                    v.len(),
                    3 * h
                ));
            }
        }
        if let Some(v) = &self.h0 {
            if v.len() != p {
                return Err(format!("{what}: h0 has {} values, expected {p}", v.len()));
            }
        }
        if let Some(v) = &self.c0 {
            if v.len() != h {
                return Err(format!("{what}: c0 has {} values, expected {h}", v.len()));
            }
        }
        Ok(())
    }

    /// Width of one direction's output `h`: the projection's `P`, else `H`.
    pub fn dir_out_size(&self) -> usize {
        match &self.w_hr {
            Some(w) if self.hidden_size > 0 => w.len() / self.hidden_size,
            _ => self.hidden_size,
        }
    }

    /// Width of this layer's output: [`dir_out_size`](Self::dir_out_size) times the
    /// number of directions.
    pub fn out_size(&self) -> usize {
        self.dir_out_size() * self.direction.count()
    }

    /// Fresh `(h, c)` of one direction (`h0`/`c0` or zeros; `c` empty unless LSTM).
    pub fn initial_hc(&self) -> (Vec<f64>, Vec<f64>) {
        let h = match &self.h0 {
            Some(v) => v.iter().map(|&x| x as f64).collect(),
            None => vec![0.0; self.dir_out_size()],
        };
        let c = match (&self.cell, &self.c0) {
            (CellKind::Lstm { .. }, Some(v)) => v.iter().map(|&x| x as f64).collect(),
            (CellKind::Lstm { .. }, None) => vec![0.0; self.hidden_size],
            _ => Vec::new(),
        };
        (h, c)
    }

    /// Runs this layer over a whole window of inputs `xs` (`[T][I]`) from its initial state
    /// and returns its output at every frame (`[T][out_size]`): forward from frame 0;
    /// reverse from frame `T−1` (output `t` = state after frames `T−1 … t`); bidirectional
    /// `[fwd_t; bwd_t]`. The reverse direction of a bidirectional layer reports to the
    /// observer as layer `k +` [`BACKWARD_PROBE`].
    pub fn run_window(&self, k: usize, xs: &[Vec<f64>], obs: &mut dyn Observer) -> Vec<Vec<f64>> {
        fn one(
            l: &FloatLayer,
            k: usize,
            xs: &[Vec<f64>],
            rev: bool,
            obs: &mut dyn Observer,
        ) -> Vec<Vec<f64>> {
            let (mut h, mut c) = l.initial_hc();
            let mut out = vec![Vec::new(); xs.len()];
            let mut visit = |t: usize| {
                l.step(k, &xs[t], &mut h, &mut c, obs);
                out[t] = h.clone();
            };
            if rev {
                (0..xs.len()).rev().for_each(&mut visit);
            } else {
                (0..xs.len()).for_each(&mut visit);
            }
            out
        }
        match (self.direction, &self.backward) {
            (Direction::Forward, _) => one(self, k, xs, false, obs),
            (Direction::Reverse, _) => one(self, k, xs, true, obs),
            (Direction::Bidirectional, Some(b)) => {
                let f = one(self, k, xs, false, obs);
                let r = one(b, k + BACKWARD_PROBE, xs, true, obs);
                f.into_iter()
                    .zip(r)
                    .map(|(mut a, b)| {
                        a.extend(b);
                        a
                    })
                    .collect()
            }
            // validate() refuses a bidirectional layer without its reverse weights
            (Direction::Bidirectional, None) => Vec::new(),
        }
    }

    /// One step of this layer (one direction) in f64: updates `h` (and `c`) in place.
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
        matvec(&self.w_hh, rows, h.len(), h, &self.b_hh, &mut pre_hh);
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
                let mut m = vec![0.0; hs];
                for j in 0..hs {
                    let mut pi = pre_ih[j] + pre_hh[j];
                    let mut pf = pre_ih[hs + j] + pre_hh[hs + j];
                    let pg = pre_ih[2 * hs + j] + pre_hh[2 * hs + j];
                    let mut po = pre_ih[3 * hs + j] + pre_hh[3 * hs + j];
                    if let Some(p) = p {
                        pi += p[j] as f64 * c[j];
                        pf += p[hs + j] as f64 * c[j];
                    }
                    let mut cn = sigmoid(pf) * c[j] + sigmoid(pi) * pg.tanh();
                    if let Some(clip) = self.cell_clip {
                        cn = cn.clamp(-(clip as f64), clip as f64);
                    }
                    if let Some(p) = p {
                        po += p[2 * hs + j] as f64 * cn;
                    }
                    pre[j] = pi;
                    pre[hs + j] = pf;
                    pre[2 * hs + j] = pg;
                    pre[3 * hs + j] = po;
                    c[j] = cn;
                    m[j] = sigmoid(po) * cn.tanh();
                }
                match &self.w_hr {
                    // h = W_hr·m, P wide
                    Some(w) => matvec(w, h.len(), hs, &m, &vec![0.0; h.len()], h),
                    None => h.copy_from_slice(&m),
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
    /// Width of the output vector (head's `C`, else the hidden head's or the last layer's
    /// width).
    pub fn output_size(&self) -> usize {
        match &self.head {
            Some(h) => h.out_size,
            None => self
                .mlp
                .iter()
                .fold(self.pooled_size(), |w, op| op.out_size(w)),
        }
    }

    /// Whether this model is format 1's shape: no pre-net, last-step pooling, no hidden head
    /// layers (what the quantizer and the blob support until format 2).
    pub fn is_plain(&self) -> bool {
        self.pre.is_empty() && self.pool == Pool::Last && self.mlp.is_empty()
    }

    /// Width of the vector the recurrent stack receives (after the pre-net).
    pub fn rnn_input_size(&self) -> usize {
        self.pre
            .iter()
            .fold(self.input_size, |w, op| op.out_size(w))
    }

    /// Fresh state (`h0`/`c0` or zeros).
    pub fn initial_state(&self) -> FloatState {
        let (h, c) = self.layers.iter().map(FloatLayer::initial_hc).unzip();
        let w = self.pooled_size();
        let pool = match self.pool {
            Pool::Last | Pool::FinalStates => Vec::new(),
            Pool::Mean | Pool::Sum => vec![0.0; w],
            Pool::Max => vec![f64::NEG_INFINITY; w],
        };
        FloatState {
            h,
            c,
            pool,
            steps: 0,
        }
    }

    /// Whether every layer runs forward, so the model streams frame by frame
    /// ([`step`](Self::step)); else only [`run_window`](Self::run_window) runs it.
    pub fn streams(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.direction == Direction::Forward)
    }

    /// Width of the pooled vector: the last layer's output width.
    pub fn pooled_size(&self) -> usize {
        self.layers.last().map_or(0, FloatLayer::out_size)
    }

    /// Runs one window of raw frames from the initial state through every layer (reverse
    /// and bidirectional ones over the whole window) and returns the output at its end: the
    /// ground truth for models that do not stream (see the module docs).
    pub fn run_window(&self, frames: &[&[f32]], obs: &mut dyn Observer) -> Vec<f64> {
        let mut seq: Vec<Vec<f64>> = frames
            .iter()
            .map(|f| {
                let x0 = self.normalize(f);
                apply_ops(&self.pre, &x0, (Probe::PreNet, Probe::PreNetLinear), obs)
            })
            .collect();
        for (k, l) in self.layers.iter().enumerate() {
            seq = l.run_window(k, &seq, obs);
        }
        let w = self.pooled_size();
        let n = seq.len();
        let pooled: Vec<f64> = match self.pool {
            Pool::Last => seq.last().cloned().unwrap_or_else(|| vec![0.0; w]),
            Pool::FinalStates => {
                let last = self.layers.last();
                let d = last.map_or(0, FloatLayer::dir_out_size);
                match last.map(|l| l.direction) {
                    Some(Direction::Reverse) => {
                        seq.first().cloned().unwrap_or_else(|| vec![0.0; w])
                    }
                    Some(Direction::Bidirectional) if n > 0 => {
                        let mut v = seq[n - 1][..d].to_vec();
                        v.extend_from_slice(&seq[0][d..]);
                        v
                    }
                    _ => seq.last().cloned().unwrap_or_else(|| vec![0.0; w]),
                }
            }
            Pool::Mean | Pool::Sum => {
                let mut acc = vec![0.0; w];
                for v in &seq {
                    acc.iter_mut().zip(v).for_each(|(a, x)| *a += x);
                }
                if self.pool == Pool::Mean {
                    let d = n.max(1) as f64;
                    acc.iter_mut().for_each(|a| *a /= d);
                }
                acc
            }
            Pool::Max => {
                let mut acc = vec![f64::NEG_INFINITY; w];
                for v in &seq {
                    acc.iter_mut().zip(v).for_each(|(a, x)| *a = a.max(*x));
                }
                acc
            }
        };
        self.head_output(pooled, obs)
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

    /// One step on a raw frame: normalization, every layer. Only for a model that
    /// [`streams`](Self::streams) (all layers forward).
    pub fn step(&self, state: &mut FloatState, raw: &[f32], obs: &mut dyn Observer) {
        let x0 = self.normalize(raw);
        self.step_normalized(state, &x0, obs);
    }

    /// One step on an already normalized frame (model space; used for generation feedback).
    pub fn step_normalized(&self, state: &mut FloatState, x0: &[f64], obs: &mut dyn Observer) {
        let mut x = apply_ops(&self.pre, x0, (Probe::PreNet, Probe::PreNetLinear), obs);
        for (k, l) in self.layers.iter().enumerate() {
            l.step(k, &x, &mut state.h[k], &mut state.c[k], obs);
            x = state.h[k].clone();
        }
        state.steps += 1;
        match self.pool {
            Pool::Last | Pool::FinalStates => {}
            Pool::Mean | Pool::Sum => state.pool.iter_mut().zip(&x).for_each(|(a, v)| *a += v),
            Pool::Max => state
                .pool
                .iter_mut()
                .zip(&x)
                .for_each(|(a, v)| *a = a.max(*v)),
        }
    }

    /// The pooled vector the head sees for the current state.
    pub fn pooled(&self, state: &FloatState) -> Vec<f64> {
        let k = self.layers.len();
        match self.pool {
            Pool::Last | Pool::FinalStates => state.h[k - 1].clone(),
            Pool::Sum | Pool::Max => state.pool.clone(),
            Pool::Mean => {
                let n = state.steps.max(1) as f64;
                state.pool.iter().map(|v| v / n).collect()
            }
        }
    }

    /// The output vector for the current state (head + output activation).
    pub fn output(&self, state: &FloatState, obs: &mut dyn Observer) -> Vec<f64> {
        self.head_output(self.pooled(state), obs)
    }

    /// The hidden head ops, the head and the output activation on a pooled vector.
    fn head_output(&self, pooled: Vec<f64>, obs: &mut dyn Observer) -> Vec<f64> {
        let k = self.layers.len();
        obs.observe(k, Probe::Pooled, &pooled);
        let h = apply_ops(&self.mlp, &pooled, (Probe::Mlp, Probe::MlpLinear), obs);
        let mut y = match &self.head {
            Some(d) => {
                let mut y = vec![0.0; d.out_size];
                matvec(&d.weight, d.out_size, d.in_size, &h, &d.bias, &mut y);
                y
            }
            None => h,
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
        let check_ops = |what: &str, ops: &[FrameOp], mut w: usize| -> Result<usize, String> {
            for (i, op) in ops.iter().enumerate() {
                match op {
                    FrameOp::Dense(d) => {
                        if d.in_size != w
                            || d.weight.len() != d.out_size * d.in_size
                            || d.bias.len() != d.out_size
                        {
                            return Err(format!(
                                "{what} {i}: dense [{}, {}] does not fit width {w}",
                                d.out_size, d.in_size
                            ));
                        }
                    }
                    FrameOp::LayerNorm(n) => {
                        if n.gamma.len() != w
                            || n.beta.len() != w
                            || n.eps.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
                        {
                            return Err(format!(
                                "{what} {i}: layer norm has {} / {} values for width {w} \
                                 (eps {})",
                                n.gamma.len(),
                                n.beta.len(),
                                n.eps
                            ));
                        }
                    }
                }
                w = op.out_size(w);
            }
            Ok(w)
        };
        prev = check_ops("pre-net op", &self.pre, prev)?;
        for (k, l) in self.layers.iter().enumerate() {
            if l.input_size != prev {
                return Err(format!(
                    "layer {k}: input size {} but the layer below gives {prev}",
                    l.input_size
                ));
            }
            match (l.direction, &l.backward) {
                (Direction::Bidirectional, Some(b)) => {
                    if b.direction != Direction::Forward
                        || b.backward.is_some()
                        || b.cell != l.cell
                        || b.input_size != l.input_size
                        || b.hidden_size != l.hidden_size
                        || b.dir_out_size() != l.dir_out_size()
                        || b.cell_clip != l.cell_clip
                        || b.peephole.is_some() != l.peephole.is_some()
                    {
                        return Err(format!(
                            "layer {k}: the reverse direction's shape differs from the forward one's"
                        ));
                    }
                    b.check_tensors(&format!("layer {k} (reverse)"))?;
                }
                (Direction::Bidirectional, None) => {
                    return Err(format!("layer {k}: bidirectional without reverse weights"))
                }
                (_, Some(_)) => {
                    return Err(format!(
                        "layer {k}: reverse weights on a {} layer",
                        l.direction.name()
                    ))
                }
                _ => {}
            }
            l.check_tensors(&format!("layer {k}"))?;
            prev = l.out_size();
        }
        prev = check_ops("head op", &self.mlp, prev)?;
        if let Some(d) = &self.head {
            if d.act != DenseAct::Identity {
                return Err(format!(
                    "head: activation {} (the final layer's activation is the output \
                     activation)",
                    d.act.name()
                ));
            }
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

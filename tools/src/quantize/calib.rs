//! Calibration: run the f64 reference over calibration sequences and record the range of
//! every probed tensor (see [`Probe`]).

use crate::ir::{FloatModel, Observer, Probe, BACKWARD_PROBE};

/// Number of [`Probe`] kinds.
pub const PROBES: usize = 13;

/// Index of a probe in [`LayerRanges::probes`].
pub fn probe_index(p: Probe) -> usize {
    match p {
        Probe::Input => 0,
        Probe::PreIh => 1,
        Probe::PreHh => 2,
        Probe::Pre => 3,
        Probe::Hidden => 4,
        Probe::Cell => 5,
        Probe::HeadPre => 6,
        Probe::Output => 7,
        Probe::PreNet => 8,
        Probe::PreNetLinear => 9,
        Probe::Pooled => 10,
        Probe::Mlp => 11,
        Probe::MlpLinear => 12,
    }
}

/// Human name of a probe (for reports).
pub fn probe_name(i: usize) -> &'static str {
    [
        "input",
        "pre_ih",
        "pre_hh",
        "pre",
        "h",
        "c",
        "head",
        "output",
        "pre_net",
        "pre_net_linear",
        "pooled",
        "mlp",
        "mlp_linear",
    ][i]
}

/// Histogram resolution: bins per octave of |x|.
const SUB: f64 = 16.0;
/// Lowest octave binned (smaller magnitudes, and zero, go to bin 0).
const LO: i32 = -40 * 16;
/// Number of bins (octaves −40..40).
const NB: usize = 80 * 16;

/// Observed range of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Smallest value seen.
    pub min: f64,
    /// Largest value seen.
    pub max: f64,
    /// Values seen.
    pub count: u64,
    /// Sum of squares (for the RMS).
    pub sum_sq: f64,
    /// Histogram of `log2|x|`, [`SUB`] bins per octave (for saturation counts).
    hist: Vec<u64>,
}

impl Default for Range {
    fn default() -> Self {
        Range {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            count: 0,
            sum_sq: 0.0,
            hist: vec![0; NB],
        }
    }
}

impl Range {
    /// Adds values.
    pub fn add(&mut self, v: &[f64]) {
        for &x in v {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            self.sum_sq += x * x;
            let b = if x == 0.0 {
                0
            } else {
                ((x.abs().log2() * SUB).floor() as i32 - LO).clamp(0, NB as i32 - 1)
            };
            self.hist[b as usize] += 1;
        }
        self.count += v.len() as u64;
    }
    /// `max(|min|, |max|)`, 0 if nothing was seen.
    pub fn maxabs(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.min.abs().max(self.max.abs())
        }
    }
    /// Values with `|x| ≥ limit` (to the histogram's resolution: a value within 1e-4
    /// relative below `limit` may be counted).
    pub fn count_at_least(&self, limit: f64) -> u64 {
        let first = ((limit * (1.0 - 1e-4)).log2() * SUB).ceil() as i32 - LO;
        let first = first.clamp(0, NB as i32) as usize;
        self.hist[first..].iter().sum()
    }
    /// Root mean square.
    pub fn rms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.sum_sq / self.count as f64).sqrt()
        }
    }
}

/// Ranges of every probe of one layer (index `k == layers.len()` holds the head).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerRanges {
    /// Indexed by [`probe_index`].
    pub probes: [Range; PROBES],
}

/// Everything calibration learned about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibStats {
    /// Sequences run.
    pub sequences: usize,
    /// Frames (steps) run.
    pub frames: usize,
    /// `layers.len() + 1` entries; the last one holds `HeadPre`, `Output` and `Pooled`.
    pub layers: Vec<LayerRanges>,
    /// The normalized input frames (what the first pre-net op or layer 0 reads).
    pub input: Range,
    /// Per pre-net op `k`: `PreNet` and `PreNetLinear` (grown as observed).
    pub pre: Vec<LayerRanges>,
    /// Per hidden head op `k`: `Mlp` and `MlpLinear` (grown as observed).
    pub mlp: Vec<LayerRanges>,
    /// Per layer `k`: the reverse direction of a bidirectional layer (reported as layer
    /// `k +` [`BACKWARD_PROBE`]; grown as observed, empty for a forward model).
    pub backward: Vec<LayerRanges>,
}

impl CalibStats {
    /// Range of `probe` at layer `k`.
    pub fn range(&self, k: usize, probe: Probe) -> &Range {
        &self.layers[k].probes[probe_index(probe)]
    }
    /// Range of `probe` in the reverse direction of bidirectional layer `k` (empty if never
    /// observed).
    pub fn backward_range(&self, k: usize, probe: Probe) -> Range {
        self.backward
            .get(k)
            .map(|r| r.probes[probe_index(probe)].clone())
            .unwrap_or_default()
    }
    /// Range of `probe` of pre-net op `k` (`PreNet*` probes) or hidden head op `k` (`Mlp*`);
    /// an empty range if never observed.
    pub fn op_range(&self, k: usize, probe: Probe) -> Range {
        let ops = match probe {
            Probe::PreNet | Probe::PreNetLinear => &self.pre,
            _ => &self.mlp,
        };
        ops.get(k)
            .map(|r| r.probes[probe_index(probe)].clone())
            .unwrap_or_default()
    }
}

/// An [`Observer`] that records ranges and remembers the first non-finite value.
#[derive(Debug)]
pub struct RangeObserver {
    /// Collected ranges.
    pub stats: CalibStats,
    /// First non-finite value seen: layer, probe.
    pub non_finite: Option<(usize, Probe)>,
}

impl RangeObserver {
    /// An observer for a model with `layers` recurrent layers.
    pub fn new(layers: usize) -> Self {
        RangeObserver {
            stats: CalibStats {
                sequences: 0,
                frames: 0,
                layers: vec![LayerRanges::default(); layers + 1],
                input: Range::default(),
                pre: Vec::new(),
                mlp: Vec::new(),
                backward: Vec::new(),
            },
            non_finite: None,
        }
    }
}

impl Observer for RangeObserver {
    fn observe(&mut self, k: usize, probe: Probe, values: &[f64]) {
        if self.non_finite.is_none() && values.iter().any(|v| !v.is_finite()) {
            self.non_finite = Some((k, probe));
        }
        // pre-net and hidden head ops are numbered by op, not by layer: their own tables;
        // the reverse directions of bidirectional layers too
        let (table, k) = match probe {
            Probe::PreNet | Probe::PreNetLinear => (&mut self.stats.pre, k),
            Probe::Mlp | Probe::MlpLinear => (&mut self.stats.mlp, k),
            _ if k >= BACKWARD_PROBE => (&mut self.stats.backward, k - BACKWARD_PROBE),
            _ => (&mut self.stats.layers, k),
        };
        if table.len() <= k {
            table.resize(k + 1, LayerRanges::default());
        }
        table[k].probes[probe_index(probe)].add(values);
    }
}

/// A batch of sequences: `[N, T, F]` row-major `f32`, each sequence `i` using its first
/// `lengths[i]` frames (all `T` without lengths).
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// `N·T·F` values.
    pub data: &'a [f32],
    /// Sequences.
    pub n: usize,
    /// Frames per (padded) sequence.
    pub t: usize,
    /// Features per frame.
    pub f: usize,
    /// True length of each sequence (`1..=T`), if the batch is padded.
    pub lengths: Option<&'a [usize]>,
}

impl<'a> Batch<'a> {
    /// A batch over `.npy` sequences (see [`crate::data::read_inputs`]).
    pub fn from_sequences(x: &'a crate::data::Sequences, lengths: Option<&'a [usize]>) -> Self {
        Batch {
            data: &x.data,
            n: x.n,
            t: x.t,
            f: x.f,
            lengths,
        }
    }

    /// Checks the shape (`data.len() == n·t·f`, lengths in `1..=t`) and finiteness of the
    /// frames actually used.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.data.len() == self.n * self.t * self.f,
            "data has {} values, expected N·T·F = {}·{}·{}",
            self.data.len(),
            self.n,
            self.t,
            self.f
        );
        if let Some(l) = self.lengths {
            anyhow::ensure!(
                l.len() == self.n,
                "lengths has {} entries for {} sequences",
                l.len(),
                self.n
            );
            if let Some((i, &len)) = l.iter().enumerate().find(|(_, &v)| v == 0 || v > self.t) {
                anyhow::bail!(
                    "length {len} of sequence {i} is outside 1..={} (the padded length)",
                    self.t
                );
            }
        }
        for i in 0..self.n {
            for (t, fr) in self.frames(i).iter().enumerate() {
                if let Some(j) = fr.iter().position(|v| !v.is_finite()) {
                    anyhow::bail!("input value [{i}, {t}, {j}] is not finite ({})", fr[j]);
                }
            }
        }
        Ok(())
    }

    /// True length of sequence `i`.
    pub fn len_of(&self, i: usize) -> usize {
        self.lengths.map_or(self.t, |l| l[i])
    }

    /// The frames of sequence `i` (its true length).
    pub fn frames(&self, i: usize) -> Vec<&'a [f32]> {
        let base = i * self.t * self.f;
        (0..self.len_of(i))
            .map(|t| &self.data[base + t * self.f..base + (t + 1) * self.f])
            .collect()
    }
}

/// Runs the f64 reference over every sequence of `batch` and records ranges. `tick` is
/// called after each sequence (progress reporting).
///
/// # Errors
/// If the batch does not fit the model, or any value of the reference run is not finite.
pub fn calibrate(
    model: &FloatModel,
    batch: &Batch<'_>,
    mut tick: impl FnMut(),
) -> anyhow::Result<CalibStats> {
    anyhow::ensure!(
        batch.f == model.input_size,
        "calibration data has {} features per frame, the model expects {}",
        batch.f,
        model.input_size
    );
    anyhow::ensure!(batch.n > 0, "calibration data holds no sequence");
    batch.validate()?;
    let mut obs = RangeObserver::new(model.layers.len());
    for i in 0..batch.n {
        let frames = batch.frames(i);
        for f in &frames {
            obs.stats.input.add(&model.normalize(f));
        }
        // a model with reverse / bidirectional layers runs over the whole sequence
        if model.streams() {
            model.run(&frames, &mut obs);
        } else {
            model.run_window(&frames, &mut obs);
        }
        obs.stats.sequences += 1;
        obs.stats.frames += frames.len();
        if let Some((k, p)) = obs.non_finite {
            anyhow::bail!(
                "the float model produced a non-finite value ({} of layer {k}) on calibration sequence {i}",
                probe_name(probe_index(p))
            );
        }
        tick();
    }
    Ok(obs.stats)
}

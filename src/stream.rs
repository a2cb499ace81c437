//! Streaming many-to-one classification: [`Classifier`], [`Config`], [`Decision`].
//!
//! Frames are pushed one at a time. With a `window`, a [`Decision`] is returned after every
//! `window` frames and the state resets (fixed-length sequences); without one, the caller
//! ends a sequence with [`Classifier::end_sequence`]. With `smoothing`, the per-step argmax
//! is recorded in a ring buffer of the last `K` steps and
//! [`Classifier::smoothed`] returns their majority.
//!
//! # Examples
//!
//! ```
//! # fn run(blob: &[u8], frames: &[[f32; 3]]) -> tinyrnn::Result<()> {
//! use tinyrnn::{Classifier, Config, Model};
//! let model = Model::from_blob(blob)?;
//! let mut cfg = Config::default();
//! cfg.window = Some(50);
//! let mut clf = Classifier::<'_, 64, 64, 5>::new(&model, cfg)?;
//! for f in frames {
//!     if let Some(d) = clf.push(f)? {
//!         // one decision per 50 frames
//! #       let _ = d;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Window mode (cargo feature `window`)
//!
//! A model with a reverse or bidirectional layer ([`Model::is_windowed`]) cannot stream:
//! its frames go through [`Classifier::push_window`] into a caller-owned
//! [`Window`](crate::Window) buffer of [`Model::window_words`]`(window)` words, and a
//! decision is the model run over exactly the last `window` frames (`Session::step_window`
//! docs: equations, RAM and latency). Tumbling windows by default; with
//! [`Config::hop`] `< window` a decision every `hop` frames over the last `window` frames
//! (the windowed layers recomputed over the buffer each time: `window / hop` times the
//! decision cost per window), bit-identical to running the model offline on that slice.
//!
//! ```
//! # fn run(blob: &[u8], frames: &[[f32; 3]]) -> tinyrnn::Result<()> {
//! use tinyrnn::{Classifier, Config, Model, Window};
//! let model = Model::from_blob(blob)?;
//! let mut cfg = Config::default();
//! cfg.window = Some(64); // 2.5 s at 25 Hz
//! cfg.hop = Some(16); // a decision every 16 frames over the last 64
//! // `tinyrnn codegen --window 64` writes WINDOW_WORDS = model.window_words(64)
//! let mut buf = [0u32; 4096];
//! let mut win = Window::new(&mut buf);
//! let mut clf = Classifier::<'_, 64, 64, 0>::new(&model, cfg)?;
//! for f in frames {
//!     if let Some(d) = clf.push_window(f, &mut win)? {
//! #       let _ = d;
//!     }
//! }
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::model::Model;
use crate::session::Session;

/// A classification: the argmax of the model's output.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Decision {
    /// Index of the largest output (ties → the lowest index).
    pub class: u16,
    /// That output's value (dequantized on integer models).
    pub score: f32,
    /// Integer models: the raw output value (`output_frac`, Q0.15 after an activation);
    /// f32 models: 0.
    pub score_q: i16,
}

/// Options of a [`Classifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// Decide (then reset) after this many frames; `None`: only on
    /// [`end_sequence`](Classifier::end_sequence). `Some(0)` is rejected ([`Error::ZeroWindow`]).
    pub window: Option<u32>,
    /// Classify after every frame and keep the last `K` decisions for
    /// [`smoothed`](Classifier::smoothed) (costs one head evaluation per frame). Needs
    /// `K ≥ 1`. Not with a windowed model (a decision recomputes the whole window).
    pub smoothing: bool,
    /// Window mode ([`Classifier::push_window`]): decide every `hop` frames over the last
    /// `window` frames (overlapping windows); `None` or `Some(window)`: tumbling windows.
    /// Needs `1 ≤ hop ≤ window` ([`Error::BadHop`] otherwise) and, for `hop < window`,
    /// a model whose first layer is the first windowed one (a streamed forward layer
    /// before it would need one session per window offset: [`Error::Unsupported`]).
    pub hop: Option<u32>,
}

/// The last `K` decisions (a ring buffer; `K = 0` keeps none).
///
/// Not `heapless::HistoryBuf`: its `write` indexes the buffer with a field the optimizer
/// cannot bound, which leaves a panic path in firmware (tests/no_panic). Here every access
/// goes through `get_mut` / `split_at_checked`.
#[derive(Debug, Clone)]
struct History<const K: usize> {
    buf: [Decision; K],
    /// Decisions held, `≤ K`.
    len: usize,
    /// Slot of the next write, `< K` (0 if `K = 0`). While `len < K` it equals `len`.
    next: usize,
}

impl<const K: usize> History<K> {
    const EMPTY: Decision = Decision {
        class: 0,
        score: 0.0,
        score_q: 0,
    };

    fn new() -> Self {
        History {
            buf: [Self::EMPTY; K],
            len: 0,
            next: 0,
        }
    }

    fn write(&mut self, d: Decision) {
        if let Some(slot) = self.buf.get_mut(self.next) {
            *slot = d;
            self.next = if self.next + 1 >= K { 0 } else { self.next + 1 };
            self.len = if self.len < K { self.len + 1 } else { K };
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }

    /// The decisions held, oldest first.
    fn iter(&self) -> impl Iterator<Item = &Decision> + Clone {
        // Full: the oldest is at `next`. Not full: slots `0..len`, oldest first.
        let split = if self.len >= K { self.next } else { 0 };
        let (newer, older) = self.buf.split_at_checked(split).unwrap_or((&[], &self.buf));
        older.iter().chain(newer).take(self.len)
    }
}

/// A streaming classifier over a [`Session`]; `K` is the smoothing history length: at least
/// 1 with [`Config::smoothing`], unused (0 is fine) without.
#[derive(Debug, Clone)]
pub struct Classifier<'m, const STATE: usize, const SCRATCH: usize, const K: usize> {
    session: Session<'m, STATE, SCRATCH>,
    cfg: Config,
    count: u32,
    history: History<K>,
}

impl<'m, const STATE: usize, const SCRATCH: usize, const K: usize>
    Classifier<'m, STATE, SCRATCH, K>
{
    /// A classifier in the model's initial state.
    ///
    /// # Errors
    /// [`Error::ZeroWindow`] for `window: Some(0)`; [`Error::BadHop`] for a hop outside
    /// `1..=window`, [`Error::Unsupported`] for `hop < window` on a model with a forward
    /// layer before its first windowed one; [`Error::SmoothingWithoutHistory`] for
    /// `smoothing: true` with `K = 0`; then as [`Session::new`].
    pub fn new(model: &'m Model<'m>, cfg: Config) -> Result<Self> {
        if cfg.window == Some(0) {
            return Err(Error::ZeroWindow);
        }
        if let Some(hop) = cfg.hop {
            if hop == 0 || cfg.window.is_none_or(|w| hop > w) {
                return Err(Error::BadHop);
            }
            let overlap = cfg.window.is_some_and(|w| hop < w);
            if overlap && model.window_layer() != Some(0) {
                return Err(Error::Unsupported);
            }
        }
        if cfg.smoothing && K == 0 {
            return Err(Error::SmoothingWithoutHistory);
        }
        Ok(Classifier {
            session: Session::new(model)?,
            cfg,
            count: 0,
            history: History::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.cfg
    }

    /// Frames pushed since the last reset.
    pub fn frames(&self) -> u32 {
        self.count
    }

    /// Pushes one raw frame. Returns `Some(decision)` when `window` frames have been pushed
    /// since the last reset (then the state and the smoothing history reset).
    ///
    /// # Errors
    /// As [`Session::step`] (the frame is then not counted).
    pub fn push(&mut self, frame: &[f32]) -> Result<Option<Decision>> {
        self.session.step(frame)?;
        self.count = self.count.saturating_add(1);
        let full = self.cfg.window.is_some_and(|w| self.count >= w);
        if !self.cfg.smoothing && !full {
            return Ok(None);
        }
        let d = self.session.classify()?;
        if self.cfg.smoothing {
            self.history.write(d);
        }
        if full {
            self.reset();
            return Ok(Some(d));
        }
        Ok(None)
    }

    /// [`push`](Self::push) for a windowed model: the frame goes into `win` (sized by
    /// [`Model::window_words`]`(window)`); every `window` frames (then every `hop` frames
    /// with [`Config::hop`]) returns the decision over the last `window` frames. Tumbling:
    /// the state and `win` are then cleared; overlapping: the oldest `hop` frames leave
    /// `win`. For a model that streams this is [`push`](Self::push) (`win` unused).
    ///
    /// # Errors
    /// As [`Session::step_window`]; [`Error::Unsupported`] with `smoothing`, or without a
    /// `window`, for a windowed model.
    #[cfg(feature = "window")]
    pub fn push_window(
        &mut self,
        frame: &[f32],
        win: &mut crate::Window<'_>,
    ) -> Result<Option<Decision>> {
        let model = self.session.model();
        if !model.is_windowed() {
            return self.push(frame);
        }
        let Some(window) = self.cfg.window else {
            return Err(Error::Unsupported);
        };
        if self.cfg.smoothing {
            return Err(Error::Unsupported);
        }
        self.session.step_window(frame, win)?;
        self.count = self.count.saturating_add(1);
        if (win.frames() as u64) < window as u64 {
            return Ok(None);
        }
        let d = self.session.classify_window(win)?;
        let hop = self.cfg.hop.unwrap_or(window);
        if hop >= window {
            self.reset();
            win.clear();
        } else {
            win.drop_front(model, hop as usize);
            self.count = window - hop;
        }
        Ok(Some(d))
    }

    /// Majority class of the last `K` per-step decisions (ties → the lowest class), with
    /// the score of the most recent decision for that class; `None` before the first frame
    /// or without `smoothing`. O(K²).
    pub fn smoothed(&self) -> Option<Decision> {
        let votes = |c: u16| self.history.iter().filter(|d| d.class == c).count();
        let mut best: Option<(usize, Decision)> = None;
        for d in self.history.iter() {
            let n = votes(d.class);
            best = match best {
                Some((bn, bd)) if bn > n || (bn == n && bd.class < d.class) => Some((bn, bd)),
                // same class: keep the more recent decision (iteration is oldest first)
                _ => Some((n, *d)),
            };
        }
        best.map(|(_, d)| d)
    }

    /// Decision on the current state (the end of a variable-length sequence), then reset.
    ///
    /// # Errors
    /// As [`Session::classify`].
    pub fn end_sequence(&mut self) -> Result<Decision> {
        let d = self.session.classify()?;
        self.reset();
        Ok(d)
    }

    /// Resets the state, the frame count and the smoothing history.
    pub fn reset(&mut self) {
        self.session.reset();
        self.count = 0;
        self.history.clear();
    }

    /// The underlying session.
    pub fn session(&mut self) -> &mut Session<'m, STATE, SCRATCH> {
        &mut self.session
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{CellKind, Precision, RnnAct};

    #[test]
    fn history_is_a_ring_oldest_first() {
        let d = |class| Decision {
            class,
            score: 0.0,
            score_q: 0,
        };
        let classes = |h: &History<3>| h.iter().map(|d| d.class).collect::<Vec<_>>();
        let mut h = History::<3>::new();
        assert!(classes(&h).is_empty());
        h.write(d(1));
        h.write(d(2));
        assert_eq!(classes(&h), [1, 2]);
        h.write(d(3));
        h.write(d(4));
        h.write(d(5));
        assert_eq!(classes(&h), [3, 4, 5]);
        h.clear();
        h.write(d(6));
        assert_eq!(classes(&h), [6]);
        let mut none = History::<0>::new();
        none.write(d(1));
        assert_eq!(none.iter().count(), 0);
    }

    #[test]
    fn config_default_and_validation() {
        let cfg = Config::default();
        assert_eq!((cfg.window, cfg.smoothing), (None, false));
        let mut rng = Rng(3);
        let m = single_layer(FLayer::random(
            &mut rng,
            CellKind::Rnn(RnnAct::Tanh),
            2,
            3,
            1.0,
        ));
        let b = blob(&m, Precision::Int16, &frames(&mut rng, 10, 2, 1.0));
        let model = Model::from_blob(&b).unwrap();
        let bad = Config {
            window: Some(0),
            smoothing: false,
            hop: None,
        };
        assert_eq!(
            Classifier::<4, 4, 2>::new(&model, bad).err(),
            Some(Error::ZeroWindow)
        );
        let no_history = Config {
            window: None,
            smoothing: true,
            hop: None,
        };
        assert_eq!(
            Classifier::<4, 4, 0>::new(&model, no_history).err(),
            Some(Error::SmoothingWithoutHistory)
        );
        let small = Classifier::<2, 4, 2>::new(&model, cfg).err();
        assert_eq!(
            small,
            Some(Error::TooLarge {
                buffer: crate::Buffer::State,
                needed: 3,
                capacity: 2
            })
        );
        // window of 1: a decision on every push, the state reset each time
        let one = Config {
            window: Some(1),
            smoothing: true,
            hop: None,
        };
        let mut c = Classifier::<4, 4, 2>::new(&model, one).unwrap();
        let d1 = c.push(&[0.5, 0.5]).unwrap().unwrap();
        let d2 = c.push(&[0.5, 0.5]).unwrap().unwrap();
        assert_eq!(d1, d2);
        assert_eq!(c.smoothed(), None, "history is per sequence");
        assert_eq!(c.config(), one);
    }
}

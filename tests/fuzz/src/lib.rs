//! The fuzz targets' shared harness (see README.md).
//!
//! * [`load`]: arbitrary bytes as a blob, as given and re-sealed (header and CRC rewritten
//!   so that the payload reaches the decoder and the validation); every model that loads is
//!   then run by [`exercise`].
//! * [`stream`]: a committed real blob, and arbitrary frames, lengths, states and API calls.
//! * [`model`]: a structurally valid model with arbitrary dimensions, cells, weights,
//!   requantization records and initial states, run by [`exercise`]; integer models are
//!   also checked bit for bit against the naive spec simulator of `src/testutil.rs`.
//! * [`import::import`]: arbitrary bytes through one of the host tool's model importers
//!   (`.keras`, legacy `.h5`, `.tflite`, ONNX): an error or a valid model, never a panic.
//!
//! Beyond "no panic" (and, since fuzz builds have debug assertions, no arithmetic
//! overflow), [`exercise`] checks the documented contracts: the error each call may
//! return, an unchanged state after an error, `h` within `i16`, exact dequantization,
//! bounded activations, argmax, and save/restore.

use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use tinyrnn::fxp::{dequantize, Requant};
use tinyrnn::model::{
    crc32, pad4, write_blob, DenseDesc, DenseOpDesc, DirWeights, LayerDesc, ModelDesc, NormDesc,
    OpDesc, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_OPS,
};
use tinyrnn::{
    CellKind, Classifier, Config, DenseAct, Direction, Error, F32Math, Generator, Model, OutputAct,
    Pool, Precision, Session, Window, MAX_DIM, MAX_LAYERS,
};

#[path = "../../../src/testutil.rs"]
#[allow(clippy::all)]
mod testutil;

pub mod import;

/// State words of the largest valid model: `MAX_LAYERS` LSTM layers of `MAX_DIM` units
/// (a projected one: `P + H`), plus the mean's accumulators over `MAX_DIM` values.
pub const STATE: usize = 2 * MAX_LAYERS * MAX_DIM + 2 * MAX_DIM + 2;
/// Scratch words of the largest valid model: an f32 projected LSTM or reset-before GRU,
/// `x`, `h` and `m` / `r ⊙ h` (dense ops need at most `in + out`).
pub const SCRATCH: usize = 4 * MAX_DIM;
/// Frames of the window buffer of a windowed model (small: the decision reruns the window).
pub const WINDOW_FRAMES: usize = 12;

/// The committed real blobs (tests/data/blobs): the JapaneseVowels classifiers.
pub static BLOBS: [(&str, &[u8]); 9] = [
    (
        "rnn int8",
        include_bytes!("../../data/blobs/vowels_rnn_int8.trnn"),
    ),
    (
        "rnn int16",
        include_bytes!("../../data/blobs/vowels_rnn_int16.trnn"),
    ),
    (
        "rnn f32",
        include_bytes!("../../data/blobs/vowels_rnn_float32.trnn"),
    ),
    (
        "gru int8",
        include_bytes!("../../data/blobs/vowels_gru_int8.trnn"),
    ),
    (
        "gru int16",
        include_bytes!("../../data/blobs/vowels_gru_int16.trnn"),
    ),
    (
        "gru f32",
        include_bytes!("../../data/blobs/vowels_gru_float32.trnn"),
    ),
    (
        "lstm int8",
        include_bytes!("../../data/blobs/vowels_lstm_int8.trnn"),
    ),
    (
        "lstm int16",
        include_bytes!("../../data/blobs/vowels_lstm_int16.trnn"),
    ),
    (
        "lstm f32",
        include_bytes!("../../data/blobs/vowels_lstm_float32.trnn"),
    ),
];

/// `payload` behind a correct header (magic, version, flags, length, CRC).
pub fn reseal(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&MAGIC);
    v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(&crc32(payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// Target `load`.
pub fn load(data: &[u8]) {
    if let Ok(m) = Model::from_blob(data) {
        roundtrip(&m);
        exercise(&m, data);
    }
    // The payload of `data` (after a 16-byte header if there is one) behind a valid header.
    let payload = data.get(HEADER_LEN..).unwrap_or(data);
    let blob = reseal(payload);
    let loaded = Model::from_blob(&blob);
    match loaded {
        Ok(m) => {
            roundtrip(&m);
            exercise(&m, payload);
        }
        // Only the payload can be wrong now.
        Err(e) => assert!(
            !matches!(
                e,
                Error::Truncated
                    | Error::BadMagic
                    | Error::UnsupportedVersion(_)
                    | Error::BadChecksum
            ),
            "a sealed payload failed a header check: {e:?}"
        ),
    };
}

/// A loaded model written back with `write_blob` loads again to the same model.
fn roundtrip(m: &Model<'_>) {
    let mut buf = vec![0u8; HEADER_LEN + m.weight_bytes() + 8 * m.input_size() + 1024];
    let n = write_blob(m.desc(), &mut buf).expect("buffer large enough");
    let again = Model::from_blob(&buf[..n]).expect("a re-written valid model loads");
    assert_eq!(&again, m);
}

/// Target `stream`.
pub fn stream(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (_, blob) = BLOBS[which as usize % BLOBS.len()];
    let m = Model::from_blob(blob).expect("committed blobs load");
    exercise(&m, rest);
}

/// Target `model`.
pub fn model(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(spec) = ModelSpec::arbitrary(&mut u) else {
        return;
    };
    let blob = spec.blob();
    let m = match Model::from_blob(&blob) {
        Ok(m) => m,
        Err(e) => panic!("a valid model was rejected: {e:?}\n{spec:?}"),
    };
    let rest = u.take_rest();
    // The naive simulator is slow: small models only.
    let small = m.input_size() <= 16 && m.layers().iter().all(|l| l.hidden_size <= 16);
    if m.precision().is_int() && small && !m.is_windowed() {
        against_spec(&m, rest);
    }
    exercise(&m, rest);
}

// ------------------------------------------------------------------------------------
// Running a model
// ------------------------------------------------------------------------------------

const SPECIALS: [f32; 18] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1e-45,
    1e30,
    -1e30,
    65504.0,
    32767.5,
    -32768.5,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
];

/// One input value: an arbitrary bit pattern, a special value, or an ordinary one.
fn value(u: &mut Unstructured<'_>) -> AResult<f32> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => f32::from_bits(u.arbitrary()?),
        1 => *u.choose(&SPECIALS)?,
        2 => u.arbitrary::<i32>()? as f32,
        _ => u.arbitrary::<i16>()? as f32 / 4096.0,
    })
}

fn fill(u: &mut Unstructured<'_>, frame: &mut [f32]) -> AResult<()> {
    // Most frames are one value repeated (rails), the others element-wise.
    if u.ratio(1u8, 3)? {
        let v = value(u)?;
        frame.fill(v);
    } else {
        for x in frame.iter_mut() {
            *x = value(u)?;
        }
    }
    Ok(())
}

/// Checks what holds after any sequence of calls: integer `h` words are `i16` values.
fn check_state(m: &Model<'_>, state: &[i32]) {
    assert_eq!(state.len(), m.state_len());
    if !m.precision().is_int() {
        return;
    }
    let mut words = state.iter();
    for l in m.layers() {
        for &w in words.by_ref().take(l.h_size()) {
            assert!(
                (i16::MIN as i32..=i16::MAX as i32).contains(&w),
                "h word {w}"
            );
        }
        if matches!(l.cell, CellKind::Lstm { .. }) {
            words.by_ref().take(l.hidden_size as usize).for_each(drop);
        }
    }
}

/// Checks the outputs of the current state: lengths, errors, exact dequantization,
/// activation bounds, argmax.
fn check_outputs<const S: usize, const C: usize>(s: &mut Session<'_, S, C>) {
    let m = s.model();
    let n = m.output_size();
    let int = m.precision().is_int();
    let mut y = vec![0f32; n];
    s.output(&mut y).expect("output of the right length");
    assert_eq!(
        s.output(&mut vec![0f32; n + 1]),
        Err(Error::LengthMismatch {
            expected: n,
            got: n + 1
        })
    );
    let d = s.classify().expect("classify");
    assert!((d.class as usize) < n);
    let mut q = vec![0i16; n];
    if !int {
        assert_eq!(s.output_q(&mut q), Err(Error::PrecisionMismatch));
        let act = m.desc().output_act;
        if y.iter().all(|v| v.is_finite()) {
            let best = y
                .iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > y[b] { i } else { b });
            assert_eq!(d.class as usize, best);
        }
        if matches!(act, OutputAct::Sigmoid | OutputAct::Softmax) {
            assert!(
                y.iter().all(|v| v.is_nan() || (0.0..=1.0).contains(v)),
                "{y:?}"
            );
        }
        return;
    }
    s.output_q(&mut q).expect("output_q");
    let of = m.desc().output_frac as u32;
    for (a, b) in y.iter().zip(&q) {
        assert_eq!(*a, dequantize(*b as i32, of), "dequantization is exact");
    }
    let best = q
        .iter()
        .enumerate()
        .fold(0, |b, (i, v)| if *v > q[b] { i } else { b });
    assert_eq!((d.class as usize, d.score_q), (best, q[best]));
    match m.desc().output_act {
        OutputAct::Identity => {}
        OutputAct::Sigmoid => assert!(q.iter().all(|&v| v >= 0)),
        OutputAct::Tanh => assert!(q.iter().all(|&v| v >= -i16::MAX)),
        OutputAct::Softmax => {
            assert!(q.iter().all(|&v| v >= 0));
            let sum: i64 = q.iter().map(|&v| v as i64).sum();
            // each output rounded to nearest (±1/2), the largest possibly clamped at 32767
            assert!(
                (sum - 32768).abs() <= n as i64 + 1,
                "softmax sum {sum}: {q:?}"
            );
        }
    }
}

/// Whether an f32 model's state words are what `restore_state` documents as valid: finite
/// `h`/`c`, a max accumulator that is not NaN (−∞ before the first frame), finite `f64`
/// sums (the mean's frame count is a `u64`).
fn f32_state_restorable(m: &Model<'_>, state: &[i32]) -> bool {
    let n_layers: usize = m
        .layers()
        .iter()
        .map(|l| {
            l.h_size()
                + if matches!(l.cell, CellKind::Lstm { .. }) {
                    l.hidden_size as usize
                } else {
                    0
                }
        })
        .sum();
    let (layers, acc) = state.split_at(n_layers.min(state.len()));
    let f = |w: &i32| f32::from_bits(*w as u32);
    let w = m.pooled_size();
    layers.iter().all(|v| f(v).is_finite())
        && match m.pool() {
            Pool::Last | Pool::FinalStates => true,
            Pool::Max => acc.iter().take(w).all(|v| !f(v).is_nan()),
            Pool::Sum | Pool::Mean => acc.chunks(2).take(w).all(|p| {
                let (lo, hi) = (p[0] as u32 as u64, *p.get(1).unwrap_or(&0) as u32 as u64);
                f64::from_bits(lo | hi << 32).is_finite()
            }),
        }
}

/// Save, restore, and restore corrupted or wrong-length states.
fn check_save_restore<const S: usize, const C: usize>(
    s: &mut Session<'_, S, C>,
    u: &mut Unstructured<'_>,
) -> AResult<()> {
    let int = s.model().precision().is_int();
    let n = s.saved_len();
    let mut buf = vec![0u8; n];
    assert_eq!(
        s.save_state(&mut buf[..n - 1]),
        Err(Error::LengthMismatch {
            expected: n,
            got: n - 1
        })
    );
    assert_eq!(s.save_state(&mut buf), Ok(n));
    let before = s.state().to_vec();
    let finite = int || f32_state_restorable(s.model(), &before);
    if finite {
        assert_eq!(s.restore_state(&buf), Ok(()));
        assert_eq!(s.state(), &before[..]);
    } else {
        // documented: a non-finite f32 state does not restore
        assert_eq!(s.restore_state(&buf), Err(Error::BadState));
        assert_eq!(s.state(), &before[..]);
    }
    // Any change of one byte is caught by the CRC-32 tag.
    let i = u.choose_index(n)?;
    let x: u8 = u.int_in_range(1..=255)?;
    buf[i] ^= x;
    assert_eq!(s.restore_state(&buf), Err(Error::BadState));
    assert_eq!(s.restore_state(&buf[..n - 1]), Err(Error::BadState));
    assert_eq!(s.state(), &before[..]);
    // Arbitrary bytes: almost always rejected; never a panic, never a partial restore.
    let junk = u.bytes(n.min(u.len()))?;
    if let Err(e) = s.restore_state(junk) {
        assert_eq!(e, Error::BadState);
        assert_eq!(s.state(), &before[..]);
    }
    Ok(())
}

/// Runs `m` through every public operation, driven by `data`.
pub fn exercise(m: &Model<'_>, data: &[u8]) {
    let mut u = Unstructured::new(data);
    if m.is_windowed() {
        let _ = run_window_session(m, &mut u);
        let _ = run_window_classifier(m, &mut u);
        return;
    }
    let _ = run_session(m, &mut u);
    let _ = run_classifier(m, &mut u);
    let _ = run_generator(m, &mut u);
}

fn run_session(m: &Model<'_>, u: &mut Unstructured<'_>) -> AResult<()> {
    let mut s = Session::<STATE, SCRATCH>::new(m).expect("every valid model fits");
    let (n_in, int) = (m.input_size(), m.precision().is_int());
    let mut frame = vec![0f32; n_in];
    let mut frame_q = vec![0i16; n_in];
    for _ in 0..u.int_in_range(1..=48)? {
        match u.int_in_range(0u8..=12)? {
            0..=5 => {
                fill(u, &mut frame)?;
                let before = s.state().to_vec();
                match s.step(&frame) {
                    Ok(()) => {}
                    Err(Error::NonFinite) => assert_eq!(s.state(), &before[..]),
                    Err(e) => panic!("step: {e:?}"),
                }
            }
            6 | 7 => {
                for q in frame_q.iter_mut() {
                    *q = if u.ratio(1u8, 4)? {
                        *u.choose(&[i16::MIN, i16::MAX, -i16::MAX, 0, 1, -1])?
                    } else {
                        u.arbitrary()?
                    };
                }
                let r = s.step_q(&frame_q);
                assert_eq!(r.is_ok(), int, "step_q: {r:?}");
            }
            8 => {
                let len = u.int_in_range(0..=n_in + 2)?;
                if len != n_in {
                    let before = s.state().to_vec();
                    let f = vec![0.5f32; len];
                    let e = Err(Error::LengthMismatch {
                        expected: n_in,
                        got: len,
                    });
                    assert_eq!(s.step(&f), e);
                    if int {
                        assert_eq!(s.step_q(&vec![1i16; len]), e);
                    }
                    assert_eq!(s.state(), &before[..]);
                }
            }
            9 => check_outputs(&mut s),
            10 => check_save_restore(&mut s, u)?,
            11 => s.reset(),
            _ => {
                let math = if u.arbitrary()? {
                    F32Math::Accurate
                } else {
                    F32Math::Fast
                };
                assert_eq!(s.set_f32_math(math), Ok(()));
            }
        }
        check_state(m, s.state());
    }
    check_outputs(&mut s);
    Ok(())
}

/// The outputs over the window held, twice (the same result: the window and the streamed
/// state are left as they are), their dequantization and argmax.
fn check_window_outputs(s: &mut Session<'_, STATE, SCRATCH>, win: &mut Window<'_>) {
    let m = s.model();
    let n = m.output_size();
    let mut y = vec![0f32; n];
    let mut y2 = vec![0f32; n];
    s.output_window(win, &mut y).expect("output_window");
    s.output_window(win, &mut y2).expect("output_window again");
    assert_eq!(
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        y2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "output_window is repeatable"
    );
    assert_eq!(s.output(&mut y2), Err(Error::NeedsWindow));
    let d = s.classify_window(win).expect("classify_window");
    assert!((d.class as usize) < n);
    if m.precision().is_int() {
        let mut q = vec![0i16; n];
        s.output_window_q(win, &mut q).expect("output_window_q");
        let of = m.desc().output_frac as u32;
        for (a, b) in y.iter().zip(&q) {
            assert_eq!(*a, dequantize(*b as i32, of), "dequantization is exact");
        }
        let best = q
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > q[b] { i } else { b });
        assert_eq!((d.class as usize, d.score_q), (best, q[best]));
    } else {
        assert_eq!(
            s.output_window_q(win, &mut vec![0i16; n]),
            Err(Error::PrecisionMismatch)
        );
    }
}

/// A windowed model: `step_window` with arbitrary frames into a small window buffer (a full
/// buffer is `TooLarge` and changes nothing), the window outputs, `step` refused, reset and
/// clear; integer models without normalization are compared with the spec's offline run
/// of the window (`testutil::spec::run_window`) at every decision.
fn run_window_session(m: &Model<'_>, u: &mut Unstructured<'_>) -> AResult<()> {
    let mut s = Session::<STATE, SCRATCH>::new(m).expect("every valid model fits");
    let mut buf = vec![0u32; m.window_words(WINDOW_FRAMES)];
    let mut win = Window::new(&mut buf);
    assert_eq!(win.capacity(m), WINDOW_FRAMES);
    let n_in = m.input_size();
    let int = m.precision().is_int();
    // the spec's frames (integer models without a normalization: `q / 2^frac` is exact)
    let exact = int && m.desc().norm.is_none();
    let frac = m.input_frac() as i32;
    let mut held: Vec<Vec<i16>> = Vec::new();
    let mut frame = vec![0f32; n_in];
    for _ in 0..u.int_in_range(1..=40)? {
        match u.int_in_range(0u8..=9)? {
            0..=5 => {
                let q: Vec<i16> = if exact && u.ratio(3u8, 4)? {
                    let q = (0..n_in)
                        .map(|_| u.arbitrary::<i16>())
                        .collect::<AResult<Vec<i16>>>()?;
                    for (f, &v) in frame.iter_mut().zip(&q) {
                        *f = v as f32 * 2f32.powi(-frac);
                    }
                    q
                } else {
                    fill(u, &mut frame)?;
                    Vec::new()
                };
                let before = (s.state().to_vec(), win.frames());
                match s.step_window(&frame, &mut win) {
                    Ok(()) => {
                        if q.len() == n_in && held.len() + 1 == win.frames() {
                            held.push(q);
                        } else {
                            held.clear();
                            // no longer comparable: until the next clear
                            held.push(vec![]);
                        }
                    }
                    Err(Error::NonFinite) => {
                        assert_eq!((s.state().to_vec(), win.frames()), before)
                    }
                    Err(Error::TooLarge { .. }) => {
                        assert_eq!(win.frames(), WINDOW_FRAMES);
                        assert_eq!((s.state().to_vec(), win.frames()), before);
                    }
                    Err(e) => panic!("step_window: {e:?}"),
                }
            }
            6 => {
                check_window_outputs(&mut s, &mut win);
                let comparable = exact && held.iter().all(|x| x.len() == n_in);
                if comparable && win.frames() == held.len() && !held.is_empty() {
                    let mut q = vec![0i16; m.output_size()];
                    s.output_window_q(&mut win, &mut q)
                        .expect("output_window_q");
                    assert_eq!(
                        q,
                        testutil::spec::run_window(m, &held),
                        "window of {} frames vs the spec",
                        held.len()
                    );
                }
            }
            7 => {
                // a finite frame: `step` checks the (normalized) input first, so a
                // non-finite one (or a normalization overflowing to ±∞) is `NonFinite`
                let r = s.step(&vec![0.5; n_in]);
                let norm = m.desc().norm.is_some();
                assert!(
                    r == Err(Error::NeedsWindow) || (norm && r == Err(Error::NonFinite)),
                    "step on a windowed model: {r:?}"
                );
                assert_eq!(
                    s.output(&mut vec![0f32; m.output_size()]),
                    Err(Error::NeedsWindow)
                );
            }
            8 => {
                s.reset();
                win.clear();
                held.clear();
            }
            _ => {
                let k = u.int_in_range(0..=WINDOW_FRAMES + 1)?;
                if m.window_layer() == Some(0) {
                    win.drop_front(m, k);
                    let keep = held.len().saturating_sub(k);
                    held.drain(..held.len() - keep);
                } else {
                    s.reset();
                    win.clear();
                    held.clear();
                }
            }
        }
        check_state(m, s.state());
    }
    check_window_outputs(&mut s, &mut win);
    Ok(())
}

/// A windowed model through `Classifier::push_window`: tumbling or overlapping windows
/// (`hop`), a decision exactly when the window is full, then every `hop` frames.
fn run_window_classifier(m: &Model<'_>, u: &mut Unstructured<'_>) -> AResult<()> {
    let mut cfg = Config::default();
    let window = u.int_in_range(1..=WINDOW_FRAMES as u32)?;
    cfg.window = Some(window);
    cfg.hop = if u.arbitrary()? {
        Some(u.int_in_range(0..=window + 1)?)
    } else {
        None
    };
    let mut c = match Classifier::<STATE, SCRATCH, 0>::new(m, cfg) {
        Ok(c) => c,
        Err(Error::BadHop) => {
            let hop = cfg.hop.unwrap_or(1);
            assert!(hop == 0 || hop > window, "{cfg:?}");
            return Ok(());
        }
        Err(Error::Unsupported) => {
            assert!(m.window_layer() != Some(0) && cfg.hop.is_some_and(|h| h < window));
            return Ok(());
        }
        Err(e) => panic!("Classifier::new: {e:?}"),
    };
    let hop = cfg.hop.unwrap_or(window);
    let mut buf = vec![0u32; m.window_words(window as usize)];
    let mut win = Window::new(&mut buf);
    let n = m.output_size();
    let mut frame = vec![0f32; m.input_size()];
    let mut since = 0u32;
    let mut first = true;
    for _ in 0..u.int_in_range(0..=3 * WINDOW_FRAMES)? {
        fill(u, &mut frame)?;
        match c.push_window(&frame, &mut win) {
            Ok(Some(d)) => {
                since += 1;
                assert!((d.class as usize) < n);
                assert_eq!(since, if first { window } else { hop }, "{cfg:?}");
                since = 0;
                first = hop >= window;
            }
            Ok(None) => since += 1,
            Err(e) => assert_eq!(e, Error::NonFinite),
        }
    }
    Ok(())
}

fn run_classifier(m: &Model<'_>, u: &mut Unstructured<'_>) -> AResult<()> {
    let mut cfg = Config::default();
    cfg.window = if u.arbitrary()? {
        Some(u.int_in_range(0..=20)?)
    } else {
        None
    };
    cfg.smoothing = u.arbitrary()?;
    let mut c = match Classifier::<STATE, SCRATCH, 5>::new(m, cfg) {
        Ok(c) => c,
        Err(e) => {
            assert_eq!((cfg.window, e), (Some(0), Error::ZeroWindow));
            return Ok(());
        }
    };
    let n = m.output_size();
    let mut frame = vec![0f32; m.input_size()];
    for _ in 0..u.int_in_range(0..=40)? {
        fill(u, &mut frame)?;
        let frames = c.frames();
        match c.push(&frame) {
            Ok(Some(d)) => {
                assert!((d.class as usize) < n);
                assert_eq!(Some(frames + 1), cfg.window);
                assert_eq!(c.frames(), 0);
            }
            Ok(None) => assert_eq!(c.frames(), frames + 1),
            Err(e) => {
                assert_eq!(e, Error::NonFinite);
                assert_eq!(c.frames(), frames);
            }
        }
        if let Some(d) = c.smoothed() {
            assert!(cfg.smoothing && (d.class as usize) < n);
        }
    }
    let d = c.end_sequence().expect("end_sequence");
    assert!((d.class as usize) < n);
    assert_eq!(c.frames(), 0);
    Ok(())
}

fn run_generator(m: &Model<'_>, u: &mut Unstructured<'_>) -> AResult<()> {
    let mut g = match Generator::<STATE, SCRATCH>::new(m) {
        Ok(g) => g,
        Err(e) => {
            assert_ne!(m.input_size(), m.output_size(), "{e:?}");
            return Ok(());
        }
    };
    let mut frame = vec![0f32; m.input_size()];
    for _ in 0..u.int_in_range(0..=4)? {
        fill(u, &mut frame)?;
        let _ = g.prime(&frame);
    }
    let mut out = vec![0f32; m.output_size()];
    for _ in 0..u.int_in_range(0..=16)? {
        match g.next(&mut out) {
            Ok(()) => {}
            // f32 feedback of an overflowing model
            Err(Error::NonFinite) if !m.precision().is_int() => break,
            Err(e) => panic!("generator: {e:?}"),
        }
    }
    Ok(())
}

/// Integer models: the session and the naive spec simulator agree bit for bit on every
/// state word and output, frame after frame (arbitrary `i16` frames, rails included).
fn against_spec(m: &Model<'_>, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut s = Session::<STATE, SCRATCH>::new(m).expect("fits");
    let mut spec = testutil::spec::State::new(m);
    assert_eq!(s.state(), &spec.words(m)[..], "initial state");
    let mut x = vec![0i16; m.input_size()];
    let mut out = vec![0i16; m.output_size()];
    for t in 0..8 {
        for v in x.iter_mut() {
            *v = match u.int_in_range(0u8..=3).unwrap_or(0) {
                0 => i16::MAX,
                1 => i16::MIN,
                _ => u.arbitrary().unwrap_or(0),
            };
        }
        s.step_q(&x).expect("step_q");
        spec.step(m, &x);
        assert_eq!(s.state(), &spec.words(m)[..], "state after step {t}");
        s.output_q(&mut out).expect("output_q");
        assert_eq!(out, spec.output(m), "output after step {t}");
    }
}

// ------------------------------------------------------------------------------------
// Arbitrary valid models
// ------------------------------------------------------------------------------------

/// One direction's tensors, owned.
#[derive(Debug)]
struct DirSpec {
    w_ih: Vec<u8>,
    w_hh: Vec<u8>,
    b_ih: Vec<u8>,
    b_hh: Vec<u8>,
    rq_ih: Vec<u8>,
    rq_hh: Vec<u8>,
    peephole: Vec<u8>,
    h0: Vec<u8>,
    c0: Vec<u8>,
    w_hr: Vec<u8>,
    rq_hr: Vec<u8>,
}

impl DirSpec {
    fn bytes(&self) -> usize {
        [
            &self.w_ih,
            &self.w_hh,
            &self.b_ih,
            &self.b_hh,
            &self.rq_ih,
            &self.rq_hh,
            &self.peephole,
            &self.h0,
            &self.c0,
            &self.w_hr,
            &self.rq_hr,
        ]
        .iter()
        .map(|t| t.len())
        .sum()
    }
}

/// One layer, owned: the forward tensors, and the reverse ones of a bidirectional layer.
#[derive(Debug)]
struct LayerSpec {
    cell: CellKind,
    input: u16,
    hidden: u16,
    x_frac: u8,
    h_frac: u8,
    p_frac: u8,
    /// LSTM projection width `P` (0: none).
    proj: u16,
    /// LSTM cell clip (4 bytes) or empty.
    clip: Vec<u8>,
    direction: Direction,
    fwd: DirSpec,
    bwd: Option<DirSpec>,
}

/// A pre-net / hidden head dense op, owned.
#[derive(Debug)]
struct OpSpec {
    act: DenseAct,
    x_frac: u8,
    y_frac: u8,
    out: u16,
    input: u16,
    weight: Vec<u8>,
    bias: Vec<u8>,
    rq: Vec<u8>,
}

/// A dense head: out size, in size, weight, bias, requant records.
type HeadSpec = (u16, u16, Vec<u8>, Vec<u8>, Vec<u8>);

/// A whole model, owned; [`ModelSpec::blob`] writes it.
#[derive(Debug)]
pub struct ModelSpec {
    precision: Precision,
    input: u16,
    norm: Option<(Vec<u8>, Vec<u8>)>,
    pre: Vec<OpSpec>,
    layers: Vec<LayerSpec>,
    pool: Pool,
    pool_frac: u8,
    mlp: Vec<OpSpec>,
    head: Option<HeadSpec>,
    act: OutputAct,
    output_frac: u8,
}

/// A width: mostly small (every padding case), rarely large (up to the largest allowed).
/// Exhausted input gives 1.
fn dim(u: &mut Unstructured<'_>, big: bool) -> AResult<u16> {
    Ok(match u.int_in_range(0u8..=15)? {
        15 if big && u.ratio(1u8, 8)? => MAX_DIM as u16,
        14 if big && u.ratio(1u8, 4)? => 64,
        n => (n % 9 + 1) as u16,
    })
}

/// `n` finite f32 values as LE bytes: arbitrary bit patterns with non-finite ones mapped to
/// special finite values, or ordinary values.
fn f32s(u: &mut Unstructured<'_>, n: usize) -> AResult<Vec<u8>> {
    let mut v = Vec::with_capacity(4 * n);
    let wild = u.ratio(1u8, 4)?;
    for _ in 0..n {
        let x = if wild {
            let x = f32::from_bits(u.arbitrary()?);
            if x.is_finite() {
                x
            } else {
                *u.choose(&[f32::MAX, f32::MIN, 0.0])?
            }
        } else {
            u.arbitrary::<i16>()? as f32 / 16384.0
        };
        v.extend_from_slice(&x.to_le_bytes());
    }
    Ok(v)
}

/// `n` arbitrary bytes (rails more likely than uniform).
fn bytes(u: &mut Unstructured<'_>, n: usize) -> AResult<Vec<u8>> {
    let mode = u.int_in_range(0u8..=5)?;
    Ok(match mode {
        0 => vec![0x7F; n],
        1 => vec![0x80; n],
        2 => vec![0xFF; n],
        _ => (0..n)
            .map(|_| u.arbitrary::<u8>())
            .collect::<AResult<Vec<u8>>>()?,
    })
}

/// `rows` requant records accepted by the loader (`mult > 0`, `shift` in range).
fn requants(u: &mut Unstructured<'_>, rows: usize, max_shift: u8) -> AResult<Vec<u8>> {
    let mut v = Vec::with_capacity(rows * Requant::BYTES);
    let typical = u.ratio(1u8, 2)?;
    for _ in 0..rows {
        let (mult, shift) = if typical {
            // what the host tool writes: mult in [2^30, 2^31), factor around 2^-k
            (
                u.int_in_range((1i32 << 30)..=i32::MAX)?,
                u.int_in_range(20..=max_shift.min(50))?,
            )
        } else {
            (
                u.int_in_range(1..=i32::MAX)?,
                u.int_in_range(1..=max_shift)?,
            )
        };
        v.extend_from_slice(&mult.to_le_bytes());
        v.push(shift);
    }
    Ok(v)
}

impl ModelSpec {
    /// An arbitrary model the loader must accept: a pre-net (0–2 dense ops), 1–4 layers
    /// (LSTM with projection and cell clip, forward / reverse / bidirectional), a pooling,
    /// hidden head ops (0–2) and a head.
    pub fn arbitrary(u: &mut Unstructured<'_>) -> AResult<ModelSpec> {
        let precision = *u.choose(&[Precision::Int8, Precision::Int16, Precision::F32])?;
        let int = precision.is_int();
        let (wb, bb, ab) = (
            precision.weight_bytes(),
            precision.bias_bytes(),
            precision.act_bytes(),
        );
        let max_shift = if precision == Precision::Int16 {
            94
        } else {
            62
        };
        let tensor = |u: &mut Unstructured<'_>, n: usize, b: usize| -> AResult<Vec<u8>> {
            if int {
                bytes(u, n * b)
            } else {
                f32s(u, n)
            }
        };
        let rqs = |u: &mut Unstructured<'_>, rows: usize| -> AResult<Vec<u8>> {
            if int {
                requants(u, rows, max_shift)
            } else {
                Ok(Vec::new())
            }
        };
        let input = dim(u, true)?;
        let norm = if u.arbitrary()? {
            Some((f32s(u, input as usize)?, f32s(u, input as usize)?))
        } else {
            None
        };
        let mut prev = input;
        let mut frac: u8 = u.int_in_range(0..=15)?;
        // a dense op reading `prev` values in `frac`
        let op = |u: &mut Unstructured<'_>, prev: u16, frac: u8| -> AResult<OpSpec> {
            let out = dim(u, false)?;
            let act = match u.int_in_range(0u8..=7)? {
                0 => DenseAct::Identity,
                1 => DenseAct::Relu,
                2 => {
                    let (a, b) = (value(u)?, value(u)?);
                    let fin = |x: f32| if x.is_finite() { x } else { 0.0 };
                    let (a, b) = (fin(a), fin(b));
                    DenseAct::Clip {
                        lo: a.min(b),
                        hi: a.max(b),
                    }
                }
                3 => DenseAct::LeakyRelu {
                    alpha: if int {
                        u.int_in_range(0u16..=1000)? as f32 / 1000.0
                    } else {
                        let a = value(u)?;
                        if a.is_finite() {
                            a
                        } else {
                            0.01
                        }
                    },
                },
                4 => DenseAct::Tanh,
                5 => DenseAct::Sigmoid,
                6 if !int => DenseAct::GeluTanh,
                _ => DenseAct::Relu,
            };
            let y_frac = if !int {
                0
            } else if matches!(act, DenseAct::Tanh | DenseAct::Sigmoid) {
                15
            } else {
                u.int_in_range(0..=15)?
            };
            let (rows, i) = (out as usize, prev as usize);
            Ok(OpSpec {
                act,
                x_frac: if int { frac } else { 0 },
                y_frac,
                out,
                input: prev,
                weight: tensor(u, rows * pad4(i), wb)?,
                bias: tensor(u, rows, bb)?,
                rq: rqs(u, rows)?,
            })
        };
        let graph = u.ratio(1u8, 2)?;
        let mut pre = Vec::new();
        if graph && u.ratio(1u8, 3)? {
            for _ in 0..u.int_in_range(1..=2)? {
                let o = op(u, prev, frac)?;
                prev = o.out;
                frac = o.y_frac;
                pre.push(o);
            }
        }
        let n_layers = u.int_in_range(1..=MAX_LAYERS)?;
        let mut layers = Vec::with_capacity(n_layers);
        for k in 0..n_layers {
            let cell = *u.choose(&testutil::CELLS)?;
            let lstm = matches!(cell, CellKind::Lstm { .. });
            // one big layer at most, to keep executions fast
            let hidden = dim(u, k == 0)?;
            let proj = if graph && lstm && u.ratio(1u8, 4)? {
                dim(u, false)?
            } else {
                0
            };
            let (i, h) = (prev as usize, hidden as usize);
            let hw = if proj != 0 { proj as usize } else { h };
            let rows = cell.gates() * h;
            let h_frac = if !int {
                0
            } else if cell.bounded() && proj == 0 {
                15
            } else {
                u.int_in_range(0..=15)?
            };
            let clip = if graph && lstm && u.ratio(1u8, 4)? {
                if int {
                    u.int_in_range(1..=i32::MAX)?.to_le_bytes().to_vec()
                } else {
                    let c = f32::from_le_bytes(f32s(u, 1)?.try_into().unwrap_or([0; 4])).abs();
                    (if c > 0.0 { c } else { 1.0 }).to_le_bytes().to_vec()
                }
            } else {
                Vec::new()
            };
            let direction = if graph && u.ratio(1u8, 3)? {
                match *u.choose(&[Direction::Reverse, Direction::Bidirectional])? {
                    // the concatenated output must stay a valid width
                    Direction::Bidirectional if 2 * hw > MAX_DIM => Direction::Reverse,
                    d => d,
                }
            } else {
                Direction::Forward
            };
            let peep = matches!(cell, CellKind::Lstm { peepholes: true });
            let dir = |u: &mut Unstructured<'_>| -> AResult<DirSpec> {
                Ok(DirSpec {
                    w_ih: tensor(u, rows * pad4(i), wb)?,
                    w_hh: tensor(u, rows * pad4(hw), wb)?,
                    b_ih: tensor(u, rows, bb)?,
                    b_hh: tensor(u, rows, bb)?,
                    rq_ih: rqs(u, rows)?,
                    rq_hh: rqs(u, rows)?,
                    peephole: if peep {
                        tensor(u, 3 * h, ab)?
                    } else {
                        Vec::new()
                    },
                    h0: if u.arbitrary()? {
                        tensor(u, hw, ab)?
                    } else {
                        Vec::new()
                    },
                    c0: if lstm && u.arbitrary()? {
                        tensor(u, h, 4)?
                    } else {
                        Vec::new()
                    },
                    w_hr: if proj != 0 {
                        tensor(u, hw * pad4(h), wb)?
                    } else {
                        Vec::new()
                    },
                    rq_hr: if proj != 0 { rqs(u, hw)? } else { Vec::new() },
                })
            };
            let fwd = dir(u)?;
            let bwd = if direction == Direction::Bidirectional {
                Some(dir(u)?)
            } else {
                None
            };
            layers.push(LayerSpec {
                cell,
                input: prev,
                hidden,
                x_frac: if int { frac } else { 0 },
                h_frac,
                p_frac: if int { u.int_in_range(0..=15)? } else { 0 },
                proj,
                clip,
                direction,
                fwd,
                bwd,
            });
            prev = (hw * direction.count()) as u16;
            frac = h_frac;
        }
        let pool = if graph {
            *u.choose(&[
                Pool::Last,
                Pool::Mean,
                Pool::Max,
                Pool::Sum,
                Pool::FinalStates,
            ])?
        } else {
            Pool::Last
        };
        let pool_frac = if int && pool == Pool::Sum {
            u.int_in_range(0..=frac)?
        } else {
            0
        };
        if int && pool == Pool::Sum {
            frac = pool_frac;
        }
        let mut mlp = Vec::new();
        if graph && u.ratio(1u8, 2)? {
            for _ in 0..u.int_in_range(1..=2)? {
                let o = op(u, prev, frac)?;
                prev = o.out;
                frac = o.y_frac;
                mlp.push(o);
            }
        }
        let head = if u.arbitrary()? {
            let c = dim(u, false)?;
            let (rows, i) = (c as usize, prev as usize);
            Some((
                c,
                prev,
                tensor(u, rows * pad4(i), wb)?,
                tensor(u, rows, bb)?,
                rqs(u, rows)?,
            ))
        } else {
            None
        };
        let act = if head.is_some() || !int {
            *u.choose(&[
                OutputAct::Identity,
                OutputAct::Sigmoid,
                OutputAct::Tanh,
                OutputAct::Softmax,
            ])?
        } else {
            OutputAct::Identity
        };
        let output_frac = if !int {
            0
        } else if act != OutputAct::Identity {
            15
        } else if head.is_none() {
            frac
        } else {
            u.int_in_range(0..=15)?
        };
        Ok(ModelSpec {
            precision,
            input,
            norm,
            pre,
            layers,
            pool,
            pool_frac,
            mlp,
            head,
            act,
            output_frac,
        })
    }

    /// The blob.
    pub fn blob(&self) -> Vec<u8> {
        let layers = self
            .layers
            .iter()
            .map(|l| LayerDesc {
                cell: l.cell,
                input_size: l.input,
                hidden_size: l.hidden,
                x_frac: l.x_frac,
                h_frac: l.h_frac,
                w_ih: &l.fwd.w_ih,
                w_hh: &l.fwd.w_hh,
                b_ih: &l.fwd.b_ih,
                b_hh: &l.fwd.b_hh,
                rq_ih: &l.fwd.rq_ih,
                rq_hh: &l.fwd.rq_hh,
                peephole: &l.fwd.peephole,
                p_frac: l.p_frac,
                h0: &l.fwd.h0,
                c0: &l.fwd.c0,
                proj_size: l.proj,
                w_hr: &l.fwd.w_hr,
                rq_hr: &l.fwd.rq_hr,
                cell_clip: &l.clip,
                direction: l.direction,
                backward: l.bwd.as_ref().map(|d| DirWeights {
                    w_ih: &d.w_ih,
                    w_hh: &d.w_hh,
                    b_ih: &d.b_ih,
                    b_hh: &d.b_hh,
                    rq_ih: &d.rq_ih,
                    rq_hh: &d.rq_hh,
                    peephole: &d.peephole,
                    h0: &d.h0,
                    c0: &d.c0,
                    w_hr: &d.w_hr,
                    rq_hr: &d.rq_hr,
                }),
            })
            .collect::<heapless::Vec<_, MAX_LAYERS>>();
        fn ops(v: &[OpSpec]) -> heapless::Vec<OpDesc<'_>, MAX_OPS> {
            v.iter()
                .map(|o| {
                    OpDesc::Dense(DenseOpDesc {
                        act: o.act,
                        x_frac: o.x_frac,
                        y_frac: o.y_frac,
                        dense: DenseDesc {
                            out_size: o.out,
                            in_size: o.input,
                            weight: &o.weight,
                            bias: &o.bias,
                            rq: &o.rq,
                        },
                    })
                })
                .collect()
        }
        let desc = ModelDesc {
            precision: self.precision,
            input_size: self.input,
            norm: self.norm.as_ref().map(|(o, s)| NormDesc {
                offset: o,
                scale: s,
            }),
            pre: ops(&self.pre),
            layers,
            pool: self.pool,
            pool_frac: self.pool_frac,
            mlp: ops(&self.mlp),
            head: self.head.as_ref().map(|(c, i, w, b, rq)| DenseDesc {
                out_size: *c,
                in_size: *i,
                weight: w,
                bias: b,
                rq,
            }),
            output_act: self.act,
            output_frac: self.output_frac,
            name: "fuzz",
        };
        let op_bytes = |v: &[OpSpec]| -> usize {
            v.iter()
                .map(|o| o.weight.len() + o.bias.len() + o.rq.len() + 64)
                .sum()
        };
        let tensors: usize = self
            .layers
            .iter()
            .map(|l| l.fwd.bytes() + l.bwd.as_ref().map_or(0, DirSpec::bytes) + 64)
            .sum::<usize>()
            + self.norm.as_ref().map_or(0, |(o, s)| o.len() + s.len())
            + op_bytes(&self.pre)
            + op_bytes(&self.mlp)
            + self
                .head
                .as_ref()
                .map_or(0, |(_, _, w, b, rq)| w.len() + b.len() + rq.len());
        // + varint lengths and the scalar fields
        let mut buf = vec![0u8; HEADER_LEN + tensors + 1024];
        let n = write_blob(&desc, &mut buf).expect("buffer large enough");
        buf.truncate(n);
        buf
    }
}

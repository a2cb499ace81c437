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
    crc32, pad4, write_blob, DenseDesc, LayerDesc, ModelDesc, NormDesc, FORMAT_VERSION, HEADER_LEN,
    MAGIC,
};
use tinyrnn::{
    CellKind, Classifier, Config, Error, F32Math, Generator, Model, OutputAct, Precision, Session,
    MAX_DIM, MAX_LAYERS,
};

#[path = "../../../src/testutil.rs"]
#[allow(clippy::all)]
mod testutil;

pub mod import;

/// State words of the largest valid model: `MAX_LAYERS` LSTM layers of `MAX_DIM` units.
pub const STATE: usize = 2 * MAX_LAYERS * MAX_DIM;
/// Scratch words of the largest valid model: an f32 reset-before GRU, `x`, `h` and `r ⊙ h`.
pub const SCRATCH: usize = 3 * MAX_DIM;

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
    if m.precision().is_int() && small {
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
        let h = l.hidden_size as usize;
        for &w in words.by_ref().take(h) {
            assert!(
                (i16::MIN as i32..=i16::MAX as i32).contains(&w),
                "h word {w}"
            );
        }
        if matches!(l.cell, CellKind::Lstm { .. }) {
            words.by_ref().take(h).for_each(drop);
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
    let finite = int || before.iter().all(|&w| f32::from_bits(w as u32).is_finite());
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

/// One layer's tensors, owned.
#[derive(Debug)]
struct LayerSpec {
    cell: CellKind,
    input: u16,
    hidden: u16,
    x_frac: u8,
    h_frac: u8,
    p_frac: u8,
    w_ih: Vec<u8>,
    w_hh: Vec<u8>,
    b_ih: Vec<u8>,
    b_hh: Vec<u8>,
    rq_ih: Vec<u8>,
    rq_hh: Vec<u8>,
    peephole: Vec<u8>,
    h0: Vec<u8>,
    c0: Vec<u8>,
}

/// A dense head: out size, in size, weight, bias, requant records.
type HeadSpec = (u16, u16, Vec<u8>, Vec<u8>, Vec<u8>);

/// A whole model, owned; [`ModelSpec::blob`] writes it.
#[derive(Debug)]
pub struct ModelSpec {
    precision: Precision,
    input: u16,
    norm: Option<(Vec<u8>, Vec<u8>)>,
    layers: Vec<LayerSpec>,
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
    /// An arbitrary model the loader must accept.
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
        let input = dim(u, true)?;
        let norm = if u.arbitrary()? {
            Some((f32s(u, input as usize)?, f32s(u, input as usize)?))
        } else {
            None
        };
        let n_layers = u.int_in_range(1..=MAX_LAYERS)?;
        let mut layers = Vec::with_capacity(n_layers);
        let mut prev = input;
        let mut x_frac = u.int_in_range(0..=15)?;
        for k in 0..n_layers {
            let cell = *u.choose(&testutil::CELLS)?;
            // one big layer at most, to keep executions fast
            let hidden = dim(u, k == 0)?;
            let (i, h) = (prev as usize, hidden as usize);
            let rows = cell.gates() * h;
            let h_frac = if cell.bounded() {
                15
            } else {
                u.int_in_range(0..=15)?
            };
            let tensor = |u: &mut Unstructured<'_>, n: usize, b: usize| -> AResult<Vec<u8>> {
                if int {
                    bytes(u, n * b)
                } else {
                    f32s(u, n)
                }
            };
            let peep = matches!(cell, CellKind::Lstm { peepholes: true });
            let l = LayerSpec {
                cell,
                input: prev,
                hidden,
                x_frac: if int { x_frac } else { 0 },
                h_frac: if int { h_frac } else { 0 },
                p_frac: if int { u.int_in_range(0..=15)? } else { 0 },
                w_ih: tensor(u, rows * pad4(i), wb)?,
                w_hh: tensor(u, rows * pad4(h), wb)?,
                b_ih: tensor(u, rows, bb)?,
                b_hh: tensor(u, rows, bb)?,
                rq_ih: if int {
                    requants(u, rows, max_shift)?
                } else {
                    Vec::new()
                },
                rq_hh: if int {
                    requants(u, rows, max_shift)?
                } else {
                    Vec::new()
                },
                peephole: if peep {
                    tensor(u, 3 * h, ab)?
                } else {
                    Vec::new()
                },
                h0: if u.arbitrary()? {
                    tensor(u, h, ab)?
                } else {
                    Vec::new()
                },
                c0: if matches!(cell, CellKind::Lstm { .. }) && u.arbitrary()? {
                    tensor(u, h, 4)?
                } else {
                    Vec::new()
                },
            };
            layers.push(l);
            prev = hidden;
            x_frac = h_frac;
        }
        let last_frac = x_frac;
        let head = if u.arbitrary()? {
            let c = dim(u, false)?;
            let (rows, i) = (c as usize, prev as usize);
            let weight = if int {
                bytes(u, rows * pad4(i) * wb)?
            } else {
                f32s(u, rows * pad4(i))?
            };
            let bias = if int {
                bytes(u, rows * bb)?
            } else {
                f32s(u, rows)?
            };
            let rq = if int {
                requants(u, rows, max_shift)?
            } else {
                Vec::new()
            };
            Some((c, prev, weight, bias, rq))
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
            last_frac
        } else {
            u.int_in_range(0..=15)?
        };
        Ok(ModelSpec {
            precision,
            input,
            norm,
            layers,
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
                w_ih: &l.w_ih,
                w_hh: &l.w_hh,
                b_ih: &l.b_ih,
                b_hh: &l.b_hh,
                rq_ih: &l.rq_ih,
                rq_hh: &l.rq_hh,
                peephole: &l.peephole,
                p_frac: l.p_frac,
                h0: &l.h0,
                c0: &l.c0,
                proj_size: 0,
                w_hr: &[],
                rq_hr: &[],
                cell_clip: &[],
                direction: tinyrnn::Direction::Forward,
                backward: None,
            })
            .collect::<heapless::Vec<_, MAX_LAYERS>>();
        let desc = ModelDesc {
            precision: self.precision,
            input_size: self.input,
            norm: self.norm.as_ref().map(|(o, s)| NormDesc {
                offset: o,
                scale: s,
            }),
            pre: heapless::Vec::new(),
            layers,
            pool: tinyrnn::Pool::Last,
            pool_frac: 0,
            mlp: heapless::Vec::new(),
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
        let tensors: usize = self
            .layers
            .iter()
            .map(|l| {
                l.w_ih.len()
                    + l.w_hh.len()
                    + l.b_ih.len()
                    + l.b_hh.len()
                    + l.rq_ih.len()
                    + l.rq_hh.len()
                    + l.peephole.len()
                    + l.h0.len()
                    + l.c0.len()
            })
            .sum::<usize>()
            + self.norm.as_ref().map_or(0, |(o, s)| o.len() + s.len())
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

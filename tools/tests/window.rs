//! Reverse and bidirectional layers (blob format 3, the runtime's window mode) on random
//! models built here: the f32 blob follows the f64 reference `FloatModel::run_window`
//! (≤ 1e-5 with `libm`), the integer sessions follow the spec simulator
//! (`testutil::spec::run_window`) bit for bit, and their argmax agrees with the float
//! model's; plus the window buffer's typed errors and the blob round trip.

use tinyrnn::model::write_blob;
use tinyrnn::{
    Buffer, CellKind, Direction, Error, Model, OutputAct, Pool, Precision, RnnAct, Session, Window,
};
use tinyrnn_cli::ir::{FloatDense, FloatLayer, FloatModel};
use tinyrnn_cli::quantize::calib::{calibrate, Batch};
use tinyrnn_cli::quantize::{quantize, QuantOptions};

#[path = "../../src/testutil.rs"]
mod testutil;

mod common;
use common::Lcg;

/// One direction's weights (with a nonzero `h0`/`c0` so that the initial state of each
/// direction is exercised).
fn dir(rng: &mut Lcg, cell: CellKind, i: usize, h: usize) -> FloatLayer {
    let g = cell.gates();
    let lstm = matches!(cell, CellKind::Lstm { .. });
    FloatLayer {
        cell,
        input_size: i,
        hidden_size: h,
        w_ih: rng.vec(g * h * i, 0.8),
        w_hh: rng.vec(g * h * h, 0.5),
        b_ih: rng.vec(g * h, 0.3),
        b_hh: rng.vec(g * h, 0.3),
        peephole: matches!(cell, CellKind::Lstm { peepholes: true }).then(|| rng.vec(3 * h, 0.4)),
        h0: Some(rng.vec(h, 0.3)),
        c0: lstm.then(|| rng.vec(h, 0.5)),
        cell_clip: None,
        direction: Direction::Forward,
        backward: None,
        w_hr: None,
    }
}

fn layer(rng: &mut Lcg, cell: CellKind, d: Direction, i: usize, h: usize) -> FloatLayer {
    let mut l = dir(rng, cell, i, h);
    l.direction = d;
    if d == Direction::Bidirectional {
        l.backward = Some(Box::new(dir(rng, cell, i, h)));
    }
    l
}

/// The stacks tested: `[d]` (5→7), `[forward, d]` (a streamed layer first), `[d, bidir]`
/// (two layers over the window).
#[derive(Debug, Clone, Copy)]
enum Stack {
    One,
    AfterForward,
    Two,
}

fn model(cell: CellKind, d: Direction, stack: Stack, pool: Pool, seed: u64) -> FloatModel {
    let mut rng = Lcg(seed);
    let layers = match stack {
        Stack::One => vec![layer(&mut rng, cell, d, 5, 7)],
        Stack::AfterForward => vec![
            layer(&mut rng, cell, Direction::Forward, 5, 6),
            layer(&mut rng, cell, d, 6, 7),
        ],
        Stack::Two => {
            let first = layer(&mut rng, cell, d, 5, 4);
            let w = first.out_size();
            vec![first, layer(&mut rng, cell, Direction::Bidirectional, w, 5)]
        }
    };
    let last = layers.last().unwrap().out_size();
    let m = FloatModel {
        input_size: 5,
        norm: None,
        pre: Vec::new(),
        layers,
        pool,
        mlp: Vec::new(),
        head: Some(FloatDense {
            out_size: 4,
            in_size: last,
            weight: rng.vec(4 * last, 0.9),
            bias: rng.vec(4, 0.2),
            act: tinyrnn::DenseAct::Identity,
        }),
        output_act: OutputAct::Softmax,
        name: "window".into(),
    };
    m.validate().unwrap();
    m
}

/// `model` with a per-frame pre-net (dense 5→5, ReLU) and a hidden head op (dense, tanh).
fn graph(cell: CellKind, d: Direction, stack: Stack, pool: Pool, seed: u64) -> FloatModel {
    use tinyrnn_cli::ir::FrameOp;
    let mut m = model(cell, d, stack, pool, seed);
    let mut rng = Lcg(seed ^ 0x5a5a);
    let dense = |rng: &mut Lcg, o: usize, i: usize, act| FloatDense {
        out_size: o,
        in_size: i,
        weight: rng.vec(o * i, 0.9),
        bias: rng.vec(o, 0.3),
        act,
    };
    let w = m.pooled_size();
    m.pre = vec![FrameOp::Dense(dense(
        &mut rng,
        5,
        5,
        tinyrnn::DenseAct::Relu,
    ))];
    m.mlp = vec![FrameOp::Dense(dense(
        &mut rng,
        6,
        w,
        tinyrnn::DenseAct::Tanh,
    ))];
    m.head = Some(dense(&mut rng, 4, 6, tinyrnn::DenseAct::Identity));
    m.validate().unwrap();
    m
}

const CELLS: [CellKind; 6] = [
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

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    v.enumerate()
        .fold((0, f64::MIN), |b, (k, y)| if y > b.1 { (k, y) } else { b })
        .0
}

/// Runs `blob` over one window: `step_window` per frame, then `output_window` (and the
/// integer output for integer models).
fn run(model: &Model<'_>, seq: &[&[f32]]) -> (Vec<f32>, Vec<i16>) {
    let mut s = Session::<'_, 256, 256>::new(model).unwrap();
    s.set_f32_math(tinyrnn::F32Math::Accurate).unwrap();
    let mut buf = vec![0u32; model.window_words(seq.len())];
    let mut win = Window::new(&mut buf);
    for f in seq {
        s.step_window(f, &mut win).unwrap();
    }
    let mut out = vec![0f32; model.output_size()];
    s.output_window(&mut win, &mut out).unwrap();
    let mut q = vec![0i16; model.output_size()];
    if model.precision().is_int() {
        s.output_window_q(&mut win, &mut q).unwrap();
        // the decision is the output's argmax
        let d = s.classify_window(&mut win).unwrap();
        assert_eq!(
            d.class as usize,
            argmax(q.iter().map(|&v| v as f64)),
            "classify_window"
        );
    }
    (out, q)
}

/// Every cell × {reverse, bidirectional} × stack × pool × precision: f32 vs `run_window`,
/// integers vs the spec simulator, argmax agreement.
#[test]
fn windowed_models_match_the_reference_and_the_spec() {
    let (n, t) = (6, 16);
    let x = Lcg(7).vec(n * t * 5, 1.5);
    let batch = Batch {
        data: &x,
        n,
        t,
        f: 5,
        lengths: None,
    };
    let seqs: Vec<Vec<&[f32]>> = (0..n)
        .map(|i| (0..t).map(|j| &x[(i * t + j) * 5..][..5]).collect())
        .collect();
    let mut worst_f32 = 0f64;
    let (mut agree, mut total) = ([0usize; 2], 0usize);
    let mut cases = 0;
    for (ci, cell) in CELLS.into_iter().enumerate() {
        for d in [Direction::Reverse, Direction::Bidirectional] {
            for stack in [Stack::One, Stack::AfterForward, Stack::Two] {
                let pools: &[Pool] = match stack {
                    Stack::One => &[
                        Pool::Last,
                        Pool::Mean,
                        Pool::FinalStates,
                        Pool::Max,
                        Pool::Sum,
                    ],
                    _ => &[Pool::Last, Pool::Mean, Pool::FinalStates],
                };
                for (pk, &pool) in pools.iter().enumerate() {
                    // every other case with a pre-net and a hidden head op
                    let fm = if (ci + pk) % 2 == 1 {
                        graph(cell, d, stack, pool, 100 + ci as u64)
                    } else {
                        model(cell, d, stack, pool, 100 + ci as u64)
                    };
                    let stats = calibrate(&fm, &batch, || {}).unwrap();
                    let want: Vec<Vec<f64>> =
                        seqs.iter().map(|s| fm.run_window(s, &mut ())).collect();
                    let what = format!("{} {} {stack:?} {}", cell.name(), d.name(), pool.name());
                    for (pi, p) in [Precision::F32, Precision::Int16, Precision::Int8]
                        .into_iter()
                        .enumerate()
                    {
                        let q = quantize(&fm, Some(&stats), &QuantOptions::new(p)).unwrap();
                        let model = Model::from_blob(&q.blob).unwrap();
                        assert!(model.window_layer().is_some(), "{what}");
                        // blob round trip: decode, re-encode, same bytes
                        let mut again = vec![0u8; q.blob.len() + 64];
                        let len = write_blob(model.desc(), &mut again).unwrap();
                        assert_eq!(&again[..len], &q.blob[..], "{what} {p:?}");
                        for (seq, w) in seqs.iter().zip(&want) {
                            let (got, got_q) = run(&model, seq);
                            if p == Precision::F32 {
                                let e = w
                                    .iter()
                                    .zip(&got)
                                    .map(|(a, b)| (a - *b as f64).abs())
                                    .fold(0.0, f64::max);
                                assert!(e <= 1e-5, "{what}: f32 error {e}");
                                worst_f32 = worst_f32.max(e);
                                total += 1;
                            } else {
                                let xq: Vec<Vec<i16>> = seq
                                    .iter()
                                    .map(|f| {
                                        f.iter()
                                            .map(|&v| {
                                                tinyrnn::fxp::quantize_f32(
                                                    v,
                                                    model.input_frac() as u32,
                                                )
                                            })
                                            .collect()
                                    })
                                    .collect();
                                let spec = testutil::spec::run_window(&model, &xq);
                                assert_eq!(got_q, spec, "{what} {p:?}");
                                agree[pi - 1] += (argmax(w.iter().copied())
                                    == argmax(got.iter().map(|&v| v as f64)))
                                    as usize;
                            }
                        }
                    }
                    cases += 1;
                }
            }
        }
    }
    println!(
        "{cases} windowed models × {n} windows of {t} frames: max |prob error| f32 vs \
         run_window {worst_f32:.2e}; argmax agreement vs float int16 {}/{total}, int8 {}/{total}",
        agree[0], agree[1]
    );
    assert_eq!(cases, 6 * 2 * (5 + 3 + 3));
    assert!(
        agree[0] * 100 >= total * 97,
        "int16 argmax {}/{total}",
        agree[0]
    );
    assert!(
        agree[1] * 100 >= total * 85,
        "int8 argmax {}/{total}",
        agree[1]
    );
}

/// Outputs (f32 bits, integers) of a session's decision over `win`.
fn decide(s: &mut Session<'_, 256, 256>, win: &mut Window<'_>) -> (Vec<u32>, Vec<i16>) {
    let model = s.model();
    let mut out = vec![0f32; model.output_size()];
    s.output_window(win, &mut out).unwrap();
    let mut q = vec![0i16; model.output_size()];
    if model.precision().is_int() {
        s.output_window_q(win, &mut q).unwrap();
    }
    (out.iter().map(|v| v.to_bits()).collect(), q)
}

/// A bidirectional first windowed layer runs its forward direction per frame: the
/// decision equals the spec simulator (integers) and the f64 reference (f32), and is
/// bit-identical to recomputing both directions at the decision (forced by
/// `drop_front(0)`); so are a decision taken mid-window (then stepping on), a state saved
/// mid-window and restored into a fresh session, a `reset` mid-window (recomputed), and
/// repeated decisions with three windowed layers (the third writes over the first one's
/// output slot).
#[test]
fn per_frame_forward_direction_equals_the_recompute() {
    let t = 12;
    let x = Lcg(11).vec(t * 5, 1.5);
    let seq: Vec<&[f32]> = (0..t).map(|j| &x[j * 5..][..5]).collect();
    let batch = Batch {
        data: &x,
        n: 1,
        t,
        f: 5,
        lengths: None,
    };
    let mut checked = 0;
    for (ci, cell) in CELLS.into_iter().enumerate() {
        for stack in [Stack::One, Stack::AfterForward, Stack::Two, Stack::Two] {
            let three = checked % 4 == 3;
            let mut fm = model(
                cell,
                Direction::Bidirectional,
                stack,
                Pool::Mean,
                40 + ci as u64,
            );
            if three {
                let mut rng = Lcg(99);
                let w = fm.pooled_size();
                fm.layers
                    .push(layer(&mut rng, cell, Direction::Bidirectional, w, 3));
                let head = fm.head.as_mut().unwrap();
                head.in_size = 6;
                head.weight = rng.vec(4 * 6, 0.9);
                fm.validate().unwrap();
            }
            let want = fm.run_window(&seq, &mut ());
            let stats = calibrate(&fm, &batch, || {}).unwrap();
            for p in [Precision::F32, Precision::Int16, Precision::Int8] {
                let what = format!("{} {stack:?} three={three} {p:?}", cell.name());
                let q = quantize(&fm, Some(&stats), &QuantOptions::new(p)).unwrap();
                let model = Model::from_blob(&q.blob).unwrap();
                assert!(model.window_state_words() > 0, "{what}");
                let mut buf = vec![0u32; model.window_words(t)];
                let mut win = Window::new(&mut buf);
                let mut s = Session::<'_, 256, 256>::new(&model).unwrap();
                s.set_f32_math(tinyrnn::F32Math::Accurate).unwrap();
                let mut saved = vec![0u8; s.saved_len()];
                for (i, f) in seq.iter().enumerate() {
                    s.step_window(f, &mut win).unwrap();
                    if i == 4 {
                        let _ = decide(&mut s, &mut win); // mid-window, then on
                    }
                    if i == 8 {
                        s.save_state(&mut saved).unwrap();
                    }
                }
                let got = decide(&mut s, &mut win);
                assert_eq!(decide(&mut s, &mut win), got, "{what}: again");
                // the reference / the spec
                if p == Precision::F32 {
                    let e = want
                        .iter()
                        .zip(&got.0)
                        .map(|(a, &b)| (a - f32::from_bits(b) as f64).abs())
                        .fold(0.0, f64::max);
                    assert!(e <= 1e-5, "{what}: f32 error {e}");
                } else {
                    let xq: Vec<Vec<i16>> = seq
                        .iter()
                        .map(|f| {
                            f.iter()
                                .map(|&v| tinyrnn::fxp::quantize_f32(v, model.input_frac() as u32))
                                .collect()
                        })
                        .collect();
                    assert_eq!(got.1, testutil::spec::run_window(&model, &xq), "{what}");
                }
                // both directions recomputed at the decision
                win.drop_front(&model, 0);
                assert_eq!(decide(&mut s, &mut win), got, "{what}: recomputed");
                // restored mid-window into a fresh session, same window buffer
                let mut r = Session::<'_, 256, 256>::new(&model).unwrap();
                r.set_f32_math(tinyrnn::F32Math::Accurate).unwrap();
                r.restore_state(&saved).unwrap();
                let mut buf2 = vec![0u32; model.window_words(t)];
                let mut w2 = Window::new(&mut buf2);
                let mut r0 = Session::<'_, 256, 256>::new(&model).unwrap();
                r0.set_f32_math(tinyrnn::F32Math::Accurate).unwrap();
                for f in &seq[..9] {
                    r0.step_window(f, &mut w2).unwrap();
                }
                for f in &seq[9..] {
                    r.step_window(f, &mut w2).unwrap();
                }
                assert_eq!(decide(&mut r, &mut w2), got, "{what}: restored");
                // reset mid-window (the first layer windowed: nothing streams before it)
                if !matches!(stack, Stack::AfterForward) {
                    let mut buf3 = vec![0u32; model.window_words(t)];
                    let mut w3 = Window::new(&mut buf3);
                    let mut z = Session::<'_, 256, 256>::new(&model).unwrap();
                    z.set_f32_math(tinyrnn::F32Math::Accurate).unwrap();
                    for (i, f) in seq.iter().enumerate() {
                        z.step_window(f, &mut w3).unwrap();
                        if i == 6 {
                            z.reset();
                        }
                    }
                    assert_eq!(decide(&mut z, &mut w3), got, "{what}: reset mid-window");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 4);
}

/// A window buffer too small for the next frame is a typed error (nothing changes); a
/// windowed model refuses the streaming calls; a forward model ignores the window.
#[test]
fn window_buffer_errors_are_typed() {
    let fm = model(
        CellKind::Gru {
            linear_before_reset: true,
        },
        Direction::Bidirectional,
        Stack::One,
        Pool::FinalStates,
        5,
    );
    let x = Lcg(3).vec(4 * 5, 1.0);
    let batch = Batch {
        data: &x,
        n: 1,
        t: 4,
        f: 5,
        lengths: None,
    };
    let stats = calibrate(&fm, &batch, || {}).unwrap();
    for p in [Precision::F32, Precision::Int8] {
        let q = quantize(&fm, Some(&stats), &QuantOptions::new(p)).unwrap();
        let model = Model::from_blob(&q.blob).unwrap();
        // int8: (pad4(5) + pad4(14)) / 2 = 12 words per frame; f32: 8 + 16 = 24
        let per_frame = if p.is_int() { 12 } else { 24 };
        assert_eq!(model.window_frame_words(), per_frame);
        assert_eq!(model.window_words(3), 3 * per_frame);
        let mut s = Session::<'_, 64, 64>::new(&model).unwrap();
        let mut buf = vec![0u32; model.window_words(3) + 1];
        let mut win = Window::new(&mut buf);
        assert_eq!(win.capacity(&model), 3);
        for f in x.chunks(5).take(3) {
            s.step_window(f, &mut win).unwrap();
        }
        assert_eq!(
            s.step_window(&x[15..20], &mut win),
            Err(Error::TooLarge {
                buffer: Buffer::Window,
                needed: 4 * per_frame,
                capacity: 3 * per_frame + 1,
            })
        );
        assert_eq!(win.frames(), 3);
        let mut out = [0f32; 4];
        s.output_window(&mut win, &mut out).unwrap();
        let want = fm.run_window(&[&x[0..5], &x[5..10], &x[10..15]], &mut ());
        let argmax_f = |v: &[f32]| argmax(v.iter().map(|&v| v as f64));
        if p == Precision::F32 {
            assert_eq!(argmax_f(&out), argmax(want.iter().copied()));
        }
        assert_eq!(s.step(&x[0..5]), Err(Error::NeedsWindow));
        assert_eq!(s.output(&mut out), Err(Error::NeedsWindow));
        assert_eq!(s.classify().err(), Some(Error::NeedsWindow));
        let msg = Error::TooLarge {
            buffer: Buffer::Window,
            needed: 2,
            capacity: 1,
        }
        .to_string();
        assert!(msg.contains("window buffer"), "{msg}");
    }
}

/// The decision over one window run offline: a fresh session over `seq`.
fn offline(model: &Model<'_>, seq: &[&[f32]]) -> tinyrnn::Decision {
    let mut s = Session::<'_, 256, 256>::new(model).unwrap();
    let mut buf = vec![0u32; model.window_words(seq.len())];
    let mut win = Window::new(&mut buf);
    for f in seq {
        s.step_window(f, &mut win).unwrap();
    }
    s.classify_window(&mut win).unwrap()
}

/// `Classifier::push_window`: tumbling windows and overlapping ones (`hop < window`) give
/// exactly the decision of the model run offline on each slice.
#[test]
fn classifier_windows_equal_offline_slices() {
    use tinyrnn::{Classifier, Config};
    let (t, window) = (50usize, 16u32);
    let x = Lcg(11).vec(t * 5, 1.5);
    let frames: Vec<&[f32]> = x.chunks(5).collect();
    let batch = Batch {
        data: &x,
        n: 1,
        t,
        f: 5,
        lengths: None,
    };
    for stack in [Stack::One, Stack::AfterForward, Stack::Two] {
        let fm = model(
            CellKind::Lstm { peepholes: false },
            Direction::Bidirectional,
            stack,
            Pool::Mean,
            9,
        );
        let stats = calibrate(&fm, &batch, || {}).unwrap();
        for p in [Precision::Int8, Precision::F32] {
            let q = quantize(&fm, Some(&stats), &QuantOptions::new(p)).unwrap();
            let model = Model::from_blob(&q.blob).unwrap();
            for hop in [None, Some(16), Some(5), Some(1)] {
                let mut cfg = Config::default();
                cfg.window = Some(window);
                cfg.hop = hop;
                let overlap = hop.is_some_and(|h| h < window);
                let clf = Classifier::<'_, 256, 256, 0>::new(&model, cfg);
                if overlap && !matches!(stack, Stack::One | Stack::Two) {
                    assert_eq!(clf.err(), Some(Error::Unsupported), "{stack:?}");
                    continue;
                }
                let mut clf = clf.unwrap();
                let mut buf = vec![0u32; model.window_words(window as usize)];
                let mut win = Window::new(&mut buf);
                let step = hop.unwrap_or(window) as usize;
                let mut n = 0;
                for (i, f) in frames.iter().enumerate() {
                    let d = clf.push_window(f, &mut win).unwrap();
                    let end = i + 1;
                    let due =
                        end >= window as usize && (end - window as usize).is_multiple_of(step);
                    assert_eq!(d.is_some(), due, "{stack:?} {p:?} {hop:?} frame {i}");
                    if let Some(d) = d {
                        let slice = &frames[end - window as usize..end];
                        assert_eq!(d, offline(&model, slice), "{stack:?} {p:?} {hop:?} {i}");
                        n += 1;
                    }
                }
                assert_eq!(n, (t - window as usize) / step + 1);
            }
        }
    }
    // hop outside 1..=window
    let fm = model(
        CellKind::Rnn(RnnAct::Tanh),
        Direction::Reverse,
        Stack::One,
        Pool::Last,
        1,
    );
    let q = quantize(&fm, None, &QuantOptions::new(Precision::F32)).unwrap();
    let model = Model::from_blob(&q.blob).unwrap();
    let mut cfg = Config::default();
    cfg.window = Some(4);
    for hop in [0, 5] {
        cfg.hop = Some(hop);
        assert_eq!(
            Classifier::<'_, 64, 64, 0>::new(&model, cfg).err(),
            Some(Error::BadHop)
        );
    }
}

/// The CLI on a bidirectional blob: `run` gives one output per sequence equal to the
/// session's (`--steps all` refused with a clear message); `inspect` shows the direction
/// and the window buffer's RAM; `codegen` needs `--window N` and writes `WINDOW_WORDS`.
#[test]
fn cli_runs_inspects_and_generates_windowed_blobs() {
    use std::ffi::OsStr;
    let dir = common::scratch("window");
    let fm = model(
        CellKind::Gru {
            linear_before_reset: true,
        },
        Direction::Bidirectional,
        Stack::AfterForward,
        Pool::FinalStates,
        21,
    );
    let (n, t) = (3, 12);
    let x = Lcg(5).vec(n * t * 5, 1.0);
    let batch = Batch {
        data: &x,
        n,
        t,
        f: 5,
        lengths: None,
    };
    let stats = calibrate(&fm, &batch, || {}).unwrap();
    let q = quantize(&fm, Some(&stats), &QuantOptions::new(Precision::Int8)).unwrap();
    let blob = dir.join("bidir.trnn");
    std::fs::write(&blob, &q.blob).unwrap();
    let xs = dir.join("x.npy");
    common::write_npy(&xs, &[n, t, 5], &x);
    let y = dir.join("y.npy");
    let os = |p: &std::path::Path| p.as_os_str().to_owned();
    let (code, _, err) = common::cli(&[
        OsStr::new("run"),
        &os(&blob),
        OsStr::new("--input"),
        &os(&xs),
        OsStr::new("-o"),
        &os(&y),
    ]);
    assert_eq!(code, 0, "{err}");
    let got = common::npy(&y);
    assert_eq!(got.shape, [n, 4]);
    let model = Model::from_blob(&q.blob).unwrap();
    for i in 0..n {
        let seq: Vec<&[f32]> = (0..t).map(|j| &x[(i * t + j) * 5..][..5]).collect();
        let mut s = Session::<'_, 256, 256>::new(&model).unwrap();
        let mut buf = vec![0u32; model.window_words(t)];
        let mut win = Window::new(&mut buf);
        for f in &seq {
            s.step_window(f, &mut win).unwrap();
        }
        let mut out = [0f32; 4];
        s.output_window(&mut win, &mut out).unwrap();
        let want: Vec<f64> = out.iter().map(|&v| v as f64).collect();
        assert_eq!(&got.data[i * 4..(i + 1) * 4], &want[..], "sequence {i}");
    }
    let (code, _, err) = common::cli(&[
        OsStr::new("run"),
        &os(&blob),
        OsStr::new("--input"),
        &os(&xs),
        OsStr::new("--steps"),
        OsStr::new("all"),
        OsStr::new("-o"),
        &os(&y),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("one output per sequence"), "{err}");
    // inspect: JSON and text
    let (code, out, err) = common::cli(&[
        OsStr::new("inspect"),
        &os(&blob),
        OsStr::new("--json"),
        OsStr::new("--window"),
        OsStr::new("64"),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["layers"][0]["direction"], "forward");
    assert_eq!(v["layers"][1]["direction"], "bidirectional");
    assert_eq!(v["layers"][1]["output_size"], 14);
    assert_eq!(v["window_layer"], 1);
    // int8: (pad4(6) + pad4(14)) / 2 = 12 words per frame
    assert_eq!(v["window_words_per_frame"], 12);
    assert_eq!(v["window_words"], 64 * 12);
    assert!(v["features"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("window")));
    let (code, out, _) = common::cli(&[OsStr::new("inspect"), &os(&blob)]);
    assert_eq!(code, 0);
    assert!(
        out.contains("layer 1: gru 6 -> 7, 630 params, x Q0.15, h Q0.15, initial h, bidirectional (output 14 wide)"),
        "{out}"
    );
    assert!(
        out.contains("window buffer 12 words = 48 bytes per frame"),
        "{out}"
    );
    // codegen
    let rs = dir.join("model.rs");
    let (code, _, err) = common::cli(&[
        OsStr::new("codegen"),
        &os(&blob),
        OsStr::new("-o"),
        &os(&rs),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--window N"), "{err}");
    let (code, _, err) = common::cli(&[
        OsStr::new("codegen"),
        &os(&blob),
        OsStr::new("-o"),
        &os(&rs),
        OsStr::new("--window"),
        OsStr::new("64"),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&rs).unwrap();
    assert!(
        text.contains("pub const WINDOW_WORDS: usize = 768;"),
        "{text}"
    );
    assert!(
        text.contains("pub const WINDOW_FRAMES: usize = 64;"),
        "{text}"
    );
}

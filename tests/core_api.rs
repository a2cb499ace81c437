//! Behaviour of the public runtime API: Session (errors, reset, save/restore, output,
//! classify), Classifier (window, smoothing, end_sequence) and Generator (feedback).
#[path = "../src/testutil.rs"]
mod testutil;

use testutil::*;
use tinyrnn::fxp::quantize_f32;
use tinyrnn::{
    Buffer, CellKind, Classifier, Config, Error, F32Math, Generator, Model, OutputAct, Precision,
    RnnAct, Session,
};

const ALL: [Precision; 3] = [Precision::F32, Precision::Int16, Precision::Int8];

fn lstm_model(rng: &mut Rng) -> FModel {
    let mut l = FLayer::random(rng, CellKind::Lstm { peepholes: false }, 3, 5, 1.5);
    l.h0 = Some(rng.vec(5, 0.5));
    l.c0 = Some(rng.vec(5, 2.0));
    FModel {
        input: 3,
        norm: Some((vec![1.0, -1.0, 0.5], vec![2.0, 0.5, 1.0])),
        layers: vec![l],
        head: Some(FDense {
            out: 4,
            weight: rng.vec(20, 1.0),
            bias: rng.vec(4, 0.2),
        }),
        act: OutputAct::Softmax,
    }
}

fn calib(rng: &mut Rng) -> Vec<Vec<f32>> {
    frames(rng, 100, 3, 2.0)
}

#[test]
fn capacity_is_checked() {
    let mut rng = Rng(1);
    let m = lstm_model(&mut rng);
    for p in ALL {
        let b = blob(&m, p, &calib(&mut rng));
        let model = Model::from_blob(&b).unwrap();
        assert_eq!(model.state_len(), 10);
        let e = Session::<9, 64>::new(&model).err();
        assert_eq!(
            e,
            Some(Error::TooLarge {
                buffer: Buffer::State,
                needed: 10,
                capacity: 9
            })
        );
        assert_eq!(
            e.unwrap().to_string(),
            "the session's STATE buffer holds 9 words but the model needs 10 \
             (raise the STATE const parameter)"
        );
        let need = model.scratch_len();
        let e = Session::<10, 3>::new(&model).err();
        assert_eq!(
            e,
            Some(Error::TooLarge {
                buffer: Buffer::Scratch,
                needed: need,
                capacity: 3
            })
        );
        assert_eq!(
            e.unwrap().to_string(),
            format!(
                "the session's SCRATCH buffer holds 3 words but the model needs {need} \
                 (raise the SCRATCH const parameter)"
            )
        );
        // both short: the state is checked first
        assert!(matches!(
            Session::<9, 3>::new(&model),
            Err(Error::TooLarge {
                buffer: Buffer::State,
                ..
            })
        ));
        assert_eq!(need, if p.is_int() { 6 } else { 12 }); // (pad4(3) + pad4(5)) / per word
        assert!(Session::<10, 12>::new(&model).is_ok());
    }
}

#[test]
fn length_precision_and_finiteness_errors() {
    let mut rng = Rng(2);
    let m = lstm_model(&mut rng);
    for p in ALL {
        let b = blob(&m, p, &calib(&mut rng));
        let model = Model::from_blob(&b).unwrap();
        let mut s = Session::<16, 16>::new(&model).unwrap();
        s.step(&[0.1, 0.2, 0.3]).unwrap();
        let before = s.state().to_vec();
        assert_eq!(
            s.step(&[0.0; 2]),
            Err(Error::LengthMismatch {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(s.step(&[0.0, f32::NAN, 0.0]), Err(Error::NonFinite));
        assert_eq!(s.step(&[f32::INFINITY, 0.0, 0.0]), Err(Error::NonFinite));
        // finite raw value, but (raw − offset)·scale overflows to infinity
        assert_eq!(s.step(&[3e38, 0.0, 0.0]), Err(Error::NonFinite));
        assert_eq!(
            s.state(),
            before.as_slice(),
            "{p:?}: a failed step must not change the state"
        );
        assert_eq!(
            s.output(&mut [0.0; 5]),
            Err(Error::LengthMismatch {
                expected: 4,
                got: 5
            })
        );
        if p.is_int() {
            assert_eq!(
                s.step_q(&[0; 4]),
                Err(Error::LengthMismatch {
                    expected: 3,
                    got: 4
                })
            );
            assert_eq!(
                s.output_q(&mut [0; 3]),
                Err(Error::LengthMismatch {
                    expected: 4,
                    got: 3
                })
            );
        } else {
            assert_eq!(s.step_q(&[0; 3]), Err(Error::PrecisionMismatch));
            assert_eq!(s.output_q(&mut [0; 4]), Err(Error::PrecisionMismatch));
        }
        assert_eq!(s.state(), before.as_slice());
    }
}

#[test]
fn f32_math_modes() {
    let mut rng = Rng(3);
    let m = lstm_model(&mut rng);
    let b = blob(&m, Precision::F32, &calib(&mut rng));
    let model = Model::from_blob(&b).unwrap();
    let mut s = Session::<16, 16>::new(&model).unwrap();
    assert_eq!(s.f32_math(), F32Math::Fast);
    if cfg!(feature = "libm") {
        s.set_f32_math(F32Math::Accurate).unwrap();
        assert_eq!(s.f32_math(), F32Math::Accurate);
        let mut fast = Session::<16, 16>::new(&model).unwrap();
        let x = [0.3, -0.7, 1.1];
        s.step(&x).unwrap();
        fast.step(&x).unwrap();
        // same model, different exp/tanh: close but not bit-identical
        assert_ne!(s.state(), fast.state());
        let (a, f) = (
            f32::from_bits(s.state()[0] as u32),
            f32::from_bits(fast.state()[0] as u32),
        );
        assert!((a - f).abs() < 2e-3, "{a} {f}");
    } else {
        assert_eq!(s.set_f32_math(F32Math::Accurate), Err(Error::Unsupported));
        assert_eq!(s.f32_math(), F32Math::Fast);
    }
    s.set_f32_math(F32Math::Fast).unwrap();
}

#[test]
fn reset_restores_h0_c0() {
    let mut rng = Rng(4);
    let m = lstm_model(&mut rng);
    let l = &m.layers[0];
    for p in ALL {
        let b = blob(&m, p, &calib(&mut rng));
        let model = Model::from_blob(&b).unwrap();
        let mut s = Session::<16, 16>::new(&model).unwrap();
        let initial = s.state().to_vec();
        let want: Vec<i32> = if p.is_int() {
            let h =
                l.h0.as_ref()
                    .unwrap()
                    .iter()
                    .map(|&v| quantize_f32(v, 15) as i32);
            let c =
                l.c0.as_ref()
                    .unwrap()
                    .iter()
                    .map(|&v| (v as f64 * 32768.0).round() as i32);
            h.chain(c).collect()
        } else {
            let h = l.h0.as_ref().unwrap().iter().chain(l.c0.as_ref().unwrap());
            h.map(|v| v.to_bits() as i32).collect()
        };
        assert_eq!(initial, want, "{p:?}");
        s.step(&[0.5, 0.5, 0.5]).unwrap();
        assert_ne!(s.state(), initial.as_slice());
        s.reset();
        assert_eq!(s.state(), initial.as_slice());
    }
}

#[test]
fn save_restore_roundtrip_and_rejections() {
    let mut rng = Rng(5);
    let m = lstm_model(&mut rng);
    let x = frames(&mut rng, 10, 3, 2.0);
    for p in ALL {
        let b = blob(&m, p, &calib(&mut rng));
        let model = Model::from_blob(&b).unwrap();
        let mut s = Session::<16, 16>::new(&model).unwrap();
        for f in &x[..5] {
            s.step(f).unwrap();
        }
        let mut saved = [0u8; 64];
        assert_eq!(s.saved_len(), 44);
        assert_eq!(
            s.save_state(&mut saved[..43]),
            Err(Error::LengthMismatch {
                expected: 44,
                got: 43
            })
        );
        let n = s.save_state(&mut saved).unwrap();
        assert_eq!(n, 44);
        let saved = &saved[..n];
        let run = |s: &mut Session<16, 16>| {
            let mut out = vec![];
            for f in &x[5..] {
                s.step(f).unwrap();
                let mut o = [0f32; 4];
                s.output(&mut o).unwrap();
                out.push(o);
            }
            out
        };
        let first = run(&mut s);
        let after = s.state().to_vec();
        s.reset();
        s.restore_state(saved).unwrap();
        assert_eq!(run(&mut s), first, "{p:?}");

        // rejections leave the state alone
        assert_eq!(s.state(), after.as_slice());
        assert_eq!(s.restore_state(&saved[..40]), Err(Error::BadState));
        for i in [0, 17, 40, 43] {
            let mut bad = saved.to_vec();
            bad[i] ^= 0x10;
            assert_eq!(
                s.restore_state(&bad),
                Err(Error::BadState),
                "{p:?} byte {i}"
            );
        }
        assert_eq!(s.state(), after.as_slice());
    }
    // same state size, different model shape (GRU with 10 units vs LSTM with 5)
    let g = single_layer(FLayer::random(
        &mut rng,
        CellKind::Gru {
            linear_before_reset: true,
        },
        3,
        10,
        1.0,
    ));
    let lb = blob(&m, Precision::Int8, &calib(&mut rng));
    let gb = blob(&g, Precision::Int8, &calib(&mut rng));
    let (lm, gm) = (
        Model::from_blob(&lb).unwrap(),
        Model::from_blob(&gb).unwrap(),
    );
    let (ls, mut gs) = (
        Session::<16, 16>::new(&lm).unwrap(),
        Session::<16, 16>::new(&gm).unwrap(),
    );
    let mut buf = [0u8; 44];
    ls.save_state(&mut buf).unwrap();
    assert_eq!(gs.saved_len(), 44);
    assert_eq!(gs.restore_state(&buf), Err(Error::BadState));
}

/// Head with zero weights and biases [1, 3, 3, 0]: argmax ties go to the lowest index.
#[test]
fn classify_ties_lowest_index_and_scores() {
    let mut rng = Rng(6);
    let l = FLayer::random(&mut rng, CellKind::Rnn(RnnAct::Tanh), 2, 4, 1.0);
    let m = FModel {
        input: 2,
        norm: None,
        layers: vec![l],
        head: Some(FDense {
            out: 4,
            weight: vec![0.0; 16],
            bias: vec![1.0, 3.0, 3.0, 0.0],
        }),
        act: OutputAct::Identity,
    };
    for p in ALL {
        let b = blob(&m, p, &frames(&mut rng, 20, 2, 1.0));
        let model = Model::from_blob(&b).unwrap();
        let mut s = Session::<8, 8>::new(&model).unwrap();
        s.step(&[0.5, -0.5]).unwrap();
        let d = s.classify().unwrap();
        assert_eq!(d.class, 1, "{p:?}");
        assert!((d.score - 3.0).abs() < 1e-3, "{p:?} {d:?}");
        if p.is_int() {
            let of = model.desc().output_frac as i32;
            assert_eq!(d.score_q as i32, 3 << of);
            let mut q = [0i16; 4];
            s.output_q(&mut q).unwrap();
            assert_eq!(q, [1 << of, 3 << of, 3 << of, 0]);
        } else {
            assert_eq!(d.score_q, 0);
            assert_eq!(d.score, 3.0);
        }
    }
}

/// Without a head the output is the last layer's h.
#[test]
fn output_without_head_is_h() {
    let mut rng = Rng(7);
    let m = single_layer(FLayer::random(
        &mut rng,
        CellKind::Gru {
            linear_before_reset: false,
        },
        3,
        6,
        1.0,
    ));
    for p in ALL {
        let b = blob(&m, p, &calib(&mut rng));
        let model = Model::from_blob(&b).unwrap();
        let mut s = Session::<8, 20>::new(&model).unwrap();
        s.step(&[1.0, -1.0, 0.25]).unwrap();
        let mut out = [0f32; 6];
        s.output(&mut out).unwrap();
        let h: Vec<f32> = s
            .state()
            .iter()
            .map(|&w| {
                if p.is_int() {
                    w as f32 / 32768.0
                } else {
                    f32::from_bits(w as u32)
                }
            })
            .collect();
        assert_eq!(out.as_slice(), h.as_slice(), "{p:?}");
    }
}

/// f32 model whose decision is the argmax of the current frame: RNN tanh with
/// `W_ih = 5·I`, `W_hh = 0`, identity head.
fn echo_model() -> FModel {
    let eye = |k: f32| {
        (0..9)
            .map(|i| if i % 4 == 0 { k } else { 0.0 })
            .collect::<Vec<f32>>()
    };
    FModel {
        input: 3,
        norm: None,
        layers: vec![FLayer {
            cell: CellKind::Rnn(RnnAct::Tanh),
            input: 3,
            hidden: 3,
            w_ih: eye(5.0),
            w_hh: vec![0.0; 9],
            b_ih: vec![0.0; 3],
            b_hh: vec![0.0; 3],
            peephole: None,
            h0: None,
            c0: None,
        }],
        head: Some(FDense {
            out: 3,
            weight: eye(1.0),
            bias: vec![0.0; 3],
        }),
        act: OutputAct::Identity,
    }
}

fn onehot(c: usize) -> [f32; 3] {
    let mut x = [0.0; 3];
    x[c] = 1.0;
    x
}

#[test]
fn classifier_window() {
    let mut rng = Rng(8);
    let m = lstm_model(&mut rng);
    let x = frames(&mut rng, 8, 3, 2.0);
    for p in ALL {
        let b = blob(&m, p, &calib(&mut rng));
        let model = Model::from_blob(&b).unwrap();
        let mut cfg = Config::default();
        assert_eq!((cfg.window, cfg.smoothing), (None, false));
        cfg.window = Some(0);
        let e = Classifier::<16, 16, 3>::new(&model, cfg).err();
        assert_eq!(e, Some(Error::ZeroWindow));
        assert_eq!(
            e.unwrap().to_string(),
            "Config::window is Some(0): a window holds at least one frame \
             (None decides only at end_sequence)"
        );
        cfg.window = Some(4);
        let mut c = Classifier::<16, 16, 3>::new(&model, cfg).unwrap();
        let mut reference = Session::<16, 16>::new(&model).unwrap();
        let initial = reference.state().to_vec();
        let mut decisions = vec![];
        for (t, f) in x.iter().enumerate() {
            reference.step(f).unwrap();
            let got = c.push(f).unwrap();
            if t % 4 == 3 {
                let want = reference.classify().unwrap();
                assert_eq!(got, Some(want), "{p:?} t={t}");
                assert_eq!(c.frames(), 0);
                assert_eq!(
                    c.session().state(),
                    initial.as_slice(),
                    "reset after the window"
                );
                reference.reset();
                decisions.push(want);
            } else {
                assert_eq!(got, None);
                assert_eq!(c.frames() as usize, t % 4 + 1);
            }
        }
        assert_eq!(decisions.len(), 2);
        assert!(c.smoothed().is_none(), "no smoothing configured");
        assert_eq!(
            c.push(&[0.0; 2]),
            Err(Error::LengthMismatch {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(c.frames(), 0, "a failed push is not counted");
    }
}

#[test]
fn classifier_smoothing_majority() {
    let m = echo_model();
    for p in ALL {
        let b = blob(&m, p, &[onehot(0).to_vec(), onehot(1).to_vec()]);
        let model = Model::from_blob(&b).unwrap();
        let mut cfg = Config::default();
        cfg.smoothing = true;
        // K = 0 keeps no decision: smoothing needs K >= 1
        let e = Classifier::<8, 8, 0>::new(&model, cfg).err();
        assert_eq!(e, Some(Error::SmoothingWithoutHistory));
        assert_eq!(
            e.unwrap().to_string(),
            "Config::smoothing is on but the classifier's history length K is 0 \
             (smoothing needs K >= 1)"
        );
        // without smoothing K is unused, and 0 is fine
        assert!(Classifier::<8, 8, 0>::new(&model, Config::default()).is_ok());
        let mut c = Classifier::<8, 8, 5>::new(&model, cfg).unwrap();
        assert_eq!(c.smoothed(), None);
        for k in [0, 1, 1, 0, 2] {
            assert_eq!(c.push(&onehot(k)).unwrap(), None);
            assert_eq!(c.session().classify().unwrap().class as usize, k);
        }
        // votes 0:2, 1:2, 2:1 → tie → lowest class
        assert_eq!(c.smoothed().unwrap().class, 0, "{p:?}");
        c.push(&onehot(1)).unwrap(); // history now 1, 1, 0, 2, 1
        let d = c.smoothed().unwrap();
        assert_eq!(d.class, 1);
        assert!((d.score - 0.9999).abs() < 1e-3, "{d:?}"); // tanh(5)
        for _ in 0..3 {
            c.push(&onehot(2)).unwrap(); // history (oldest first) becomes 2, 1, 2, 2, 2
        }
        assert_eq!(c.smoothed().unwrap().class, 2);
        // end_sequence: decision on the current state, then everything resets
        let d = c.end_sequence().unwrap();
        assert_eq!(d.class, 2);
        assert_eq!(c.frames(), 0);
        assert_eq!(c.smoothed(), None);
        assert!(c.session().state().iter().all(|&w| w == 0));
    }
}

#[test]
fn end_sequence_without_window() {
    let mut rng = Rng(9);
    let m = lstm_model(&mut rng);
    let x = frames(&mut rng, 13, 3, 2.0);
    let b = blob(&m, Precision::Int8, &calib(&mut rng));
    let model = Model::from_blob(&b).unwrap();
    let mut c = Classifier::<16, 16, 1>::new(&model, Config::default()).unwrap();
    let mut s = Session::<16, 16>::new(&model).unwrap();
    for f in &x {
        assert_eq!(c.push(f).unwrap(), None);
        s.step(f).unwrap();
    }
    assert_eq!(c.frames(), 13);
    let want = s.classify().unwrap();
    assert_eq!(c.end_sequence().unwrap(), want);
    s.reset();
    assert_eq!(c.session().state(), s.state());
}

fn gen_model(rng: &mut Rng) -> FModel {
    FModel {
        input: 2,
        norm: Some((vec![0.5, -0.5], vec![4.0, 4.0])), // must NOT be applied to feedback
        layers: vec![FLayer::random(
            rng,
            CellKind::Gru {
                linear_before_reset: true,
            },
            2,
            8,
            1.5,
        )],
        head: Some(FDense {
            out: 2,
            weight: rng.vec(16, 1.0),
            bias: rng.vec(2, 0.3),
        }),
        act: OutputAct::Tanh,
    }
}

#[test]
fn generator_width_mismatch() {
    let mut rng = Rng(10);
    let m = lstm_model(&mut rng); // 3 in, 4 out
    let b = blob(&m, Precision::F32, &calib(&mut rng));
    let model = Model::from_blob(&b).unwrap();
    assert_eq!(
        Generator::<16, 16>::new(&model).err(),
        Some(Error::WidthMismatch {
            input: 3,
            output: 4
        })
    );
}

/// f32: y_T, y_{T+1}, … against the f64 reference fed with its own outputs in model space.
#[test]
fn generator_feedback_matches_reference() {
    let mut rng = Rng(11);
    let m = gen_model(&mut rng);
    let prime = frames(&mut rng, 4, 2, 1.0);
    let cal = frames(&mut rng, 50, 2, 1.0);
    let mut st = m.init_state();
    for f in &prime {
        m.step(&mut st, f);
    }
    let mut want = vec![];
    for _ in 0..12 {
        let y = m.output(&st);
        m.step_normalized(&mut st, &y);
        want.push(y);
    }
    for (p, tol) in [
        (Precision::F32, 4e-3),
        (Precision::Int16, 2e-3),
        (Precision::Int8, 3e-2),
    ] {
        let b = blob(&m, p, &cal);
        let model = Model::from_blob(&b).unwrap();
        let mut g = Generator::<16, 16>::new(&model).unwrap();
        for f in &prime {
            g.prime(f).unwrap();
        }
        assert_eq!(
            g.next(&mut [0.0; 3]),
            Err(Error::LengthMismatch {
                expected: 2,
                got: 3
            })
        );
        let mut err = 0f64;
        for w in &want {
            let mut y = [0f32; 2];
            g.next(&mut y).unwrap();
            err = err.max(max_abs_diff(&[y[0] as f64, y[1] as f64], w));
        }
        println!("generator {p:?}: max err over 12 generated steps {err:.2e}");
        assert!(err <= tol, "{p:?}: {err}");
    }
}

/// Integer feedback is exact: the generator equals `output_q` then `step_q` of the output
/// requantized from `output_frac` (15 after tanh) to `layers[0].x_frac`.
#[test]
fn generator_integer_feedback_is_exact() {
    let mut rng = Rng(12);
    let m = gen_model(&mut rng);
    let cal = frames(&mut rng, 50, 2, 1.0);
    for p in [Precision::Int8, Precision::Int16] {
        let b = blob(&m, p, &cal);
        let model = Model::from_blob(&b).unwrap();
        let (of, xf) = (
            model.desc().output_frac as i32,
            model.layers()[0].x_frac as i32,
        );
        assert!(of > xf, "this test wants a rounding shift ({of} → {xf})");
        let mut g = Generator::<16, 16>::new(&model).unwrap();
        let mut s = Session::<16, 16>::new(&model).unwrap();
        g.prime(&[0.3, -0.2]).unwrap();
        s.step(&[0.3, -0.2]).unwrap();
        for _ in 0..10 {
            let mut y = [0f32; 2];
            g.next(&mut y).unwrap();
            let mut q = [0i16; 2];
            s.output_q(&mut q).unwrap();
            assert_eq!(y, q.map(|v| v as f32 / (1 << of) as f32));
            let sh = of - xf;
            let fed = q.map(|v| ((v as i32 + (1 << (sh - 1))) >> sh) as i16);
            s.step_q(&fed).unwrap();
            assert_eq!(g.session().state(), s.state());
        }
    }
}

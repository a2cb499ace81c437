//! Numerical accuracy of the runtime vs the f64 reference, on random models of every cell
//! kind and on a full stack (normalization, two layers, head, output activation).
//!
//! Error budgets (per-step errors are fed back through the recurrence, whose gain on these
//! PyTorch-initialised models is below 1, so they stay bounded rather than growing):
//! * f32 Fast: the rational sigmoid/tanh errors (≤ 2.3e-7 / 4.1e-7 absolute, per call);
//!   the softmax head's micromath `exp` (relative error ~1e-3) dominates: ≤ 5e-4.
//! * f32 Accurate (libm): f32 rounding, ~1e-6.
//! * int16: input quantization (≤ 2^−(x_frac+1)), activation LUT (≤ 1.1 LSB = 3.4e-5),
//!   rounding of h to Q0.15 (1.5e-5): ~1e-4 per step.
//! * int8: per-row weight rounding ≤ max|w_row|/254 per weight, i.e. a relative error of up
//!   to 0.4 % on every pre-activation term: ~1e-2.
#[path = "../src/testutil.rs"]
mod testutil;

use testutil::*;
use tinyrnn::{CellKind, F32Math, Model, OutputAct, Precision, RnnAct, Session};

fn modes() -> Vec<(Precision, F32Math, &'static str)> {
    let mut v = vec![
        (Precision::F32, F32Math::Fast, "f32 fast"),
        (Precision::Int16, F32Math::Fast, "int16"),
        (Precision::Int8, F32Math::Fast, "int8"),
    ];
    if cfg!(feature = "libm") {
        v.insert(1, (Precision::F32, F32Math::Accurate, "f32 accurate"));
    }
    v
}

/// Max error bound on h and c for a precision (see the module docs).
fn tolerance(p: Precision, m: F32Math) -> f64 {
    match (p, m) {
        (Precision::F32, F32Math::Fast) => 5e-4,
        (Precision::F32, F32Math::Accurate) => 1e-6,
        (Precision::Int16, _) => 1e-3,
        (Precision::Int8, _) => 2e-2,
    }
}

#[test]
fn every_cell_every_precision() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for cell in CELLS {
        // 5 inputs and 13 units: both padded to a multiple of 4
        let m = single_layer(FLayer::random(&mut rng, cell, 5, 13, 1.0));
        let calib = frames(&mut rng, 200, 5, 2.0);
        let x = frames(&mut rng, 60, 5, 2.0);
        for (p, math, name) in modes() {
            let (eh, ec) = state_errors(&m, p, math, &calib, &x);
            println!("{cell:?} {name}: max |h err| {eh:.2e}, max |c err| {ec:.2e}");
            let tol = tolerance(p, math);
            // ReLU h is unbounded: compare relative to its range (≤ ~4 here)
            let scale = if cell == CellKind::Rnn(RnnAct::Relu) {
                4.0
            } else {
                1.0
            };
            assert!(
                eh <= tol * scale && ec <= tol * 4.0,
                "{cell:?} {name}: {eh} {ec}"
            );
        }
    }
}

fn stack(rng: &mut Rng, act: OutputAct) -> FModel {
    let l0 = FLayer::random(rng, CellKind::Lstm { peepholes: false }, 6, 20, 1.0);
    let l1 = FLayer::random(
        rng,
        CellKind::Gru {
            linear_before_reset: true,
        },
        20,
        11,
        1.0,
    );
    let k = 1.0 / 11f32.sqrt();
    FModel {
        input: 6,
        norm: Some((
            rng.vec(6, 3.0),
            (0..6).map(|i| 0.25 + 0.1 * i as f32).collect(),
        )),
        layers: vec![l0, l1],
        head: Some(FDense {
            out: 7,
            weight: rng.vec(7 * 11, 3.0 * k),
            bias: rng.vec(7, 0.5),
        }),
        act,
    }
}

/// Outputs of the full stack (normalization, LSTM → GRU, head, activation) vs f64.
#[test]
fn full_stack_outputs() {
    let mut rng = Rng(0x5EED_1234_ABCD_0002);
    for act in [
        OutputAct::Identity,
        OutputAct::Sigmoid,
        OutputAct::Tanh,
        OutputAct::Softmax,
    ] {
        let m = stack(&mut rng, act);
        let calib = frames(&mut rng, 200, 6, 8.0);
        let x = frames(&mut rng, 40, 6, 8.0);
        let want = m.run(&x);
        for (p, math, name) in modes() {
            let b = blob(&m, p, &calib);
            let model = Model::from_blob(&b).unwrap();
            let mut s = Session::<64, 64>::new(&model).unwrap();
            s.set_f32_math(math).unwrap();
            let mut out = [0f32; 7];
            let mut err = 0f64;
            let mut agree = 0;
            for (f, w) in x.iter().zip(&want) {
                s.step(f).unwrap();
                s.output(&mut out).unwrap();
                let got: Vec<f64> = out.iter().map(|&v| v as f64).collect();
                err = err.max(max_abs_diff(&got, w));
                let argmax = w
                    .iter()
                    .enumerate()
                    .fold(0, |b, (i, v)| if *v > w[b] { i } else { b });
                agree += (s.classify().unwrap().class as usize == argmax) as usize;
            }
            // Identity logits range over ~±3: scale the h tolerance by that gain
            let tol = tolerance(p, math) * if act == OutputAct::Identity { 3.0 } else { 1.0 };
            println!("stack {act:?} {name}: max output err {err:.2e}, argmax agrees {agree}/40");
            assert!(err <= tol, "{act:?} {name}: {err}");
            assert!(
                agree >= 38,
                "{act:?} {name}: argmax agrees on {agree}/40 steps"
            );
        }
    }
}

/// The integer paths are bit-exact and deterministic: running the same blob twice, or
/// through `step_q` with the host-quantized frames, gives identical outputs.
#[test]
fn step_q_equals_step() {
    let mut rng = Rng(0x5EED_1234_ABCD_0003);
    let mut m = stack(&mut rng, OutputAct::Softmax);
    m.norm = None;
    let calib = frames(&mut rng, 100, 6, 4.0);
    let x = frames(&mut rng, 20, 6, 4.0);
    for p in [Precision::Int8, Precision::Int16] {
        let b = blob(&m, p, &calib);
        let model = Model::from_blob(&b).unwrap();
        let xf = model.layers()[0].x_frac as u32;
        let (mut s1, mut s2) = (
            Session::<64, 64>::new(&model).unwrap(),
            Session::<64, 64>::new(&model).unwrap(),
        );
        let (mut o1, mut o2) = ([0i16; 7], [0i16; 7]);
        for f in &x {
            let q: Vec<i16> = f
                .iter()
                .map(|&v| tinyrnn::fxp::quantize_f32(v, xf))
                .collect();
            s1.step(f).unwrap();
            s2.step_q(&q).unwrap();
            s1.output_q(&mut o1).unwrap();
            s2.output_q(&mut o2).unwrap();
            assert_eq!(o1, o2);
            assert_eq!(s1.state(), s2.state());
        }
        // softmax outputs sum to ~1.0 in Q0.15
        let sum: i32 = o1.iter().map(|&v| v as i32).sum();
        assert!((sum - 32768).abs() <= 7, "{sum}");
    }
}

/// The integer paths follow DESIGN.md's arithmetic bit for bit: the runtime's state and
/// outputs equal a naive transcription of the spec (`testutil::spec`), for every cell,
/// both integer precisions, h0/c0, and every output activation.
#[test]
fn integer_paths_match_the_spec_bit_for_bit() {
    let mut rng = Rng(0x5EED_1234_ABCD_0004);
    let acts = [
        OutputAct::Identity,
        OutputAct::Sigmoid,
        OutputAct::Tanh,
        OutputAct::Softmax,
    ];
    for (n, cell) in CELLS.into_iter().enumerate() {
        let mut l0 = FLayer::random(&mut rng, cell, 7, 9, 1.5);
        l0.h0 = Some(rng.vec(9, 0.9));
        if matches!(cell, CellKind::Lstm { .. }) {
            l0.c0 = Some(rng.vec(9, 3.0));
        }
        let l1 = FLayer::random(&mut rng, CELLS[(n + 2) % 6], 9, 6, 1.5);
        let m = FModel {
            input: 7,
            norm: None,
            layers: vec![l0, l1],
            head: Some(FDense {
                out: 5,
                weight: rng.vec(30, 1.5),
                bias: rng.vec(5, 0.5),
            }),
            act: acts[n % 4],
        };
        let calib = frames(&mut rng, 100, 7, 3.0);
        for p in [Precision::Int8, Precision::Int16] {
            let b = blob(&m, p, &calib);
            let model = Model::from_blob(&b).unwrap();
            let xf = model.layers()[0].x_frac as u32;
            let mut s = Session::<64, 64>::new(&model).unwrap();
            let mut st = spec::State::new(&model);
            assert_eq!(
                s.state(),
                st.words(&model).as_slice(),
                "{cell:?} {p:?} initial"
            );
            let mut out = [0i16; 5];
            for t in 0..30 {
                let f = rng.vec(7, 3.0);
                let q: Vec<i16> = f
                    .iter()
                    .map(|&v| tinyrnn::fxp::quantize_f32(v, xf))
                    .collect();
                s.step(&f).unwrap();
                st.step(&model, &q);
                assert_eq!(
                    s.state(),
                    st.words(&model).as_slice(),
                    "{cell:?} {p:?} step {t}"
                );
                s.output_q(&mut out).unwrap();
                assert_eq!(
                    out.as_slice(),
                    st.output(&model).as_slice(),
                    "{cell:?} {p:?} step {t}"
                );
            }
        }
    }
}

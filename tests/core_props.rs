//! Property tests: requantization and the fixed-point helpers the cells rely on, and
//! "no input makes the runtime panic" for frames and saved states.
#[path = "../src/testutil.rs"]
mod testutil;

use proptest::prelude::*;
use testutil::*;
use tinyrnn::fxp::{mul_q15, round_shr, sat_i16, Requant};
use tinyrnn::{CellKind, Error, Model, OutputAct, Precision, Session};

fn requant() -> impl Strategy<Value = Requant> {
    ((1i32 << 30)..=i32::MAX, 1u8..=62).prop_map(|(mult, shift)| Requant { mult, shift })
}

proptest! {
    /// `apply` is round-to-nearest of `acc·mult/2^shift` (ties up), saturated to i32:
    /// checked exactly in i128 as |2·(y·2^s − acc·mult)| ≤ 2^s, with the tie going up.
    #[test]
    fn requant_rounds_to_nearest(acc in any::<i32>(), rq in requant()) {
        let y = rq.apply(acc);
        let exact = acc as i128 * rq.mult as i128;
        let s = rq.shift as u32;
        let d = ((y as i128) << s) - exact; // y·2^s − exact
        if y != i32::MAX && y != i32::MIN {
            prop_assert!(2 * d <= 1i128 << s && 2 * d > -(1i128 << s), "acc {} {:?} → {}", acc, rq, y);
        } else if y == i32::MAX {
            prop_assert!(exact + (1i128 << (s - 1)) >= (i32::MAX as i128) << s);
        } else {
            prop_assert!(exact + (1i128 << (s - 1)) < ((i32::MIN as i128) + 1) << s);
        }
    }

    #[test]
    fn requant_monotonic_and_wide_agrees(a in any::<i32>(), b in any::<i32>(), rq in requant()) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(rq.apply(lo) <= rq.apply(hi));
        prop_assert_eq!(rq.apply(a), rq.apply_wide(a as i64));
    }

    /// int16 accumulators reach 2^38 and shifts up to 94.
    #[test]
    fn requant_wide_rounds(acc in -(1i64 << 40)..(1i64 << 40), mult in (1i32 << 30)..=i32::MAX, shift in 40u8..=94) {
        let rq = Requant { mult, shift };
        let y = rq.apply_wide(acc) as i128;
        let d = (y << shift) - acc as i128 * mult as i128;
        prop_assert!(2 * d <= 1i128 << shift && 2 * d > -(1i128 << shift));
    }

    #[test]
    fn q15_helpers(a in any::<i32>(), b in any::<i16>(), s in 1u32..=31) {
        // mul_q15: exact rounding of a·b/2^15, ties up
        let y = mul_q15(a, b) as i64;
        let d = (y << 15) - a as i64 * b as i64;
        prop_assert!(2 * d <= 1 << 15 && 2 * d > -(1 << 15));
        // round_shr
        let r = round_shr(a, s) as i64;
        let d = (r << s) - a as i64;
        prop_assert!(2 * d <= 1i64 << s && 2 * d > -(1i64 << s));
        // sat_i16 is the identity in range and clamps outside
        prop_assert_eq!(sat_i16(a) as i32, a.clamp(i16::MIN as i32, i16::MAX as i32));
    }
}

fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits), // every bit pattern: NaN, ±inf, subnormals, 3e38
        -1e3f32..1e3,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary frames: `Ok` or `NonFinite`, never a panic; outputs stay finite and in range.
    #[test]
    fn arbitrary_frames_never_panic(
        frames in proptest::collection::vec(proptest::collection::vec(any_f32(), 4), 1..12),
        kind in 0usize..6,
        prec in 0usize..3,
    ) {
        let cells = [
            CellKind::Rnn(tinyrnn::RnnAct::Tanh),
            CellKind::Rnn(tinyrnn::RnnAct::Relu),
            CellKind::Gru { linear_before_reset: true },
            CellKind::Gru { linear_before_reset: false },
            CellKind::Lstm { peepholes: false },
            CellKind::Lstm { peepholes: true },
        ];
        let p = [Precision::F32, Precision::Int16, Precision::Int8][prec];
        let mut rng = Rng(42 + kind as u64);
        let mut m = single_layer(FLayer::random(&mut rng, cells[kind], 4, 6, 2.0));
        m.head = Some(FDense { out: 3, weight: rng.vec(18, 1.0), bias: rng.vec(3, 1.0) });
        m.act = OutputAct::Softmax;
        m.norm = Some((vec![0.5; 4], vec![1e3; 4]));
        let b = blob(&m, p, &frames_for_calib());
        let model = Model::from_blob(&b).unwrap();
        let mut s = Session::<16, 24>::new(&model).unwrap();
        for f in &frames {
            match s.step(f) {
                Ok(()) => {}
                Err(e) => prop_assert_eq!(e, Error::NonFinite),
            }
            let mut out = [0f32; 3];
            s.output(&mut out).unwrap();
            if p.is_int() {
                prop_assert!(out.iter().all(|v| (0.0..=1.0).contains(v)), "{:?}", out);
            }
            s.classify().unwrap();
        }
    }

    /// Arbitrary bytes as a saved state: `BadState` (or, for a valid save, `Ok`), never a panic.
    #[test]
    fn arbitrary_saved_states_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut rng = Rng(7);
        let m = single_layer(FLayer::random(&mut rng, CellKind::Lstm { peepholes: false }, 4, 6, 1.0));
        let b = blob(&m, Precision::Int8, &frames_for_calib());
        let model = Model::from_blob(&b).unwrap();
        let mut s = Session::<16, 16>::new(&model).unwrap();
        prop_assert_eq!(s.restore_state(&bytes), Err(Error::BadState));
    }
}

fn frames_for_calib() -> Vec<Vec<f32>> {
    frames(&mut Rng(99), 20, 4, 1.0)
}

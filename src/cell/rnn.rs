//! Elman RNN cell.
//!
//! ```text
//! PyTorch nn.RNN, one gate (rows 0..H):
//!   h_t = act(W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh),   act = tanh | relu
//!
//! integer (per unit j, DESIGN.md):
//!   pre  = rq_ih[j].apply(b_ih[j] ⊕ W_ih[j]·x) ⊕ rq_hh[j].apply(b_hh[j] ⊕ W_hh[j]·h)
//!          (⊕ saturating; pre in Q19.12 for tanh, in h_frac for relu)
//!   tanh: h_j = tanh_q(pre)                      Q0.15
//!   relu: h_j = sat_i16(max(pre, 0))             Q(15−h_frac).h_frac
//! ```

#[cfg(feature = "f32")]
use crate::activation::Math;
#[cfg(feature = "f32")]
use crate::cell::Gate;
use crate::cell::Io;
use crate::model::{LayerDesc, RnnAct};
#[cfg(any(feature = "int8", feature = "int16"))]
use crate::{activation::tanh_q, cell::IntGate, fxp::sat_i16, kernel::IntKernel};

/// One integer step (see the module equations): blocks of four units (the last one
/// shorter), the rows of a block in one pass of the row kernels ([`IntGate::at`]).
#[cfg(any(feature = "int8", feature = "int16"))]
#[inline(never)]
pub(crate) fn step_int<K: IntKernel>(l: &LayerDesc<'_>, act: RnnAct, io: Io<'_>) {
    let Io { x, h, hs, .. } = io;
    let gate = IntGate::new::<K>(l, 0, x, h);
    for (q, h4) in hs.chunks_mut(4).enumerate() {
        let pre = gate.sum_at::<K>(4 * q, h4.len());
        for (h_j, &p) in h4.iter_mut().zip(&pre) {
            *h_j = match act {
                RnnAct::Tanh => tanh_q(p) as i32,
                RnnAct::Relu => sat_i16(p.max(0)) as i32,
            };
        }
    }
}

/// One f32 step (see the module equations): blocks of four units ([`Gate::sum4`]).
#[cfg(feature = "f32")]
#[inline(never)]
pub(crate) fn step_f32<M: Math>(l: &LayerDesc<'_>, act: RnnAct, io: Io<'_>) {
    let gate = Gate::f32(l, 0, io.x, io.h);
    let mut j = 0;
    for h4 in io.hs.chunks_mut(4) {
        let pre = gate.sum4(j);
        for (h_j, &pre) in h4.iter_mut().zip(&pre) {
            let h = match act {
                RnnAct::Tanh => M::tanh(pre),
                RnnAct::Relu => pre.max(0.0),
            };
            *h_j = h.to_bits() as i32;
        }
        j += 4;
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::{CellKind, Model, Precision, RnnAct, Session};

    /// ReLU RNN, 1 input, 2 units, `W_ih = [0.75, −0.5]`, no recurrence: exact values,
    /// clamping at 0 and saturation at i16::MAX beyond the calibrated range.
    #[test]
    fn relu_exact_clamp_and_saturation() {
        let m = single_layer(FLayer {
            cell: CellKind::Rnn(RnnAct::Relu),
            input: 1,
            hidden: 2,
            w_ih: vec![0.75, -0.5],
            w_hh: vec![0.0; 4],
            b_ih: vec![0.0; 2],
            b_hh: vec![0.0; 2],
            peephole: None,
            h0: None,
            c0: None,
        });
        let calib = vec![vec![1.0f32], vec![-1.0]];
        for p in [Precision::Int8, Precision::Int16] {
            let b = blob(&m, p, &calib);
            let model = Model::from_blob(&b).unwrap();
            // |h| ≤ 0.75·1.125 → Q0.15; |x| ≤ 1.125 → Q1.14
            assert_eq!(
                (model.layers()[0].x_frac, model.layers()[0].h_frac),
                (14, 15)
            );
            let mut s = Session::<2, 4>::new(&model).unwrap();
            s.step(&[1.0]).unwrap();
            assert_eq!(
                s.state(),
                [3 << 13, 0],
                "{p:?}: 0.75 in Q0.15, relu(−0.5) = 0"
            );
            s.step(&[-1.0]).unwrap();
            assert_eq!(s.state(), [0, 1 << 14]);
            s.step(&[1.9]).unwrap(); // 0.75 · 1.9 = 1.425 does not fit Q0.15
            assert_eq!(s.state(), [i16::MAX as i32, 0]);
        }
    }

    /// tanh RNN: int16 and int8 vs f64 on a random model (tolerances: see tests/core_numerics.rs).
    #[test]
    fn tanh_vs_reference() {
        let mut rng = Rng(77);
        let m = single_layer(FLayer::random(
            &mut rng,
            CellKind::Rnn(RnnAct::Tanh),
            3,
            6,
            1.0,
        ));
        let calib = frames(&mut rng, 50, 3, 1.0);
        let x = frames(&mut rng, 30, 3, 1.0);
        for (p, tol) in [(Precision::Int16, 1e-3), (Precision::Int8, 2e-2)] {
            let (eh, _) = state_errors(&m, p, crate::F32Math::Fast, &calib, &x);
            assert!(eh <= tol, "{p:?} {eh}");
            assert!(eh > 0.0);
        }
    }
}

//! A reverse / bidirectional projected LSTM without an initial state (`P ≠ H`, empty `h0`)
//! over a window: `Session::step_window` + `output_window_q` against the spec simulator's
//! offline run (`testutil::spec::run_window`), bit for bit, int8 and int16.
//!
//! Regression: the fuzz target `model` (reverse / bidirectional layers and projections in
//! its generator since the graph records) found the spec simulator starting such a
//! direction from `H` zeros instead of `P` (an index out of bounds in the simulator; the
//! runtime was right). This test fails on the simulator before the fix.
#[path = "../src/testutil.rs"]
mod testutil;

use testutil::Rng;
use tinyrnn::model::{pad4, write_blob, DirWeights, LayerDesc, ModelDesc};
use tinyrnn::{CellKind, Direction, Model, OutputAct, Pool, Precision, Session, Window};

const I: usize = 3;
const H: usize = 5;
const P: usize = 2;
const FRAMES: usize = 7;

/// `n` weights or biases of `bytes` bytes each, small random values.
fn tensor(rng: &mut Rng, n: usize, bytes: usize, scale: f32) -> Vec<u8> {
    (0..n)
        .flat_map(|_| {
            let v = (rng.uniform() * scale) as i64;
            v.to_le_bytes()[..bytes].to_vec()
        })
        .collect()
}

/// `n` requant records `2^30 · 2^−shift`.
fn requants(n: usize, shift: u8) -> Vec<u8> {
    (0..n)
        .flat_map(|_| {
            let mut r = (1i32 << 30).to_le_bytes().to_vec();
            r.push(shift);
            r
        })
        .collect()
}

struct Dir {
    t: [Vec<u8>; 8],
}

fn dir(rng: &mut Rng, p: Precision) -> Dir {
    let (wb, bb) = (p.weight_bytes(), p.bias_bytes());
    let ws = if p == Precision::Int8 { 100.0 } else { 20000.0 };
    let rows = 4 * H;
    // accumulators of Q.12 × weights: back to Q.12 pre-activations
    let shift = if p == Precision::Int8 { 37 } else { 45 };
    Dir {
        t: [
            tensor(rng, rows * pad4(I), wb, ws),
            tensor(rng, rows * pad4(P), wb, ws),
            tensor(rng, rows, bb, 1000.0),
            tensor(rng, rows, bb, 1000.0),
            requants(rows, shift),
            requants(rows, shift),
            tensor(rng, P * pad4(H), wb, ws),
            requants(P, shift),
        ],
    }
}

fn check(p: Precision, direction: Direction) {
    let mut rng = Rng(0x5eed_0000_0000_0001 ^ direction as u64);
    let f = dir(&mut rng, p);
    let b = dir(&mut rng, p);
    let clip = 3i32 << 15;
    let clip = clip.to_le_bytes();
    let [w_ih, w_hh, b_ih, b_hh, rq_ih, rq_hh, w_hr, rq_hr] = &f.t;
    let bw = &b.t;
    let layer = LayerDesc {
        cell: CellKind::Lstm { peepholes: false },
        input_size: I as u16,
        hidden_size: H as u16,
        x_frac: 12,
        h_frac: 12,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        rq_ih,
        rq_hh,
        peephole: &[],
        p_frac: 0,
        h0: &[],
        c0: &[],
        proj_size: P as u16,
        w_hr,
        rq_hr,
        cell_clip: &clip,
        direction,
        backward: (direction == Direction::Bidirectional).then_some(DirWeights {
            w_ih: &bw[0],
            w_hh: &bw[1],
            b_ih: &bw[2],
            b_hh: &bw[3],
            rq_ih: &bw[4],
            rq_hh: &bw[5],
            peephole: &[],
            h0: &[],
            c0: &[],
            w_hr: &bw[6],
            rq_hr: &bw[7],
        }),
    };
    let mut layers = heapless::Vec::new();
    layers.push(layer).unwrap();
    let desc = ModelDesc {
        precision: p,
        input_size: I as u16,
        norm: None,
        pre: heapless::Vec::new(),
        layers,
        pool: Pool::FinalStates,
        pool_frac: 0,
        mlp: heapless::Vec::new(),
        head: None,
        output_act: OutputAct::Identity,
        output_frac: 12,
        name: "window_proj",
    };
    let mut buf = vec![0u8; 1 << 16];
    let n = write_blob(&desc, &mut buf).unwrap();
    let m = Model::from_blob(&buf[..n]).unwrap();
    assert!(m.is_windowed());
    assert_eq!(m.output_size(), P * direction.count());
    let xs: Vec<Vec<i16>> = (0..FRAMES)
        .map(|_| (0..I).map(|_| (rng.uniform() * 8192.0) as i16).collect())
        .collect();
    let mut s = Session::<'_, 64, 64>::new(&m).unwrap();
    let mut wbuf = vec![0u32; m.window_words(FRAMES)];
    let mut win = Window::new(&mut wbuf);
    for x in &xs {
        // exact: q / 2^12 quantizes back to q
        let frame: Vec<f32> = x.iter().map(|&q| q as f32 / 4096.0).collect();
        s.step_window(&frame, &mut win).unwrap();
    }
    let mut out = vec![0i16; m.output_size()];
    s.output_window_q(&mut win, &mut out).unwrap();
    let want = testutil::spec::run_window(&m, &xs);
    println!("{p:?} {direction:?}: {out:?}");
    assert_eq!(out, want, "{p:?} {direction:?}");
    assert!(out.iter().any(|&v| v != 0), "a trivial output: {out:?}");
}

#[test]
fn reverse_projected_lstm_without_h0_matches_the_spec() {
    for p in [Precision::Int8, Precision::Int16] {
        check(p, Direction::Reverse);
    }
}

#[test]
fn bidirectional_projected_lstm_without_h0_matches_the_spec() {
    for p in [Precision::Int8, Precision::Int16] {
        check(p, Direction::Bidirectional);
    }
}

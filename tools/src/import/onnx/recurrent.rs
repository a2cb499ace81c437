//! Recurrent nodes: `LSTM`, `GRU`, `RNN` — attribute checks, the data layout, and the
//! weights converted from ONNX gate order to the IR's (PyTorch's) gate order.

use anyhow::{bail, Result};
use tinyrnn::{CellKind, DenseAct, Direction, Pool, RnnAct};

use super::super::proto::NodeProto;
use super::value::{input_norm, Ax, Seq, Stage, Val};
use super::{attr, attr_i, attr_s, attr_strs, to_f32, Eval};
use crate::ir::FloatLayer;

/// The attributes of a recurrent node, checked against what the IR can hold.
#[derive(Debug, Clone, PartialEq)]
struct RecAttrs {
    /// The cell (an LSTM's `peepholes` is set later, from its `P` input).
    cell: CellKind,
    /// Gates per cell: 4 (LSTM), 3 (GRU), 1 (RNN).
    gates: usize,
    /// 0: `X` is `[time, batch, features]`; 1: `[batch, time, features]`.
    layout: i64,
    /// The `hidden_size` attribute, if given (checked against `R`'s shape).
    hidden_size: Option<i64>,
    /// The `direction` attribute.
    direction: Direction,
}

impl RecAttrs {
    /// Checks the attributes of a node of op `op` (`LSTM`, `GRU` or `RNN`). `rnn_activation`
    /// is `--rnn-activation`, which must agree with an RNN node's `activations`.
    fn parse(n: &NodeProto, op: &str, rnn_activation: Option<RnnAct>) -> Result<RecAttrs> {
        for a in ["clip", "activation_alpha", "activation_beta"] {
            if attr(n, a).is_some() {
                bail!("attribute `{a}` is not supported");
            }
        }
        if attr_i(n, "input_forget").unwrap_or(0) != 0 {
            bail!("attribute `input_forget`=1 is not supported");
        }
        let direction = match attr_s(n, "direction").as_deref() {
            None | Some("forward") => Direction::Forward,
            Some("reverse") => Direction::Reverse,
            Some("bidirectional") => Direction::Bidirectional,
            Some(d) => bail!("direction={d} (expected forward, reverse or bidirectional)"),
        };
        let layout = attr_i(n, "layout").unwrap_or(0);
        if layout != 0 && layout != 1 {
            bail!("layout={layout}");
        }
        let gates = match op {
            "LSTM" => 4,
            "GRU" => 3,
            _ => 1,
        };
        let mut acts: Vec<String> = attr_strs(n, "activations")
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        // A bidirectional node lists the forward direction's activations, then the reverse
        // one's (tf2onnx writes both, torch neither): one list if they are the same.
        let per = match op {
            "LSTM" => 3,
            "GRU" => 2,
            _ => 1,
        };
        if direction == Direction::Bidirectional
            && acts.len() == 2 * per
            && acts[..per] == acts[per..]
        {
            acts.truncate(per);
        }
        let cell = match op {
            "LSTM" => {
                if !acts.is_empty() && acts != ["sigmoid", "tanh", "tanh"] {
                    bail!(
                        "activations={acts:?} are not supported (LSTM needs Sigmoid, Tanh, Tanh)"
                    );
                }
                CellKind::Lstm { peepholes: false }
            }
            "GRU" => {
                if !acts.is_empty() && acts != ["sigmoid", "tanh"] {
                    bail!("activations={acts:?} are not supported (GRU needs Sigmoid, Tanh)");
                }
                let lbr = attr_i(n, "linear_before_reset").unwrap_or(0);
                CellKind::Gru {
                    linear_before_reset: lbr != 0,
                }
            }
            _ => {
                let act = match acts.first().map(|s| s.as_str()) {
                    None | Some("tanh") if acts.len() <= 1 => RnnAct::Tanh,
                    Some("relu") if acts.len() == 1 => RnnAct::Relu,
                    _ => bail!("activations={acts:?} are not supported (RNN needs Tanh or Relu)"),
                };
                if let Some(want) = rnn_activation {
                    if want != act {
                        bail!("--rnn-activation {want:?} contradicts the graph's activations={acts:?}");
                    }
                }
                CellKind::Rnn(act)
            }
        };
        Ok(RecAttrs {
            cell,
            gates,
            layout,
            hidden_size: attr_i(n, "hidden_size"),
            direction,
        })
    }
}

/// ONNX gate order → the IR's (PyTorch's): IR gate block `i` is ONNX block `order[i]`.
///
/// ONNX stacks an LSTM's gates as `i, o, f, c` and a GRU's as `z, r, h`; PyTorch (and the
/// IR) as `i, f, g, o` and `r, z, n`.
fn gate_order(cell: CellKind) -> &'static [usize] {
    match cell {
        CellKind::Lstm { .. } => &[0, 2, 3, 1],
        CellKind::Gru { .. } => &[1, 0, 2],
        CellKind::Rnn(_) => &[0],
    }
}

/// ONNX peephole order (`P` = `i, o, f`) → the IR's (`i, f, o`).
const PEEPHOLE_ORDER: [usize; 3] = [0, 2, 1];

impl Eval<'_> {
    pub(super) fn recurrent(&mut self, n: &NodeProto, op: &str) -> Result<Vec<Val>> {
        let RecAttrs {
            cell,
            gates,
            layout,
            hidden_size,
            direction,
        } = RecAttrs::parse(n, op, self.opts.rnn_activation)?;
        let nd = direction.count();
        let x = match self.input(n, 0)? {
            Val::Seq(s) => s,
            _ => bail!("input X is not the data sequence"),
        };
        let w = self.konst(n, 1, "W")?;
        let r = self.konst(n, 2, "R")?;
        if w.dims.len() != 3 || r.dims.len() != 3 || w.dims[0] != nd || r.dims[0] != nd {
            bail!(
                "W {:?} / R {:?}: expected [{nd}, G·H, I] / [{nd}, G·H, H] (direction={})",
                w.dims,
                r.dims,
                direction.name()
            );
        }
        let h = r.dims[2];
        if let Some(hs) = hidden_size {
            if hs as usize != h {
                if r.dims[1] == gates * hs as usize && op == "LSTM" {
                    bail!(
                        "R has shape {:?}: [4·hidden_size, {h}] with {h} ≠ hidden_size={hs} is an LSTM with projection (PyTorch proj_size={h}), which the ONNX LSTM op cannot express (onnxruntime rejects this graph too); import the model's state_dict as safetensors instead",
                        r.dims
                    );
                }
                bail!("hidden_size={hs} but R has shape {:?}", r.dims);
            }
        }
        let input_size = w.dims[2];
        if w.dims[1] != gates * h || r.dims[1] != gates * h {
            bail!(
                "W {:?} / R {:?} do not hold {gates} gates of hidden size {h}",
                w.dims,
                r.dims
            );
        }
        let b = match self.input(n, 3)? {
            Val::Absent | Val::Zeros(_) => vec![0.0; nd * 2 * gates * h],
            _ => {
                let b = self.konst(n, 3, "B")?;
                if b.len() != nd * 2 * gates * h {
                    bail!(
                        "B has shape {:?}, expected [{nd}, {}]",
                        b.dims,
                        2 * gates * h
                    );
                }
                b.data
            }
        };
        match self.input(n, 4)? {
            Val::Absent => {}
            _ => {
                bail!("input `sequence_lens` is not supported (pass --lengths to tinyrnn instead)")
            }
        }
        // The data: [T, B, I] (layout 0) or [B, T, I] (layout 1).
        if x.last || x.parts.len() != 1 || x.axes.len() != 3 {
            bail!(
                "input X has axes {:?}: expected [time, batch, features]",
                x.axes
            );
        }
        let (ti, bi) = if layout == 0 { (0, 1) } else { (1, 0) };
        match self.ax(x.axes[2]) {
            Ax::Feat(f) if f == input_size => {}
            other => {
                bail!("input X has {other:?} on its last axis but W expects {input_size} features")
            }
        }
        for (pos, role) in [(ti, Ax::Time), (bi, Ax::Batch)] {
            match self.ax(x.axes[pos]) {
                Ax::Free(i) => self.free[i as usize] = Some(role),
                a if a == role => {}
                Ax::Unit if role == Ax::Batch => {}
                other => bail!(
                    "input X has a {other:?} axis where layout={layout} puts the {} axis",
                    if role == Ax::Time { "time" } else { "batch" }
                ),
            }
        }
        if x.rev {
            bail!("input X is a time-reversed sequence (ReverseSequence): an {op} node reading it is not supported (a reverse layer is direction=\"reverse\")");
        }
        // Which stage feeds this layer.
        let k = self.layers.len();
        let mut norm = None;
        let mut pre = Vec::new();
        match &x.parts[0] {
            Stage::Input { .. } | Stage::Pre { .. } if k != 0 => {
                bail!("a second recurrent stack reading the raw input")
            }
            Stage::Input { a, b } => norm = input_norm(a, b)?,
            Stage::Pre { a, b, ops, dense } => {
                norm = input_norm(a, b)?;
                pre.clone_from(ops);
                pre.extend(dense.clone().map(|d| d.close(DenseAct::Identity)));
            }
            st if st.is_plain_state(k.wrapping_sub(1)) => {}
            Stage::Rec { pool, .. } if *pool != Pool::Last => bail!(
                "input X is reduced over time ({}): a recurrent layer must read every step of the layer below",
                pool.name()
            ),
            Stage::Rec { .. } => bail!(
                "input X is not the hidden state of the previous recurrent layer (dense layers, activations or cell states between recurrent layers are not supported)"
            ),
            Stage::Dir { layer, .. } => {
                return Err(Stage::one_direction(*layer, "a recurrent layer"))
            }
        }
        // initial_h / initial_c: [num_directions, batch, H]; per direction, None if zero.
        let init = |v: Val, what: &str| -> Result<Vec<Option<Vec<f32>>>> {
            match v {
                Val::Absent | Val::Zeros(_) => Ok(vec![None; nd]),
                Val::Const(t) => {
                    let d = &t.dims;
                    if what == "initial_c" && d.len() == 3 && d[2] > h {
                        bail!(
                            "initial_c has shape {d:?}: a cell state wider than the hidden state ({h}) is an LSTM with projection (PyTorch proj_size={h}), which the ONNX LSTM op cannot express (torch's exporter drops the projection and keeps {h} of the {} cell units); import the model's state_dict as safetensors instead",
                            d[2]
                        );
                    }
                    if d.len() != 3 || d[0] != nd || d[2] != h || d[1] == 0 {
                        bail!("{what} has shape {d:?}, expected [{nd}, batch, {h}]");
                    }
                    let mut out = Vec::with_capacity(nd);
                    for dir in t.data.chunks_exact(d[1] * h) {
                        let rows: Vec<&[f64]> = dir.chunks_exact(h).collect();
                        if rows.iter().any(|r| *r != rows[0]) {
                            bail!("{what} differs between sequences of the batch: per-sequence initial states are not supported");
                        }
                        out.push(if rows[0].iter().all(|&v| v == 0.0) {
                            None
                        } else {
                            Some(rows[0].iter().map(|&v| v as f32).collect())
                        });
                    }
                    Ok(out)
                }
                Val::Seq(_) => bail!("{what} computed from the input is not supported"),
                Val::Sym { .. } | Val::Filled { .. } => bail!("{what} is a shape value"),
            }
        };
        let h0 = init(self.input(n, 5)?, "initial_h")?;
        let (c0, p) = if op == "LSTM" {
            let c0 = init(self.input(n, 6)?, "initial_c")?;
            let p = match self.input(n, 7)? {
                Val::Absent | Val::Zeros(_) => None,
                _ => {
                    let p = self.konst(n, 7, "P")?;
                    if p.len() != nd * 3 * h {
                        bail!("P has shape {:?}, expected [{nd}, {}]", p.dims, 3 * h);
                    }
                    Some(p.data)
                }
            };
            (c0, p)
        } else {
            (vec![None; nd], None)
        };
        // Peepholes are kept if any direction has a non-zero one (both directions of a
        // bidirectional layer then carry them).
        let p = p.filter(|v| v.iter().any(|&x| x != 0.0));
        let cell = match cell {
            CellKind::Lstm { .. } => CellKind::Lstm {
                peepholes: p.is_some(),
            },
            c => c,
        };
        let order = gate_order(cell);
        let gh = gates * h;
        let one = |d: usize| FloatLayer {
            cell,
            input_size,
            hidden_size: h,
            w_ih: to_f32(reorder(
                &w.data[d * gh * input_size..(d + 1) * gh * input_size],
                h,
                input_size,
                order,
            )),
            w_hh: to_f32(reorder(&r.data[d * gh * h..(d + 1) * gh * h], h, h, order)),
            b_ih: to_f32(reorder(&b[2 * d * gh..(2 * d + 1) * gh], h, 1, order)),
            b_hh: to_f32(reorder(&b[(2 * d + 1) * gh..(2 * d + 2) * gh], h, 1, order)),
            peephole: p.as_ref().map(|p| {
                to_f32(reorder(
                    &p[3 * d * h..3 * (d + 1) * h],
                    h,
                    1,
                    &PEEPHOLE_ORDER,
                ))
            }),
            h0: h0[d].clone(),
            c0: c0[d].clone(),
            cell_clip: None,
            direction: Direction::Forward,
            backward: None,
            w_hr: None,
        };
        let mut layer = one(0);
        layer.direction = direction;
        if direction == Direction::Bidirectional {
            layer.backward = Some(Box::new(one(1)));
        }
        if k == 0 {
            self.norm = norm;
            self.pre = pre;
        }
        self.layers.push(layer);
        // Y is [T, num_directions, B, H] (layout 0) or [B, T, num_directions, H] (layout 1);
        // Y_h / Y_c are [num_directions, B, H] or [B, num_directions, H]. A forward or
        // reverse layer's num_directions axis has size 1; a bidirectional layer's holds its
        // two directions (a `Stack(2)` of `Stage::Dir`). A reverse layer's final state is
        // its state after frame 0 (`Pool::FinalStates`), a forward layer's the last step.
        let dir_ax = if nd == 2 { Ax::Stack(2) } else { Ax::Unit };
        let y_axes = if layout == 0 {
            vec![Ax::Time, dir_ax, Ax::Batch, Ax::Feat(h)]
        } else {
            vec![Ax::Batch, Ax::Time, dir_ax, Ax::Feat(h)]
        };
        let yh_axes = if layout == 0 {
            vec![dir_ax, Ax::Batch, Ax::Feat(h)]
        } else {
            vec![Ax::Batch, dir_ax, Ax::Feat(h)]
        };
        let parts = |cell: bool, last: bool| -> Vec<Stage> {
            match direction {
                Direction::Bidirectional => (0..2)
                    .map(|dir| Stage::Dir {
                        layer: k,
                        dir,
                        cell,
                    })
                    .collect(),
                Direction::Reverse if last => vec![Stage::Rec {
                    layer: k,
                    cell,
                    pool: Pool::FinalStates,
                    mlp: Vec::new(),
                    head: None,
                    act: tinyrnn::OutputAct::Identity,
                }],
                _ => vec![Stage::hidden(k, cell)],
            }
        };
        let mut outs = vec![
            Val::Seq(Seq {
                axes: y_axes,
                parts: parts(false, false),
                last: false,
                rev: false,
            }),
            Val::Seq(Seq {
                axes: yh_axes.clone(),
                parts: parts(false, true),
                last: true,
                rev: false,
            }),
        ];
        if op == "LSTM" {
            outs.push(Val::Seq(Seq {
                axes: yh_axes,
                parts: parts(true, true),
                last: true,
                rev: false,
            }));
        }
        Ok(outs)
    }
}

/// Reorders blocks of `h` rows (each `cols` wide): output block `i` = input block `order[i]`.
fn reorder(data: &[f64], h: usize, cols: usize, order: &[usize]) -> Vec<f64> {
    let block = h * cols;
    let mut out = Vec::with_capacity(data.len());
    for &o in order {
        out.extend_from_slice(&data[o * block..(o + 1) * block]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{eval, int, konst, node, string, strings};
    use super::*;
    use crate::import::ImportOptions;

    fn parse(n: &NodeProto) -> Result<RecAttrs> {
        RecAttrs::parse(n, &n.op_type, None)
    }

    fn err(r: Result<RecAttrs>) -> String {
        format!("{:#}", r.expect_err("refused"))
    }

    #[test]
    fn attributes_by_default() {
        let a = parse(&node("LSTM", &[], vec![])).unwrap();
        assert_eq!(
            a,
            RecAttrs {
                cell: CellKind::Lstm { peepholes: false },
                gates: 4,
                layout: 0,
                hidden_size: None,
                direction: Direction::Forward,
            }
        );
        assert_eq!(
            parse(&node("RNN", &[], vec![])).unwrap().cell,
            CellKind::Rnn(RnnAct::Tanh)
        );
        assert_eq!(parse(&node("RNN", &[], vec![])).unwrap().gates, 1);
    }

    #[test]
    fn attributes_given() {
        let a = parse(&node(
            "GRU",
            &[],
            vec![
                int("linear_before_reset", 1),
                int("layout", 1),
                int("hidden_size", 8),
                string("direction", "forward"),
                strings("activations", &["Sigmoid", "Tanh"]),
            ],
        ))
        .unwrap();
        assert_eq!(
            a,
            RecAttrs {
                cell: CellKind::Gru {
                    linear_before_reset: true
                },
                gates: 3,
                layout: 1,
                hidden_size: Some(8),
                direction: Direction::Forward,
            }
        );
        let relu = node("RNN", &[], vec![strings("activations", &["Relu"])]);
        assert_eq!(parse(&relu).unwrap().cell, CellKind::Rnn(RnnAct::Relu));
        assert!(RecAttrs::parse(&relu, "RNN", Some(RnnAct::Relu)).is_ok());
        assert_eq!(
            format!(
                "{:#}",
                RecAttrs::parse(&relu, "RNN", Some(RnnAct::Tanh)).unwrap_err()
            ),
            "--rnn-activation Tanh contradicts the graph's activations=[\"relu\"]"
        );
    }

    #[test]
    fn attributes_refused() {
        let lstm = |a| parse(&node("LSTM", &[], vec![a]));
        assert_eq!(
            lstm(string("direction", "reverse")).unwrap().direction,
            Direction::Reverse
        );
        assert_eq!(
            lstm(string("direction", "bidirectional"))
                .unwrap()
                .direction,
            Direction::Bidirectional
        );
        assert_eq!(
            err(lstm(string("direction", "sideways"))),
            "direction=sideways (expected forward, reverse or bidirectional)"
        );
        assert_eq!(err(lstm(int("layout", 2))), "layout=2");
        assert_eq!(
            err(lstm(int("input_forget", 1))),
            "attribute `input_forget`=1 is not supported"
        );
        assert_eq!(
            err(lstm(super::super::testing::float("clip", 3.0))),
            "attribute `clip` is not supported"
        );
        assert_eq!(
            err(lstm(strings("activations", &["Sigmoid", "Relu", "Tanh"]))),
            "activations=[\"sigmoid\", \"relu\", \"tanh\"] are not supported (LSTM needs Sigmoid, Tanh, Tanh)"
        );
        assert!(err(parse(&node(
            "GRU",
            &[],
            vec![strings("activations", &["Sigmoid", "Sigmoid"])]
        )))
        .contains("GRU needs Sigmoid, Tanh"));
        assert!(err(parse(&node(
            "RNN",
            &[],
            vec![strings("activations", &["Sigmoid"])]
        )))
        .contains("RNN needs Tanh or Relu"));
    }

    #[test]
    fn gate_order_onnx_to_pytorch() {
        // LSTM, H = 1, 2 columns: ONNX rows i, o, f, c → IR i, f, g(=c), o.
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let lstm = gate_order(CellKind::Lstm { peepholes: false });
        assert_eq!(
            reorder(&w, 1, 2, lstm),
            [1.0, 2.0, 5.0, 6.0, 7.0, 8.0, 3.0, 4.0]
        );
        // GRU, H = 2, 1 column: ONNX z, r, h → IR r, z, n.
        let gru = gate_order(CellKind::Gru {
            linear_before_reset: false,
        });
        let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(reorder(&b, 2, 1, gru), [3.0, 4.0, 1.0, 2.0, 5.0, 6.0]);
        assert_eq!(
            reorder(&b, 6, 1, gate_order(CellKind::Rnn(RnnAct::Tanh))),
            b
        );
        // Peepholes: ONNX P = i, o, f → IR i, f, o.
        assert_eq!(
            reorder(&[1.0, 2.0, 3.0], 1, 1, &PEEPHOLE_ORDER),
            [1.0, 3.0, 2.0]
        );
    }

    /// A whole LSTM node (H = 1, I = 1, layout 0) on the graph input: the layer's weights in
    /// PyTorch order, the input's axes resolved to [time, batch], the three outputs.
    #[test]
    fn lstm_node_becomes_a_layer() {
        let opts = ImportOptions::default();
        let x = Val::Seq(Seq {
            axes: vec![Ax::Free(0), Ax::Free(1), Ax::Feat(1)],
            parts: vec![Stage::Input {
                a: vec![1.0],
                b: vec![0.0],
            }],
            last: false,
            rev: false,
        });
        let b: Vec<f64> = (9..=16).map(f64::from).collect();
        let mut ev = eval(
            &opts,
            vec![
                ("X", x),
                ("W", konst(&[1, 4, 1], &[1.0, 2.0, 3.0, 4.0])),
                ("R", konst(&[1, 4, 1], &[5.0, 6.0, 7.0, 8.0])),
                ("B", konst(&[1, 8], &b)),
            ],
        );
        let n = node("LSTM", &["X", "W", "R", "B"], vec![int("hidden_size", 1)]);
        let outs = ev.recurrent(&n, "LSTM").unwrap();
        assert_eq!(outs.len(), 3, "Y, Y_h, Y_c");
        let l = &ev.layers[0];
        assert_eq!(l.cell, CellKind::Lstm { peepholes: false });
        assert_eq!((l.input_size, l.hidden_size), (1, 1));
        assert_eq!(l.w_ih, [1.0, 3.0, 4.0, 2.0]);
        assert_eq!(l.w_hh, [5.0, 7.0, 8.0, 6.0]);
        assert_eq!(l.b_ih, [9.0, 11.0, 12.0, 10.0]);
        assert_eq!(l.b_hh, [13.0, 15.0, 16.0, 14.0]);
        assert_eq!(ev.free, [Some(Ax::Time), Some(Ax::Batch)]);
        assert!(ev.norm.is_none());
        match &outs[1] {
            Val::Seq(s) => {
                assert!(s.last);
                assert_eq!(s.axes, [Ax::Unit, Ax::Batch, Ax::Feat(1)]);
            }
            other => panic!("Y_h is {other:?}"),
        }
        // hidden_size must agree with R.
        let bad = node("LSTM", &["X", "W", "R", "B"], vec![int("hidden_size", 2)]);
        assert_eq!(
            format!("{:#}", ev.recurrent(&bad, "LSTM").unwrap_err()),
            "hidden_size=2 but R has shape [1, 4, 1]"
        );
    }
}

//! PyTorch `state_dict` saved with safetensors → [`FloatModel`].
//!
//! Recurrent modules are found by their keys `<prefix>.weight_ih_l{k}`, `weight_hh_l{k}`,
//! `bias_ih_l{k}`, `bias_hh_l{k}` (any prefix, also none); the cell kind comes from the row
//! count (`4H` LSTM, `3H` GRU, `H` RNN whose non-linearity is `--rnn-activation`, default
//! tanh). Several modules chain in the order their widths fit (natural order of their
//! prefixes first). Dense layers are `<name>.weight` `[out, in]` (+ `<name>.bias`): the
//! head is the chain of them starting at the last hidden size (`fc`, or `fc1`, `fc2`, or
//! `head.0`, `head.2` of an `nn.Sequential`; ties in width go to the first in natural key
//! order), the pre-net the chain ending at the first recurrent layer's input width. Every
//! key must be used: anything else (bidirectional `_reverse`, `proj_size`'s `weight_hr`,
//! LayerNorm/BatchNorm keys, dense layers that fit no chain) is an error naming the keys
//! that cannot be placed and listing the keys found.
//!
//! A state_dict does not record the forward pass: the same keys serve `fc(out[:, -1])` and
//! `fc(out.mean(dim=1))`, and `fc2(fc1(z))` with or without a ReLU between. The importer
//! never guesses silently: it takes the reduction from `--pool` (default `last`), the
//! activations from `--pre-act` (one per pre-net layer) and `--head-act` (one per hidden
//! head layer, required when there are any), and prints the forward pass it assumes on
//! stderr (`note: ...`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Result};
use safetensors::{Dtype, SafeTensors};
use tinyrnn::{CellKind, DenseAct, OutputAct, RnnAct};

use super::{ImportOptions, Pool};
use crate::ir::{FloatDense, FloatLayer, FloatModel, FrameOp};

struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let v: Vec<f32> = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => bail!("tensor `{name}` has dtype {other:?} (expected F32, F16, BF16 or F64)"),
    };
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        bail!("tensor `{name}` has a non-finite value at flat index {i}");
    }
    Ok(v)
}

/// Natural ordering key: digit runs compare as numbers (`rnns.2` < `rnns.10`).
fn natural_key(s: &str) -> Vec<(u8, u64, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digits = false;
    for ch in s.chars() {
        let d = ch.is_ascii_digit();
        if !cur.is_empty() && d != digits {
            out.push(part(&cur, digits));
            cur.clear();
        }
        digits = d;
        cur.push(ch);
    }
    if !cur.is_empty() {
        out.push(part(&cur, digits));
    }
    out
}

fn part(s: &str, digits: bool) -> (u8, u64, String) {
    if digits {
        (0, s.parse().unwrap_or(u64::MAX), String::new())
    } else {
        (1, 0, s.to_string())
    }
}

/// Splits `<prefix>.<param>_l<k>[_reverse]` into (prefix, param, k, reverse).
fn split_rnn_key(key: &str) -> Option<(String, String, usize, bool)> {
    let (prefix, last) = match key.rfind('.') {
        Some(p) => (&key[..p], &key[p + 1..]),
        None => ("", key),
    };
    for param in ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"] {
        if let Some(rest) = last.strip_prefix(param).and_then(|r| r.strip_prefix("_l")) {
            let (num, reverse) = match rest.strip_suffix("_reverse") {
                Some(n) => (n, true),
                None => (rest, false),
            };
            if let Ok(k) = num.parse::<usize>() {
                return Some((prefix.to_string(), param.to_string(), k, reverse));
            }
        }
    }
    None
}

fn keys_list(all: &BTreeMap<String, Tensor>) -> String {
    let v: Vec<String> = all
        .iter()
        .map(|(k, t)| format!("{k} {}", crate::data::fmt_shape(&t.shape)))
        .collect();
    v.join(", ")
}

struct Module {
    prefix: String,
    layers: Vec<FloatLayer>,
}

impl Module {
    fn input(&self) -> usize {
        self.layers[0].input_size
    }
    fn output(&self) -> usize {
        self.layers[self.layers.len() - 1].hidden_size
    }
}

/// Imports a safetensors state_dict (see the module docs).
///
/// # Errors
/// Malformed file, unsupported or ambiguous key sets (the message lists the keys).
pub fn import(bytes: &[u8], opts: &ImportOptions) -> Result<FloatModel> {
    let pool = opts.pool.unwrap_or(Pool::Last);
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("not a valid safetensors file: {e}"))?;
    let mut all: BTreeMap<String, Tensor> = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = to_f32(&name, view.dtype(), view.data())?;
        all.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    if all.is_empty() {
        bail!("the file holds no tensors");
    }
    let listing = || keys_list(&all);

    // Group recurrent keys by prefix.
    let mut groups: BTreeMap<String, BTreeMap<(usize, String), String>> = BTreeMap::new();
    let named = |keys: &[&String]| {
        keys.iter()
            .map(|k| format!("{k} {}", crate::data::fmt_shape(&all[k.as_str()].shape)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let reverse: Vec<&String> = all
        .keys()
        .filter(|k| split_rnn_key(k).is_some_and(|(_, _, _, r)| r))
        .collect();
    if !reverse.is_empty() {
        bail!(
            "bidirectional recurrent layers are not supported yet: the `_reverse` keys ({}) hold the backward direction of a bidirectional=True module; keys: {}",
            named(&reverse),
            listing()
        );
    }
    let proj: Vec<&String> = all
        .keys()
        .filter(|k| split_rnn_key(k).is_some_and(|(_, p, _, _)| p == "weight_hr"))
        .collect();
    if !proj.is_empty() {
        bail!(
            "LSTM proj_size is not supported yet: the `weight_hr` keys ({}) hold the projection of nn.LSTM(proj_size=...); keys: {}",
            named(&proj),
            listing()
        );
    }
    for key in all.keys() {
        if let Some((prefix, param, k, _)) = split_rnn_key(key) {
            groups
                .entry(prefix)
                .or_default()
                .insert((k, param), key.clone());
        }
    }
    if groups.is_empty() {
        bail!(
            "no recurrent layer found (expected keys like `<name>.weight_ih_l0`); keys: {}",
            listing()
        );
    }
    let act = opts.rnn_activation.unwrap_or(RnnAct::Tanh);
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut modules = Vec::new();
    for (prefix, params) in &groups {
        let nlayers = params.keys().map(|(k, _)| k + 1).max().unwrap_or(0);
        let mut layers = Vec::new();
        for k in 0..nlayers {
            let get = |p: &str| -> Result<&Tensor> {
                let key = params.get(&(k, p.to_string())).ok_or_else(|| {
                    let dot = if prefix.is_empty() { "" } else { "." };
                    anyhow!(
                        "missing `{prefix}{dot}{p}_l{k}` (biases are required); keys: {}",
                        listing()
                    )
                })?;
                Ok(&all[key])
            };
            let (wih, whh, bih, bhh) = (
                get("weight_ih")?,
                get("weight_hh")?,
                get("bias_ih")?,
                get("bias_hh")?,
            );
            let bad = || {
                anyhow!(
                    "`{prefix}` layer {k}: inconsistent shapes weight_ih {}, weight_hh {}, bias_ih {}, bias_hh {}",
                    crate::data::fmt_shape(&wih.shape),
                    crate::data::fmt_shape(&whh.shape),
                    crate::data::fmt_shape(&bih.shape),
                    crate::data::fmt_shape(&bhh.shape)
                )
            };
            if wih.shape.len() != 2 || whh.shape.len() != 2 {
                return Err(bad());
            }
            let (rows, input) = (wih.shape[0], wih.shape[1]);
            let h = whh.shape[1];
            if h == 0 || input == 0 || whh.shape[0] != rows || rows % h != 0 {
                return Err(bad());
            }
            if bih.shape != [rows] || bhh.shape != [rows] {
                return Err(bad());
            }
            let cell = match rows / h {
                1 => CellKind::Rnn(act),
                3 => CellKind::Gru {
                    linear_before_reset: true,
                },
                4 => CellKind::Lstm { peepholes: false },
                g => bail!(
                    "`{prefix}` layer {k}: weight_hh has {rows} rows for hidden size {h} ({g}·H: not an RNN, GRU or LSTM)"
                ),
            };
            layers.push(FloatLayer {
                cell,
                input_size: input,
                hidden_size: h,
                w_ih: wih.data.clone(),
                w_hh: whh.data.clone(),
                b_ih: bih.data.clone(),
                b_hh: bhh.data.clone(),
                peephole: None,
                h0: None,
                c0: None,
                cell_clip: None,
                direction: tinyrnn::Direction::Forward,
                backward: None,
                w_hr: None,
            });
            for p in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
                used.insert(params[&(k, p.to_string())].clone());
            }
        }
        for w in layers.windows(2) {
            if w[1].input_size != w[0].hidden_size {
                bail!(
                    "`{prefix}`: layer input {} does not match the hidden size {} below it; keys: {}",
                    w[1].input_size,
                    w[0].hidden_size,
                    listing()
                );
            }
        }
        modules.push(Module {
            prefix: prefix.clone(),
            layers,
        });
    }
    let modules = chain(modules, &listing)?;
    let last_h = modules[modules.len() - 1].output();

    // Dense layers: `<base>.weight` [out, in] (+ `<base>.bias` [out]). The head chains from
    // the last hidden size (input widths must fit; ties go to the first in natural key
    // order, as nn.Sequential numbers its layers); the pre-net chains back from the
    // first recurrent layer's input width (ties to the last).
    let mut dense: Vec<(String, usize, usize)> = all
        .iter()
        .filter(|(k, t)| !used.contains(*k) && t.shape.len() == 2)
        .filter_map(|(k, t)| {
            let base = k.strip_suffix(".weight")?;
            Some((base.to_string(), t.shape[0], t.shape[1]))
        })
        .collect();
    dense.sort_by_key(|(b, _, _)| natural_key(b));
    let mut head_chain: Vec<(String, usize, usize)> = Vec::new();
    let mut width = last_h;
    while let Some(k) = dense.iter().position(|(_, _, i)| *i == width) {
        let d = dense.remove(k);
        width = d.1;
        head_chain.push(d);
    }
    let rivals: Vec<String> = dense
        .iter()
        .filter(|(_, _, i)| *i == last_h)
        .map(|(b, _, _)| format!("{b}.weight"))
        .collect();
    if !rivals.is_empty() {
        let first = head_chain.first().map_or("", |d| d.0.as_str());
        bail!(
            "two or more candidate heads take the last hidden size {last_h} (`{first}.weight` and {}), and they do not chain; keys: {}",
            rivals.join(", "),
            listing()
        );
    }
    let mut pre_chain: Vec<(String, usize, usize)> = Vec::new();
    let mut width = modules[0].input();
    while let Some(k) = dense.iter().rposition(|(_, o, _)| *o == width) {
        let d = dense.remove(k);
        width = d.2;
        pre_chain.insert(0, d);
    }
    let mut take = |base: &str| -> Result<(Vec<f32>, Vec<f32>, usize, usize)> {
        let wkey = format!("{base}.weight");
        let bkey = format!("{base}.bias");
        let w = &all[&wkey];
        let (out, inp) = (w.shape[0], w.shape[1]);
        let bias = match all.get(&bkey) {
            Some(b) if b.shape == [out] => b.data.clone(),
            Some(b) => bail!(
                "bias `{bkey}` has shape {} but `{wkey}` has {out} rows",
                crate::data::fmt_shape(&b.shape)
            ),
            None => bail!(
                "dense layer `{wkey}` has no `{bkey}` (a bias is required); keys: {}",
                listing()
            ),
        };
        used.insert(wkey);
        used.insert(bkey);
        Ok((w.data.clone(), bias, out, inp))
    };
    let names = |c: &[(String, usize, usize)]| {
        c.iter()
            .map(|(b, o, i)| format!("`{b}` ({i} -> {o})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hidden = head_chain.len().saturating_sub(1);
    if opts.head_act.len() != hidden {
        bail!(
            "the head after the recurrent layers has {} dense layer(s) ({}): {} --head-act given, {hidden} needed (one per hidden layer, in order; the last layer's activation is --output-activation); keys: {}",
            head_chain.len(),
            names(&head_chain),
            opts.head_act.len(),
            listing()
        );
    }
    if opts.pre_act.len() != pre_chain.len() {
        bail!(
            "{} dense layer(s) before the first recurrent layer ({}): {} --pre-act given, {} needed (one per layer, in order; `identity` for none); keys: {}",
            pre_chain.len(),
            names(&pre_chain),
            opts.pre_act.len(),
            pre_chain.len(),
            listing()
        );
    }
    let mut pre = Vec::new();
    for ((base, _, _), &act) in pre_chain.iter().zip(&opts.pre_act) {
        let (weight, bias, out_size, in_size) = take(base)?;
        pre.push(FrameOp::Dense(FloatDense {
            out_size,
            in_size,
            weight,
            bias,
            act,
        }));
    }
    let mut mlp = Vec::new();
    let mut head = None;
    for (k, (base, _, _)) in head_chain.iter().enumerate() {
        let (weight, bias, out_size, in_size) = take(base)?;
        let d = FloatDense {
            out_size,
            in_size,
            weight,
            bias,
            act: opts.head_act.get(k).copied().unwrap_or(DenseAct::Identity),
        };
        if k + 1 == head_chain.len() {
            head = Some(d);
        } else {
            mlp.push(FrameOp::Dense(d));
        }
    }
    let unused: Vec<&String> = all.keys().filter(|k| !used.contains(*k)).collect();
    if !unused.is_empty() {
        let u: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        bail!(
            "unsupported keys {} (only recurrent layers and chains of Linear layers before and after them can be placed); keys: {}",
            u.join(", "),
            listing()
        );
    }
    let note = assumed_forward(&modules, &pre_chain, &head_chain, pool, opts);
    let layers: Vec<FloatLayer> = modules.into_iter().flat_map(|m| m.layers).collect();
    if layers.len() > tinyrnn::MAX_LAYERS {
        bail!(
            "{} recurrent layers (at most {} are supported)",
            layers.len(),
            tinyrnn::MAX_LAYERS
        );
    }
    eprintln!("note: {note}");
    Ok(FloatModel {
        input_size: pre_chain.first().map_or(layers[0].input_size, |d| d.2),
        norm: None,
        pre,
        layers,
        pool: match pool {
            Pool::Last | Pool::Hn => tinyrnn::Pool::Last,
            Pool::Mean => tinyrnn::Pool::Mean,
            Pool::Max => tinyrnn::Pool::Max,
            Pool::Sum => tinyrnn::Pool::Sum,
        },
        mlp,
        head,
        output_act: opts.output_act.unwrap_or(OutputAct::Identity),
        name: String::new(),
    })
}

/// The forward pass the import assumes, in PyTorch terms, for the `note:` line (a
/// state_dict does not record it).
fn assumed_forward(
    modules: &[Module],
    pre: &[(String, usize, usize)],
    head: &[(String, usize, usize)],
    pool: Pool,
    opts: &ImportOptions,
) -> String {
    let cell = |l: &FloatLayer| match l.cell {
        CellKind::Lstm { .. } => "LSTM",
        CellKind::Gru { .. } => "GRU",
        CellKind::Rnn(_) => "RNN",
    };
    let apply = |name: &str, act: DenseAct, x: String| {
        let name = if name.is_empty() { "linear" } else { name };
        match act {
            DenseAct::Identity => format!("{name}({x})"),
            DenseAct::Clip { lo, hi } => format!("hardtanh({name}({x}), {lo}, {hi})"),
            DenseAct::LeakyRelu { alpha } => format!("leaky_relu({name}({x}), {alpha})"),
            a => format!("{}({name}({x}))", a.name()),
        }
    };
    let mut out = "x".to_string();
    for ((b, _, _), &act) in pre.iter().zip(&opts.pre_act) {
        out = apply(b, act, out);
    }
    let mut parts = Vec::new();
    for m in modules {
        let name = if m.prefix.is_empty() {
            "rnn"
        } else {
            m.prefix.as_str()
        };
        out = format!("{name}({out})[0]");
        let widths: Vec<String> = std::iter::once(m.input())
            .chain(m.layers.iter().map(|l| l.hidden_size))
            .map(|w| w.to_string())
            .collect();
        parts.push(format!(
            "{name} = {}(num_layers={}) {}",
            cell(&m.layers[0]),
            m.layers.len(),
            widths.join("->")
        ));
    }
    let z = match pool {
        Pool::Hn => "h_n[-1]".to_string(),
        Pool::Last => format!("{out}[:, -1]"),
        Pool::Mean => format!("{out}.mean(dim=1)"),
        Pool::Max => format!("{out}.max(dim=1).values"),
        Pool::Sum => format!("{out}.sum(dim=1)"),
    };
    let mut y = z;
    for (k, (b, _, _)) in head.iter().enumerate() {
        let act = opts.head_act.get(k).copied().unwrap_or(DenseAct::Identity);
        y = apply(b, act, y);
    }
    let y = match opts.output_act.unwrap_or(OutputAct::Identity) {
        OutputAct::Identity => y,
        OutputAct::Sigmoid => format!("sigmoid({y})"),
        OutputAct::Tanh => format!("tanh({y})"),
        OutputAct::Softmax => format!("softmax({y}, dim=-1)"),
    };
    let rnn = if modules
        .iter()
        .any(|m| m.layers.iter().any(|l| matches!(l.cell, CellKind::Rnn(_))))
    {
        match opts.rnn_activation.unwrap_or(RnnAct::Tanh) {
            RnnAct::Tanh => ", nn.RNN nonlinearity tanh (--rnn-activation)",
            RnnAct::Relu => ", nn.RNN nonlinearity relu (--rnn-activation)",
        }
    } else {
        ""
    };
    let how = match (opts.pool, pool) {
        (None, _) => {
            "--pool last, the default; give --pool mean|max|sum for a model that pools over time"
        }
        (Some(_), Pool::Hn) => "--pool hn: h_n[-1] equals out[:, -1] for a unidirectional stack",
        (Some(_), p) => match p {
            Pool::Mean => "--pool mean",
            Pool::Max => "--pool max",
            Pool::Sum => "--pool sum",
            _ => "--pool last",
        },
    };
    let how = if head.len() > 1 || !pre.is_empty() {
        format!("{how}; dense activations from --pre-act/--head-act")
    } else {
        how.to_string()
    };
    format!(
        "a state_dict does not record the forward pass; assuming y = {y} ({how}), {}{rnn}",
        parts.join(", ")
    )
}

/// Orders the modules so that widths chain: the natural order of the prefixes if it fits,
/// else the only permutation that fits.
fn chain(mut modules: Vec<Module>, listing: &dyn Fn() -> String) -> Result<Vec<Module>> {
    modules.sort_by_key(|m| natural_key(&m.prefix));
    let fits = |order: &[usize]| {
        order
            .windows(2)
            .all(|w| modules[w[1]].input() == modules[w[0]].output())
    };
    let n = modules.len();
    let natural: Vec<usize> = (0..n).collect();
    if fits(&natural) {
        return Ok(modules);
    }
    if n > 6 {
        bail!(
            "{n} recurrent modules whose widths do not chain; keys: {}",
            listing()
        );
    }
    let mut found = Vec::new();
    let mut perm = natural.clone();
    permutations(&mut perm, 0, &mut |p| {
        if fits(p) {
            found.push(p.to_vec());
        }
    });
    match found.len() {
        0 => bail!(
            "the recurrent modules' widths do not chain ({}); keys: {}",
            modules
                .iter()
                .map(|m| format!("`{}` {}→{}", m.prefix, m.input(), m.output()))
                .collect::<Vec<_>>()
                .join(", "),
            listing()
        ),
        1 => {
            let order = &found[0];
            let mut slots: Vec<Option<Module>> = modules.into_iter().map(Some).collect();
            Ok(order.iter().filter_map(|&i| slots[i].take()).collect())
        }
        _ => bail!(
            "the recurrent modules chain in more than one order; keys: {}",
            listing()
        ),
    }
}

fn permutations(v: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permutations(v, k + 1, f);
        v.swap(k, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            split_rnn_key("enc.rnn.weight_ih_l2"),
            Some(("enc.rnn".into(), "weight_ih".into(), 2, false))
        );
        assert_eq!(
            split_rnn_key("weight_hh_l0_reverse"),
            Some(("".into(), "weight_hh".into(), 0, true))
        );
        assert_eq!(split_rnn_key("head.weight"), None);
        assert!(natural_key("rnns.2") < natural_key("rnns.10"));
    }
}

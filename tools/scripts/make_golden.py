#!/usr/bin/env python3
"""Generate the golden fixtures in tests/data/golden/<case>/ (never run in CI).

Each case directory holds:
  model.onnx         the model (classic exporter, dynamo=False, opset 17; or built with onnx.helper)
  model.safetensors  save_file(model.state_dict()) of the PyTorch model (PyTorch cases only)
  x.npy              float32 [N, T, F] inputs, batch-first, ~N(0,1) with a few larger values
  y_all.npy          float32 [N, T, C] reference output after every step (batch-first)
  meta.json          description of the case (see README.md)

Usage: python tools/scripts/make_golden.py   (rewrites tests/data/golden/)
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DATA, OPSET, export_classic, op_types, ort_run, save_json, save_npy,  # noqa: E402
                    seed_everything)

import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

OUT = DATA / "golden"
N, T, F = 4, 12, 5
TOL = 1e-5
# Scale of the recurrent weights relative to PyTorch's default init U(-1/sqrt(H), 1/sqrt(H)).
DEFAULT_GAIN = {"tanh": 1.0, "relu": 1.0, "gru": 1.5, "lstm": 2.0}  # ONNX (onnxruntime) vs PyTorch max abs diff allowed


def make_x(seed: int, n: int = N, t: int = T, f: int = F) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, f)).astype(np.float32)
    k = max(4, x.size // 40)  # a few larger values (|x| in 3..5)
    idx = rng.choice(x.size, size=k, replace=False)
    x.flat[idx] = (rng.choice([-1.0, 1.0], size=k) * rng.uniform(3.0, 5.0, size=k)).astype(np.float32)
    return x


# ----------------------------------------------------------------------------- PyTorch cases

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class Net(nn.Module):
    """Recurrent layers (one nn module with num_layers, or separate modules chained),
    optional Linear head applied at every step, optional output activation."""

    def __init__(self, cell: str, sizes: list[int], separate: bool, batch_first: bool,
                 head_out: int | None, out_act: str, nonlinearity: str = "tanh"):
        super().__init__()
        kw = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.separate = separate
        if separate:
            self.rnns = nn.ModuleList(
                CELLS[cell](sizes[i], sizes[i + 1], batch_first=batch_first, **kw)
                for i in range(len(sizes) - 1))
        else:
            hs = set(sizes[1:])
            assert len(hs) == 1, "a single module needs equal widths"
            self.rnn = CELLS[cell](sizes[0], sizes[1], num_layers=len(sizes) - 1,
                                   batch_first=batch_first, **kw)
        self.head = nn.Linear(sizes[-1], head_out) if head_out else None
        self.out_act = out_act

    def forward(self, x):
        if self.separate:
            y = x
            for m in self.rnns:
                y, _ = m(y)
        else:
            y, _ = self.rnn(x)
        if self.head is not None:
            y = self.head(y)
        if self.out_act == "softmax":
            y = torch.softmax(y, dim=-1)
        elif self.out_act == "sigmoid":
            y = torch.sigmoid(y)
        return y


def layer_outputs(net: Net, x: torch.Tensor) -> list[np.ndarray]:
    outs = []
    with torch.no_grad():
        if net.separate:
            y = x
            for m in net.rnns:
                y, _ = m(y)
                outs.append(y.numpy())
        else:
            y, _ = net.rnn(x)
            outs.append(y.numpy())  # top layer only
    return outs


def torch_case(name: str, cell: str, sizes: list[int], *, separate: bool = False,
               batch_first: bool = True, head_out: int | None = 4, out_act: str = "identity",
               nonlinearity: str = "tanh", gain: float | None = None, seed: int) -> dict:
    seed_everything(seed)
    net = Net(cell, sizes, separate, batch_first, head_out, out_act, nonlinearity).eval()
    if gain is None:  # PyTorch's default init gives small LSTM/GRU states: widen the range
        gain = DEFAULT_GAIN[cell if cell != "rnn" else nonlinearity]
    with torch.no_grad():
        for k, p in net.named_parameters():
            if not k.startswith("head."):
                p.mul_(gain)
    x = make_x(seed + 1000, f=sizes[0])
    xt = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2).copy())
    with torch.no_grad():
        y = net(xt).numpy()
    y_all = y if batch_first else y.transpose(1, 0, 2)

    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    export_classic(net, xt, d / "model.onnx", batch_first=batch_first)
    y_onnx = ort_run(d / "model.onnx", xt.numpy())
    diff = float(np.abs(y_onnx - y).max())
    assert diff < TOL, (name, diff)
    # A different batch/time size must work too (dynamic axes).
    x2 = make_x(seed + 2000, n=2, t=7, f=sizes[0])
    x2t = x2 if batch_first else x2.transpose(1, 0, 2).copy()
    with torch.no_grad():
        diff2 = float(np.abs(ort_run(d / "model.onnx", x2t) - net(torch.from_numpy(x2t)).numpy()).max())
    assert diff2 < TOL, (name, diff2)

    sd = net.state_dict()
    save_file(sd, str(d / "model.safetensors"))
    save_npy(d / "x.npy", x, np.float32)
    save_npy(d / "y_all.npy", y_all, np.float32)
    hidden = sizes[1:]
    meta = {
        "case": name,
        "source": "pytorch",
        "cell": cell,
        "layers": len(hidden),
        "input_size": sizes[0],
        "hidden_sizes": hidden,
        "output_size": head_out if head_out else hidden[-1],
        "batch_first": batch_first,
        "module_structure": "separate_modules" if separate else f"single_module_num_layers_{len(hidden)}",
        "has_head": head_out is not None,
        "output_activation": out_act,
        "rnn_activation": nonlinearity if cell == "rnn" else "default",
        "linear_before_reset": cell == "gru",  # PyTorch GRU == ONNX linear_before_reset=1
        "peepholes": False,
        "initial_state": None,
        "reference": "pytorch",
        "has_safetensors": True,
        "state_dict_keys": {k: list(v.shape) for k, v in sd.items()},
        "x_shape": list(x.shape),
        "y_shape": list(y_all.shape),
        "onnx_exporter": "torch.onnx.export(dynamo=False)",
        "onnx_opset": OPSET,
        "onnx_input_layout": "[N,T,F]" if batch_first else "[T,N,F]",
        "onnx_output_layout": "[N,T,C]" if batch_first else "[T,N,C]",
        "onnx_vs_reference_max_abs_diff": diff,
        "weight_gain_vs_default_init": gain,
        "seed": seed,
    }
    save_json(d / "meta.json", meta)
    hs = layer_outputs(net, xt)
    stats = " ".join(f"|h{i}|max={np.abs(h).max():.2f},>.95:{(np.abs(h) > .95).mean():.0%}"
                     for i, h in enumerate(hs))
    print(f"{name:24s} onnx-vs-torch max|diff|={diff:.2e} (other shape {diff2:.2e}) "
          f"|y|max={np.abs(y_all).max():.3f} {stats}")
    return meta


# ----------------------------------------------------------------------------- ONNX-only cases

def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_onnx_rnn(kind: str, x_tnf, W, R, B, *, P=None, h0=None, c0=None, lbr=1, act="Tanh"):
    """float64 reference of the ONNX RNN/GRU/LSTM ops (one direction, default activations).
    Returns Y [T, N, H] and the max |pre-activation| seen per gate (for range checks)."""
    x = x_tnf.astype(np.float64)
    W, R, B = W[0].astype(np.float64), R[0].astype(np.float64), B[0].astype(np.float64)
    H = R.shape[1]
    n = x.shape[1]
    h = np.zeros((n, H)) if h0 is None else np.broadcast_to(h0[0], (n, H)).astype(np.float64)
    c = np.zeros((n, H)) if c0 is None else np.broadcast_to(c0[0], (n, H)).astype(np.float64)
    G = W.shape[0] // H
    Wb, Rb = B[: G * H], B[G * H:]
    ys, pre_max = [], 0.0
    for t in range(x.shape[0]):
        if kind == "LSTM":
            g = x[t] @ W.T + h @ R.T + Wb + Rb
            gi, go, gf, gc = np.split(g, 4, axis=1)  # ONNX order i, o, f, c
            if P is not None:
                pi, po, pf = np.split(P[0].astype(np.float64), 3)  # ONNX order i, o, f
                gi = gi + pi * c
                gf = gf + pf * c
            i, f = sig(gi), sig(gf)
            c = f * c + i * np.tanh(gc)
            if P is not None:
                go = go + po * c
            h = sig(go) * np.tanh(c)
            pre_max = max(pre_max, np.abs(np.concatenate([gi, go, gf, gc], 1)).max())
        elif kind == "GRU":
            Wz, Wr, Wh = np.split(W, 3)  # ONNX order z, r, h
            Rz, Rr, Rh = np.split(R, 3)
            Wbz, Wbr, Wbh = np.split(Wb, 3)
            Rbz, Rbr, Rbh = np.split(Rb, 3)
            gz = x[t] @ Wz.T + h @ Rz.T + Wbz + Rbz
            gr = x[t] @ Wr.T + h @ Rr.T + Wbr + Rbr
            z, r = sig(gz), sig(gr)
            if lbr:
                gh = x[t] @ Wh.T + r * (h @ Rh.T + Rbh) + Wbh
            else:
                gh = x[t] @ Wh.T + (r * h) @ Rh.T + Rbh + Wbh
            h = (1 - z) * np.tanh(gh) + z * h
            pre_max = max(pre_max, np.abs(np.concatenate([gz, gr, gh], 1)).max())
        else:
            g = x[t] @ W.T + h @ R.T + Wb + Rb
            h = np.maximum(g, 0) if act == "Relu" else np.tanh(g)
            pre_max = max(pre_max, np.abs(g).max())
        ys.append(h)
    return np.stack(ys), pre_max


def onnx_case(name: str, kind: str, *, seed: int, H: int = 8, C: int = 4, peephole=False,
              lbr: int = 1, act: str = "Tanh", init_state=False, gain: float = 1.5) -> dict:
    """Graph in the same style as the classic exporter: x [N,T,F] -> Transpose -> op ->
    Squeeze(axis 1) -> Transpose -> MatMul + Add (head) -> y [N,T,C]."""
    rng = np.random.default_rng(seed)
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    k = gain / np.sqrt(H)

    def u(shape, scale):
        return rng.uniform(-scale, scale, size=shape).astype(np.float32)

    W = u((1, G * H, F), k)
    R = u((1, G * H, H), k)
    B = u((1, 2 * G * H), k)
    P = u((1, 3 * H), 0.5) if peephole else None
    h0 = u((1, 1, H), 0.5) if init_state else None
    c0 = u((1, 1, H), 1.0) if init_state else None
    Wh = u((H, C), 1 / np.sqrt(H))  # MatMul weight, [H, C] like the exporter's
    bh = u((C,), 1 / np.sqrt(H))

    batch = 1 if init_state else "batch"  # an initial_h initializer has a fixed batch dim
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
             numpy_helper.from_array(B, "B"), numpy_helper.from_array(Wh, "head.weight_t"),
             numpy_helper.from_array(bh, "head.bias"),
             numpy_helper.from_array(np.array([1], np.int64), "squeeze_axes")]
    op_inputs = ["x_tnf", "W", "R", "B", "", ""]
    if init_state:
        inits += [numpy_helper.from_array(h0, "initial_h"), numpy_helper.from_array(c0, "initial_c")]
        op_inputs[5] = "initial_h"
        op_inputs.append("initial_c")
    if peephole:
        inits.append(numpy_helper.from_array(P, "P"))
        while len(op_inputs) < 7:
            op_inputs.append("")
        op_inputs.append("P")
    while op_inputs and op_inputs[-1] == "":
        op_inputs.pop()
    attrs = {"hidden_size": H}
    if kind == "GRU":
        attrs["linear_before_reset"] = lbr
    if kind == "RNN":
        attrs["activations"] = [act]
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_tnf"], perm=[1, 0, 2], name="Transpose_in"),
        helper.make_node(kind, op_inputs, ["Y"], name=kind, **attrs),
        helper.make_node("Squeeze", ["Y", "squeeze_axes"], ["Y_sq"], name="Squeeze"),
        helper.make_node("Transpose", ["Y_sq"], ["h_ntf"], perm=[1, 0, 2], name="Transpose_out"),
        helper.make_node("MatMul", ["h_ntf", "head.weight_t"], ["mm"], name="MatMul"),
        helper.make_node("Add", ["mm", "head.bias"], ["y"], name="Add"),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, "time", F])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, "time", C])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tinyrnn make_golden.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)

    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(d / "model.onnx"))
    x = make_x(seed + 1000)
    if init_state:
        y = np.concatenate([ort_run(d / "model.onnx", x[i:i + 1]) for i in range(N)])
    else:
        y = ort_run(d / "model.onnx", x)
    hs, pre_max = np_onnx_rnn(kind, x.transpose(1, 0, 2), W, R, B, P=P, h0=h0, c0=c0, lbr=lbr, act=act)
    y_np = hs.transpose(1, 0, 2) @ Wh.astype(np.float64) + bh
    diff = float(np.abs(y_np - y).max())
    assert diff < TOL, (name, diff)
    save_npy(d / "x.npy", x, np.float32)
    save_npy(d / "y_all.npy", y, np.float32)
    meta = {
        "case": name,
        "source": "onnx.helper",
        "cell": kind.lower(),
        "layers": 1,
        "input_size": F,
        "hidden_sizes": [H],
        "output_size": C,
        "batch_first": True,
        "module_structure": "onnx_only",
        "has_head": True,
        "output_activation": "identity",
        "rnn_activation": act.lower() if kind == "RNN" else "default",
        "linear_before_reset": bool(lbr) if kind == "GRU" else None,
        "peepholes": peephole,
        "initial_state": {"initial_h": h0[0, 0].tolist(), "initial_c": c0[0, 0].tolist()} if init_state else None,
        "reference": "onnxruntime",
        "has_safetensors": False,
        "state_dict_keys": None,
        "x_shape": list(x.shape),
        "y_shape": list(y.shape),
        "onnx_exporter": "onnx.helper",
        "onnx_opset": OPSET,
        "onnx_input_layout": "[1,T,F] (fixed batch 1: run each sequence separately)" if init_state else "[N,T,F]",
        "onnx_output_layout": "[1,T,C]" if init_state else "[N,T,C]",
        "onnx_vs_reference_max_abs_diff": 0.0,
        "numpy_f64_vs_onnxruntime_max_abs_diff": diff,
        "max_abs_gate_preactivation": float(pre_max),
        "seed": seed,
    }
    save_json(d / "meta.json", meta)
    print(f"{name:24s} numpy-f64-vs-ort max|diff|={diff:.2e} |y|max={np.abs(y).max():.3f} "
          f"|h|max={np.abs(hs).max():.2f} max|pre|={pre_max:.2f}")
    return meta


# ----------------------------------------------------------------------------- dynamo case

def dynamo_case(seed: int) -> dict | None:
    name = "dynamo_lstm"
    seed_everything(seed)
    net = Net("lstm", [F, 8], False, True, 4, "identity").eval()
    x = make_x(seed + 1000)
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    try:
        bt = torch.export.Dim("batch", min=1, max=1024)
        tt = torch.export.Dim("time", min=2, max=4096)
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(net, (torch.from_numpy(x),), str(d / "model.onnx"),
                              input_names=["x"], output_names=["y"],
                              dynamic_shapes={"x": {0: bt, 1: tt}}, external_data=False)
    except Exception as e:  # noqa: BLE001
        print(f"{name}: dynamo export failed, skipped: {type(e).__name__}: {e}")
        shutil.rmtree(d, ignore_errors=True)
        return None
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    diff = float(np.abs(ort_run(d / "model.onnx", x) - y).max())
    save_npy(d / "x.npy", x, np.float32)
    save_npy(d / "y_all.npy", y, np.float32)
    m = onnx.load(str(d / "model.onnx"))
    meta = {
        "case": name,
        "source": "pytorch",
        "cell": "lstm", "layers": 1, "input_size": F, "hidden_sizes": [8], "output_size": 4,
        "batch_first": True, "has_head": True, "output_activation": "identity",
        "reference": "pytorch", "has_safetensors": False,
        "onnx_exporter": "torch.onnx.export(dynamo=True) (default exporter of torch 2.15); it keeps an LSTM node, which the importer supports",
        "onnx_opset": [o.version for o in m.opset_import if o.domain == ""][0],
        "onnx_vs_reference_max_abs_diff": diff,
        "seed": seed,
    }
    save_json(d / "meta.json", meta)
    print(f"{name:24s} onnx-vs-torch max|diff|={diff:.2e} ops={op_types(d / 'model.onnx')}")
    return meta


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    cases = []
    # one layer, input 5, hidden 8, Linear head to 4
    cases.append(torch_case("rnn_tanh_1l", "rnn", [5, 8], seed=1))
    cases.append(torch_case("rnn_relu_1l", "rnn", [5, 8], nonlinearity="relu", seed=2))
    cases.append(torch_case("gru_1l", "gru", [5, 8], seed=3))
    cases.append(torch_case("lstm_1l", "lstm", [5, 8], seed=4))
    # one nn module with num_layers=3 (equal widths)
    cases.append(torch_case("rnn_tanh_3l", "rnn", [5, 8, 8, 8], seed=5))
    cases.append(torch_case("gru_3l", "gru", [5, 8, 8, 8], seed=6))
    cases.append(torch_case("lstm_3l", "lstm", [5, 8, 8, 8], seed=7))
    # three separate modules with different widths 5 -> 16 -> 8 -> 12
    cases.append(torch_case("rnn_tanh_stack3", "rnn", [5, 16, 8, 12], separate=True, seed=8))
    cases.append(torch_case("gru_stack3", "gru", [5, 16, 8, 12], separate=True, seed=9))
    cases.append(torch_case("lstm_stack3", "lstm", [5, 16, 8, 12], separate=True, seed=10))
    # variants
    cases.append(torch_case("lstm_nohead", "lstm", [5, 8], head_out=None, seed=11))
    cases.append(torch_case("gru_seqfirst", "gru", [5, 8], batch_first=False, seed=12))
    cases.append(torch_case("lstm_softmax", "lstm", [5, 8], out_act="softmax", seed=13))
    cases.append(torch_case("gru_sigmoid", "gru", [5, 8], out_act="sigmoid", seed=14))
    # ONNX-only variants (reference from onnxruntime, cross-checked with a float64 numpy model)
    cases.append(onnx_case("onnx_lstm_peephole", "LSTM", peephole=True, seed=21))
    cases.append(onnx_case("onnx_gru_lbr0", "GRU", lbr=0, seed=22))
    cases.append(onnx_case("onnx_rnn_relu", "RNN", act="Relu", seed=23))
    cases.append(onnx_case("onnx_lstm_init_state", "LSTM", init_state=True, seed=24))
    dyn = dynamo_case(seed=31)
    index = {"cases": [c["case"] for c in cases] + ([dyn["case"]] if dyn else [])}
    save_json(OUT / "index.json", index)


if __name__ == "__main__":
    main()

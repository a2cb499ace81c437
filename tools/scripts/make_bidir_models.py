"""Reverse and bidirectional recurrent layers and the LSTM projection (issue #10 §3): trained
PyTorch models and the ONNX backend node tests for `direction`. Writes tests/data/bidir/.

Dataset: BasicMotions as in make_graph_models.py (its `load`: standardized, 6 channels,
100 steps, 4 classes); the models see the first 50 steps of each sequence.

tests/data/bidir/
  x.npy                          float32 [4, 50, 6]: four standardized test sequences
  index.json                     models, forward, accuracy, ops, export notes
  bigru_hn/                      nn.GRU(6, 10, num_layers=2, bidirectional=True),
                                 logits = fc(cat(h_n[-2], h_n[-1]))
    classic.onnx                 torch.onnx.export(..., dynamo=False, opset 17)
    dynamo.onnx(.data)           torch.onnx.export(model, (x,), "dynamo.onnx") (defaults)
    model.safetensors            its state_dict (keys *_reverse)
    y_torch.npy, y_ort_classic.npy, y_ort_dynamo.npy   [4, 4]
  bilstm_mean/                   nn.LSTM(6, 10, bidirectional=True), logits = fc(out.mean(1))
    (same files)
  revgru_hn/                     a GRU reading the sequence backwards, logits = fc(h_n[-1]):
    model.onnx                   PyTorch has no reverse-only layer, so this graph is written
                                 here with onnx.helper: one GRU node, direction=reverse, the
                                 trained weights; y_torch is PyTorch's nn.GRU on x.flip(1)
    y_torch.npy, y_ort.npy
  bigru_last/                    nn.GRU(6, 10, bidirectional=True), logits = fc(out[:, -1])
                                 (the reverse direction after one frame): as bigru_hn
  lstm_proj/                     nn.LSTM(6, 12, proj_size=6), logits = fc(out[:, -1])
    model.safetensors, y_torch.npy   (index.json: what each torch exporter does with it)
    dynamo_invalid.onnx(.data)   the default exporter's graph: an LSTM node whose R is
                                 [1, 4H, P], which onnxruntime rejects (the classic exporter
                                 refuses proj_size outright)
  node/<test_name>/              the six ONNX backend node tests for direction (test_lstm_*,
                                 test_gru_*, test_simple_rnn_* reverse/bidirectional), from the
                                 onnx package's own case generators
                                 (onnx.backend.test.case.node): model.onnx with W/R as
                                 initializers (the case feeds them as inputs), x.npy the case's
                                 X, y.npy its expected Y_h (the ONNX reference implementation)

Run: /tmp/torchvenv/bin/python tools/scripts/make_bidir_models.py (about a minute).
"""
from __future__ import annotations

import shutil

import numpy as np

from common import DATA, export_classic, ort_run, save_json, save_npy, seed_everything
from make_graph_models import load, train

OUT = DATA / "bidir"
T = 50
F, H, C = 6, 10, 4


def build():
    import torch
    from torch import nn

    class BiGruHn(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(F, H, num_layers=2, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(2 * H, C)

        def forward(self, x):
            _, h_n = self.rnn(x)
            return self.fc(torch.cat((h_n[-2], h_n[-1]), dim=1))

    class BiLstmMean(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(F, H, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(2 * H, C)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out.mean(dim=1))

    class RevGru(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(F, H, batch_first=True)
            self.fc = nn.Linear(H, C)

        def forward(self, x):
            _, h_n = self.rnn(x.flip(1))
            return self.fc(h_n[-1])

    class LstmProj(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(F, 12, proj_size=6, batch_first=True)
            self.fc = nn.Linear(6, C)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])

    class BiGruLast(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(F, H, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(2 * H, C)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])

    return {
        "bigru_hn": (BiGruHn, "logits = fc(cat(h_n[-2], h_n[-1]))", ["--pool", "hn"]),
        "bilstm_mean": (BiLstmMean, "logits = fc(out.mean(dim=1))", ["--pool", "mean"]),
        "revgru_hn": (RevGru, "logits = fc(gru(x.flip(1)).h_n[-1])", None),
        "lstm_proj": (LstmProj, "logits = fc(out[:, -1])", []),
        "bigru_last": (BiGruLast, "logits = fc(out[:, -1]) = fc([fwd_{T-1}; bwd_{T-1}])",
                       ["--pool", "last"]),
    }


def reverse_gru_onnx(model, path):
    """The trained RevGru as one ONNX GRU node with direction=reverse (PyTorch gate order
    r, z, n -> ONNX z, r, h; linear_before_reset=1 as PyTorch's GRU)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}

    def zrh(a):
        r, z, n = np.split(a, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    W = zrh(sd["rnn.weight_ih_l0"])[None]
    R = zrh(sd["rnn.weight_hh_l0"])[None]
    B = np.concatenate([zrh(sd["rnn.bias_ih_l0"]), zrh(sd["rnn.bias_hh_l0"])])[None]
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
             [(W, "W"), (R, "R"), (B, "B"), (sd["fc.weight"].T.copy(), "fc_wt"),
              (sd["fc.bias"], "fc_b")]]
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["xt", "W", "R", "B"], ["", "y_h"], hidden_size=H,
                         direction="reverse", linear_before_reset=1),
        helper.make_node("Squeeze", ["y_h", "zero"], ["h"]),
        helper.make_node("MatMul", ["h", "fc_wt"], ["mm"]),
        helper.make_node("Add", ["mm", "fc_b"], ["logits"]),
    ]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "zero"))
    g = helper.make_graph(
        nodes, "revgru",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", F])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", C])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="tools/scripts/make_bidir_models.py")
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def node_tests():
    """The six backend node tests for direction, W/R/B moved to initializers."""
    import onnx
    from onnx import helper, numpy_helper
    import onnx.backend.test.case.node as case_node
    from onnx.backend.test.case.node import gru, lstm, rnn

    captured = {}

    def capture(node, inputs, outputs, name, **_):
        captured[name] = (node, inputs, outputs)

    cases = [(lstm, lstm.LSTM), (gru, gru.GRU), (rnn, rnn.RNN)]
    for mod, cls in cases:
        saved = mod.expect
        mod.expect = capture
        try:
            cls.export_reverse()
            cls.export_bidirectional()
        finally:
            mod.expect = saved
    assert case_node  # the generators' package
    names = []
    for name, (node, inputs, outputs) in sorted(captured.items()):
        d = OUT / "node" / name
        d.mkdir(parents=True)
        ins = list(node.input)
        x = inputs[0]
        inits = [numpy_helper.from_array(np.asarray(a, np.float32), n)
                 for n, a in zip(ins[1:], inputs[1:])]
        # Keep the first output (Y_h) only: the model's one output.
        outs = [o for o in node.output if o]
        n2 = helper.make_node(node.op_type, ins, [o if o == outs[0] else "" for o in
                                                   node.output], name=name)
        n2.attribute.extend(node.attribute)
        y = np.asarray(outputs[0], np.float32)
        g = helper.make_graph(
            [n2], name,
            [helper.make_tensor_value_info(ins[0], onnx.TensorProto.FLOAT, list(x.shape))],
            [helper.make_tensor_value_info(outs[0], onnx.TensorProto.FLOAT, list(y.shape))],
            inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)],
                              producer_name="onnx.backend.test.case.node " + name)
        onnx.checker.check_model(m)
        onnx.save(m, str(d / "model.onnx"))
        y_ort = ort_run(d / "model.onnx", np.asarray(x, np.float32))
        assert np.abs(y_ort - y).max() < 1e-5, name
        save_npy(d / "x.npy", x, np.float32)
        save_npy(d / "y.npy", y, np.float32)
        names.append(name)
    return names


def main():
    import onnx
    import torch
    from safetensors.torch import save_file

    xtr, ytr, xte, yte, _, _, _ = load()
    xtr, xte = xtr[:, :T].copy(), xte[:, :T].copy()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    xs = xte[[0, 10, 20, 30]]
    save_npy(OUT / "x.npy", xs, np.float32)
    index = {
        "dataset": "BasicMotions (UEA; aeon.datasets.load_basic_motions, bundled), first "
                   f"{T} steps, standardized per channel as make_graph_models.py",
        "x": f"x.npy = test sequences 0, 10, 20, 30 (standardized), [4, {T}, 6]",
        "models": {},
    }
    for k, (name, (make, forward, flags)) in enumerate(build().items()):
        seed_everything(2000 + k)
        model = train(make(), xtr, ytr, epochs=120)
        d = OUT / name
        d.mkdir()
        x = torch.from_numpy(xs)
        with torch.no_grad():
            acc = float((model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
            y = model(x).numpy()
        save_npy(d / "y_torch.npy", y, np.float32)
        entry = {"model": repr(model), "forward": forward, "test_accuracy": acc,
                 "params": int(sum(p.numel() for p in model.parameters()))}
        if name == "revgru_hn":
            reverse_gru_onnx(model, d / "model.onnx")
            y_o = ort_run(d / "model.onnx", xs)
            entry["ort_vs_torch_max_abs_diff"] = float(np.abs(y_o - y).max())
            assert entry["ort_vs_torch_max_abs_diff"] < 1e-5
            save_npy(d / "y_ort.npy", y_o, np.float32)
        elif name == "lstm_proj":
            # What each torch exporter makes of proj_size (recorded, not shipped).
            notes = {}
            for how in ["classic", "dynamo"]:
                p = OUT / f"_tmp_{how}.onnx"
                try:
                    with torch.no_grad():
                        if how == "classic":
                            export_classic(model, x, p, output_name="logits",
                                           output_axes={0: "batch"})
                        else:
                            torch.onnx.export(model, (x,), str(p))
                    try:
                        y_o = ort_run(p, xs)
                        notes[how] = ("exported; onnxruntime max |ort - torch| = "
                                      f"{float(np.abs(y_o - y).max()):.3g}; ops "
                                      f"{sorted(set(n.op_type for n in onnx.load(str(p)).graph.node))}")
                    except Exception as e:  # noqa: BLE001
                        notes[how] = f"exported, onnxruntime fails: {str(e).splitlines()[0][:300]}"
                except Exception as e:  # noqa: BLE001
                    notes[how] = f"export fails: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
                if how == "dynamo" and p.exists():
                    # kept: the invalid graph the importer must refuse by name
                    g = onnx.load(str(p))
                    onnx.save(g, str(d / "dynamo_invalid.onnx"), save_as_external_data=True,
                              location="dynamo_invalid.onnx.data", size_threshold=0)
                for q in OUT.glob(f"_tmp_{how}.onnx*"):
                    q.unlink()
            entry["onnx_export"] = notes
            print("lstm_proj exports:", notes)
        else:
            with torch.no_grad():
                export_classic(model, x, d / "classic.onnx", output_name="logits",
                               output_axes={0: "batch"})
                torch.onnx.export(model, (x,), str(d / "dynamo.onnx"))
            y_c = ort_run(d / "classic.onnx", xs)
            y_d = ort_run(d / "dynamo.onnx", xs)
            dc, dd = float(np.abs(y_c - y).max()), float(np.abs(y_d - y).max())
            assert dc < 1e-5 and dd < 1e-5, (name, dc, dd)
            save_npy(d / "y_ort_classic.npy", y_c, np.float32)
            save_npy(d / "y_ort_dynamo.npy", y_d, np.float32)
            entry["ops_classic"] = [n.op_type for n in onnx.load(str(d / "classic.onnx")).graph.node]
            entry["ops_dynamo"] = [n.op_type for n in onnx.load(str(d / "dynamo.onnx")).graph.node]
            entry["ort_vs_torch_max_abs_diff"] = {"classic": dc, "dynamo": dd}
        if flags is not None:
            sd = {key: v.contiguous() for key, v in model.state_dict().items()}
            save_file(sd, str(d / "model.safetensors"))
            entry["safetensors_flags"] = flags
            entry["keys"] = {key: list(v.shape) for key, v in sd.items()}
        index["models"][name] = entry
        print(f"{name}: test accuracy {acc:.3f}")
    index["node_tests"] = node_tests()
    save_json(OUT / "index.json", index)


if __name__ == "__main__":
    main()

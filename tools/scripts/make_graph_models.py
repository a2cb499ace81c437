"""Trained example models with the graph shapes of issue #10 (input projections, MLP heads,
pooling over time, dense activations, LayerNorm, BatchNorm, Dropout). Writes tests/data/graph/.

Dataset: BasicMotions (UEA, bundled in aeon: ``aeon.datasets.load_basic_motions``, no
download): 6 accelerometer/gyroscope channels, 100 steps, 4 classes, 40 train / 40 test
sequences. Inputs are standardized per channel with the training mean/std (the models take
standardized inputs; ``norm.json`` holds the statistics for ``--normalize``).

tests/data/graph/
  x.npy                       float32 [4, 100, 6]: four standardized test sequences
  norm.json                   {"mean": [6], "std": [6]} of the training set
  index.json                  models, forward, dataset, accuracy, shapes, safetensors flags
  <model>/classic.onnx        torch.onnx.export(..., dynamo=False, opset_version=17),
                              dynamic batch/time
  <model>/dynamo.onnx(.data)  torch.onnx.export(model, (x,), "dynamo.onnx"): torch's default
                              (torch.export-based) exporter, defaults only (fixed [4, 100, 6],
                              weights as external data)
  <model>/model.safetensors   safetensors.torch.save_file(model.state_dict(), ...) (the four
                              main models only)
  <model>/y_torch.npy         float32 [4, 4]: PyTorch's logits on x.npy
  <model>/y_ort_classic.npy   float32 [4, 4]: onnxruntime on classic.onnx
  <model>/y_ort_dynamo.npy    float32 [4, 4]: onnxruntime on dynamo.onnx
  <zoo>/classic_op14.onnx     the two *_zoo models again with dynamo=False, opset 14: no
                              LayerNormalization op yet, so LayerNorm is written decomposed
                              (ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add), GELU as Erf/Tanh arithmetic
  <zoo>/y_ort_classic_op14.npy onnxruntime on it

Run: /tmp/torchvenv/bin/python tools/scripts/make_graph_models.py (about a minute).
"""
from __future__ import annotations

import shutil

import numpy as np

from common import DATA, export_classic, ort_run, save_json, save_npy, seed_everything

OUT = DATA / "graph"
N_SHOW = 4


def load():
    from aeon.datasets import load_basic_motions

    xtr, ytr = load_basic_motions(split="train")
    xte, yte = load_basic_motions(split="test")
    classes = sorted(set(ytr))
    enc = {c: i for i, c in enumerate(classes)}
    xtr = np.transpose(xtr, (0, 2, 1)).astype(np.float64)
    xte = np.transpose(xte, (0, 2, 1)).astype(np.float64)
    mean = xtr.reshape(-1, xtr.shape[2]).mean(axis=0)
    std = xtr.reshape(-1, xtr.shape[2]).std(axis=0)
    xtr = ((xtr - mean) / std).astype(np.float32)
    xte = ((xte - mean) / std).astype(np.float32)
    ytr = np.array([enc[c] for c in ytr], dtype=np.int64)
    yte = np.array([enc[c] for c in yte], dtype=np.int64)
    return xtr, ytr, xte, yte, mean, std, classes


def build():
    import torch
    from torch import nn

    class Net(nn.Module):
        """[pre(x)] -> rnn -> pool over time -> head."""

        def __init__(self, rnn, head, pool="last", pre=None):
            super().__init__()
            if pre is not None:
                self.pre = pre
            self.rnn = rnn
            self.head = head
            self.pool = pool

        def forward(self, x):
            if hasattr(self, "pre"):
                x = self.pre(x)
            out, _ = self.rnn(x)
            if self.pool == "mean":
                z = out.mean(dim=1)
            elif self.pool == "max":
                z = out.max(dim=1).values
            elif self.pool == "sum":
                z = out.sum(dim=1)
            else:
                z = out[:, -1]
            return self.head(z)

    F, H, C = 6, 16, 4
    seq = nn.Sequential
    return {
        # name: (constructor, forward, safetensors flags or None)
        "lstm_mlp": (
            lambda: Net(nn.LSTM(F, H, batch_first=True),
                        seq(nn.Linear(H, 16), nn.ReLU(), nn.Linear(16, C))),
            "logits = head.2(relu(head.0(out[:, -1])))",
            ["--head-act", "relu"],
        ),
        "proj_gru": (
            lambda: Net(nn.GRU(12, H, batch_first=True), seq(nn.Linear(H, C)),
                        pre=seq(nn.Linear(F, 12), nn.ReLU())),
            "logits = head.0(gru(relu(pre.0(x)))[:, -1])",
            ["--pre-act", "relu"],
        ),
        "lstm_mean": (
            lambda: Net(nn.LSTM(F, H, batch_first=True), seq(nn.Linear(H, C)), pool="mean"),
            "logits = head.0(out.mean(dim=1))",
            ["--pool", "mean"],
        ),
        "lstm_max": (
            lambda: Net(nn.LSTM(F, H, batch_first=True), seq(nn.Linear(H, C)), pool="max"),
            "logits = head.0(out.max(dim=1).values)",
            ["--pool", "max"],
        ),
        # Every activation and norm, ONNX only (a state_dict cannot say where they go).
        "gru_zoo": (
            lambda: Net(nn.GRU(8, 12, batch_first=True),
                        seq(nn.Linear(12, 12), nn.BatchNorm1d(12), nn.LeakyReLU(0.1),
                            nn.Dropout(0.2), nn.Linear(12, 8), nn.ReLU6(), nn.Linear(8, C)),
                        pool="sum",
                        pre=seq(nn.Linear(F, 8), nn.LayerNorm(8), nn.GELU())),
            "logits = head(out.sum(dim=1)), pre = Linear, LayerNorm, GELU; head = Linear, "
            "BatchNorm1d, LeakyReLU(0.1), Dropout, Linear, ReLU6, Linear",
            None,
        ),
        "lstm_zoo": (
            lambda: Net(nn.LSTM(8, 12, batch_first=True),
                        seq(nn.Linear(12, 10), nn.GELU(approximate="tanh"), nn.Linear(10, 8),
                            nn.Sigmoid(), nn.LayerNorm(8), nn.Linear(8, 8),
                            nn.Hardtanh(-0.5, 0.5), nn.Linear(8, C)),
                        pool="max",
                        pre=seq(nn.Linear(F, 8), nn.Tanh())),
            "logits = head(out.max(dim=1).values), pre = Linear, Tanh; head = Linear, "
            "GELU(tanh), Linear, Sigmoid, LayerNorm, Linear, Hardtanh(-0.5, 0.5), Linear",
            None,
        ),
    }


def train(model, xtr, ytr, epochs=300):
    import torch

    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    return model


def main():
    import onnx
    import torch
    from safetensors.torch import save_file

    xtr, ytr, xte, yte, mean, std, classes = load()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    xs = xte[[0, 10, 20, 30]]
    assert xs.shape == (N_SHOW, 100, 6)
    save_npy(OUT / "x.npy", xs, np.float32)
    save_json(OUT / "norm.json", {"mean": mean.tolist(), "std": std.tolist()})
    index = {
        "dataset": "BasicMotions (UEA; aeon.datasets.load_basic_motions, bundled): 6 channels, "
                   "100 steps, 4 classes, 40 train / 40 test; standardized per channel",
        "classes": list(classes),
        "x": "x.npy = test sequences 0, 10, 20, 30 (standardized), [4, 100, 6]",
        "models": {},
    }
    for k, (name, (make, forward, flags)) in enumerate(build().items()):
        seed_everything(1000 + k)
        model = train(make(), xtr, ytr)
        d = OUT / name
        d.mkdir()
        x = torch.from_numpy(xs)
        with torch.no_grad():
            acc = float((model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
            y = model(x).numpy()
            export_classic(model, x, d / "classic.onnx", output_name="logits",
                           output_axes={0: "batch"})
            torch.onnx.export(model, (x,), str(d / "dynamo.onnx"))
        files = sorted(p.name for p in d.iterdir())
        assert "dynamo.onnx.data" in files, files
        y_c = ort_run(d / "classic.onnx", xs)
        y_d = ort_run(d / "dynamo.onnx", xs)
        dc, dd = float(np.abs(y_c - y).max()), float(np.abs(y_d - y).max())
        assert dc < 1e-5 and dd < 1e-5, (name, dc, dd)
        if name.endswith("_zoo"):
            with torch.no_grad():
                torch.onnx.export(
                    model, (x,), str(d / "classic_op14.onnx"), dynamo=False, opset_version=14,
                    input_names=["x"], output_names=["logits"],
                    dynamic_axes={"x": {0: "batch", 1: "time"}, "logits": {0: "batch"}},
                )
            y_14 = ort_run(d / "classic_op14.onnx", xs)
            assert float(np.abs(y_14 - y).max()) < 1e-5, name
            save_npy(d / "y_ort_classic_op14.npy", y_14, np.float32)
        save_npy(d / "y_torch.npy", y, np.float32)
        save_npy(d / "y_ort_classic.npy", y_c, np.float32)
        save_npy(d / "y_ort_dynamo.npy", y_d, np.float32)
        entry = {
            "model": repr(model),
            "forward": forward,
            "test_accuracy": acc,
            "input_shape": list(xs.shape),
            "ops_classic": [n.op_type for n in onnx.load(str(d / "classic.onnx")).graph.node],
            "ops_dynamo": [n.op_type for n in onnx.load(str(d / "dynamo.onnx")).graph.node],
            "ort_vs_torch_max_abs_diff": {"classic": dc, "dynamo": dd},
            "params": int(sum(p.numel() for p in model.parameters())),
        }
        if flags is not None:
            sd = {key: v.contiguous() for key, v in model.state_dict().items()}
            save_file(sd, str(d / "model.safetensors"))
            entry["safetensors_flags"] = flags
            entry["keys"] = {key: list(v.shape) for key, v in sd.items()}
        index["models"][name] = entry
        print(f"{name}: test accuracy {acc:.3f}, ort vs torch {dc:.1e} / {dd:.1e}")
    save_json(OUT / "index.json", index)


if __name__ == "__main__":
    main()

"""A trained graph model whose pre-net and head use GELU in both forms and no LayerNorm, so it
quantizes to every precision (tinyrnn issue #10: GELU on the integer paths). Writes
tests/data/graph_gelu/.

Same dataset and inputs as make_graph_models.py (BasicMotions, standardized; the test
sequences of tests/data/graph/x.npy):

  logits = head.2(gelu_tanh(head.0(mean_t gru(gelu(pre.0(x))))))
  pre = Linear(6, 8), GELU() (exact, erf); GRU(8, 12); mean over time;
  head = Linear(12, 10), GELU(approximate="tanh"), Linear(10, 4)

tests/data/graph_gelu/
  gru_gelu/classic.onnx      torch.onnx.export(..., dynamo=False, opset_version=17): Gelu is
                             not an opset-17 op, so the exporter writes Erf / Tanh arithmetic
                             (the importer fuses it back)
  gru_gelu/y_torch.npy       float32 [4, 4]: PyTorch's logits on ../graph/x.npy
  gru_gelu/y_ort_classic.npy float32 [4, 4]: onnxruntime on classic.onnx
  index.json                 the model, its accuracy and ONNX ops

Run: /tmp/torchvenv/bin/python tools/scripts/make_gelu_models.py (seconds).
"""
from __future__ import annotations

import shutil

import numpy as np

from common import DATA, export_classic, ort_run, save_json, save_npy, seed_everything
from make_graph_models import load, train

OUT = DATA / "graph_gelu"


def main():
    import onnx
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = nn.Sequential(nn.Linear(6, 8), nn.GELU())
            self.rnn = nn.GRU(8, 12, batch_first=True)
            self.head = nn.Sequential(nn.Linear(12, 10), nn.GELU(approximate="tanh"),
                                      nn.Linear(10, 4))

        def forward(self, x):
            out, _ = self.rnn(self.pre(x))
            return self.head(out.mean(dim=1))

    xtr, ytr, xte, yte, _, _, _ = load()
    xs = xte[[0, 10, 20, 30]]
    stored = np.load(DATA / "graph" / "x.npy")
    assert np.array_equal(stored, xs), "tests/data/graph/x.npy is not the same test sequences"
    shutil.rmtree(OUT, ignore_errors=True)
    d = OUT / "gru_gelu"
    d.mkdir(parents=True)
    seed_everything(2000)
    model = train(Net(), xtr, ytr)
    x = torch.from_numpy(xs)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
        y = model(x).numpy()
        export_classic(model, x, d / "classic.onnx", output_name="logits",
                       output_axes={0: "batch"})
    y_c = ort_run(d / "classic.onnx", xs)
    dc = float(np.abs(y_c - y).max())
    assert dc < 1e-5, dc
    save_npy(d / "y_torch.npy", y, np.float32)
    save_npy(d / "y_ort_classic.npy", y_c, np.float32)
    save_json(OUT / "index.json", {
        "models": {"gru_gelu": {
            "model": repr(model),
            "forward": "logits = head.2(gelu_tanh(head.0(gru(gelu(pre.0(x))).mean(dim=1))))",
            "test_accuracy": acc,
            "ops_classic": [n.op_type for n in onnx.load(str(d / "classic.onnx")).graph.node],
            "ort_vs_torch_max_abs_diff": dc,
        }},
        "x": "../graph/x.npy",
    })
    print(f"gru_gelu: test accuracy {acc:.3f}, ort vs torch {dc:.1e}")


if __name__ == "__main__":
    main()

"""Fixtures for ONNX external data and for safetensors state_dicts whose forward pass the
importer must not guess. Writes tests/data/extdata/ and tests/data/state_dicts/.

tests/data/extdata/<case>/ (ONNX written by torch's *default* exporter, torch >= 2.9:
``torch.onnx.export(model, (x,), "model.onnx")``, nothing else; it needs onnxscript):

  model.onnx, model.onnx.data   as the exporter wrote them: every initializer larger than
                                256 bytes (onnx_ir's default threshold) sits in
                                model.onnx.data (location, offset, length), the smaller ones
                                stay inline. Shapes are fixed to the example's [4, 12, 6] (no
                                dynamic_shapes), as in the plain call
  x.npy                         float32 [4, 12, 6], the example input
  y_torch.npy                   float32 [4, C]: PyTorch's logits (last step)
  y_ort.npy                     float32 [4, C]: onnxruntime on model.onnx
  meta.json                     model, which tensors are external, max |ort - torch|

  cases: gru_linear   (GRU 6->16, Linear 16->4 on out[:, -1])
         lstm2_linear (nn.LSTM(6, 16, num_layers=2, dropout=0.3), Linear 16->4)
         rnn_linear   (nn.RNN(6, 16) tanh, Linear 16->4): torch 2.15's default exporter
                      unrolls nn.RNN over the 12 steps (MatMul/Add/Tanh, no RNN node), which
                      the importer refuses with a hint to use dynamo=False

tests/data/state_dicts/ (``safetensors.torch.save_file(model.state_dict(), path)``):

  lstm_linear.safetensors       LSTM 6->16, fc = Linear 16->4 on out[:, -1]
  lstm_mean.safetensors         LSTM 6->16, fc = Linear 16->4 on out.mean(dim=1): the SAME keys
  lstm_mlp.safetensors          LSTM 6->16, fc1 16->8, ReLU, fc2 8->4
  gru_bidir.safetensors         GRU(6, 16, bidirectional=True), fc = Linear(32, 4) on out[:, -1]
  lstm_proj.safetensors         LSTM(6, 16, proj_size=8), fc = Linear(8, 4)
  x.npy                         float32 [4, 12, 6]
  <case>_y_torch.npy            float32 [4, 4]: PyTorch's output of each model on x.npy
  meta.json                     keys and shapes, forward of each model

Each model is trained for 150 steps (Adam) on a small synthetic task (the class is the
quadrant of the mean of the first two features), so the weights are trained weights rather
than the default init. Run: python tools/scripts/make_external_data.py (about 1 minute).
"""
from __future__ import annotations

import shutil

import numpy as np

from common import DATA, ort_run, save_json, save_npy, seed_everything

F, H, C, N, T = 6, 16, 4, 4, 12


def synthetic(n: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, F, generator=g)
    m = x[:, :, :2].mean(dim=1)
    y = (m[:, 0] > 0).long() * 2 + (m[:, 1] > 0).long()
    return x, y


def train(model, seed: int, steps: int = 150):
    import torch

    x, y = synthetic(256, seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    return model


def models():
    import torch
    from torch import nn

    class RecLast(nn.Module):
        """rnn -> fc(out[:, -1]) (or a pooling over time, or an MLP head)."""

        def __init__(self, rnn, fc, pool="last", mlp=None):
            super().__init__()
            self.rnn = rnn
            if mlp is None:
                self.fc = fc
            else:
                self.fc1, self.fc2 = mlp
            self.pool = pool
            self.mlp = mlp is not None

        def forward(self, x):
            out, _ = self.rnn(x)
            z = out.mean(dim=1) if self.pool == "mean" else out[:, -1]
            if self.mlp:
                return self.fc2(torch.relu(self.fc1(z)))
            return self.fc(z)

    return RecLast, nn


def make_extdata():
    import onnx
    import torch

    RecLast, nn = models()
    out_dir = DATA / "extdata"
    shutil.rmtree(out_dir, ignore_errors=True)
    cases = {
        "gru_linear": lambda: RecLast(nn.GRU(F, H, batch_first=True), nn.Linear(H, C)),
        "lstm2_linear": lambda: RecLast(
            nn.LSTM(F, H, num_layers=2, dropout=0.3, batch_first=True), nn.Linear(H, C)
        ),
        "rnn_linear": lambda: RecLast(nn.RNN(F, H, batch_first=True), nn.Linear(H, C)),
    }
    index = []
    for k, (name, make) in enumerate(cases.items()):
        seed_everything(100 + k)
        model = train(make(), seed=100 + k)
        x, _ = synthetic(N, seed=900 + k)
        d = out_dir / name
        d.mkdir(parents=True)
        with torch.no_grad():
            y = model(x).numpy()
            # The plain call a user writes: torch's default (dynamo) exporter, defaults only.
            torch.onnx.export(model, (x,), str(d / "model.onnx"))
        files = sorted(p.name for p in d.iterdir())
        assert files == ["model.onnx", "model.onnx.data"], files
        proto = onnx.load(str(d / "model.onnx"), load_external_data=False)
        external = {
            t.name: {e.key: e.value for e in t.external_data}
            for t in proto.graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL
        }
        inline = [t.name for t in proto.graph.initializer if t.name not in external]
        assert external, f"{name}: the exporter wrote no external data"
        y_ort = ort_run(d / "model.onnx", x.numpy())
        diff = float(np.abs(y_ort - y).max())
        assert diff < 1e-5, (name, diff)
        save_npy(d / "x.npy", x.numpy(), np.float32)
        save_npy(d / "y_torch.npy", y, np.float32)
        save_npy(d / "y_ort.npy", y_ort, np.float32)
        save_json(d / "meta.json", {
            "model": repr(model),
            "exporter": f"torch.onnx.export(model, (x,), 'model.onnx') with torch {torch.__version__} (default exporter)",
            "ops": [n.op_type for n in proto.graph.node],
            "input_shape": list(x.shape),
            "external_tensors": external,
            "inline_tensors": inline,
            "ort_vs_torch_max_abs_diff": diff,
        })
        index.append(name)
        print(f"{name}: {len(external)} external tensors, {len(inline)} inline, ort vs torch {diff:.2e}")
    save_json(out_dir / "index.json", {"cases": index})


def make_state_dicts():
    import torch
    from safetensors.torch import save_file

    RecLast, nn = models()
    out_dir = DATA / "state_dicts"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cases = {
        "lstm_linear": (lambda: RecLast(nn.LSTM(F, H, batch_first=True), nn.Linear(H, C)),
                        "logits = fc(out[:, -1])"),
        "lstm_mean": (lambda: RecLast(nn.LSTM(F, H, batch_first=True), nn.Linear(H, C), pool="mean"),
                      "logits = fc(out.mean(dim=1))"),
        "lstm_mlp": (lambda: RecLast(nn.LSTM(F, H, batch_first=True), None,
                                     mlp=(nn.Linear(H, 8), nn.Linear(8, C))),
                     "logits = fc2(relu(fc1(out[:, -1])))"),
        "gru_bidir": (lambda: RecLast(nn.GRU(F, H, batch_first=True, bidirectional=True),
                                      nn.Linear(2 * H, C)),
                      "logits = fc(out[:, -1]) with out = cat(forward, backward)"),
        "lstm_proj": (lambda: RecLast(nn.LSTM(F, H, batch_first=True, proj_size=8), nn.Linear(8, C)),
                      "logits = fc(out[:, -1]) with out of width proj_size 8"),
    }
    seed_everything(7)
    x, _ = synthetic(N, seed=77)
    save_npy(out_dir / "x.npy", x.numpy(), np.float32)
    meta = {}
    for k, (name, (make, forward)) in enumerate(cases.items()):
        seed_everything(200 + k)
        model = train(make(), seed=200 + k)
        with torch.no_grad():
            y = model(x).numpy()
        sd = {key: v.contiguous() for key, v in model.state_dict().items()}
        save_file(sd, str(out_dir / f"{name}.safetensors"))
        save_npy(out_dir / f"{name}_y_torch.npy", y, np.float32)
        meta[name] = {
            "model": repr(model),
            "forward": forward,
            "keys": {key: list(v.shape) for key, v in sd.items()},
        }
        print(f"{name}: {len(sd)} keys")
    save_json(out_dir / "meta.json", meta)


if __name__ == "__main__":
    make_extdata()
    make_state_dicts()

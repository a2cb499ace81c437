"""PyTorch golden data for the LSTM with projection (nn.LSTM(proj_size=P)).

Writes tests/data/proj_lstm/ (about 40 KB of .npy files, float32):

  weight_ih_l{k}.npy  [4H, I]     PyTorch's own tensors, gate order i, f, g, o
  weight_hh_l{k}.npy  [4H, P]
  bias_ih_l{k}.npy    [4H]
  bias_hh_l{k}.npy    [4H]
  weight_hr_l{k}.npy  [P, H]      h = W_hr·(o ⊙ tanh c)
  fc_weight.npy       [C, P]      Linear head on every frame's top-layer h
  fc_bias.npy         [C]
  x.npy               [N, T, I]   inputs
  y_torch.npy         [N, T, C]   fc(lstm(x)) at every frame
  h_n_torch.npy       [L, N, P]   final h per layer
  c_n_torch.npy       [L, N, H]   final c per layer

The model is nn.LSTM(6, 12, num_layers=2, proj_size=5, batch_first=True) with PyTorch's
default init, except weight_hr scaled by 4 so that the projected h leaves [-1, 1] (a
trained projection is not bounded by 1; the quantizer must calibrate its format). The
Rust test (tools/tests/lstm_proj.rs) builds the FloatModel from these tensors directly.

Run: python tools/scripts/make_proj_lstm.py   (any CPU torch; ~2 s; two runs give byte-identical
files). The committed files were made with torch 2.15.0, numpy 2.x.
"""

import pathlib
import shutil

import numpy as np
import torch
from torch import nn

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "proj_lstm"
I, H, P, L, C = 6, 12, 5, 2, 4
N, T = 16, 25


def main():
    torch.manual_seed(20261205)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    lstm = nn.LSTM(I, H, num_layers=L, proj_size=P, batch_first=True)
    fc = nn.Linear(P, C)
    with torch.no_grad():
        for k in range(L):
            getattr(lstm, f"weight_hr_l{k}").mul_(4.0)
    x = torch.randn(N, T, I) * 1.5
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x)
        y = fc(out)
    print("max |h| per layer:", [float(h_n[k].abs().max()) for k in range(L)],
          "max |out|:", float(out.abs().max()), "max |c|:", float(c_n.abs().max()))
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    def save(name, t):
        np.save(OUT / f"{name}.npy", t.detach().numpy().astype(np.float32))

    for name, p in lstm.named_parameters():
        save(name, p)
    save("fc_weight", fc.weight)
    save("fc_bias", fc.bias)
    save("x", x)
    save("y_torch", y)
    save("h_n_torch", h_n)
    save("c_n_torch", c_n)
    print("wrote", sorted(f.name for f in OUT.iterdir()))


if __name__ == "__main__":
    main()

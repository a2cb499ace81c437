#!/usr/bin/env python3
"""Train a one-to-many next-step predictor and write tests/data/predictor/ (never run in CI).

Series: the monthly airline passengers series 1949-1960 (144 values) bundled in aeon's
package data (aeon/datasets/data/Airline/Airline.csv, read locally). It is standardized with
the mean/std of the training part (the first 120 months). A GRU(1 -> 16) + Linear(16 -> 1)
is trained to predict x_{t+1} from x_1..x_t on the training part.

Generation convention (what generated_ref.npy holds, PyTorch's usual autoregressive loop):
  run the prime x_1..x_T (T = 120); y_T = output after x_T (prediction of x_{T+1});
  then feed each output back as the next input: y_{T+k} = f(y_{T+k-1}), state carried over.
  generated_ref = [y_T, y_{T+1}, ..., y_{T+23}]  (24 values, normalized units).

Usage: python tools/scripts/train_predictor.py   (rewrites tests/data/predictor/, <1 min on CPU)
"""
from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, export_classic, ort_run, save_json, save_npy, seed_everything  # noqa: E402

import aeon  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

OUT = DATA / "predictor"
SRC = Path(os.path.dirname(aeon.__file__)) / "datasets" / "data" / "Airline" / "Airline.csv"
T_PRIME, N_STEPS, HIDDEN = 120, 24, 16
CFG = {"iterations": 1500, "lr": 1e-2, "optimizer": "Adam", "schedule": "cosine", "grad_clip": 1.0,
       "seed": 0}


class Predictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(1, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x, h0=None):
        """x [N, T, 1] -> y [N, T, 1] (y_t = prediction of x_{t+1})."""
        y, _ = self.rnn(x, h0)
        return self.head(y)

    def step(self, x, h):
        y, h = self.rnn(x, h)
        return self.head(y), h


def load_series() -> np.ndarray:
    with open(SRC) as f:
        rows = list(csv.DictReader(f))
    return np.array([float(r["Passengers"]) for r in rows], dtype=np.float64)


def generate(model: Predictor, prime: torch.Tensor, n: int) -> np.ndarray:
    with torch.no_grad():
        y, h = model.step(prime, None)
        y = y[:, -1:, :]  # y_T, after the last prime step
        out = [y]
        for _ in range(n - 1):
            y, h = model.step(y, h)  # feed the output back as the next input
            out.append(y)
    return torch.cat(out, 1).reshape(-1).numpy()


def main() -> None:
    seed_everything(CFG["seed"])
    raw = load_series()
    mean, std = raw[:T_PRIME].mean(), raw[:T_PRIME].std()
    series = ((raw - mean) / std).astype(np.float32)

    model = Predictor()
    x = torch.from_numpy(series[: T_PRIME - 1]).view(1, -1, 1)
    target = torch.from_numpy(series[1:T_PRIME]).view(1, -1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=CFG["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, CFG["iterations"])
    for _ in range(CFG["iterations"]):
        loss = nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CFG["grad_clip"])
        opt.step()
        sched.step()
    model.eval()

    prime = torch.from_numpy(series[:T_PRIME]).view(1, -1, 1)
    gen = generate(model, prime, N_STEPS)
    with torch.no_grad():
        prime_y = model(prime).numpy()
        # Consistency: one pass over [prime, y_T, ..., y_{T+22}] reproduces the loop.
        full_in = torch.cat([prime, torch.from_numpy(gen[:-1]).view(1, -1, 1)], 1)
        full_y = model(full_in).numpy().reshape(-1)[T_PRIME - 1:]
    loop_diff = float(np.abs(full_y - gen).max())

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    export_classic(model, prime, OUT / "predictor.onnx")
    onnx_y = ort_run(OUT / "predictor.onnx", full_in.numpy()).reshape(-1)
    onnx_diff_prime = float(np.abs(onnx_y[:T_PRIME] - prime_y.reshape(-1)).max())
    onnx_diff_gen = float(np.abs(onnx_y[T_PRIME - 1:] - gen).max())
    assert loop_diff < 1e-5 and onnx_diff_prime < 1e-5 and onnx_diff_gen < 1e-5, \
        (loop_diff, onnx_diff_prime, onnx_diff_gen)
    save_file(model.state_dict(), str(OUT / "predictor.safetensors"))
    save_npy(OUT / "prime.npy", prime.numpy(), np.float32)
    save_npy(OUT / "prime_y_all.npy", prime_y, np.float32)
    save_npy(OUT / "generated_ref.npy", gen, np.float32)
    save_npy(OUT / "series_norm.npy", series, np.float32)
    truth = series[T_PRIME: T_PRIME + N_STEPS]
    rmse = float(np.sqrt(np.mean((gen - truth) ** 2)))
    naive = np.resize(series[T_PRIME - 12: T_PRIME], N_STEPS)  # seasonal naive: repeat the last primed year
    rmse_naive = float(np.sqrt(np.mean((naive - truth) ** 2)))
    one_step_rmse = float(np.sqrt(np.mean((prime_y.reshape(-1)[:-1] - series[1:T_PRIME]) ** 2)))
    info = {
        "series": "Airline passengers 1949-01..1960-12 (144 months), aeon bundled data",
        "norm": {"mean": float(mean), "std": float(std), "over": "first 120 months"},
        "model": "GRU(1->16, batch_first) + Linear(16->1), no output activation",
        "training": CFG, "final_train_mse": float(loss.item()),
        "prime_length": T_PRIME, "n_steps": N_STEPS,
        "convention": "generated_ref = [y_T, y_{T+1}, ..., y_{T+n_steps-1}]; y_T is the output after "
                      "the last prime step x_T; each output is fed back as the next input",
        "one_step_rmse_on_prime_normalized": one_step_rmse,
        "generated_rmse_vs_true_months_121_144_normalized": rmse,
        "seasonal_naive_rmse_normalized": rmse_naive,
        "loop_vs_single_pass_max_abs_diff": loop_diff,
        "onnx_vs_pytorch_max_abs_diff_prime": onnx_diff_prime,
        "onnx_vs_pytorch_max_abs_diff_generated": onnx_diff_gen,
    }
    save_json(OUT / "info.json", info)
    save_json(OUT / "norm.json", {"mean": [float(mean)], "std": [float(std)]})
    print(f"train mse {loss.item():.4f}; one-step rmse {one_step_rmse:.3f}; generated rmse {rmse:.3f} "
          f"(seasonal naive {rmse_naive:.3f}); loop-vs-pass {loop_diff:.1e}; ONNX vs torch "
          f"prime {onnx_diff_prime:.1e} generated {onnx_diff_gen:.1e}")
    print("generated:", np.round(gen, 3).tolist())
    print("truth:    ", np.round(truth, 3).tolist())


if __name__ == "__main__":
    main()

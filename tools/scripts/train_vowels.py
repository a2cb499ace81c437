#!/usr/bin/env python3
"""Train the JapaneseVowels classifiers and write tests/data/vowels/ (never run in CI).

Data: the UCI JapaneseVowels set as bundled in aeon's package data
(aeon/datasets/data/JapaneseVowels/JapaneseVowels_{TRAIN,TEST}.ts; read from the local files,
nothing is downloaded). 12 LPC features, 9 speakers, lengths 7..29, 270 train / 370 test.

Models (hidden 32, Linear head to 9 classes): lstm (nn.LSTM), gru (nn.GRU), rnn (nn.RNN tanh).
Training uses the logits at each sequence's own last step (gather at length-1).

Usage: python tools/scripts/train_vowels.py   (rewrites tests/data/vowels/, ~2-3 min on CPU)
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, export_classic, ort_session, save_json, save_npy, seed_everything  # noqa: E402

import aeon  # noqa: E402
import torch  # noqa: E402
from aeon.datasets import load_from_ts_file  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

OUT = DATA / "vowels"
SRC = Path(os.path.dirname(aeon.__file__)) / "datasets" / "data" / "JapaneseVowels"
FEATURES, CLASSES, HIDDEN = 12, 9, 32
CFG = {"epochs": 100, "batch_size": 16, "lr": 3e-3, "weight_decay": 1e-2, "optimizer": "AdamW",
       "schedule": "cosine", "grad_clip": 1.0, "input_noise_std": 0.2, "seed": 0}
N_CALIB, N_RECORDING = 64, 8


def load(split: str):
    X, y = load_from_ts_file(str(SRC / f"JapaneseVowels_{split}.ts"))
    lengths = np.array([a.shape[1] for a in X], dtype=np.int64)
    out = np.zeros((len(X), lengths.max(), FEATURES), np.float32)
    for i, a in enumerate(X):
        out[i, : a.shape[1]] = a.T  # aeon gives [F, T]
    return out, lengths, y.astype(np.int64) - 1  # labels "1".."9" -> 0..8


def valid_mask(X, lengths):
    return (np.arange(X.shape[1])[None, :] < lengths[:, None])[..., None]


def normalize(X, lengths, mean, std):
    return np.where(valid_mask(X, lengths), (X - mean) / std, 0.0).astype(np.float32)


class Classifier(nn.Module):
    def __init__(self, cell: str):
        super().__init__()
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](FEATURES, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        """Exported graph: logits after the LAST step of the given input [N, T, 12] -> [N, 9]."""
        y, _ = self.rnn(x)
        return self.head(y[:, -1, :])

    def logits_at(self, x, lengths):
        """Logits at each sequence's own last step (padding is at the end, the RNN is causal)."""
        y, _ = self.rnn(x)
        return self.head(y[torch.arange(len(lengths)), torch.as_tensor(lengths) - 1])


def train(cell: str, xtr, ltr, ytr):
    seed_everything(CFG["seed"])
    model = Classifier(cell)
    opt = torch.optim.AdamW(model.parameters(), lr=CFG["lr"], weight_decay=CFG["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, CFG["epochs"])
    gen = torch.Generator().manual_seed(CFG["seed"])
    x, l, y = torch.from_numpy(xtr), torch.from_numpy(ltr), torch.from_numpy(ytr)
    bs = CFG["batch_size"]
    for _ in range(CFG["epochs"]):
        model.train()
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(perm), bs):
            b = perm[i: i + bs]
            xb = x[b]
            xb = xb + CFG["input_noise_std"] * torch.randn(xb.shape, generator=gen) * (xb != 0)
            loss = nn.functional.cross_entropy(model.logits_at(xb, l[b]), y[b])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CFG["grad_clip"])
            opt.step()
        sched.step()
    return model.eval()


def main() -> None:
    seed_everything(CFG["seed"])
    xtr_raw, ltr, ytr = load("TRAIN")
    xte_raw, lte, yte = load("TEST")
    m = valid_mask(xtr_raw, ltr)[..., 0]
    mean = xtr_raw[m].astype(np.float64).mean(0)
    std = xtr_raw[m].astype(np.float64).std(0)
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    xtr = normalize(xtr_raw, ltr, mean32, std32)
    xte = normalize(xte_raw, lte, mean32, std32)

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    save_json(OUT / "norm.json", {"mean": [float(v) for v in mean32], "std": [float(v) for v in std32]})
    rng = np.random.default_rng(1234)
    calib_idx = np.sort(rng.choice(len(ltr), N_CALIB, replace=False))
    tcal = int(ltr[calib_idx].max())
    save_npy(OUT / "calib_raw.npy", xtr_raw[calib_idx, :tcal], np.float32)
    save_npy(OUT / "calib_lengths.npy", ltr[calib_idx], np.int64)
    save_npy(OUT / "test_raw.npy", xte_raw, np.float32)
    save_npy(OUT / "test_norm.npy", xte, np.float32)
    save_npy(OUT / "test_lengths.npy", lte, np.int64)
    save_npy(OUT / "test_labels.npy", yte, np.int64)
    # recording: the first test sequence of each of the speakers 0..7
    rec_idx = np.array([int(np.flatnonzero(yte == c)[0]) for c in range(N_RECORDING)])
    trec = int(lte[rec_idx].max())
    save_npy(OUT / "recording.npy", xte_raw[rec_idx, :trec], np.float32)
    save_npy(OUT / "recording_lengths.npy", lte[rec_idx], np.int64)
    save_npy(OUT / "recording_labels.npy", yte[rec_idx], np.int64)

    metrics, info_models = {}, {}
    for cell in ["lstm", "gru", "rnn"]:
        t0 = time.time()
        model = train(cell, xtr, ltr, ytr)
        with torch.no_grad():
            ref = model.logits_at(torch.from_numpy(xte), lte).numpy()
            train_acc = float((model.logits_at(torch.from_numpy(xtr), ltr).argmax(1).numpy() == ytr).mean())
        acc = float((ref.argmax(1) == yte).mean())
        save_npy(OUT / f"{cell}_ref_logits.npy", ref, np.float32)
        save_file(model.state_dict(), str(OUT / f"{cell}.safetensors"))
        onnx_path = OUT / f"{cell}.onnx"
        export_classic(model, torch.from_numpy(xte[:2]), onnx_path, output_name="logits",
                       output_axes={0: "batch"})
        # ONNX check: each test sequence truncated to its own length (batch 1, T = length)
        sess = ort_session(onnx_path)
        ort_logits = np.concatenate([sess.run(None, {"x": xte[i: i + 1, : lte[i]]})[0] for i in range(len(lte))])
        diff = float(np.abs(ort_logits - ref).max())
        ort_acc = float((ort_logits.argmax(1) == yte).mean())
        # ... and the padded batch against PyTorch's forward (logits after the padded end)
        with torch.no_grad():
            pad_diff = float(np.abs(sess.run(None, {"x": xte})[0] - model(torch.from_numpy(xte)).numpy()).max())
        assert diff < 1e-4 and pad_diff < 1e-4, (cell, diff, pad_diff)
        metrics[cell] = acc
        info_models[cell] = {"test_accuracy": acc, "train_accuracy": train_acc,
                             "onnx_test_accuracy_truncated": ort_acc,
                             "onnx_truncated_vs_ref_logits_max_abs_diff": diff,
                             "onnx_padded_vs_pytorch_forward_max_abs_diff": pad_diff}
        print(f"{cell}: test acc {acc:.4f} (train {train_acc:.3f}); ONNX per-sequence vs ref "
              f"max|diff|={diff:.2e}, ONNX acc {ort_acc:.4f}; padded-batch vs torch {pad_diff:.2e}; "
              f"{time.time() - t0:.0f}s", flush=True)

    save_json(OUT / "train_metrics.json", metrics)
    save_json(OUT / "info.json", {
        "dataset": "JapaneseVowels (UCI), from aeon's bundled package data",
        "features": FEATURES, "classes": CLASSES, "hidden": HIDDEN,
        "train_size": int(len(ltr)), "test_size": int(len(lte)),
        "train_length_range": [int(ltr.min()), int(ltr.max())],
        "test_length_range": [int(lte.min()), int(lte.max())],
        "training": CFG,
        "calib_train_indices": calib_idx.tolist(),
        "recording_test_indices": rec_idx.tolist(),
        "onnx": "input x [N,T,12] normalized; output logits [N,9] after the last step of the given T",
        "models": info_models,
    })


if __name__ == "__main__":
    main()

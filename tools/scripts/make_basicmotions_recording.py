"""The BasicMotions recording the QEMU boards stream through the graph models.

Writes tests/data/basicmotions/ (raw sensor values, not standardized: the quantized blobs fold
tests/data/graph/norm.json in with `tinyrnn quantize --normalize`):

  recording.npy            float32 [8, 100, 6]: test sequences 0, 5, 10, ..., 35 (two per class)
  recording_lengths.npy    int64 [8]: 100 (the graph models see the whole sequence)
  recording_lengths_50.npy int64 [8]: 50 (the bidirectional models see the first 50 steps)
  recording_labels.npy     int64 [8]: true classes (sorted names: badminton, running,
                           standing, walking)
  calib_raw.npy            float32 [16, 100, 6]: training sequences, four per class
  calib_lengths.npy        int64 [16]: 100
  calib_lengths_50.npy     int64 [16]: 50

Dataset: BasicMotions (UEA, bundled in aeon, no download), the same split and class order as
make_graph_models.py and make_bidir_models.py.

Run: /tmp/torchvenv/bin/python tools/scripts/make_basicmotions_recording.py (seconds).
"""
from __future__ import annotations

import numpy as np

from common import DATA, save_npy

OUT = DATA / "basicmotions"


def main():
    from aeon.datasets import load_basic_motions

    xtr, ytr = load_basic_motions(split="train")
    xte, yte = load_basic_motions(split="test")
    classes = sorted(set(ytr))
    enc = {c: i for i, c in enumerate(classes)}
    xtr = np.transpose(xtr, (0, 2, 1))
    xte = np.transpose(xte, (0, 2, 1))
    ytr = np.array([enc[c] for c in ytr], dtype=np.int64)
    yte = np.array([enc[c] for c in yte], dtype=np.int64)

    rec = list(range(0, 40, 5))
    save_npy(OUT / "recording.npy", xte[rec], np.float32)
    save_npy(OUT / "recording_labels.npy", yte[rec], np.int64)
    save_npy(OUT / "recording_lengths.npy", np.full(len(rec), 100), np.int64)
    save_npy(OUT / "recording_lengths_50.npy", np.full(len(rec), 50), np.int64)

    calib = [i for c in range(len(classes)) for i in np.flatnonzero(ytr == c)[:4]]
    save_npy(OUT / "calib_raw.npy", xtr[calib], np.float32)
    save_npy(OUT / "calib_lengths.npy", np.full(len(calib), 100), np.int64)
    save_npy(OUT / "calib_lengths_50.npy", np.full(len(calib), 50), np.int64)
    print("labels", yte[rec].tolist(), "calib", calib)


if __name__ == "__main__":
    main()

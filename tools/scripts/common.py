"""Helpers shared by the fixture generators in tools/scripts/ (never run in CI)."""
from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
OPSET = 17


def seed_everything(seed: int) -> None:
    """Seed every RNG and force deterministic single-threaded CPU torch."""
    import torch

    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # The classic (TorchScript) exporter prints deprecation warnings; keep logs readable.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def save_npy(path: Path, arr: np.ndarray, dtype) -> None:
    arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr, allow_pickle=False)


def save_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort_session(path)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def export_classic(model, example_x, path: Path, batch_first: bool = True,
                   output_name: str = "y", output_axes: dict | None = None) -> None:
    """torch.onnx.export with the classic TorchScript exporter (dynamo=False), opset 17,
    input "x" with dynamic batch/time axes. The graph is written as exported (no simplification)."""
    import torch

    in_axes = {0: "batch", 1: "time"} if batch_first else {0: "time", 1: "batch"}
    if output_axes is None:
        output_axes = dict(in_axes)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model, (example_x,), str(path), dynamo=False, opset_version=OPSET,
            input_names=["x"], output_names=[output_name],
            dynamic_axes={"x": in_axes, output_name: output_axes},
            do_constant_folding=True,
        )


def op_types(path: Path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path)).graph.node]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

#!/usr/bin/env python3
"""Edited copies of tests/data/keras_table/gap_unroll_f32.tflite (the unrolled
GRU(16, return_sequences) -> GlobalAveragePooling1D -> Dense(9, softmax) of make_keras_table.py,
T = 14, normalized features): the reduction over time of an unrolled layer's whole sequence
in the other forms the importer reads or refuses. Writes tests/data/tflite_unroll/ (never run
in CI):

    /tmp/tfvenv/bin/python tools/scripts/make_tflite_unroll_pool.py

  gap_max_f32.tflite   the MEAN replaced by REDUCE_MAX (GlobalMaxPooling1D): imports, Pool::Max
  gap_t0_f32.tflite    the RESHAPE [14, 1, 16] -> [1, 14, 16] after the PACK removed, the MEAN
                       reducing axis 0 of the PACK's [14, 1, 16]: imports, Pool::Mean
  gap_axis_tampered.tflite     the MEAN reduces axis 2 (the features): refused
  gap_t0_axis1_tampered.tflite as gap_t0 but reducing axis 1 (the 1 of [14, 1, 16]): refused
  pool_x.npy           8 random sequences [8, 14, 12] f32 (uniform in [-2, 2], seed 0)
  gap_{max,t0}_f32_pred.npy    the TFLite interpreter's outputs on them, [8, 9] f32
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import flatbuffers  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.lite.python import schema_py_generated as s  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA  # noqa: E402

SRC = DATA / "keras_table" / "gap_unroll_f32.tflite"
OUT = DATA / "tflite_unroll"
NAMES = {v: k for k, v in s.BuiltinOperator.__dict__.items() if not k.startswith("_")}


def load():
    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(SRC.read_bytes(), 0))
    codes = [NAMES.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?") for c in m.operatorCodes]
    g = m.subgraphs[0]
    mean = next(k for k, op in enumerate(g.operators) if codes[op.opcodeIndex] == "MEAN")
    return m, g, mean


def set_axis(m, g, op, axis: int) -> None:
    """A new scalar int32 constant `axis` as the op's input 1."""
    buf = s.BufferT()
    buf.data = np.frombuffer(np.array(axis, np.int32).tobytes(), np.uint8)
    m.buffers.append(buf)
    t = s.TensorT()
    t.shape = np.array([], np.int32)
    t.type = s.TensorType.INT32
    t.buffer = len(m.buffers) - 1
    t.name = f"pool_axis_{axis}"
    g.tensors.append(t)
    op.inputs = np.array([op.inputs[0], len(g.tensors) - 1], np.int32)


def drop_reshape(g, mean: int) -> None:
    """Removes the RESHAPE feeding the MEAN: the MEAN reads the PACK's [14, 1, 16]."""
    k = mean - 1
    src_t, dst_t = g.operators[k].inputs[0], g.operators[k].outputs[0]
    g.operators[mean].inputs = np.array([src_t] + list(g.operators[mean].inputs[1:]), np.int32)
    assert all(dst_t not in op.inputs for op in g.operators)
    del g.operators[k]


def save(m, name: str) -> bytes:
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    out = bytes(b.Output())
    (OUT / name).write_bytes(out)
    return out


def predict(b: bytes, x: np.ndarray) -> np.ndarray:
    it = tf.lite.Interpreter(model_content=b)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    y = []
    for seq in x:
        it.set_tensor(i, seq[None])
        it.invoke()
        y.append(it.get_tensor(o)[0].copy())
    return np.array(y, np.float32)


def main() -> None:
    x = np.random.default_rng(0).uniform(-2, 2, (8, 14, 12)).astype(np.float32)
    np.save(OUT / "pool_x.npy", x)

    m, g, mean = load()
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.REDUCE_MAX
    code.version = 1
    m.operatorCodes.append(code)
    g.operators[mean].opcodeIndex = len(m.operatorCodes) - 1
    b = save(m, "gap_max_f32.tflite")
    np.save(OUT / "gap_max_f32_pred.npy", predict(b, x))

    m, g, mean = load()
    drop_reshape(g, mean)
    set_axis(m, g, g.operators[mean - 1], 0)
    b = save(m, "gap_t0_f32.tflite")
    np.save(OUT / "gap_t0_f32_pred.npy", predict(b, x))
    # The unedited file on the same inputs: the edits change what they say only.
    ref = predict(SRC.read_bytes(), x)
    assert np.abs(predict(b, x) - ref).max() < 1e-6

    m, g, mean = load()
    set_axis(m, g, g.operators[mean], 2)
    save(m, "gap_axis_tampered.tflite")

    m, g, mean = load()
    drop_reshape(g, mean)
    set_axis(m, g, g.operators[mean - 1], 1)
    save(m, "gap_t0_axis1_tampered.tflite")
    print("written to", OUT)


if __name__ == "__main__":
    main()

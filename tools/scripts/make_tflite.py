#!/usr/bin/env python3
"""Train tiny tf.keras models on JapaneseVowels, convert them to .tflite and write
tests/data/tflite/ (never run in CI).

Needs the TensorFlow environment of make_keras.py plus `tf_keras` (the Keras 2 API: its LSTM
and SimpleRNN layers convert to the fused UNIDIRECTIONAL_SEQUENCE_LSTM / _RNN ops, where
Keras 3 layers give a WHILE loop):
    /tmp/kvenv/bin/pip install tf_keras
    /tmp/kvenv/bin/python tools/scripts/make_tflite.py          (~2-3 min on 2 cores)

Data: JapaneseVowels from aeon's bundled .ts files (nothing is downloaded), standardized with
tests/data/vowels/norm.json; the models take the normalized features of
tests/data/vowels/test_norm.npy (padded to 29 frames, with test_lengths.npy). Training and the
interpreter runs go in buckets of equal length (input signature [1, None, 12], resized per
bucket), so no padding is involved: the interpreter's output is the one after each
sequence's own last frame, what `tinyrnn eval` compares with.

Models (tf_keras, 16 units, 30 epochs in length buckets, Adam 3e-3; the trained weights are
copied into a batch-1 twin for conversion):
  lstm:   LSTM(16) -> Dense(9, softmax)
  gapmlp: LSTM(16, return_sequences) -> GlobalAveragePooling1D -> Dense(16, relu)
          -> Dense(9, softmax)
each converted twice: NAME_f32.tflite (float) and NAME_int8.tflite (full-integer int8 with a
representative dataset of 100 training sequences; float input/output, so the graph starts
with QUANTIZE and ends with DEQUANTIZE). NAME_{f32,int8}_pred.npy: the TFLite interpreter's
output on the 370 test sequences, [370, 9] float32. info.json: versions, the operators of each
file, and the accuracy of Keras and of each interpreter run.
bidi.tflite (untrained, batch 1): Bidirectional(LSTM(4)) -> Dense(9, softmax), which the converter
writes as REVERSE_V2 + two UNIDIRECTIONAL_SEQUENCE_LSTM + CONCATENATION of their last steps
(not BIDIRECTIONAL_SEQUENCE_LSTM); bidi_pred.npy: the interpreter's output on the test set
(written by `--preds`, which needs TensorFlow only).
Refused files (untrained, batch 1): rnn.tflite (tf_keras SimpleRNN(16): the converter emits a
WHILE loop for it, not UNIDIRECTIONAL_SEQUENCE_RNN), elu.tflite (LSTM(4) -> Dense(9, elu): the
unsupported op ELU), and bidi.tflite above. `--refusals` writes only these (the rest of the
folder is kept).
`--preds` only re-runs the interpreter on the existing .tflite files and rewrites the
_pred.npy files and the interpreter accuracies (the committed ones come from it: the
interpreter keeps the LSTM state tensors across invokes of one input shape unless
`reset_all_variables()` is called, which the first run missed; info.json therefore lacks the
Keras accuracies and the models' operator lists, printed by a full run).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA  # noqa: E402

import aeon  # noqa: E402
import tensorflow as tf  # noqa: E402
try:
    import tf_keras as tk  # noqa: E402
except ImportError:  # `--preds` only runs the interpreter: TensorFlow alone is enough
    tk = None
from aeon.datasets import load_from_ts_file  # noqa: E402

OUT = DATA / "tflite"
SRC = Path(os.path.dirname(aeon.__file__)) / "datasets" / "data" / "JapaneseVowels"
F, C, UNITS, EPOCHS, SEED = 12, 9, 16, 30, 0


def load(split: str):
    X, y = load_from_ts_file(str(SRC / f"JapaneseVowels_{split}.ts"))
    return [a.T.astype(np.float32) for a in X], y.astype(np.int64) - 1


def buckets(xs):
    out = {}
    for i, a in enumerate(xs):
        out.setdefault(a.shape[0], []).append(i)
    return sorted(out.items())


def build(name: str, batch=None):
    L = tk.layers
    inp = [L.InputLayer(input_shape=(None, F), batch_size=batch)]
    if name == "lstm":
        return tk.Sequential(inp + [L.LSTM(UNITS), L.Dense(C, activation="softmax")])
    if name == "rnn":
        return tk.Sequential(inp + [L.SimpleRNN(UNITS), L.Dense(C, activation="softmax")])
    if name == "gapmlp":
        return tk.Sequential(inp + [L.LSTM(UNITS, return_sequences=True), L.GlobalAveragePooling1D(),
                                    L.Dense(16, activation="relu"), L.Dense(C, activation="softmax")])
    if name == "bidi":
        return tk.Sequential(inp + [L.Bidirectional(L.LSTM(4)), L.Dense(C, activation="softmax")])
    if name == "elu":
        return tk.Sequential(inp + [L.LSTM(4), L.Dense(C, activation="elu")])
    raise ValueError(name)


def train(model, xs, y):
    model.compile(optimizer=tk.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    b = buckets(xs)
    rng = np.random.default_rng(SEED)
    for _ in range(EPOCHS):
        for k in rng.permutation(len(b)):
            idx = b[k][1]
            model.train_on_batch(np.stack([xs[i] for i in idx]), y[idx])


def convert(model, rep=None) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if rep is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([a[None]] for a in rep)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    b = conv.convert()
    assert b[4:8] == b"TFL3"
    return b


def interp_predict(b: bytes, xs):
    it = tf.lite.Interpreter(model_content=b)
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    y = np.zeros((len(xs), C), np.float32)
    for n, a in enumerate(xs):
        it.resize_tensor_input(i, [1, a.shape[0], F])
        it.allocate_tensors()
        it.reset_all_variables()  # the LSTM state tensors persist across invokes otherwise
        it.set_tensor(i, a[None])
        it.invoke()
        y[n] = it.get_tensor(o)[0]
    return y


def ops(b: bytes):
    from tensorflow.lite.python import schema_py_generated as s  # noqa: PLC0415

    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(b, 0))
    names = {v: k for k, v in s.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    codes = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?") for c in m.operatorCodes]
    return [codes[op.opcodeIndex] for op in m.subgraphs[0].operators]


def main() -> None:
    if tk is not None:
        tk.utils.set_random_seed(SEED)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    norm = json.loads((DATA / "vowels" / "norm.json").read_text())
    mean, std = np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32)
    xtr, ytr = load("TRAIN")
    xtr = [(a - mean) / std for a in xtr]
    tn = np.load(DATA / "vowels" / "test_norm.npy")
    tl = np.load(DATA / "vowels" / "test_lengths.npy")
    yte = np.load(DATA / "vowels" / "test_labels.npy")
    xte = [tn[i, : tl[i]] for i in range(len(tl))]  # exactly what the Rust test feeds
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    if not only and "--refusals" not in sys.argv and "--preds" not in sys.argv:
        shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    info = {"tensorflow": tf.__version__, "tf_keras": tk.__version__ if tk else None, "units": UNITS, "epochs": EPOCHS,
            "ops": {}, "accuracy": {}}
    rep = [xtr[i] for i in np.random.default_rng(SEED).permutation(len(xtr))[:100]]
    if "--preds" in sys.argv:  # re-run the interpreter on the files already written
        for name in ["lstm", "gapmlp"]:
            for kind in ["f32", "int8"]:
                pred = interp_predict((OUT / f"{name}_{kind}.tflite").read_bytes(), xte)
                np.save(OUT / f"{name}_{kind}_pred.npy", pred)
                info["accuracy"][f"{name}_{kind}"] = float((pred.argmax(1) == yte).mean())
                print(name, kind, info["accuracy"][f"{name}_{kind}"])
        # the (untrained) Bidirectional(LSTM(4)) file: its outputs, for the float comparison
        np.save(OUT / "bidi_pred.npy", interp_predict((OUT / "bidi.tflite").read_bytes(), xte))
    for name in [] if "--refusals" in sys.argv or "--preds" in sys.argv else only or ["lstm", "gapmlp"]:
        tk.utils.set_random_seed(SEED)
        trained = build(name)
        train(trained, xtr, ytr)
        model = build(name, batch=1)  # input signature [1, None, 12]
        model.set_weights(trained.get_weights())
        pk = np.concatenate([model.predict(xte[i][None], verbose=0) for i in range(len(xte))])
        info["accuracy"][f"{name}_keras"] = float((pk.argmax(1) == yte).mean())
        for kind, r in [("f32", None), ("int8", rep)]:
            b = convert(model, r)
            (OUT / f"{name}_{kind}.tflite").write_bytes(b)
            pred = interp_predict(b, xte)
            np.save(OUT / f"{name}_{kind}_pred.npy", pred)
            acc = float((pred.argmax(1) == yte).mean())
            info["accuracy"][f"{name}_{kind}"] = acc
            info["ops"][f"{name}_{kind}"] = ops(b)
            print(f"{name} {kind}: {len(b)} bytes, accuracy {acc:.4f}, ops {info['ops'][f'{name}_{kind}']}")
    # tf_keras SimpleRNN converts to a WHILE loop (like every Keras 3 recurrent layer)
    for name in [] if "--preds" in sys.argv else ["rnn", "elu", "bidi"]:
        model = build(name, batch=1)
        try:
            b = convert(model)
        except Exception as e:  # noqa: BLE001  (bidi: the converter fails on its tensor lists)
            print(name, "not converted:", str(e).splitlines()[-1][:200])
            continue
        (OUT / f"{name}.tflite").write_bytes(b)
        info["ops"][name] = ops(b)
        print(name, info["ops"][name])
    if (OUT / "info.json").exists():
        old = json.loads((OUT / "info.json").read_text())
        for k in ["ops", "accuracy"]:
            info[k] = {**old.get(k, {}), **info[k]}
        if info["tf_keras"] is None:  # a `--preds` run without tf_keras
            info["tf_keras"] = old.get("tf_keras")
    (OUT / "info.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()

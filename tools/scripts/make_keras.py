#!/usr/bin/env python3
"""Train tiny Keras 3 models on JapaneseVowels and write tests/data/keras/ (never run in CI).

Needs its own environment (TensorFlow is large and not in requirements.txt):
    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install tensorflow-cpu keras h5py aeon tf_keras
    /tmp/kvenv/bin/python tools/scripts/make_keras.py          (~1-2 min on 2 cores)

Data: the same JapaneseVowels split as train_vowels.py (aeon's bundled .ts files, nothing is
downloaded). Sequences have lengths 7..29; training and prediction are done in buckets of
equal length, so no padding and no Masking layer are involved: Keras's `model.predict` on a
bucket gives the output after each sequence's own last frame, which is what `tinyrnn eval`
compares with.

Positive models (import): lstm, gru (reset_after=True), gru_rb (reset_after=False), rnn
(SimpleRNN), lstm2 (LSTM(return_sequences) -> LSTM), each -> Dense(9, softmax); all but `rnn`
start with a Normalization layer adapted on the training set and take raw features (`rnn`
takes the normalized features test_norm.npy, with a Dropout layer that import drops;
`lstm2` is a Functional model, the others Sequential).
Written: NAME.keras, NAME_pred.npy (Keras's predict on the whole test set, [370, 9] float32).

Negative models (refused by name): bigru (Bidirectional(GRU)), hardsig (GRU with
recurrent_activation="hard_sigmoid"); only the .keras files (untrained weights). gap and mlp
are written untrained here and replaced by trained ones by make_keras_onnx.py (run it after
this script: this one starts by emptying the folder).
Legacy tf.keras 2.x `.h5` full-model files (tf_keras, the Keras 2 API, 20 epochs):
legacy_lstm.h5 (Sequential: Normalization -> LSTM(16) -> Dense(9, softmax)), legacy_gru2.h5
(Functional: Normalization -> GRU(16, reset_after=False, return_sequences) -> GRU(16) ->
Dense(9, softmax)), with NAME_pred.npy; weights_only.h5 (save_weights: refused).
`--legacy` writes only these (the rest of the folder is kept).
TFLite: lstm_while.tflite, lstm.keras converted by tf.lite.TFLiteConverter for input
[1, 20, 12]: Keras 3 layers convert to a WHILE loop (VAR_HANDLE, WHILE, BATCH_MATMUL...),
not to UNIDIRECTIONAL_SEQUENCE_LSTM; tinyrnn refuses .tflite files (`--tflite` writes only it).
Unrolled TFLite (untrained; imported since the unrolled form is read, see
make_tflite_unroll.py for trained ones): lstm_unroll.tflite, gru_unroll.tflite, rnn_unroll.tflite:
Input(shape=(8, 12), batch_size=1) -> LSTM / GRU / SimpleRNN(4, unroll=True) -> Dense(9,
softmax), converted by tf.lite.TFLiteConverter.from_keras_model. TF 2.21 emits no WHILE for
them: RESHAPE, UNPACK of the 8 time steps, then one copy of the cell per step
(FULLY_CONNECTED, ADD, SPLIT, LOGISTIC, TANH, MUL, and SUB/STRIDED_SLICE for the GRU), the
first step constant-folded for the zero initial state (`--tflite` writes these too).
Bad files: truncated.keras (the lstm file cut in half), noconfig.keras (a zip without
config.json), missing_dataset.keras (the lstm file whose model.weights.h5 lost one dataset,
deleted with h5py).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA  # noqa: E402

import aeon  # noqa: E402
import h5py  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from aeon.datasets import load_from_ts_file  # noqa: E402
from keras import layers  # noqa: E402

OUT = DATA / "keras"
SRC = Path(os.path.dirname(aeon.__file__)) / "datasets" / "data" / "JapaneseVowels"
F, C, UNITS, EPOCHS, SEED = 12, 9, 16, 40, 0


def load(split: str):
    X, y = load_from_ts_file(str(SRC / f"JapaneseVowels_{split}.ts"))
    return [a.T.astype(np.float32) for a in X], y.astype(np.int64) - 1


def buckets(xs):
    out = {}
    for i, a in enumerate(xs):
        out.setdefault(a.shape[0], []).append(i)
    return out


def predict(model, xs):
    y = np.zeros((len(xs), C), np.float32)
    for _, idx in sorted(buckets(xs).items()):
        y[idx] = model.predict(np.stack([xs[i] for i in idx]), verbose=0)
    return y


def build(name: str, norm_layer):
    inp = keras.Input(shape=(None, F))
    if name == "lstm":
        return keras.Sequential([inp, norm_layer, layers.LSTM(UNITS), layers.Dense(C, activation="softmax")])
    if name == "gru":
        return keras.Sequential([inp, norm_layer, layers.GRU(UNITS), layers.Dense(C, activation="softmax")])
    if name == "gru_rb":
        return keras.Sequential([inp, norm_layer, layers.GRU(UNITS, reset_after=False),
                                 layers.Dense(C, activation="softmax")])
    if name == "rnn":
        return keras.Sequential([inp, layers.SimpleRNN(UNITS), layers.Dropout(0.1),
                                 layers.Dense(C, activation="softmax")])
    if name == "lstm2":
        x = norm_layer(inp)
        x = layers.LSTM(UNITS, return_sequences=True)(x)
        x = layers.LSTM(UNITS)(x)
        out = layers.Dense(C, activation="softmax")(x)
        return keras.Model(inp, out)
    if name == "bigru":
        return keras.Sequential([inp, layers.Bidirectional(layers.GRU(8)), layers.Dense(C, activation="softmax")])
    if name == "gap":
        return keras.Sequential([inp, layers.LSTM(8, return_sequences=True), layers.GlobalAveragePooling1D(),
                                 layers.Dense(C, activation="softmax")])
    if name == "mlp":
        return keras.Sequential([inp, layers.LSTM(8), layers.Dense(8, activation="relu"),
                                 layers.Dense(C, activation="softmax")])
    if name == "hardsig":
        return keras.Sequential([inp, layers.GRU(8, recurrent_activation="hard_sigmoid"),
                                 layers.Dense(C, activation="softmax")])
    raise ValueError(name)


def train(model, xs, y):
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    b = sorted(buckets(xs).items())
    rng = np.random.default_rng(SEED)
    for _ in range(EPOCHS):
        for k in rng.permutation(len(b)):
            idx = b[k][1]
            model.train_on_batch(np.stack([xs[i] for i in idx]), y[idx])


def legacy(xtr, ytr, xte, yte, info) -> None:
    import tf_keras as tk

    for name in ["legacy_lstm", "legacy_gru2"]:
        tk.utils.set_random_seed(SEED)
        nl = tk.layers.Normalization()
        nl.adapt(np.concatenate(xtr))
        if name == "legacy_lstm":
            model = tk.Sequential([tk.layers.InputLayer(input_shape=(None, F)), nl, tk.layers.LSTM(UNITS),
                                   tk.layers.Dense(C, activation="softmax")])
        else:
            inp = tk.Input(shape=(None, F))
            x = tk.layers.GRU(UNITS, reset_after=False, return_sequences=True)(nl(inp))
            x = tk.layers.GRU(UNITS)(x)
            model = tk.Model(inp, tk.layers.Dense(C, activation="softmax")(x))
        model.compile(optimizer=tk.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        b = sorted(buckets(xtr).items())
        rng = np.random.default_rng(SEED)
        for _ in range(20):
            for k in rng.permutation(len(b)):
                idx = b[k][1]
                model.train_on_batch(np.stack([xtr[i] for i in idx]), ytr[idx])
        pred = predict(model, xte)
        acc = float((pred.argmax(1) == yte).mean())
        info["accuracy"][name] = acc
        print(f"{name}: test accuracy {acc:.4f}")
        model.save(OUT / f"{name}.h5")
        np.save(OUT / f"{name}_pred.npy", pred)
        if name == "legacy_lstm":
            model.save_weights(OUT / "weights_only.h5")
    info["tf_keras"] = tk.__version__


def tflite() -> None:
    m = keras.models.load_model(OUT / "lstm.keras")
    fn = tf.function(lambda x: m(x)).get_concrete_function(tf.TensorSpec([1, 20, F], tf.float32))
    b = tf.lite.TFLiteConverter.from_concrete_functions([fn], m).convert()
    assert b[4:8] == b"TFL3"
    (OUT / "lstm_while.tflite").write_bytes(b)


def unrolled() -> None:
    from tensorflow.lite.python import schema_py_generated as s  # noqa: PLC0415

    names = {v: k for k, v in s.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    for name, cell in [("lstm", layers.LSTM), ("gru", layers.GRU), ("rnn", layers.SimpleRNN)]:
        keras.utils.set_random_seed(SEED)
        m = keras.Sequential([keras.Input(shape=(8, F), batch_size=1), cell(4, unroll=True),
                              layers.Dense(C, activation="softmax")])
        b = tf.lite.TFLiteConverter.from_keras_model(m).convert()
        assert b[4:8] == b"TFL3"
        mt = s.ModelT.InitFromObj(s.Model.GetRootAsModel(b, 0))
        codes = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?") for c in mt.operatorCodes]
        ops = [codes[op.opcodeIndex] for op in mt.subgraphs[0].operators]
        assert "WHILE" not in ops and "UNPACK" in ops, ops
        (OUT / f"{name}_unroll.tflite").write_bytes(b)
        print(f"{name}_unroll.tflite: {len(b)} bytes, {len(ops)} ops: {' '.join(ops[:12])} ...")


def main() -> None:
    keras.utils.set_random_seed(SEED)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    xtr, ytr = load("TRAIN")
    xte, yte = load("TEST")
    tn = np.load(DATA / "vowels" / "test_norm.npy")
    tl = np.load(DATA / "vowels" / "test_lengths.npy")
    xte_norm = [tn[i, : tl[i]] for i in range(len(tl))]  # exactly what the Rust test feeds
    assert all(len(a) == len(b) for a, b in zip(xte, xte_norm))
    norm = json.loads((DATA / "vowels" / "norm.json").read_text())
    mean, std = np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32)
    if "--tflite" in sys.argv:
        tflite()
        unrolled()
        return
    if "--legacy" in sys.argv:
        info = json.loads((OUT / "info.json").read_text())
        legacy(xtr, ytr, xte, yte, info)
        (OUT / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        return
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    info = {"keras": keras.__version__, "tensorflow": tf.__version__, "units": UNITS, "epochs": EPOCHS,
            "accuracy": {}}
    for name in ["lstm", "gru", "gru_rb", "rnn", "lstm2"]:
        keras.utils.set_random_seed(SEED)
        nl = layers.Normalization()
        nl.adapt(np.concatenate(xtr))
        model = build(name, nl)
        tr = xtr if name != "rnn" else [(a - mean) / std for a in xtr]
        te = xte if name != "rnn" else xte_norm
        train(model, tr, ytr)
        pred = predict(model, te)
        acc = float((pred.argmax(1) == yte).mean())
        info["accuracy"][name] = acc
        print(f"{name}: test accuracy {acc:.4f}")
        model.save(OUT / f"{name}.keras")
        np.save(OUT / f"{name}_pred.npy", pred)
    for name in ["bigru", "gap", "mlp", "hardsig"]:
        keras.utils.set_random_seed(SEED)
        build(name, None).save(OUT / f"{name}.keras")
    # Bad files.
    good = (OUT / "lstm.keras").read_bytes()
    (OUT / "truncated.keras").write_bytes(good[: len(good) // 2])
    with zipfile.ZipFile(OUT / "lstm.keras") as z, zipfile.ZipFile(OUT / "noconfig.keras", "w") as w:
        for n in z.namelist():
            if n != "config.json":
                w.writestr(n, z.read(n))
    with tempfile.TemporaryDirectory() as d:
        with zipfile.ZipFile(OUT / "lstm.keras") as z:
            z.extractall(d)
        with h5py.File(Path(d) / "model.weights.h5", "r+") as h:
            del h["layers/lstm/cell/vars/1"]
        with zipfile.ZipFile(OUT / "missing_dataset.keras", "w") as w:
            for n in ["metadata.json", "config.json", "model.weights.h5"]:
                w.write(Path(d) / n, n)
    legacy(xtr, ytr, xte, yte, info)
    tflite()
    unrolled()
    (OUT / "info.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()

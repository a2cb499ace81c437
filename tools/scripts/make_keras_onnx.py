#!/usr/bin/env python3
"""Keras-exported ONNX fixtures and the model-graph `.keras` models (never run in CI).

Run after make_keras.py, in the same environment (TensorFlow CPU, keras 3, tf2onnx, onnx,
onnxruntime, aeon):
    /tmp/tfvenv/bin/python tools/scripts/make_keras_onnx.py      (~2-3 min on 2 cores)

Writes into tests/data/keras/:
* NAME.onnx for the trained models of make_keras.py (lstm, gru, gru_rb, rnn, lstm2):
  `model.export(path, format="onnx")` (Keras 3, TensorFlow backend, tf2onnx underneath).
  The LSTM exports hold a fused ONNX `LSTM` node; GRU (both reset_after) and SimpleRNN
  export as a `Loop` whose body is the cell. Their Keras predictions are NAME_pred.npy,
  already written by make_keras.py (the ONNX file is the same model).
* New trained models, each as NAME.keras, NAME.onnx and NAME_pred.npy (Keras `predict` on
  the whole test set, [370, 9] float32), all starting with a Normalization layer (raw
  features in):
  - lstm_rd: LSTM(16, recurrent_dropout=0.1) -> Dense(9, softmax). A recurrent dropout
    keeps tf2onnx from fusing the LSTM: the export is a `Loop` with the LSTM cell inside
    (dropout is inactive at inference, the body holds no dropout op).
  - mlp: LSTM(16) -> Dense(16, relu) -> Dropout -> Dense(9, softmax) (an MLP head).
  - gap: GRU(16, return_sequences) -> GlobalAveragePooling1D -> Dense(9, softmax).
  - graph: Dense(16, tanh) -> LayerNormalization -> LSTM(16, return_sequences)
    -> GlobalMaxPooling1D -> Dense(16) -> BatchNormalization -> Activation(relu)
    -> Dense(9, softmax) (pre-net, LayerNorm, max pooling, BatchNorm folded into a dense).
* hardsig.onnx: the (untrained) hardsig.keras GRU with recurrent_activation="hard_sigmoid":
  a `Loop` whose body is not a cell tinyrnn has (refused, naming the node).
Each ONNX file is checked against Keras with onnxruntime before it is written.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_keras as mk  # noqa: E402

import keras  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from keras import layers  # noqa: E402

OUT = mk.OUT
F, C, U = mk.F, mk.C, mk.UNITS


def build(name: str, nl):
    inp = keras.Input(shape=(None, F))
    if name == "lstm_rd":
        return keras.Sequential([inp, nl, layers.LSTM(U, recurrent_dropout=0.1), layers.Dense(C, activation="softmax")])
    if name == "mlp":
        return keras.Sequential([inp, nl, layers.LSTM(U), layers.Dense(16, activation="relu"), layers.Dropout(0.1),
                                 layers.Dense(C, activation="softmax")])
    if name == "gap":
        return keras.Sequential([inp, nl, layers.GRU(U, return_sequences=True), layers.GlobalAveragePooling1D(),
                                 layers.Dense(C, activation="softmax")])
    if name == "graph":
        return keras.Sequential([inp, nl, layers.Dense(16, activation="tanh"), layers.LayerNormalization(),
                                 layers.LSTM(U, return_sequences=True), layers.GlobalMaxPooling1D(),
                                 layers.Dense(16), layers.BatchNormalization(), layers.Activation("relu"),
                                 layers.Dense(C, activation="softmax")])
    raise ValueError(name)


def bind_normalization(m, model) -> None:
    """Keras 3's ONNX export turns a Normalization layer's mean and variance (non-trainable
    variables) into extra graph *inputs* with no value (`.../Sub/y:0`, `.../Sqrt/x:0`): the
    file cannot run without them being fed. Store the layer's values as initializers
    instead (the same numbers Keras uses), so the file is self-contained."""
    from onnx import numpy_helper

    norms = [lay for lay in model.layers if isinstance(lay, layers.Normalization)]
    extra = list(m.graph.input)[1:]
    if not extra:
        return
    assert len(norms) == 1, [i.name for i in extra]
    mean = np.asarray(norms[0].mean, np.float32)
    var = np.asarray(norms[0].variance, np.float32)
    for i in extra:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if i.name.endswith("Sub/y:0"):
            v = mean
        elif i.name.endswith("Sqrt/x:0"):
            v = var
        else:
            raise ValueError(f"unexpected graph input {i.name}")
        m.graph.initializer.append(numpy_helper.from_array(v.reshape(dims), i.name))
        m.graph.input.remove(i)


def export(model, name: str, xs, want) -> None:
    model.predict(xs[0][None], verbose=0)
    path = OUT / f"{name}.onnx"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "m.onnx"
        model.export(str(tmp), format="onnx", verbose=False)
        m = onnx.load(str(tmp))
    bind_normalization(m, model)
    onnx.save(m, str(path))
    ops = sorted({n.op_type for n in m.graph.node})
    if want is not None:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        got = np.zeros_like(want)
        for _, idx in sorted(mk.buckets(xs).items()):
            got[idx] = sess.run(None, {iname: np.stack([xs[i] for i in idx])})[0]
        err = float(np.abs(got - want).max())
        print(f"{name}.onnx: ops {ops}; onnxruntime vs Keras max error {err:.2e}")
        assert err < 1e-4, err
    else:
        print(f"{name}.onnx: ops {ops}")


def main() -> None:
    keras.utils.set_random_seed(mk.SEED)
    xtr, ytr = mk.load("TRAIN")
    xte, yte = mk.load("TEST")
    tn = np.load(mk.DATA / "vowels" / "test_norm.npy")
    tl = np.load(mk.DATA / "vowels" / "test_lengths.npy")
    xte_norm = [tn[i, : tl[i]] for i in range(len(tl))]
    info = json.loads((OUT / "info.json").read_text())
    for name in ["lstm", "gru", "gru_rb", "rnn", "lstm2"]:
        m = keras.models.load_model(OUT / f"{name}.keras")
        te = xte_norm if name == "rnn" else xte
        export(m, name, te, np.load(OUT / f"{name}_pred.npy"))
    for name in ["lstm_rd", "mlp", "gap", "graph"]:
        keras.utils.set_random_seed(mk.SEED)
        nl = layers.Normalization()
        nl.adapt(np.concatenate(xtr))
        model = build(name, nl)
        mk.train(model, xtr, ytr)
        pred = mk.predict(model, xte)
        acc = float((pred.argmax(1) == yte).mean())
        info["accuracy"][name] = acc
        print(f"{name}: test accuracy {acc:.4f}")
        model.save(OUT / f"{name}.keras")
        np.save(OUT / f"{name}_pred.npy", pred)
        export(model, name, xte, pred)
    export(keras.models.load_model(OUT / "hardsig.keras"), "hardsig", xte, None)
    (OUT / "info.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()

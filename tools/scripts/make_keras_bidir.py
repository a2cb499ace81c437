#!/usr/bin/env python3
"""Keras `Bidirectional` and `go_backwards` fixtures (issue #11): tests/data/keras_bidir/.

Run: /tmp/tfvenv/bin/python tools/scripts/make_keras_bidir.py (~2 min on 2 cores). Reuses
make_keras.py's data (JapaneseVowels, aeon's bundled files), training in equal-length
buckets and bucketed predict; every model starts with a Normalization layer adapted on the
training set and takes raw features (tests/data/vowels/test_raw.npy + test_lengths.npy).

Trained (NAME.keras, NAME_pred.npy = Keras's predict on the whole test set, [370, 9]):
  bigru        Bidirectional(GRU(8)) -> Dense(9, softmax): return_sequences=False, so the
               final state of each direction, concatenated (merge_mode "concat")
  bilstm_gap   Bidirectional(LSTM(8, return_sequences=True)) -> GlobalAveragePooling1D ->
               Dense(9, softmax)
  gru_back     GRU(8, go_backwards=True) -> Dense(9, softmax): a reverse layer
  bigru.onnx   bigru via model.export(format="onnx") (ops in info.json)
Refused (untrained): bigru_sum.keras (merge_mode="sum"), gru_back_seq.keras
  (GRU(8, go_backwards=True, return_sequences=True) -> GRU(8) -> Dense: Keras returns that
  sequence in reversed time order, which tinyrnn's layers do not produce).
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_keras as mk  # noqa: E402
from make_keras import C, F, keras, layers, np  # noqa: E402
from make_keras_onnx import bind_normalization  # noqa: E402

OUT = mk.DATA / "keras_bidir"


def build(name: str, nl):
    inp = keras.Input(shape=(None, F))
    soft = layers.Dense(C, activation="softmax")
    if name == "bigru":
        return keras.Sequential([inp, nl, layers.Bidirectional(layers.GRU(8)), soft])
    if name == "bilstm_gap":
        return keras.Sequential([inp, nl, layers.Bidirectional(layers.LSTM(8, return_sequences=True)),
                                 layers.GlobalAveragePooling1D(), soft])
    if name == "gru_back":
        return keras.Sequential([inp, nl, layers.GRU(8, go_backwards=True), soft])
    if name == "bigru_sum":
        return keras.Sequential([inp, nl, layers.Bidirectional(layers.GRU(8), merge_mode="sum"), soft])
    if name == "gru_back_seq":
        return keras.Sequential([inp, nl, layers.GRU(8, go_backwards=True, return_sequences=True),
                                 layers.GRU(8), soft])
    raise ValueError(name)


def main() -> None:
    import onnx
    import onnxruntime as ort

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    xtr, ytr = mk.load("TRAIN")
    xte, yte = mk.load("TEST")
    mk.EPOCHS = 15
    info = {"epochs": mk.EPOCHS, "accuracy": {}, "onnx": {}}
    for name in ["bigru", "bilstm_gap", "gru_back", "bigru_sum", "gru_back_seq"]:
        keras.utils.set_random_seed(mk.SEED)
        nl = layers.Normalization()
        nl.adapt(np.concatenate(xtr))
        model = build(name, nl)
        if name in ("bigru_sum", "gru_back_seq"):
            model.predict(xte[0][None], verbose=0)
            model.save(OUT / f"{name}.keras")
            continue
        mk.train(model, xtr, ytr)
        pred = mk.predict(model, xte)
        acc = float((pred.argmax(1) == yte).mean())
        info["accuracy"][name] = acc
        print(f"{name}: test accuracy {acc:.4f}")
        model.save(OUT / f"{name}.keras")
        np.save(OUT / f"{name}_pred.npy", pred)
        if name == "bigru":
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d) / "m.onnx"
                model.export(str(tmp), format="onnx", verbose=False)
                m = onnx.load(str(tmp))
            bind_normalization(m, model)
            onnx.save(m, str(OUT / f"{name}.onnx"))
            ops = sorted({n.op_type for n in m.graph.node})
            sess = ort.InferenceSession(str(OUT / f"{name}.onnx"), providers=["CPUExecutionProvider"])
            iname = sess.get_inputs()[0].name
            got = np.zeros_like(pred)
            for _, idx in sorted(mk.buckets(xte).items()):
                got[idx] = sess.run(None, {iname: np.stack([xte[i] for i in idx])})[0]
            err = float(np.abs(got - pred).max())
            info["onnx"][name] = {"ops": ops, "ort_vs_keras_max_abs": err}
            print(f"{name}.onnx: ops {ops}; onnxruntime vs Keras {err:.2e}")
    (OUT / "info.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Keras `Bidirectional` and `go_backwards` fixtures (issue #11): tests/data/keras_bidir/.

Run: /tmp/tfvenv/bin/python tools/scripts/make_keras_bidir.py [NAME ...] (~4 min on 2 cores;
with NAMEs, only those models are (re)made and the others' .keras files are kept; --export only
re-exports the ONNX files from the saved .keras files). Reuses
make_keras.py's data (JapaneseVowels, aeon's bundled files), training in equal-length
buckets and bucketed predict; every model starts with a Normalization layer adapted on the
training set and takes raw features (tests/data/vowels/test_raw.npy + test_lengths.npy).

Trained (NAME.keras, NAME_pred.npy = Keras's predict on the whole test set, [370, 9]):
  bigru        Bidirectional(GRU(8)) -> Dense(9, softmax): return_sequences=False, so the
               final state of each direction, concatenated (merge_mode "concat")
  bilstm_gap   Bidirectional(LSTM(8, return_sequences=True)) -> GlobalAveragePooling1D ->
               Dense(9, softmax)
  gru_back     GRU(8, go_backwards=True) -> Dense(9, softmax): a reverse layer
  birnn        Bidirectional(SimpleRNN(8)) -> Dense(9, softmax)
  bigru_gap    Bidirectional(GRU(8, return_sequences=True)) -> GlobalAveragePooling1D -> Dense
  bigru2       Bidirectional(GRU(8, return_sequences=True)) -> Bidirectional(GRU(8)) -> Dense
  gru_back_gmp GRU(8, go_backwards=True, return_sequences=True) -> GlobalMaxPooling1D -> Dense
               (Keras's reversed step order does not matter to the pooling)
  NAME.onnx    each of them via model.export(format="onnx") of the saved .keras: a Loop per
               direction, the backward one over a ReverseSequence of its input and, for
               return_sequences in a Bidirectional, its per-step output reversed back
               before the Concat; except Bidirectional(LSTM), which tf2onnx fuses into one
               LSTM node with direction="bidirectional" (ops and onnxruntime vs Keras in
               info.json)
Refused (untrained, .keras and .onnx): bigru_sum (merge_mode="sum"), gru_back_seq
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
    if name == "birnn":
        return keras.Sequential([inp, nl, layers.Bidirectional(layers.SimpleRNN(8)), soft])
    if name == "gru_back":
        return keras.Sequential([inp, nl, layers.GRU(8, go_backwards=True), soft])
    if name == "bigru_gap":
        return keras.Sequential([inp, nl, layers.Bidirectional(layers.GRU(8, return_sequences=True)),
                                 layers.GlobalAveragePooling1D(), soft])
    if name == "bigru2":
        return keras.Sequential([inp, nl, layers.Bidirectional(layers.GRU(8, return_sequences=True)),
                                 layers.Bidirectional(layers.GRU(8)), soft])
    if name == "gru_back_gmp":
        return keras.Sequential([inp, nl, layers.GRU(8, go_backwards=True, return_sequences=True),
                                 layers.GlobalMaxPooling1D(), soft])
    if name == "bigru_sum":
        return keras.Sequential([inp, nl, layers.Bidirectional(layers.GRU(8), merge_mode="sum"), soft])
    if name == "gru_back_seq":
        return keras.Sequential([inp, nl, layers.GRU(8, go_backwards=True, return_sequences=True),
                                 layers.GRU(8), soft])
    raise ValueError(name)


TRAINED = ["bigru", "bilstm_gap", "gru_back", "birnn", "bigru_gap", "bigru2", "gru_back_gmp"]
REFUSED = ["bigru_sum", "gru_back_seq"]


def export_onnx(name: str, xte, yte, info) -> None:
    """NAME.onnx from the saved NAME.keras (Normalization values bound as initializers);
    for a trained model, onnxruntime checked against NAME_pred.npy."""
    import onnx
    import onnxruntime as ort

    model = keras.models.load_model(OUT / f"{name}.keras")
    model.predict(xte[0][None], verbose=0)  # export needs a called model
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "m.onnx"
        model.export(str(tmp), format="onnx", verbose=False)
        m = onnx.load(str(tmp))
    bind_normalization(m, model)
    onnx.save(m, str(OUT / f"{name}.onnx"))
    ops = sorted({n.op_type for n in m.graph.node})
    entry = {"ops": ops}
    pred_path = OUT / f"{name}_pred.npy"
    if name in TRAINED:
        pred = np.load(pred_path)
        sess = ort.InferenceSession(str(OUT / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        got = np.zeros_like(pred)
        for _, idx in sorted(mk.buckets(xte).items()):
            got[idx] = sess.run(None, {iname: np.stack([xte[i] for i in idx])})[0]
        entry["ort_vs_keras_max_abs"] = float(np.abs(got - pred).max())
        info["accuracy"][name] = float((pred.argmax(1) == yte).mean())
    info["onnx"][name] = entry
    print(f"{name}.onnx: {entry}")


def main() -> None:
    export_only = sys.argv[1:] == ["--export"]
    names = [] if export_only else sys.argv[1:] or TRAINED + REFUSED
    unknown = set(names) - set(TRAINED + REFUSED)
    if unknown:
        raise SystemExit(f"unknown model(s) {sorted(unknown)}")
    info_path = OUT / "info.json"
    if sys.argv[1:] and info_path.exists():
        info = json.loads(info_path.read_text())
    else:
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        info = {}
    info.setdefault("accuracy", {})
    info.setdefault("onnx", {})
    xtr, ytr = mk.load("TRAIN")
    xte, yte = mk.load("TEST")
    mk.EPOCHS = 15
    info["epochs"] = mk.EPOCHS
    for name in names:
        keras.utils.set_random_seed(mk.SEED)
        nl = layers.Normalization()
        nl.adapt(np.concatenate(xtr))
        model = build(name, nl)
        if name in REFUSED:
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
    # Every model's ONNX export, from its saved .keras (also the ones not remade now).
    for name in TRAINED + REFUSED:
        if (OUT / f"{name}.keras").exists():
            export_onnx(name, xte, yte, info)
    info_path.write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()

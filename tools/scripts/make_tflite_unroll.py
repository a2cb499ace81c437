#!/usr/bin/env python3
"""The trained Keras 3 JapaneseVowels models of tests/data/keras/ and tests/data/keras_bidir/ converted
with `unroll=True` to float and int8 .tflite; writes tests/data/tflite_unroll/ (never run in CI).

    /tmp/tfvenv/bin/python tools/scripts/make_tflite_unroll.py [NAME ... | untrained]   (~3 min on 2 cores;
    with NAMEs only those files are (re)made)

Models (the weights of tests/data/keras/NAME.keras, made by make_keras.py): rnn (SimpleRNN),
gru (reset_after=True), gru_rb (reset_after=False), lstm, lstm2 (LSTM(return_sequences) ->
LSTM), each 16 units -> Dense(9, softmax); and (the weights of tests/data/keras_bidir/NAME.keras,
made by make_keras_bidir.py, 8 units per direction) bigru (Bidirectional(GRU), concat),
gru_back (GRU(go_backwards=True)), bigru2 (Bidirectional(GRU(return_sequences)) ->
Bidirectional(GRU)), birnn (Bidirectional(SimpleRNN)). Each is rebuilt as a batch-1 Sequential for a fixed
length of T = 7 frames with `unroll=True`, and the trained weights are copied in. The
Normalization layer of the trained gru / gru_rb / lstm / lstm2 is left out: every unrolled
twin takes the features normalized with tests/data/vowels/norm.json (test_norm.npy), what
the Rust test feeds (so the twins are the trained recurrent and dense weights on those
inputs; their own accuracy is what is recorded). The Dropout of `rnn` is dropped too (a
no-op at inference).

The converter writes an unrolled layer as UNPACK of the T time steps and one copy of the
cell per step (no WHILE). An unrolled model runs a fixed length, so the test set is each of
the 370 test sequences cut to its first T frames (the shortest has 7).

A Bidirectional layer converts to one cell copy per step and direction, both reading the same
UNPACK outputs (the backward one from x_{T-1}), joined by a CONCATENATION of the final states
or, with return_sequences, of the forward PACK and the REVERSE_V2 of the backward PACK.

Written, for NAME in rnn gru gru_rb lstm lstm2 bigru gru_back bigru2 birnn:
  NAME_f32.tflite   TFLiteConverter.from_keras_model (float)
  NAME_int8.tflite  full-integer int8 with a representative dataset (100 training sequences,
                    first T frames; float input/output, so QUANTIZE first and DEQUANTIZE last)
  NAME_{f32,int8}_pred.npy  the TFLite interpreter's outputs on the test set, [370, 9] f32
  NAME_keras_pred.npy       Keras `model.predict` of the unrolled twin, [370, 9] f32
  test_x.npy / test_labels.npy are not written: the test set is test_norm.npy[:, :T].
info.json: versions, T, the operator counts of each file and every accuracy.
Refused by tinyrnn (untrained twins of keras_bidir/, float file only, NAME_f32.tflite):
  bigru_sum     Bidirectional(GRU, merge_mode="sum"): an ADD of the two directions
  gru_back_seq  GRU(go_backwards=True, return_sequences=True) -> GRU: the sequence in reversed
                time order read by another recurrent layer
Untrained (`untrained`; small_x.npy: 20 random sequences [6, 5]; Dense(2) head, no softmax):
  small_bilstm2             Bidirectional(LSTM(4), return_sequences) -> Bidirectional(LSTM(3))
  small_bigru_rb_lstm_back  Bidirectional(GRU(4, reset_after=False), return_sequences) ->
                            LSTM(3, go_backwards=True)
    NAME_{f32,int8}.tflite, NAME_{f32,int8}_pred.npy (interpreter), NAME_keras_pred.npy
  small_biave_f32.tflite, small_bimul_f32.tflite   merge_mode "ave" / "mul" (refused)
Tampered copies of rnn_f32.tflite (refused; `--tamper` writes only these):
  tampered_weights.tflite  the recurrent FULLY_CONNECTED of the 4th step reads a copy of the
                           recurrent kernel with one value changed (+0.5)
  tampered_op.tflite       the TANH of the 4th step removed (its readers read its input)
"""
from __future__ import annotations

import collections
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
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from aeon.datasets import load_from_ts_file  # noqa: E402
from keras import layers  # noqa: E402

OUT = DATA / "tflite_unroll"
SRC = Path(os.path.dirname(aeon.__file__)) / "datasets" / "data" / "JapaneseVowels"
F, C, T, SEED = 12, 9, 7, 0
NAMES = ["rnn", "gru", "gru_rb", "lstm", "lstm2"]
# Twins of tests/data/keras_bidir/NAME.keras (make_keras_bidir.py).
BIDIR = ["bigru", "gru_back", "bigru2", "birnn"]
# Untrained twins that tinyrnn refuses (float file only).
REFUSED = ["bigru_sum", "gru_back_seq"]


def twin(name: str):
    """The unrolled, batch-1, fixed-length twin of tests/data/keras/NAME.keras."""
    folder = "keras_bidir" if name in BIDIR + REFUSED else "keras"
    src = keras.models.load_model(DATA / folder / f"{name}.keras")
    kinds = (layers.SimpleRNN, layers.GRU, layers.LSTM, layers.Bidirectional)
    rec = [l for l in src.layers if isinstance(l, kinds)]
    dense = [l for l in src.layers if isinstance(l, layers.Dense)]
    assert len(dense) == 1, name
    stack = [keras.Input(shape=(T, F), batch_size=1)]
    for l in rec:
        if isinstance(l, layers.Bidirectional):
            cfg = l.forward_layer.get_config()
            cfg["unroll"] = True
            cfg["go_backwards"] = False
            stack.append(layers.Bidirectional(type(l.forward_layer).from_config(cfg),
                                              merge_mode=l.merge_mode))
        else:
            cfg = l.get_config()
            cfg["unroll"] = True
            stack.append(type(l).from_config(cfg))
    stack.append(layers.Dense.from_config(dense[0].get_config()))
    m = keras.Sequential(stack)
    for a, b in zip(m.layers, rec + dense):
        a.set_weights(b.get_weights())
    return m


def convert(model, rep=None) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if rep is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([a[None]] for a in rep)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    b = conv.convert()
    assert b[4:8] == b"TFL3"
    return b


def interp_predict(b: bytes, x):
    it = tf.lite.Interpreter(model_content=b)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    y = np.zeros((len(x), C), np.float32)
    for n in range(len(x)):
        it.set_tensor(i, x[n : n + 1])
        it.invoke()
        y[n] = it.get_tensor(o)[0]
    return y


def ops(b: bytes):
    from tensorflow.lite.python import schema_py_generated as s  # noqa: PLC0415

    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(b, 0))
    names = {v: k for k, v in s.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    codes = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?") for c in m.operatorCodes]
    return [codes[op.opcodeIndex] for op in m.subgraphs[0].operators]


def tamper() -> None:
    import copy  # noqa: PLC0415

    import flatbuffers  # noqa: PLC0415
    from tensorflow.lite.python import schema_py_generated as s  # noqa: PLC0415

    src = (OUT / "rnn_f32.tflite").read_bytes()
    names = {v: k for k, v in s.BuiltinOperator.__dict__.items() if not k.startswith("_")}

    def load():
        m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(src, 0))
        codes = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?") for c in m.operatorCodes]
        return m, m.subgraphs[0], codes

    def save(m, name):
        b = flatbuffers.Builder(0)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        (OUT / name).write_bytes(bytes(b.Output()))

    # The recurrent FULLY_CONNECTED ops (input 0 not an UNPACK output, weights [16, 16]) in
    # step order: the one reading the 3rd step's hidden state feeds the 4th step.
    m, g, codes = load()
    unpack = next(op for op in g.operators if codes[op.opcodeIndex] == "UNPACK")
    fcs = [op for op in g.operators if codes[op.opcodeIndex] == "FULLY_CONNECTED"
           and op.inputs[0] not in list(unpack.outputs) and list(g.tensors[op.inputs[1]].shape) == [16, 16]]
    depth = {int(t): 0 for t in unpack.outputs}
    for op in g.operators:  # topological: the number of recurrent FCs upstream
        d = max([depth.get(int(i), -1) for i in op.inputs])
        if d >= 0:
            for o in op.outputs:
                depth[int(o)] = d + (op in fcs)
    fc = sorted(fcs, key=lambda op: depth[int(op.outputs[0])])[2]
    w = g.tensors[fc.inputs[1]]
    t = copy.deepcopy(w)
    t.name = (w.name.decode() if isinstance(w.name, bytes) else w.name) + "_tampered"
    vals = np.frombuffer(bytes(m.buffers[w.buffer].data), np.float32).copy()
    vals[5] += 0.5
    buf = s.BufferT()
    buf.data = np.frombuffer(vals.tobytes(), np.uint8)
    m.buffers.append(buf)
    t.buffer = len(m.buffers) - 1
    g.tensors.append(t)
    fc.inputs = [fc.inputs[0], len(g.tensors) - 1] + list(fc.inputs[2:])
    save(m, "tampered_weights.tflite")

    m, g, codes = load()
    tanhs = [k for k, op in enumerate(g.operators) if codes[op.opcodeIndex] == "TANH"]
    k = tanhs[3]
    src_t, dst_t = g.operators[k].inputs[0], g.operators[k].outputs[0]
    for op in g.operators:
        op.inputs = [src_t if i == dst_t else i for i in op.inputs]
    del g.operators[k]
    save(m, "tampered_op.tflite")
    print("tampered_weights.tflite: op reading", t.name, "; tampered_op.tflite: removed op", k)


def untrained(info) -> None:
    """Small untrained unrolled models on a fixed random input (no trained twin needed to
    check the cells): every cell in both directions, and the merges tinyrnn refuses."""
    keras.utils.set_random_seed(1)
    t, f = 6, 5
    x = np.random.default_rng(0).normal(size=(20, t, f)).astype(np.float32)
    np.save(OUT / "small_x.npy", x)
    inp = lambda: keras.Input((t, f), batch_size=1)  # noqa: E731
    models = {
        # Bidirectional(LSTM(4), return_sequences) -> Bidirectional(LSTM(3)) -> Dense(2)
        "small_bilstm2": [layers.Bidirectional(layers.LSTM(4, unroll=True, return_sequences=True)),
                          layers.Bidirectional(layers.LSTM(3, unroll=True))],
        # Bidirectional(GRU(4, reset_after=False), return_sequences) -> LSTM(3, go_backwards)
        "small_bigru_rb_lstm_back": [
            layers.Bidirectional(layers.GRU(4, unroll=True, return_sequences=True, reset_after=False)),
            layers.LSTM(3, unroll=True, go_backwards=True)],
        # refused: merge_mode "ave" (ADD, then MUL by 0.5) and "mul"
        "small_biave": [layers.Bidirectional(layers.SimpleRNN(4, unroll=True), merge_mode="ave")],
        "small_bimul": [layers.Bidirectional(layers.GRU(4, unroll=True), merge_mode="mul")],
    }
    for name, rec in models.items():
        m = keras.Sequential([inp(), *rec, layers.Dense(2)])
        refused = name in ("small_biave", "small_bimul")
        if not refused:
            np.save(OUT / f"{name}_keras_pred.npy", m.predict(x, batch_size=1, verbose=0))
        for kind, r in [("f32", None)] + ([] if refused else [("int8", list(x))]):
            b = convert(m, r)
            o = ops(b)
            assert "WHILE" not in o and "UNPACK" in o, o
            (OUT / f"{name}_{kind}.tflite").write_bytes(b)
            info["ops"][f"{name}_{kind}"] = dict(sorted(collections.Counter(o).items()))
            if not refused:
                it = tf.lite.Interpreter(model_content=b)
                it.allocate_tensors()
                i, oi = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
                y = np.zeros((len(x), 2), np.float32)
                for n in range(len(x)):
                    it.set_tensor(i, x[n : n + 1])
                    it.invoke()
                    y[n] = it.get_tensor(oi)[0]
                np.save(OUT / f"{name}_{kind}_pred.npy", y)
            print(f"{name} {kind}: {len(b)} bytes, {len(o)} ops")


def main() -> None:
    keras.utils.set_random_seed(SEED)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    norm = json.loads((DATA / "vowels" / "norm.json").read_text())
    mean, std = np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32)
    X, _ = load_from_ts_file(str(SRC / "JapaneseVowels_TRAIN.ts"))
    xtr = [(a.T.astype(np.float32) - mean) / std for a in X]
    rep = [xtr[i][:T] for i in np.random.default_rng(SEED).permutation(len(xtr))[:100]]
    x = np.ascontiguousarray(np.load(DATA / "vowels" / "test_norm.npy")[:, :T]).astype(np.float32)
    assert np.load(DATA / "vowels" / "test_lengths.npy").min() >= T
    y = np.load(DATA / "vowels" / "test_labels.npy")
    if "--tamper" in sys.argv:
        tamper()
        return
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    if not only:
        shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    info_path = OUT / "info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.update({"keras": keras.__version__, "tensorflow": tf.__version__, "T": T})
    info.setdefault("ops", {})
    info.setdefault("accuracy", {})
    for name in [n for n in only or NAMES + BIDIR if n not in REFUSED + ["untrained"]]:
        m = twin(name)
        pk = m.predict(x, batch_size=1, verbose=0)
        np.save(OUT / f"{name}_keras_pred.npy", pk)
        info["accuracy"][f"{name}_keras"] = float((pk.argmax(1) == y).mean())
        for kind, r in [("f32", None), ("int8", rep)]:
            b = convert(m, r)
            o = ops(b)
            assert "WHILE" not in o and "UNPACK" in o, o
            (OUT / f"{name}_{kind}.tflite").write_bytes(b)
            pred = interp_predict(b, x)
            np.save(OUT / f"{name}_{kind}_pred.npy", pred)
            acc = float((pred.argmax(1) == y).mean())
            info["accuracy"][f"{name}_{kind}"] = acc
            info["ops"][f"{name}_{kind}"] = dict(sorted(collections.Counter(o).items()))
            err = float(np.abs(pred - pk).max())
            print(f"{name} {kind}: {len(b)} bytes, {len(o)} ops, accuracy {acc:.4f} "
                  f"(keras {info['accuracy'][name + '_keras']:.4f}), max |interp - keras| {err:.2e}")
    for name in REFUSED:
        if only and name not in only:
            continue
        b = convert(twin(name))
        o = ops(b)
        assert "WHILE" not in o and "UNPACK" in o, o
        (OUT / f"{name}_f32.tflite").write_bytes(b)
        info["ops"][f"{name}_f32"] = dict(sorted(collections.Counter(o).items()))
        print(f"{name} f32 (refused by tinyrnn): {len(b)} bytes, {len(o)} ops")
    if not only or "untrained" in only:
        untrained(info)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    tamper()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fixtures for the per-model table of issue #11 (tools/tests/tf_table.rs) and the legacy
tf.keras `.h5` Bidirectional files: tests/data/keras_table/ (never run in CI).

Run after make_keras.py and make_keras_onnx.py (it reads their trained .keras files):
    /tmp/tfvenv/bin/pip install tf_keras==2.21.0          (the Keras 2 API, for the .h5 files)
    /tmp/tfvenv/bin/python tools/scripts/make_keras_table.py      (~4 min on 2 cores)

Data, training and predict as make_keras.py (JapaneseVowels from aeon's bundled files,
equal-length buckets, no padding, no Masking); every model starts with a Normalization layer
adapted on the training set and takes raw features (tests/data/vowels/test_raw.npy with
test_lengths.npy), except `rnn` (make_keras.py's SimpleRNN takes test_norm.npy).

Written:
* bigru_v.keras: Keras 3 Normalization -> Bidirectional(GRU(16)) -> Dense(9, softmax), 40
  epochs; bigru_v_pred.npy (Keras predict on the 370 test sequences, [370, 9] float32);
  bigru_v.onnx (model.export(format="onnx"), the Normalization's mean/variance bound as
  initializers as make_keras_onnx.py does; checked against Keras with onnxruntime).
* legacy_bigru.h5 (tf_keras 2.x full-model .h5, 20 epochs): Normalization ->
  Bidirectional(GRU(16)) -> Dense(9, softmax); legacy_bilstm_gap.h5: Normalization ->
  Bidirectional(LSTM(8, return_sequences=True)) -> GlobalAveragePooling1D -> Dense(9,
  softmax); NAME_pred.npy (tf_keras predict). legacy_bigru_sum.h5: untrained,
  merge_mode="sum" (refused by name).
* NAME_unroll_f32.tflite / NAME_unroll_int8.tflite for bigru_v and for the trained mlp and
  gap of tests/data/keras (and others named on the command line, not committed: an unrolled
  file holds one copy of the cell per step, 15-185 KB each; the lstm, gru, gru_rb, rnn and
  lstm2 twins are make_tflite_unroll.py's tests/data/tflite_unroll): the same weights in a twin
  with `unroll=True` on every recurrent layer and a fixed input [1, T, 12] (unrolling needs
  a static length; T = 14, the most frequent test length), without the model's leading
  Normalization layer (the converter writes it as SUB/MUL ops, which are not part of the
  unrolled-layer form): the twin takes normalized features, and NAME_norm.json holds that
  layer's mean and std = max(sqrt(variance), 1e-7) for `tinyrnn --normalize` (`rnn` has no
  such layer and takes test_norm.npy as before). Converted by
  tf.lite.TFLiteConverter (float; int8 full-integer with float I/O and a representative
  dataset of 100 normalized training sequences of at least T frames cut to their first T). The
  interpreter can only run sequences of exactly T frames: NAME_unroll_{f32,int8}_pred.npy
  hold its outputs on the test sequences of length T (their indices in info.json
  `unroll_rows`), [n, 9] float32.
* info.json: versions, accuracies (Keras/tf_keras on all 370; the interpreter's on the
  length-T subset, with Keras's on the same subset), the operators of each .tflite and
  bytes, and any conversion that failed.
`--unroll` writes only the .tflite files, their predictions and info.json (the trained
files are kept; their accuracies are re-read from their _pred.npy files).
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_keras as mk  # noqa: E402
from make_keras import C, F, keras, layers, np, tf  # noqa: E402
from make_keras_onnx import bind_normalization  # noqa: E402
from make_tflite import ops as tflite_ops  # noqa: E402

OUT = mk.DATA / "keras_table"
T = 14
UNITS = 16


def legacy(xtr, ytr, xte, yte, info) -> None:
    import tf_keras as tk

    L = tk.layers
    for name in ["legacy_bigru", "legacy_bilstm_gap", "legacy_bigru_sum"]:
        tk.utils.set_random_seed(mk.SEED)
        nl = L.Normalization()
        nl.adapt(np.concatenate(xtr))
        inp = [L.InputLayer(input_shape=(None, F)), nl]
        soft = L.Dense(C, activation="softmax")
        if name == "legacy_bigru":
            model = tk.Sequential(inp + [L.Bidirectional(L.GRU(UNITS)), soft])
        elif name == "legacy_bilstm_gap":
            model = tk.Sequential(inp + [L.Bidirectional(L.LSTM(8, return_sequences=True)),
                                         L.GlobalAveragePooling1D(), soft])
        else:
            model = tk.Sequential(inp + [L.Bidirectional(L.GRU(8), merge_mode="sum"), soft])
            model.save(OUT / f"{name}.h5")
            continue
        model.compile(optimizer=tk.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        b = sorted(mk.buckets(xtr).items())
        rng = np.random.default_rng(mk.SEED)
        for _ in range(20):
            for k in rng.permutation(len(b)):
                idx = b[k][1]
                model.train_on_batch(np.stack([xtr[i] for i in idx]), ytr[idx])
        pred = mk.predict(model, xte)
        acc = float((pred.argmax(1) == yte).mean())
        info["accuracy"][name] = acc
        print(f"{name}: tf_keras test accuracy {acc:.4f}")
        model.save(OUT / f"{name}.h5")
        np.save(OUT / f"{name}_pred.npy", pred)
    info["tf_keras"] = tk.__version__


def bigru_v(xtr, ytr, xte, yte, info):
    import onnx
    import onnxruntime as ort

    keras.utils.set_random_seed(mk.SEED)
    nl = layers.Normalization()
    nl.adapt(np.concatenate(xtr))
    model = keras.Sequential([keras.Input(shape=(None, F)), nl, layers.Bidirectional(layers.GRU(UNITS)),
                              layers.Dense(C, activation="softmax")])
    mk.train(model, xtr, ytr)
    pred = mk.predict(model, xte)
    acc = float((pred.argmax(1) == yte).mean())
    info["accuracy"]["bigru_v"] = acc
    print(f"bigru_v: test accuracy {acc:.4f}")
    model.save(OUT / "bigru_v.keras")
    np.save(OUT / "bigru_v_pred.npy", pred)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "m.onnx"
        model.export(str(tmp), format="onnx", verbose=False)
        m = onnx.load(str(tmp))
    bind_normalization(m, model)
    onnx.save(m, str(OUT / "bigru_v.onnx"))
    check_onnx(model, xte, pred, info)
    return model


def check_onnx(model, xte, pred, info) -> None:
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(OUT / "bigru_v.onnx"))
    sess = ort.InferenceSession(str(OUT / "bigru_v.onnx"), providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    got = np.zeros_like(pred)
    for _, idx in sorted(mk.buckets(xte).items()):
        got[idx] = sess.run(None, {iname: np.stack([xte[i] for i in idx])})[0]
    err = float(np.abs(got - pred).max())
    info["onnx"] = {"bigru_v": {"ops": sorted({n.op_type for n in m.graph.node}), "ort_vs_keras_max_abs": err}}
    print(f"bigru_v.onnx: onnxruntime vs Keras {err:.2e}")
    assert err < 1e-4, err


def unroll_twin(model):
    """The model's layers after its Normalization (if any), rebuilt with unroll=True on every
    recurrent layer on an input [1, T, F], with the trained weights; and the Normalization's
    (mean, std), std = max(sqrt(variance), 1e-7) as Keras divides by, or None."""

    def walk(v):
        if isinstance(v, dict):
            if v.get("class_name") in ("LSTM", "GRU", "SimpleRNN"):
                v["config"]["unroll"] = True
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    x = inp = keras.Input(batch_shape=(1, T, F))
    pairs, stats = [], None
    for lay in model.layers:
        if isinstance(lay, layers.InputLayer):
            continue
        if isinstance(lay, layers.Normalization):
            assert not pairs, "a Normalization after other layers"
            mean = np.asarray(lay.mean, np.float64).reshape(-1)
            std = np.maximum(np.sqrt(np.asarray(lay.variance, np.float64).reshape(-1)), 1e-7)
            stats = (mean, std)
            continue
        cfg = lay.get_config()
        walk(cfg)
        if isinstance(lay, (layers.LSTM, layers.GRU, layers.SimpleRNN)):
            cfg["unroll"] = True
        new = lay.__class__.from_config(cfg)
        x = new(x)
        pairs.append((new, lay))
    twin = keras.Model(inp, x)
    for new, old in pairs:
        new.set_weights(old.get_weights())
    return twin, stats


def interp_predict(b: bytes, xs):
    it = tf.lite.Interpreter(model_content=b)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    y = np.zeros((len(xs), C), np.float32)
    for n, a in enumerate(xs):
        it.set_tensor(i, a[None])
        it.invoke()
        y[n] = it.get_tensor(o)[0]
    return y


def unrolled(name, model, xtr, xte, yte, rows, info) -> None:
    twin, stats = unroll_twin(model)
    if stats is not None:
        # The twin takes the features the Normalization layer would hand on: NAME_norm.json
        # holds its statistics (tinyrnn `--normalize`), the interpreter gets them applied.
        mean, std = stats
        (OUT / f"{name}_norm.json").write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}) + "\n")
        xtr = [((a - mean) / std).astype(np.float32) for a in xtr]
        xte = [((a - mean) / std).astype(np.float32) for a in xte]
    sub = [xte[i] for i in rows]
    pk = np.concatenate([twin.predict(a[None], verbose=0) for a in sub])
    want = np.load(mk.OUT / f"{name}_pred.npy") if name != "bigru_v" else np.load(OUT / "bigru_v_pred.npy")
    err = float(np.abs(pk - want[rows]).max())
    assert err < 1e-5, err
    info["accuracy"][f"{name}_keras_len{T}"] = float((want[rows].argmax(1) == yte[rows]).mean())
    long = [a[:T] for a in xtr if len(a) >= T]
    rep = [long[i] for i in np.random.default_rng(mk.SEED).permutation(len(long))[:100]]
    for kind in ["f32", "int8"]:
        conv = tf.lite.TFLiteConverter.from_keras_model(twin)
        if kind == "int8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([a[None]] for a in rep)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        f = f"{name}_unroll_{kind}"
        try:
            b = conv.convert()
        except Exception as e:  # noqa: BLE001
            info["failed"][f] = str(e).splitlines()[-1][:300]
            print(f, "not converted:", info["failed"][f])
            continue
        assert b[4:8] == b"TFL3"
        o = tflite_ops(b)
        assert "WHILE" not in o, o
        (OUT / f"{f}.tflite").write_bytes(b)
        pred = interp_predict(b, sub)
        np.save(OUT / f"{f}_pred.npy", pred)
        acc = float((pred.argmax(1) == yte[rows]).mean())
        info["accuracy"][f] = acc
        info["tflite"][f] = {"bytes": len(b), "ops": sorted(set(o)), "n_ops": len(o),
                             "max_abs_vs_keras": float(np.abs(pred - want[rows]).max())}
        print(f"{f}: {len(b)} bytes, {len(o)} ops, interpreter accuracy {acc:.4f} on {len(rows)}, "
              f"vs Keras {info['tflite'][f]['max_abs_vs_keras']:.2e}")


def main() -> None:
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    xtr, ytr = mk.load("TRAIN")
    xte, yte = mk.load("TEST")
    tn = np.load(mk.DATA / "vowels" / "test_norm.npy")
    tl = np.load(mk.DATA / "vowels" / "test_lengths.npy")
    xte_norm = [tn[i, : tl[i]] for i in range(len(tl))]
    norm = json.loads((mk.DATA / "vowels" / "norm.json").read_text())
    mean, std = np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32)
    xtr_norm = [(a - mean) / std for a in xtr]
    rows = [i for i in range(len(tl)) if tl[i] == T]
    if "--unroll" in sys.argv:  # only the .tflite files (the rest exists): accuracies re-read
        info = {"keras": keras.__version__, "tensorflow": tf.__version__, "unroll_T": T, "unroll_rows": rows,
                "accuracy": {}, "tflite": {}, "failed": {}}
        for name in ["legacy_bigru", "legacy_bilstm_gap", "bigru_v"]:
            pred = np.load(OUT / f"{name}_pred.npy")
            info["accuracy"][name] = float((pred.argmax(1) == yte).mean())
        import tf_keras as tk

        info["tf_keras"] = tk.__version__
        bigru = keras.models.load_model(OUT / "bigru_v.keras")
        check_onnx(bigru, xte, np.load(OUT / "bigru_v_pred.npy"), info)
    else:
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        info = {"keras": keras.__version__, "tensorflow": tf.__version__, "unroll_T": T, "unroll_rows": rows,
                "accuracy": {}, "tflite": {}, "failed": {}}
        legacy(xtr, ytr, xte, yte, info)
        bigru = bigru_v(xtr, ytr, xte, yte, info)
        (OUT / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    unrolled("bigru_v", bigru, xtr, xte, yte, rows, info)
    extra = [a for a in sys.argv[1:] if not a.startswith("-")]
    for name in ["mlp", "gap"] + extra:
        m = keras.models.load_model(mk.OUT / f"{name}.keras")
        if name == "rnn":
            unrolled(name, m, xtr_norm, xte_norm, yte, rows, info)
        else:
            unrolled(name, m, xtr, xte, yte, rows, info)
    (OUT / "info.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()

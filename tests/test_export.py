"""Export: Keras/SavedModel/TFLite parity for every ECG model, quantisation, safe mode, source selection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import BiomedError
from pipelines.export import (ExportSource, convert_tflite, export_model, load_keras_model, resolve_source,
                              select_model)
from pipelines.model_card import SELECTION_NOTE, read_card
from pipelines.predict import KerasPredictor, SavedModelPredictor, TFLitePredictor, load_predictor

FS, T = 50.0, 250
TINY = {"cnn": {"filters": 4, "depth": 2}, "crnn": {"filters": 4, "depth": 2, "units": 4},
        "acrnn": {"filters": 4, "depth": 2, "units": 4, "attention_units": 4},
        "resnet1d": {"filters": 4, "depth": 2}, "mina": {"filters": 4, "units": 4, "attention_units": 4}}
PARITY_ATOL = 1e-4          # float32 SavedModel / TFLite vs the in-memory Keras model
QUANT_MAX_DIFF = {"dynamic": 0.05, "float16": 0.01, "int8": 0.1}   # max |Δ probability|


def _inputs(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, T, 1)).astype(np.float32)


def _saved(tmp_path, name: str):
    from pipelines.modeling import get_model

    model = get_model(name).build((T, 1), 2, fs=FS, **TINY[name])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return model, path


# MINA's filter bank runs as an FFT in Keras and as the equivalent convolution in TFLite
# (prefer_builtin_ops), so its TFLite parity also covers that switch.
@pytest.mark.parametrize("name", ["cnn", "crnn", "acrnn", "resnet1d", "mina"])
def test_keras_savedmodel_tflite_match_in_memory_model(tmp_path, name):
    import tensorflow as tf

    model, path = _saved(tmp_path, name)
    x = _inputs()
    expected = model.predict(x, verbose=0)

    card = read_card(export_model(ExportSource(path), "keras", tmp_path / "k"))
    assert card["input"]["shape"] == [None, T, 1] and card["format"] == "keras"
    np.testing.assert_allclose(load_keras_model(tmp_path / "k" / "model.keras").predict(x, verbose=0),
                               expected, atol=PARITY_ATOL)

    card = read_card(export_model(ExportSource(path), "savedmodel", tmp_path / "sm"))
    serving = card["serving"]
    assert (tmp_path / "sm" / "1" / "saved_model.pb").is_file() and serving["signature"] == "serving_default"
    reloaded = tf.saved_model.load(str(tmp_path / "sm" / "1"))
    out = reloaded.signatures["serving_default"](**{serving["input_name"]: tf.constant(x)})
    np.testing.assert_allclose(out[serving["output_name"]].numpy(), expected, atol=PARITY_ATOL)
    np.testing.assert_allclose(SavedModelPredictor(tmp_path / "sm" / "1").predict(x), expected,
                               atol=PARITY_ATOL)

    info = convert_tflite(path, tmp_path / "m.tflite")
    assert info["quantization"] == "none"
    np.testing.assert_allclose(TFLitePredictor(tmp_path / "m.tflite").predict(x), expected, atol=PARITY_ATOL)


# Same parity as TFLite, through onnxruntime (tf2onnx and onnxruntime come with the test extra).
@pytest.mark.parametrize("name", ["cnn", "crnn", "acrnn", "resnet1d", "mina"])
def test_onnx_matches_in_memory_model(tmp_path, name):
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")

    model, path = _saved(tmp_path, name)
    x = _inputs()
    expected = model.predict(x, verbose=0)
    card = read_card(export_model(ExportSource(path), "onnx", tmp_path / "onnx"))
    assert card["format"] == "onnx" and card["model_file"] == "model.onnx"
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [card["input"]["name"]]
    (got,) = session.run([card["output"]["name"]], {card["input"]["name"]: x})
    np.testing.assert_allclose(got, expected, atol=PARITY_ATOL)


@pytest.mark.parametrize("quantize", ["dynamic", "float16", "int8"])
def test_quantised_tflite_stays_close(tmp_path, quantize):
    model, path = _saved(tmp_path, "cnn")
    x = _inputs(32, seed=1)
    info = convert_tflite(path, tmp_path / "q.tflite", quantize, representative=_inputs(64, seed=2))
    assert info["quantization"] == quantize
    got = TFLitePredictor(tmp_path / "q.tflite").predict(x)
    assert np.abs(got - model.predict(x, verbose=0)).max() <= QUANT_MAX_DIFF[quantize]
    if quantize == "int8":
        assert info["io_dtype"] == "int8"
    assert (tmp_path / "q.tflite").stat().st_size < (tmp_path / "cnn.keras").stat().st_size


def test_int8_without_a_run_folder_is_refused(tmp_path):
    _, path = _saved(tmp_path, "cnn")
    with pytest.raises(BiomedError, match="representative"):
        convert_tflite(path, tmp_path / "q.tflite", "int8")


def test_export_into_the_source_models_folder_is_refused(tmp_path):
    _, path = _saved(tmp_path, "cnn")
    before = path.read_bytes()
    for out in (tmp_path, tmp_path / "sub" / ".."):
        with pytest.raises(BiomedError, match="folder of its own"):
            export_model(ExportSource(path), "keras", out)
    assert path.read_bytes() == before and not (tmp_path / "model_card.json").exists()
    export_model(ExportSource(path), "keras", tmp_path / "export")     # a folder inside is fine
    assert (tmp_path / "export" / "model.keras").is_file()


def test_lambda_model_is_refused_in_safe_mode(tmp_path, capsys):
    import keras

    from pipelines.cli import main

    inputs = keras.Input((T, 1), name="ecg")
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Lambda(lambda v: v * 2)(inputs))
    path = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(BiomedError, match="safe mode"):
        load_keras_model(path)
    assert main(["export", str(path), "--format", "savedmodel", "--out", str(tmp_path / "out")]) == 2
    assert "safe mode" in capsys.readouterr().err
    (tmp_path / "model_card.json").write_text(json.dumps({"schema": "biomed-model-card/1"}))
    with pytest.raises(BiomedError, match="safe mode"):
        load_predictor(path)


def test_joblib_baseline_is_never_loaded_and_formats_match_families(tmp_path):
    folder = tmp_path / "models" / "expert_lr" / "seed_0"
    folder.mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"")
    (folder / "info.json").write_text("{}")
    with pytest.raises(BiomedError, match="never loads"):
        resolve_source(folder, model_format="skops")
    (folder / "model.skops").write_bytes(b"")
    with pytest.raises(BiomedError, match="--format skops"):
        resolve_source(folder, model_format="keras")


def _fake_run(tmp_path, val_scores: dict[tuple[str, int], float], test_auc: dict[tuple[str, int], float]) -> None:
    """A run folder whose models' validation predictions rank records with the given quality.

    A score of q puts the positive records of the validation split above a fraction q of the
    negative ones (ROC-AUC q); metrics.csv holds the (unrelated) test ROC-AUC.
    """
    import yaml

    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "name": "fake", "data": {"source": "synthetic", "task": {"classes": ["N", "A"], "positive": "A"}}}))
    frame = pd.DataFrame([{"model": m, "role": "deep", "seed": s, "level": level, "roc_auc": auc,
                           "threshold": 0.4} for (m, s), auc in test_auc.items() for level in ("window", "record")])
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    for (model, seed), quality in val_scores.items():
        folder = tmp_path / "models" / model / f"seed_{seed}"
        folder.mkdir(parents=True)
        (folder / ("model.skops" if model.startswith("expert") else "model.keras")).write_bytes(b"")
        negatives = np.linspace(0, 1, 10)
        scores = np.concatenate([negatives, [np.quantile(negatives, quality) + 1e-3] * 2, [0.5, 0.5]])
        splits = ["val"] * 12 + ["test"] * 2
        pd.DataFrame({"split": splits, "record": [f"r{i}" for i in range(14)], "window": 0,
                      "y_true": [0] * 10 + [1, 1, 0, 1], "prob_N": 1 - scores, "prob_A": scores}
                     ).to_csv(folder / "predictions.csv", index=False)


def test_select_model_picks_best_validation_roc_auc_never_test(tmp_path):
    # Test ROC-AUC would choose cnn seed 0 and expert_lr; validation chooses mina and expert_rf.
    _fake_run(tmp_path, {("cnn", 0): 0.5, ("mina", 0): 0.9, ("expert_lr", 0): 0.6, ("expert_rf", 0): 0.8},
              {("cnn", 0): 0.99, ("mina", 0): 0.6, ("expert_lr", 0): 0.99, ("expert_rf", 0): 0.7})
    assert select_model(tmp_path, None, None) == ("mina", 0, SELECTION_NOTE)
    assert select_model(tmp_path, None, None, "sklearn")[:2] == ("expert_rf", 0)
    assert select_model(tmp_path, "cnn", None)[:2] == ("cnn", 0)
    with pytest.raises(BiomedError, match="--format skops"):
        select_model(tmp_path, "expert_rf", None)


def test_keras_predictor_through_xla_matches(tmp_path):
    model, path = _saved(tmp_path, "mina")
    x = _inputs()
    np.testing.assert_allclose(KerasPredictor(path, jit_compile=True).predict(x),
                               model.predict(x, verbose=0), atol=PARITY_ATOL)

"""Prediction on new recordings and images: end to end from a tiny run folder, backends, bad inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import write_record, write_tiny_experiment
from pipelines.cli import main
from pipelines.model_card import read_card
from ecgnet.inputs import prediction_windows
from pipelines.predict import load_predictor, predict_inputs

PROB_ATOL = 1e-4            # SavedModel / TFLite float32 vs .keras, per record
INT8_MAX_DIFF = 0.1         # int8 TFLite vs .keras, max |Δ record probability|


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny run: 30 synthetic records at 100 Hz, cnn (4 filters) trained 1 epoch at 50 Hz."""
    from pipelines.config import load_config
    from pipelines.datasets import prepare_data
    from pipelines.runner import start_run_dir, train_all, write_data_artifacts

    base = tmp_path_factory.mktemp("predict")
    config = load_config(write_tiny_experiment(base, [{"type": "cnn", "params": {"filters": 4, "depth": 2}}]))
    run = base / "run"
    start_run_dir(config, run)
    data = prepare_data(config)
    write_data_artifacts(config, data, run)
    train_all(config, data, run)
    return run


def _records(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"record": str}).set_index("record")


def test_card_and_backends_agree(run_dir, tmp_path):
    data = run_dir.parent / "data"
    frames = {}
    for fmt in ("keras", "savedmodel", "tflite"):
        assert main(["export", str(run_dir), "--format", fmt, "--out", str(tmp_path / fmt)]) == 0
        predictor, card = load_predictor(tmp_path / fmt, allow_savedmodel=fmt == "savedmodel")
        summary = predict_inputs(predictor, card, [str(data)], tmp_path / f"{fmt}.csv")
        assert summary.scored == 30 and summary.skipped == 0
        frames[fmt] = _records(tmp_path / f"{fmt}.csv")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    record_row = metrics[metrics["level"] == "record"].iloc[0]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert card["threshold"] == pytest.approx(record_row["threshold"])
    assert card["preprocess"] == config["data"]["preprocess"]
    assert card["classes"] == ["N", "A"] and card["positive_class"] == "A"
    assert card["input"]["shape"] == [None, 250, 1] and "250 samples" in card["input"]["description"]
    assert card["test_metrics"]["record"]["roc_auc"] == pytest.approx(record_row["roc_auc"])
    assert card["package_version"] and card["config_hash"] and card["data_summary"]["classes"] == ["N", "A"]
    for fmt in ("savedmodel", "tflite"):
        np.testing.assert_allclose(frames[fmt][["prob_N", "prob_A"]], frames["keras"][["prob_N", "prob_A"]],
                                   atol=PROB_ATOL)
        assert (frames[fmt]["predicted"] == frames["keras"]["predicted"]).all()
    keras_frame = frames["keras"]
    expected = np.where(keras_frame["prob_A"] >= card["threshold"], "A", "N")
    assert (keras_frame["predicted"] == expected).all()

    again = predict_inputs(*load_predictor(tmp_path / "keras"), [str(data)], tmp_path / "again.csv",
                           per_window=True)
    pd.testing.assert_frame_equal(_records(again.files["records"]), keras_frame)
    windows = pd.read_csv(again.files["windows"], dtype={"record": str})
    means = windows.groupby("record")["prob_A"].mean()
    np.testing.assert_allclose(means.loc[keras_frame.index], keras_frame["prob_A"], atol=1e-6)


def test_windows_match_training_and_cover_the_record(run_dir):
    from pipelines.config import load_config
    from pipelines.datasets import prepare_data
    from ecgnet.sources import RecordRef, read_signal
    from pipelines.model_card import card_preprocess
    from ecgnet.preprocess import clean_signal

    card = read_card_of(run_dir)
    samples = prepare_data(load_config(run_dir / "config.yaml")).samples
    record = str(samples.record[0])
    signal, fs = read_signal(RecordRef(record, str(run_dir.parent / "data" / record), None, record))
    windows = prediction_windows(signal, fs, card)
    training = samples.x[samples.record == record]
    np.testing.assert_array_equal(windows[:len(training)], training)
    clean = clean_signal(signal, fs, card_preprocess(card))
    np.testing.assert_array_equal(windows[-1], clean[-250:].astype(np.float32))


def read_card_of(run_dir: Path) -> dict:
    """The card of a keras export of ``run_dir`` (exported once, next to the run)."""
    out = run_dir.parent / "keras_export"
    if not (out / "model_card.json").is_file():
        assert main(["export", str(run_dir), "--out", str(out)]) == 0
    return read_card(out)


def test_fresh_process_after_deleting_the_run_and_bad_inputs(run_dir, tmp_path):
    copy = tmp_path / "run_copy"
    shutil.copytree(run_dir, copy)
    assert main(["export", str(copy), "--format", "savedmodel", "--out", str(tmp_path / "exp")]) == 0
    data = run_dir.parent / "data"
    expected = predict_inputs(*load_predictor(tmp_path / "exp", allow_savedmodel=True),
                              [str(data / "S00001.hea"), str(data / "S00002")], tmp_path / "inproc.csv")
    shutil.rmtree(copy)

    bad = tmp_path / "bad"
    write_record(bad, "short", np.sin(np.arange(100) / 5.0), fs=100)         # 1 s < min_length_s
    (bad / "broken.hea").write_text("this is not a WFDB header\n")
    out = tmp_path / "fresh.csv"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "predict", str(tmp_path / "exp"), str(data / "S00001.hea"),
         str(data / "S00002"), str(bad), str(tmp_path / "missing"), "--out", str(out), "--batch-size", "3",
         "--allow-savedmodel"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(_records(out), _records(expected.files["records"]))
    skipped = pd.read_csv(tmp_path / "fresh_skipped.csv", dtype={"record": str}).set_index("record")
    assert set(skipped.index) == {"short", "broken", "missing"}
    assert "shorter than min_length_s" in skipped.loc["short", "reason"]
    assert "header" in skipped.loc["broken", "reason"] and "header" in skipped.loc["missing", "reason"]


def test_int8_export_in_a_child_process_stays_close(run_dir, tmp_path):
    data = run_dir.parent / "data"
    assert main(["export", str(run_dir), "--format", "tflite", "--quantize", "int8",
                 "--out", str(tmp_path / "int8")]) == 0
    card = read_card(tmp_path / "int8")
    assert card["tflite"]["quantization"] == "int8"
    got = predict_inputs(*load_predictor(tmp_path / "int8"), [str(data)], tmp_path / "q.csv")
    reference = predict_inputs(*load_predictor(tmp_path / "int8" / "model.tflite"), [str(data)],
                               tmp_path / "q2.csv")
    keras_card = read_card_of(run_dir)
    assert keras_card["threshold"] == card["threshold"]
    exact = predict_inputs(*load_predictor(run_dir.parent / "keras_export"), [str(data)], tmp_path / "k.csv")
    diff = (_records(got.files["records"])["prob_A"] - _records(exact.files["records"])["prob_A"]).abs()
    assert diff.max() <= INT8_MAX_DIFF
    pd.testing.assert_frame_equal(_records(got.files["records"]), _records(reference.files["records"]))


def test_images_are_decoded_resized_and_scored(tmp_path):
    import keras
    import tensorflow as tf

    from pipelines.modeling import get_model

    model = get_model("cnn2d").build((16, 16, 3), 3, filters=4, depth=2)
    model.save(tmp_path / "img.keras")
    assert main(["export", str(tmp_path / "img.keras"), "--out", str(tmp_path / "exp")]) == 0
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pixels = {}
    for name, size in (("a", 16), ("b", 40), ("c", 9)):
        pixels[name] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        keras.utils.save_img(folder / f"{name}.png", pixels[name])
    (folder / "d.png").write_bytes(b"not a png")
    (folder / "e.jpg").write_bytes(b"")
    summary = predict_inputs(*load_predictor(tmp_path / "exp"), [str(folder)], tmp_path / "img.csv")
    assert summary.scored == 3 and summary.skipped == 2
    reasons = pd.read_csv(tmp_path / "img_skipped.csv").set_index("record")["reason"]
    assert reasons["e"] == "empty file (0 bytes)"
    assert reasons["d"].startswith("cannot decode image: ") and len(reasons["d"]) > len("cannot decode image: ")
    assert "{{" not in reasons["d"] and "[Op:" not in reasons["d"]   # TensorFlow's node and op names left out
    frame = _records(tmp_path / "img.csv")
    for name, array in pixels.items():
        x = tf.image.resize(tf.cast(array, tf.float32), (16, 16)).numpy()[None]
        np.testing.assert_allclose(frame.loc[name, ["prob_class_0", "prob_class_1", "prob_class_2"]],
                                   model.predict(x, verbose=0)[0], atol=1e-5)
    assert (frame["n_windows"] == 1).all()


def test_export_from_a_run_whose_data_is_gone(run_dir, tmp_path, capsys):
    copy = tmp_path / "run_copy"
    shutil.copytree(run_dir, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["data"]["path"] = str(tmp_path / "moved_away")
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["export", str(copy), "--out", str(tmp_path / "exp")]) == 0
    card = read_card(tmp_path / "exp")
    assert card["threshold"] == pytest.approx(read_card_of(run_dir)["threshold"])
    assert main(["run", str(copy / "config.yaml"), "--out", str(tmp_path / "again")]) != 0  # training still needs it
    assert "moved_away does not exist" in capsys.readouterr().err

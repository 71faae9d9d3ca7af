"""Deep + knowledge models end to end: side inputs, denser training windows, per-model training keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.cli import main
from pipelines.errors import ConfigError

WINDOW_S, STRIDE_S, TRAIN_STRIDE_S = 5, 5, 2.5
MINA_TINY = {"filters": 4, "kernel_size": 4, "conv_stride": 5, "units": 4, "attention_units": 4}


def _config(base: Path, **overrides) -> Path:
    raw = {
        "name": "knowledge", "seeds": [0],
        "data": {"source": "cinc2017", "path": str(base / "data"), "workers": 1,
                 "task": {"classes": ["N", "A"], "positive": "A", "label_map": {"O": None, "~": None}},
                 "preprocess": {"fs": 50, "bandpass": [0.5, 20], "window_s": WINDOW_S, "stride_s": STRIDE_S,
                                "train_stride_s": TRAIN_STRIDE_S},
                 "split": {"val": 0.25, "test": 0.25}},
        "loader": {"batch_size": 16}, "train": {"epochs": 3, "tensorboard": False, "verbose": 0},
        "models": [{"type": "hybrid_cnn", "params": {"filters": 4, "depth": 2, "feature_units": 8},
                    "train": {"epochs": 1}},
                   {"type": "hybrid_cnn_record", "params": {"filters": 4, "depth": 2, "feature_units": 8},
                    "train": {"epochs": 1}},
                   {"type": "mina_rr", "params": MINA_TINY, "train": {"epochs": 1}},
                   {"type": "mina_hybrid", "params": {**MINA_TINY, "feature_units": 8}, "train": {"epochs": 1}}],
        **overrides}
    path = base / "knowledge.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny run of the models with side inputs (hybrid_cnn(_record), mina_rr, mina_hybrid) with a
    denser training stride."""
    from ecgnet.synthetic import synthesize_records

    base = tmp_path_factory.mktemp("knowledge")
    synthesize_records(base / "data", n_records=30, fs=100, duration_s=(12, 30), seed=0)
    run = base / "run"
    assert main(["run", str(_config(base)), "--out", str(run)]) == 0
    return run


def test_training_stride_adds_windows_to_train_only(run_dir):
    from pipelines.config import load_config
    from pipelines.datasets import prepare_data

    data = prepare_data(load_config(run_dir / "config.yaml"))
    every = int(round(STRIDE_S / TRAIN_STRIDE_S))
    for name, split in data.splits.items():
        if name == "train":
            assert split.train_only.any()          # the extra overlapping windows train
        else:
            assert not split.train_only.any()      # evaluation sees the stride_s windows only
            assert (split.window % every == 0).all()
    # the evaluation windows are exactly those a plain stride_s run takes
    plain = prepare_data(load_config(run_dir / "config.yaml", ["data.preprocess.train_stride_s=null"]))
    for name in ("val", "test"):
        np.testing.assert_array_equal(plain.splits[name].x, data.splits[name].x)
    assert len(data.splits["train"]) > len(plain.splits["train"])


def test_per_model_training_keys_apply(run_dir):
    history = pd.read_csv(run_dir / "models" / "hybrid_cnn" / "seed_0" / "history.csv")
    assert len(history) == 1                          # the model's own epochs: 1, not the config's 3


@pytest.mark.parametrize("name, side_inputs", [("hybrid_cnn", ["expert_features"]), ("mina_rr", ["rr_intervals"]),
                                               ("mina_hybrid", ["rr_intervals", "expert_features"]),
                                               ("hybrid_cnn_record", ["expert_features", "record_expert_features"])])
def test_knowledge_model_exports_and_predicts_with_its_side_inputs(run_dir, tmp_path, name, side_inputs):
    from pipelines.export import load_keras_model
    from pipelines.predict import load_predictor
    from pipelines.side_inputs import compute_side_input

    assert main(["export", str(run_dir), "--model", name, "--seed", "0", "--format", "keras",
                 "--out", str(tmp_path / "exp")]) == 0
    predictor, card = load_predictor(tmp_path / "exp")
    assert sorted(card["side_inputs"]) == sorted(side_inputs)
    windows = np.random.default_rng(0).standard_normal((3, WINDOW_S * 50, 1)).astype(np.float32)
    model = load_keras_model(tmp_path / "exp" / "model.keras")
    side = {side_input: compute_side_input(side_input, windows, 50.0) for side_input in side_inputs}
    direct = model.predict({"ecg": windows, **side}, verbose=0)
    np.testing.assert_allclose(predictor.predict(windows), direct, atol=1e-6)
    records = run_dir.parent / "data"
    assert main(["predict", str(tmp_path / "exp"), str(records), "--out", str(tmp_path / "p.csv")]) == 0
    scored = pd.read_csv(tmp_path / "p.csv")
    assert len(scored) > 0 and np.allclose(scored[["prob_N", "prob_A"]].sum(axis=1), 1, atol=1e-5)


def test_side_input_models_refuse_single_input_formats(run_dir, tmp_path, capsys):
    code = main(["export", str(run_dir), "--model", "hybrid_cnn", "--seed", "0", "--format", "tflite",
                 "--out", str(tmp_path / "t")])
    assert code == 2
    assert "side inputs ['expert_features']" in capsys.readouterr().err
    assert not (tmp_path / "t" / "model_card.json").exists()


@pytest.mark.parametrize("preprocess, message", [
    ({"stride_s": 5, "train_stride_s": 2}, "divides stride_s"),
    ({"stride_s": None, "train_stride_s": 2}, "divides stride_s"),
    ({"stride_s": 5, "train_stride_s": 2.5, "max_windows_per_record": 3}, "cannot be combined"),
])
def test_bad_training_strides_are_refused(tmp_path, preprocess, message):
    from pipelines.config import load_config

    (tmp_path / "data").mkdir()
    config = _config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["data"]["preprocess"].update(preprocess)
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_unknown_per_model_training_key_is_refused(tmp_path):
    from pipelines.config import load_config

    (tmp_path / "data").mkdir()
    config = _config(tmp_path, models=[{"type": "cnn", "train": {"epoch": 2}}])
    with pytest.raises(ConfigError, match=r"models\[0\]\.train.*epoch.*did you mean 'epochs'"):
        load_config(config)


def test_expert_features_are_computed_once_per_window_array(monkeypatch):
    from ecgnet import features

    calls = []
    original = features.ECGFeatureExtractor._compute
    monkeypatch.setattr(features.ECGFeatureExtractor, "_compute",
                        lambda self, w: calls.append(len(w)) or original(self, w))
    windows = np.random.default_rng(1).standard_normal((4, 1000)).astype(np.float32)
    first = features.expert_feature_matrix(windows, 100.0)
    again = features.expert_feature_matrix(windows.copy(), 100.0)
    other = features.expert_feature_matrix(windows[:2], 100.0)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[:2], other)
    assert calls == [4, 2]
    first[:] = 0                                      # callers get copies: the memo stays intact
    assert features.expert_feature_matrix(windows, 100.0).any()

"""``biomed tune``: tuners, resume, overwrite, artefacts, and hyperparameters reaching the model."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

from pipelines.config import load_config
from pipelines.errors import ConfigError
from pipelines.samples import SampleSet
from pipelines.tuning import (SuiteHyperModel, best_settings, check_tuning, make_tuner, trial_callbacks, tune,
                              write_best)

TINY = {
    "name": "tiny_tune",
    "data": {
        "source": "synthetic",
        "synthetic": {"n_records": 30, "fs": 100, "duration_s": [10, 12], "seed": 0},
        "task": {"classes": ["N", "A"], "positive": "A", "label_map": {"O": None, "~": None}},
        "preprocess": {"fs": 50, "bandpass": [0.5, 20], "window_s": 10, "stride_s": 10},
        "split": {"val": 0.25, "test": 0.25, "seed": 0},
    },
    "loader": {"batch_size": 16},
    "train": {"epochs": 2, "early_stopping_patience": 1, "reduce_lr_patience": 1, "tensorboard": False,
              "verbose": 0},
    "models": [{"type": "cnn", "params": {"filters": 4, "depth": 2}}],
    "tuning": {
        "model": "cnn", "tuner": "random", "max_trials": 2, "max_epochs": 1, "seed": 0,
        "search_space": {
            "l2": {"type": "choice", "values": [0, 1.0e-4, 1.0e-3]},
            "dropout": {"type": "float", "min": 0.0, "max": 0.5},
            "learning_rate": {"type": "float", "min": 1.0e-3, "max": 1.0e-2, "sampling": "log"},
        },
    },
}
ARTEFACTS = ("config.yaml", "data_summary.json", "splits.csv", "trials.csv", "tuning.png",
             "best_hyperparameters.yaml", "best_config.yaml", "metrics.csv", "summary.csv", "report.html",
             *(f"models/cnn/seed_0/{name}" for name in ("model.keras", "predictions.csv", "info.json")))


@pytest.fixture(autouse=True)
def _eager():
    """Tiny models train faster eagerly than traced (tf.function tracing dominates these tests)."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def write_config(folder: Path, **tuning) -> Path:
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    raw["tuning"].update(tuning)
    path = folder / "tiny_tune.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def fake_splits(n: int = 8, length: int = 500) -> dict[str, SampleSet]:
    rng = np.random.default_rng(0)
    ids = np.array([f"r{i}" for i in range(n)])
    samples = SampleSet(rng.standard_normal((n, length)).astype(np.float32), np.arange(n) % 2, ids, ids,
                        np.zeros(n, int), ["N", "A"], fs=50.0)
    return {"train": samples, "val": samples}


def test_search_writes_every_artefact_resumes_and_overwrites(tmp_path, caplog):
    config = load_config(write_config(tmp_path))
    out = tmp_path / "tune"
    caplog.set_level(logging.INFO, logger="biomed")
    tune(config, out)
    for name in ARTEFACTS:
        assert (out / name).is_file(), name
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"COMPLETED"}
    assert {"l2", "dropout", "learning_rate", "score", "epochs", "best_epoch"} <= set(trials.columns)
    assert sum("COMPLETED" in line for line in caplog.messages) == 2
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["tuning"] is None and best["models"][0]["type"] == "cnn"
    predictions = pd.read_csv(out / "models/cnn/seed_0/predictions.csv")
    assert set(predictions["split"]) == {"val", "test"}
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["level"]) == {"window", "record"}

    caplog.clear()                                      # same command again: nothing is rerun
    tune(config, out)
    assert not any("COMPLETED" in line for line in caplog.messages)
    pd.testing.assert_frame_equal(pd.read_csv(out / "trials.csv"), trials)

    caplog.clear()                                      # more trials extend the search
    config.tuning.max_trials = 3
    tune(config, out)
    assert sum("COMPLETED" in line for line in caplog.messages) == 1
    extended = pd.read_csv(out / "trials.csv")
    assert len(extended) == 3
    pd.testing.assert_frame_equal(extended.head(2), trials)

    caplog.clear()                                      # --overwrite: a fresh search
    tune(config, out, overwrite=True)
    assert sum("COMPLETED" in line for line in caplog.messages) == 3
    assert len(pd.read_csv(out / "trials.csv")) == 3


def test_best_hyperparameters_overlay_reproduces_best_config(tmp_path):
    config = load_config(write_config(tmp_path))
    values = {"l2": 1.0e-4, "dropout": 0.25, "learning_rate": 0.005}
    best_config = best_settings(config, values)

    write_best(config, best_config, tmp_path, trial_id="1", score=0.9)
    text = (tmp_path / "best_hyperparameters.yaml").read_text()
    overlay = yaml.safe_load(text)
    assert overlay["models"][0]["params"] == {"filters": 4, "depth": 2, "l2": 1.0e-4, "dropout": 0.25}
    assert overlay["train"]["learning_rate"] == 0.005
    flags = next(line for line in text.splitlines() if "biomed run" in line).split("--set ")[1:]
    applied = load_config(tmp_path / "tiny_tune.yaml", [f.strip() for f in flags])
    assert applied.models[0].params == overlay["models"][0]["params"]
    assert applied.train.learning_rate == 0.005
    reloaded = load_config(tmp_path / "best_config.yaml")
    assert reloaded.models[0].params == applied.models[0].params and reloaded.tuning is None


@pytest.mark.parametrize("tuner", ["hyperband", "bayesian"])
def test_other_tuners_complete(tmp_path, tuner):
    config = load_config(write_config(tmp_path, tuner=tuner, max_epochs=2, hyperband_factor=3))
    from pipelines.datasets import prepare_data

    data = prepare_data(config)
    hypermodel = SuiteHyperModel(config, data.splits, tf.distribute.get_strategy())
    search = make_tuner(config, hypermodel, tmp_path / "tune")
    search.search(epochs=2, callbacks=trial_callbacks(config), verbose=0)
    trials = list(search.oracle.trials.values())
    assert trials and all(t.status == "COMPLETED" for t in trials)
    assert search.oracle.get_best_trials(1)[0].score is not None


def test_regularisation_and_training_hyperparameters_reach_the_model(monkeypatch):
    config = load_config(Path(__file__).parents[1] / "configs" / "quickstart_tune.yaml")
    hypermodel = SuiteHyperModel(config, fake_splits(), tf.distribute.get_strategy())
    hp = kt.HyperParameters()
    for name, value in {"l1": 1.0e-5, "l2": 1.0e-3, "dropout": 0.4, "learning_rate": 0.0042,
                        "batch_size": 16}.items():
        hp.Fixed(name, value)
    model = hypermodel.build(hp)
    kernels = [layer for layer in model.layers if getattr(layer, "kernel_regularizer", None) is not None]
    assert kernels and all(np.isclose(layer.kernel_regularizer.l1, 1.0e-5) and
                           np.isclose(layer.kernel_regularizer.l2, 1.0e-3) for layer in kernels)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts and all(layer.rate == pytest.approx(0.4) for layer in dropouts)

    import pipelines.tfdata as tfdata

    batch_sizes = []
    original = tfdata.make_dataset
    monkeypatch.setattr(tfdata, "make_dataset",
                        lambda *a, **k: batch_sizes.append(k["batch_size"]) or original(*a, **k))
    metrics = hypermodel.fit(hp, model, epochs=1)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0042)
    assert set(batch_sizes) == {16}
    assert {"val_auc", "best_epoch", "epochs"} <= set(metrics)


def test_unknown_hyperparameter_fails_at_config_load(tmp_path):
    path = write_config(tmp_path, search_space={"dropuot": {"type": "float", "min": 0.0, "max": 0.5}})
    with pytest.raises(ConfigError, match="dropuot.*did you mean 'dropout'"):
        load_config(path)


@pytest.mark.parametrize("space, message", [
    ({"batch_size": {"type": "choice", "values": [16, "big"]}}, "mixed types"),
    ({"l2": {"type": "float", "min": 0.0, "max": 1.0e-3, "sampling": "log"}}, "tuning"),
    ({"filters": {"type": "float", "min": 4, "max": 8}},
     r"search_space\.filters \(type float\): model 'cnn': hyperparameter 'filters' expects int, got float 4\.0"),
    ({"dropout": {"type": "choice", "values": ["low", "high"]}},
     r"search_space\.dropout \(type choice\): .*'dropout' expects float, got str 'low'"),
])
def test_invalid_search_space_is_a_config_error(tmp_path, space, message):
    with pytest.raises(ConfigError, match=message):
        check_tuning(load_config(write_config(tmp_path, search_space=space)))


def test_a_tuning_folder_in_use_is_refused(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    from pipelines.config import load_config
    from pipelines.errors import BiomedError
    from pipelines.tuning import tune

    folder = tmp_path / "tune"
    folder.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as sleeper:
        try:
            (folder / ".biomed.lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                             "started": "now"}))
            with pytest.raises(BiomedError, match=f"in use by biomed process {sleeper.pid}"):
                tune(load_config("quickstart_tune"), folder)
        finally:
            sleeper.kill()
    assert sorted(p.name for p in folder.iterdir()) == [".biomed.lock"]   # nothing written, lock kept


def test_monitor_split_scores_trials_on_held_out_training_records():
    config = load_config(Path(__file__).parents[1] / "configs" / "quickstart_tune.yaml",
                         ["train.monitor_split=0.25"])
    splits = {"train": fake_splits(n=16)["train"], "val": fake_splits(n=4)["val"]}
    hypermodel = SuiteHyperModel(config, splits, tf.distribute.get_strategy())
    fitted, watched = set(hypermodel.train.record), set(hypermodel.val.record)
    assert len(watched) == 4 and not fitted & watched and fitted | watched == set(splits["train"].record)

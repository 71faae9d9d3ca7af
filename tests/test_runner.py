"""The runner on tiny synthetic data: every artefact written, metrics consistent, resume, guard rails."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines import runner
from pipelines.config import load_config
from pipelines.errors import BiomedError
from pipelines.runner import run_experiment, start_run_dir

TINY = {
    "name": "tiny",
    "seeds": [0],
    "data": {"source": "synthetic", "synthetic": {"n_records": 36, "duration_s": [10, 14], "seed": 1},
             "task": {"classes": ["rest", "A"], "positive": "A", "label_map": {"N": "rest", "O": "rest", "~": "rest"}},
             "preprocess": {"fs": 50, "bandpass": [0.5, 20], "window_s": 5, "stride_s": 5},
             "split": {"val": 0.25, "test": 0.25, "seed": 0}},
    "loader": {"batch_size": 16},
    "train": {"epochs": 1, "tensorboard": False, "verbose": 0},
    "models": ["expert_lr", {"type": "cnn", "params": {"filters": 4}}],
}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return load_config(path)


def test_run_writes_every_artefact_and_resumes(tiny_config, tmp_path, monkeypatch):
    run = run_experiment(tiny_config, tmp_path / "run")
    for name in ("config.yaml", "data_summary.json", "splits.csv", "metrics.csv", "summary.csv",
                 "report.md", "report.html", "figures/roc.png"):
        assert (run / name).is_file(), name
    for model, artefact in (("expert_lr", "model.skops"), ("cnn", "model.keras")):
        folder = run / "models" / model / "seed_0"
        for name in (artefact, "predictions.csv", "info.json"):
            assert (folder / name).is_file(), (model, name)
    assert (run / "models" / "cnn" / "seed_0" / "history.csv").is_file()

    metrics = pd.read_csv(run / "metrics.csv")
    assert sorted(zip(metrics["model"], metrics["level"])) == [
        ("cnn", "record"), ("cnn", "window"), ("expert_lr", "record"), ("expert_lr", "window")]
    assert metrics["roc_auc"].between(0, 1).all()
    predictions = pd.read_csv(run / "models" / "cnn" / "seed_0" / "predictions.csv", dtype={"record": str})
    splits = pd.read_csv(run / "splits.csv", dtype={"record": str})
    test_records = set(splits.loc[splits["split"] == "test", "record"])
    assert set(predictions.loc[predictions["split"] == "test", "record"]) == test_records
    np.testing.assert_allclose(predictions[["prob_rest", "prob_A"]].sum(axis=1), 1.0, atol=1e-5)
    info = json.loads((run / "models" / "cnn" / "seed_0" / "info.json").read_text())
    assert info["role"] == "deep" and info["epochs"] == 1 and info["params"]["filters"] == 4

    monkeypatch.setattr(runner, "fit_model", lambda *a, **k: pytest.fail("retrained a finished model"))
    before = (run / "metrics.csv").read_text()
    run_experiment(tiny_config, run)
    assert (run / "metrics.csv").read_text() == before


def test_run_folder_of_another_config_is_refused(tiny_config, tmp_path):
    start_run_dir(tiny_config, tmp_path / "run")
    tiny_config.seeds = [5]
    with pytest.raises(BiomedError, match="different config"):
        start_run_dir(tiny_config, tmp_path / "run")


def test_four_class_run_reports_cinc_score(tmp_path):
    four_class = {**TINY, "name": "tiny4",
                  "data": {**TINY["data"], "synthetic": {"n_records": 48, "duration_s": [10, 14], "seed": 2},
                           "task": {"classes": ["N", "A", "O", "~"]}}}
    path = tmp_path / "tiny4.yaml"
    path.write_text(yaml.safe_dump(four_class))
    run = run_experiment(load_config(path), tmp_path / "run")

    metrics = pd.read_csv(run / "metrics.csv")
    assert set(metrics["model"]) == {"expert_lr", "cnn"}
    for column in ("cinc_score", "macro_roc_auc", "f1_N", "f1_A", "f1_O", "f1_~"):
        assert metrics[column].notna().all(), column
    np.testing.assert_allclose(metrics["cinc_score"], metrics[["f1_N", "f1_A", "f1_O"]].mean(axis=1))
    predictions = pd.read_csv(run / "models" / "cnn" / "seed_0" / "predictions.csv", dtype={"record": str})
    np.testing.assert_allclose(predictions[["prob_N", "prob_A", "prob_O", "prob_~"]].sum(axis=1), 1.0, atol=1e-5)
    assert "CinC score" in (run / "report.md").read_text()

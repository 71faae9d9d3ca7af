"""The runner on tiny synthetic data: every artefact written, metrics consistent, resume, guard rails."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines import runner, training
from pipelines.cli import main as cli_main
from pipelines.config import load_config
from pipelines.errors import BiomedError
from pipelines.model_card import read_card
from pipelines.runner import run_experiment, start_run_dir
from pipelines.samples import SampleSet
from pipelines.splits import monitored_splits
from pipelines.training import fit_keras

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


def _windows_of(n_records: int, per_record: int = 3) -> SampleSet:
    """``per_record`` windows a record, the last one training-only; records alternate between two classes."""
    records = np.repeat([f"r{i:02d}" for i in range(n_records)], per_record)
    labels = np.repeat(np.arange(n_records) % 2, per_record)
    window = np.tile(np.arange(per_record), n_records)
    return SampleSet(np.zeros((len(records), 4), np.float32), labels, records, records, window, ["N", "A"],
                     fs=50.0, train_only=window == per_record - 1)


def test_monitor_split_holds_out_whole_stratified_training_records():
    splits = {"train": _windows_of(20), "val": _windows_of(4)}
    assert monitored_splits(splits, 0.0, split_seed=2)["val"] is splits["val"]

    parts = monitored_splits(splits, 0.2, split_seed=2)
    fitted, held = set(parts["train"].record), set(parts["val"].record)
    assert len(held) == 4 and not fitted & held and fitted | held == set(splits["train"].record)
    assert sorted(parts["val"].class_counts("record").values()) == [2, 2]
    assert not parts["val"].train_only.any()            # watched on evaluation windows only
    assert len(parts["train"]) == 3 * 16                 # fitting keeps the training-only windows
    assert set(monitored_splits(splits, 0.2, split_seed=2)["val"].record) == held
    others = [set(monitored_splits(splits, 0.2, split_seed=s)["val"].record) for s in range(3, 8)]
    assert any(o != held for o in others)


def test_monitor_split_keeps_validation_out_of_training(tiny_config, tmp_path, monkeypatch):
    watched = []

    def spy(model, phases, config, splits, **kwargs):
        watched.append({name: set(part.record) for name, part in splits.items()})
        return fit_keras(model, phases, config, splits, **kwargs)

    monkeypatch.setattr(training, "fit_keras", spy)
    tiny_config.train.monitor_split = 0.25
    run = run_experiment(tiny_config, tmp_path / "run")

    splits = pd.read_csv(run / "splits.csv", dtype={"record": str})
    train_records = set(splits.loc[splits["split"] == "train", "record"])
    (seen,) = watched
    assert seen["val"] and seen["val"] <= train_records and not seen["val"] & seen["train"]
    info = json.loads((run / "models" / "cnn" / "seed_0" / "info.json").read_text())
    assert info["monitor"] == {"split": "held-out train", "records": len(seen["val"]),
                               "record_ids": sorted(seen["val"])}   # which training records were held out
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["monitor_split"] == 0.25
    predictions = pd.read_csv(run / "models" / "cnn" / "seed_0" / "predictions.csv", dtype={"record": str})
    assert set(predictions["split"]) == {"val", "test"}   # validation is still predicted and scored


def test_monitor_split_must_be_a_fraction(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "monitor_split": 1.5}}))
    with pytest.raises(BiomedError, match=r"train.monitor_split: expected a number in \[0, 1\)"):
        load_config(path)


def test_refit_fits_again_on_train_and_val_and_predicts_test_with_it(tiny_config, tmp_path, monkeypatch):
    fits = []

    def spy(spec, entry, config, splits, seed, out_dir, predict=("val", "test")):
        fits.append((entry.label, set(splits["train"].record), predict))
        return fit_model(spec, entry, config, splits, seed, out_dir, predict)

    fit_model = runner.fit_model
    monkeypatch.setattr(runner, "fit_model", spy)
    tiny_config.train.monitor_split, tiny_config.train.refit = 0.25, True
    run = run_experiment(tiny_config, tmp_path / "run")

    splits = pd.read_csv(run / "splits.csv", dtype={"record": str})
    train, val = (set(splits.loc[splits["split"] == name, "record"]) for name in ("train", "val"))
    assert [(label, predict) for label, _, predict in fits] == [
        ("expert_lr", ("val",)), ("expert_lr", ("test",)), ("cnn", ("val",)), ("cnn", ("test",))]
    for _, records, predict in fits:
        assert records == (train if predict == ("val",) else train | val)
    folder = run / "models" / "cnn" / "seed_0"
    info = json.loads((folder / "info.json").read_text())
    assert info["refit"]["train_records"] == len(train | val) and info["refit"]["val_fit"]["epochs"] == 1
    predictions = pd.read_csv(folder / "predictions.csv", dtype={"record": str})
    val_fit = pd.read_csv(folder / "val_fit" / "predictions.csv", dtype={"record": str})
    assert set(val_fit["split"]) == {"val"}
    pd.testing.assert_frame_equal(predictions[predictions["split"] == "val"].reset_index(drop=True), val_fit)
    assert set(predictions.loc[predictions["split"] == "test", "record"]) == set(
        splits.loc[splits["split"] == "test", "record"])
    assert (folder / "model.keras").is_file() and (folder / "val_fit" / "model.keras").is_file()
    assert cli_main(["export", str(run), "--format", "skops", "--model", "expert_lr", "--seed", "0",
                     "--out", str(tmp_path / "export")]) == 0
    assert read_card(tmp_path / "export")["trained_on"].startswith("train + val")

    (folder / "info.json").unlink()                     # interrupted after the fit on train: only the refit reruns
    fits.clear()
    run_experiment(tiny_config, run)
    assert [(label, predict) for label, _, predict in fits] == [("cnn", ("test",))]


def test_refit_needs_records_for_early_stopping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "refit": True}}))
    with pytest.raises(BiomedError, match=r"train.refit: refitting on train \+ val needs train.monitor_split > 0"):
        load_config(path)

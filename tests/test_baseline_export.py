"""Expert baselines deployed: skops export with its card, predict parity with the run, the type allow-list."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_tiny_experiment
from pipelines.cli import main
from pipelines.errors import BiomedError
from pipelines.export import load_skops_model
from pipelines.model_card import SELECTION_NOTE, read_card
from pipelines.predict import SklearnPredictor, load_predictor

PARITY_ATOL = 1e-6   # same code path as the run's own test predictions (float32 probabilities)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny run of both expert baselines: 30 synthetic 20 s records at 100 Hz, 5 s windows at 50 Hz.

    20 s records cut into exactly four non-overlapping windows, so predict's covering windows are the
    training windows and per-record means are comparable.
    """
    from pipelines.config import load_config
    from pipelines.runner import run_experiment

    base = tmp_path_factory.mktemp("baselines")
    config_file = write_tiny_experiment(base, ["expert_lr", {"type": "expert_rf", "params": {"n_estimators": 20}}],
                                        duration_s=(20, 20), seed=1)
    return run_experiment(load_config(config_file), base / "run")


def test_skops_export_predicts_exactly_the_runs_test_probabilities(run_dir, tmp_path):
    out = tmp_path / "export"
    assert main(["export", str(run_dir), "--format", "skops", "--out", str(out)]) == 0
    card = read_card(out)
    assert card["format"] == "skops" and (out / "model.skops").is_file() and card["selection"] == SELECTION_NOTE
    assert card["input"]["shape"] == [None, 250, 1] and card["classes"] == ["N", "A"]
    assert card["trained_on"] == "train"
    metrics = pd.read_csv(run_dir / "metrics.csv")
    row = metrics[(metrics["model"] == card["model"]) & (metrics["level"] == "record")].iloc[0]
    assert card["threshold"] == pytest.approx(row["threshold"])

    run_predictions = pd.read_csv(run_dir / "models" / card["model"] / "seed_0" / "predictions.csv",
                                  dtype={"record": str})
    test = run_predictions[run_predictions["split"] == "test"]
    records = sorted(set(test["record"]))
    assert len(records) >= 3
    scored = tmp_path / "scored.csv"
    assert main(["predict", str(out), *[str(run_dir.parent / "data" / r) for r in records],
                 "--out", str(scored), "--per-window"]) == 0

    got = pd.read_csv(scored, dtype={"record": str}).set_index("record").loc[records]
    expected = test.groupby("record")[["prob_N", "prob_A"]].mean().loc[records]
    assert (got["n_windows"] == 4).all()
    np.testing.assert_allclose(got[["prob_N", "prob_A"]], expected, atol=PARITY_ATOL)
    assert (got["predicted"] == np.where(expected["prob_A"] >= card["threshold"], "A", "N")).all()
    windows = pd.read_csv(tmp_path / "scored_windows.csv", dtype={"record": str})
    merged = windows.merge(test, on=["record", "window"], suffixes=("", "_run"))
    assert len(merged) == len(test)
    np.testing.assert_allclose(merged[["prob_N", "prob_A"]], merged[["prob_N_run", "prob_A_run"]],
                               atol=PARITY_ATOL)


def test_chosen_model_and_given_model(run_dir, tmp_path):
    assert main(["export", str(run_dir), "--format", "skops", "--model", "expert_lr", "--seed", "0",
                 "--out", str(tmp_path / "lr")]) == 0
    card = read_card(tmp_path / "lr")
    assert card["model"] == "expert_lr" and card["selection"] == "given --model/--seed"
    predictor, _ = load_predictor(tmp_path / "lr")
    assert isinstance(predictor, SklearnPredictor)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "keras")]) == 2   # the run has no Keras model


class Untrusted:
    """A class no plugin registered: a skops file holding it must not load."""

    def __init__(self) -> None:
        self.value = 1


def test_untrusted_types_are_refused(run_dir, tmp_path, capsys):
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    export = tmp_path / "export"
    assert main(["export", str(run_dir), "--format", "skops", "--out", str(export)]) == 0
    model = load_skops_model(export / "model.skops")
    # skops itself trusts SVC by default; biomed's allow-list does not.
    for evil, name in ((Pipeline([("svc", SVC())]), "sklearn.svm._classes.SVC"),
                       ({"model": model, "extra": Untrusted()}, "test_baseline_export.Untrusted")):
        skops.io.dump(evil, tmp_path / "evil.skops")
        with pytest.raises(BiomedError, match=f"allow-list: .*{name}"):
            load_skops_model(tmp_path / "evil.skops")
        shutil.copyfile(tmp_path / "evil.skops", export / "model.skops")
        capsys.readouterr()
        assert main(["predict", str(export), str(run_dir.parent / "data"), "--out", str(tmp_path / "p.csv")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("biomed: error:") and name in err and len(err.strip().splitlines()) == 1
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(BiomedError, match="not a skops file"):
        load_skops_model(tmp_path / "junk.skops")

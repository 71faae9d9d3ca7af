"""Record context: the record_expert_features side input, expert_rf_record, and predict computing side
inputs over whole records (never per batch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import write_tiny_experiment
from ecgnet.context import RECORD_FEATURES_INPUT, record_expert_features, record_means
from ecgnet.features import ECGFeatureExtractor, expert_feature_matrix
from pipelines.cli import main
from pipelines.errors import BiomedError
from pipelines.model_card import read_card
from pipelines.predict import SklearnPredictor, load_predictor, predict_inputs
from pipelines.side_inputs import MAIN_INPUT, compute_side_input

PARITY_ATOL = 1e-6   # the run's test predictions and predict share the code path (float32 probabilities)
FS = 50.0


def test_record_means_average_the_rows_of_each_record():
    values = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 0.0], [7.0, 2.0]])
    got = record_means(values, np.array(["b", "a", "b", "b"]))
    np.testing.assert_allclose(got, [[13 / 3, 4.0], [3.0, 30.0], [13 / 3, 4.0], [13 / 3, 4.0]], rtol=1e-6)
    assert got.dtype == np.float32


def test_record_expert_features_are_the_mean_window_features_of_the_record():
    windows = np.random.default_rng(0).normal(size=(5, 250)).astype(np.float32)
    records = np.array([0, 0, 1, 1, 1])
    features = expert_feature_matrix(windows, FS).astype(np.float64)
    got = compute_side_input(RECORD_FEATURES_INPUT, windows, FS, records)
    # float64 means rounded once to float32: within float32's relative precision
    np.testing.assert_allclose(got[:2], np.repeat(features[:2].mean(0, keepdims=True), 2, axis=0), rtol=1e-6)
    np.testing.assert_allclose(got[2:], np.repeat(features[2:].mean(0, keepdims=True), 3, axis=0), rtol=1e-6)
    # without record ids every window is its own record
    np.testing.assert_array_equal(compute_side_input(RECORD_FEATURES_INPUT, windows, FS), features.astype(np.float32))
    with pytest.raises(BiomedError, match="4 record ids for 5 samples"):
        compute_side_input(RECORD_FEATURES_INPUT, windows, FS, records[:4])


def test_feature_extractor_appends_its_side_inputs_and_names_what_is_missing():
    windows = np.random.default_rng(1).normal(size=(3, 250)).astype(np.float32)
    side = np.arange(6, dtype=np.float32).reshape(3, 2)
    extractor = ECGFeatureExtractor(fs=FS, n_jobs=1, side_inputs=("context",))
    got = extractor.fit({MAIN_INPUT: windows, "context": side}).transform({MAIN_INPUT: windows, "context": side})
    np.testing.assert_array_equal(got, np.hstack([ECGFeatureExtractor(fs=FS, n_jobs=1).fit_transform(windows), side]))
    assert extractor.n_features_in_ == 250
    with pytest.raises(ValueError, match=r"missing \['context'\]"):
        extractor.transform({MAIN_INPUT: windows})
    with pytest.raises(ValueError, match="expected a dict"):
        extractor.transform(windows)
    with pytest.raises(ValueError, match=r"\[2\] rows for 3 windows"):
        extractor.transform({MAIN_INPUT: windows, "context": side[:2]})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny run of expert_rf_record and expert_lr with their ensemble: 20 s records, four 5 s windows each,
    so predict's windows are the evaluation windows and the record context is the same."""
    from pipelines.config import load_config
    from pipelines.runner import run_experiment

    base = tmp_path_factory.mktemp("context")
    config_file = write_tiny_experiment(base, [{"type": "expert_rf_record", "params": {"n_estimators": 20}},
                                               "expert_lr"], duration_s=(20, 20), seed=3)
    raw = yaml.safe_load(config_file.read_text())
    raw["ensembles"] = [{"name": "pair", "members": ["expert_rf_record", "expert_lr"]}]
    config_file.write_text(yaml.safe_dump(raw))
    return run_experiment(load_config(config_file), base / "run")


def _test_records(run_dir: Path, model: str) -> tuple[pd.DataFrame, list[str]]:
    predictions = pd.read_csv(run_dir / "models" / model / "seed_0" / "predictions.csv", dtype={"record": str})
    test = predictions[predictions["split"] == "test"]
    return test, sorted(set(test["record"]))


@pytest.mark.parametrize("model, fmt", [("expert_rf_record", "skops"), ("pair", "ensemble")])
def test_export_predicts_the_runs_test_probabilities_with_record_context(run_dir, tmp_path, model, fmt):
    out = tmp_path / "export"
    assert main(["export", str(run_dir), "--format", fmt, "--model", model, "--seed", "0", "--out", str(out)]) == 0
    member = out if fmt == "skops" else out / "members" / "expert_rf_record"
    assert read_card(member)["side_inputs"] == [RECORD_FEATURES_INPUT]
    test, records = _test_records(run_dir, model)
    assert len(records) >= 3
    scored = tmp_path / "scored.csv"
    # batches of 3 windows split every record of 4 windows: the context must still be the whole record's
    assert main(["predict", str(out), *[str(run_dir.parent / "data" / r) for r in records],
                 "--out", str(scored), "--batch-size", "3"]) == 0
    got = pd.read_csv(scored, dtype={"record": str}).set_index("record").loc[records]
    expected = test.groupby("record")[["prob_N", "prob_A"]].mean().loc[records]
    assert (got["n_windows"] == 4).all()
    np.testing.assert_allclose(got[["prob_N", "prob_A"]], expected, atol=PARITY_ATOL)


class Recording:
    """A predictor taking record context that records the side inputs it is given."""

    input_shape, n_outputs, side_inputs = (None, 250, 1), 2, [RECORD_FEATURES_INPUT]

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, x: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        self.seen.append(side[RECORD_FEATURES_INPUT])
        return np.full((len(x), 2), 0.5, np.float32)


def test_predict_computes_side_inputs_over_each_whole_record(run_dir, tmp_path):
    from ecgnet.inputs import record_windows

    out = tmp_path / "export"
    assert main(["export", str(run_dir), "--format", "skops", "--model", "expert_rf_record", "--seed", "0",
                 "--out", str(out)]) == 0
    card = read_card(out)
    _, records = _test_records(run_dir, "expert_rf_record")
    paths = [run_dir.parent / "data" / r for r in records[:2]]
    recording = Recording()
    predict_inputs(recording, card, [str(p) for p in paths], tmp_path / "p.csv", batch_size=3)
    seen = np.concatenate(recording.seen)
    expected = np.concatenate([np.repeat(expert_feature_matrix(w, FS).astype(np.float64).mean(0, keepdims=True),
                                         len(w), axis=0) for w in (record_windows(p, card) for p in paths)])
    assert [len(s) for s in recording.seen] == [3, 3, 2]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    predictor, _ = load_predictor(out)
    assert isinstance(predictor, SklearnPredictor) and predictor.side_inputs == [RECORD_FEATURES_INPUT]
    with pytest.raises(BiomedError, match=r"reads the side inputs \['record_expert_features'\], its card lists \[\]"):
        SklearnPredictor(out / "model.skops", card["input"]["shape"], 2, side_inputs=[], fs=FS)

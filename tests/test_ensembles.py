"""Ensembles across a run's models: averaged predictions, evaluation, resume, export and predict parity."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from conftest import write_tiny_experiment
from pipelines.cli import main
from pipelines.errors import BiomedError, ConfigError
from pipelines.export import _run_fields, ensemble_source
from pipelines.model_card import read_card
from pipelines.predict import EnsemblePredictor, load_predictor

# The members' float32 probabilities are averaged in float64 by the run and in float32 by predict;
# Keras may batch the windows differently in the two, so allow float32 rounding of a sum of two terms.
PARITY_ATOL = 1e-5
MODELS = [{"type": "expert_rf", "params": {"n_estimators": 20}},
          {"type": "hybrid_cnn", "params": {"filters": 4, "depth": 2, "feature_units": 8}}]
ENSEMBLE = {"name": "rf_hybrid", "members": ["expert_rf", "hybrid_cnn"], "weights": [3, 1]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny run of a forest and a hybrid network with their weighted ensemble (20 s records, 5 s windows, 2 seeds)."""
    from pipelines.config import load_config
    from pipelines.runner import run_experiment

    base = tmp_path_factory.mktemp("ensembles")
    config_file = write_tiny_experiment(base, MODELS, duration_s=(20, 20), seed=2)
    raw = yaml.safe_load(config_file.read_text())
    config_file.write_text(yaml.safe_dump({**raw, "seeds": [0, 1], "ensembles": [ENSEMBLE]}))
    return run_experiment(load_config(config_file), base / "run")


def _predictions(run_dir: Path, label: str, seed: int = 0) -> pd.DataFrame:
    return pd.read_csv(run_dir / "models" / label / f"seed_{seed}" / "predictions.csv", dtype={"record": str})


def test_ensemble_is_the_weighted_mean_of_its_members_and_is_evaluated(run_dir):
    forest, network, ensemble = (_predictions(run_dir, m) for m in ("expert_rf", "hybrid_cnn", "rf_hybrid"))
    assert len(ensemble) == len(forest) > 0
    np.testing.assert_array_equal(ensemble[["split", "record", "window"]], forest[["split", "record", "window"]])
    np.testing.assert_allclose(ensemble[["prob_N", "prob_A"]],
                               0.75 * forest[["prob_N", "prob_A"]] + 0.25 * network[["prob_N", "prob_A"]],
                               atol=1e-12)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    rows = metrics[metrics["model"] == "rf_hybrid"]
    assert set(rows["level"]) == {"window", "record"} and set(rows["role"]) == {"ensemble"}
    assert rows["roc_auc"].between(0, 1).all()
    assert "rf_hybrid" in (run_dir / "report.md").read_text()


def test_exported_ensemble_predicts_the_runs_test_probabilities(run_dir, tmp_path):
    out = tmp_path / "export"
    assert main(["export", str(run_dir), "--format", "ensemble", "--seed", "0", "--out", str(out)]) == 0
    card = read_card(out)
    assert card["format"] == "ensemble" and card["model"] == "rf_hybrid"
    assert [(m["model"], m["format"], m["weight"]) for m in card["members"]] == [
        ("expert_rf", "skops", 0.75), ("hybrid_cnn", "keras", 0.25)]
    assert (out / "members" / "expert_rf" / "model.skops").is_file()
    assert read_card(out / "members" / "hybrid_cnn")["side_inputs"] == ["expert_features"]
    predictor, _ = load_predictor(out)
    assert isinstance(predictor, EnsemblePredictor)

    test = _predictions(run_dir, "rf_hybrid").query("split == 'test'")
    records = sorted(set(test["record"]))
    scored = tmp_path / "scored.csv"
    assert main(["predict", str(out), *[str(run_dir.parent / "data" / r) for r in records],
                 "--out", str(scored)]) == 0
    got = pd.read_csv(scored, dtype={"record": str}).set_index("record").loc[records]
    expected = test.groupby("record")[["prob_N", "prob_A"]].mean().loc[records]
    np.testing.assert_allclose(got[["prob_N", "prob_A"]], expected, atol=PARITY_ATOL)


def _seed_mean(run_dir: Path, weighted: dict[tuple[str, int], float]) -> pd.DataFrame:
    """The weighted mean of members' stored window probabilities (the seed ensemble, computed by hand)."""
    parts = [w * _predictions(run_dir, model, seed)[["prob_N", "prob_A"]] for (model, seed), w in weighted.items()]
    frame = _predictions(run_dir, "expert_rf")[["split", "record", "y_true"]].copy()
    frame[["prob_N", "prob_A"]] = sum(parts) / sum(weighted.values())
    return frame


def _validation_threshold(frame: pd.DataFrame) -> float:
    """The F1-best record-level threshold on the validation records, computed by hand."""
    from pipelines.metrics import choose_threshold

    val = frame.query("split == 'val'").groupby("record").agg(y=("y_true", "first"), p=("prob_A", "mean"))
    return choose_threshold((val["y"] == 1).to_numpy(), val["p"].to_numpy())


def _test_record_probs(frame: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    test = frame.query("split == 'test'")
    records = sorted(set(test["record"]))
    return records, test.groupby("record")[["prob_N", "prob_A"]].mean().loc[records]


def test_seed_ensemble_of_a_config_ensemble_exports_every_seed_with_a_validation_threshold(run_dir, tmp_path):
    out = tmp_path / "seeds"
    assert main(["export", str(run_dir), "--ensemble", "rf_hybrid", "--format", "ensemble", "--out", str(out)]) == 0
    card = read_card(out)
    weights = {(m["model"], m["seed"]): m["weight"] for m in card["members"]}
    assert weights == pytest.approx({("expert_rf", 0): 0.375, ("expert_rf", 1): 0.375,
                                     ("hybrid_cnn", 0): 0.125, ("hybrid_cnn", 1): 0.125})
    assert (out / "members" / "hybrid_cnn" / "seed_1" / "model.keras").is_file()
    assert card["seed"] is None and card["model"] == "ensemble(rf_hybrid)"

    mean = _seed_mean(run_dir, weights)
    assert card["threshold"] == pytest.approx(_validation_threshold(mean))
    assert 0 <= card["test_metrics"]["record"]["roc_auc"] <= 1

    records, expected = _test_record_probs(mean)
    scored = tmp_path / "scored.csv"
    assert main(["predict", str(out), *[str(run_dir.parent / "data" / r) for r in records],
                 "--out", str(scored)]) == 0
    got = pd.read_csv(scored, dtype={"record": str}).set_index("record").loc[records]
    np.testing.assert_allclose(got[["prob_N", "prob_A"]], expected, atol=2 * PARITY_ATOL)
    decided = np.where(expected["prob_A"] >= card["threshold"], "A", "N")
    near = np.isclose(expected["prob_A"], card["threshold"], atol=2 * PARITY_ATOL)
    assert (got["predicted"].to_numpy() == decided)[~near].all()


def test_keras_members_of_an_ensemble_share_the_side_inputs_of_a_batch(run_dir, tmp_path, monkeypatch):
    from pipelines import plugins

    out = tmp_path / "seeds"
    assert main(["export", str(run_dir), "--ensemble", "hybrid_cnn", "--format", "ensemble", "--out", str(out)]) == 0
    predictor, _ = load_predictor(out)
    x = np.random.default_rng(0).normal(size=(6, *predictor.input_shape[1:])).astype(np.float32)
    alone = [member.predict(x) for member in predictor.members]
    features = plugins.SIDE_INPUTS.get("expert_features")
    calls = []
    monkeypatch.setitem(plugins.SIDE_INPUTS._entries, "expert_features",
                        lambda windows, fs, records: calls.append(len(windows)) or features(windows, fs, records))
    together = predictor.predict(x)
    assert calls == [6]
    np.testing.assert_allclose(together, 0.5 * alone[0] + 0.5 * alone[1], atol=1e-6)


def test_keras_seed_ensemble_card_has_the_threshold_of_its_averaged_seeds(run_dir, tmp_path):
    source = ensemble_source(run_dir, ["hybrid_cnn"])
    assert [(m.model, m.seed, m.weight) for m in source.members] == [("hybrid_cnn", 0, 1.0), ("hybrid_cnn", 1, 1.0)]
    fields = _run_fields(source)
    mean = _seed_mean(run_dir, {("hybrid_cnn", 0): 1.0, ("hybrid_cnn", 1): 1.0})
    assert fields["threshold"] == pytest.approx(_validation_threshold(mean))
    test = mean.query("split == 'test'").groupby("record").agg(y=("y_true", "first"), p=("prob_A", "mean"))
    assert fields["test_metrics"]["record"]["roc_auc"] == pytest.approx(roc_auc_score(test["y"], test["p"]))


@pytest.mark.parametrize("args, message", [
    (["--ensemble", "rf_hybrid"], "no trained Keras model rf_hybrid"),
    (["--ensemble", "hybrid_cnn"], "export the seed ensemble with --format ensemble"),
    (["--ensemble", "expert_rf", "--format", "skops"], "not skops"),
    (["--ensemble", "nope", "--format", "ensemble"], "no trained model or ensemble nope"),
])
def test_seed_ensembles_of_what_a_format_cannot_hold_are_refused(run_dir, tmp_path, capsys, args, message):
    assert main(["export", str(run_dir), *args, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_seed_ensemble_of_one_member_is_refused_at_export(run_dir, tmp_path, capsys):
    one_seed = tmp_path / "run"
    shutil.copytree(run_dir, one_seed)
    shutil.rmtree(one_seed / "models" / "hybrid_cnn" / "seed_1")
    args = ["export", str(one_seed), "--format", "ensemble", "--ensemble", "hybrid_cnn", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    assert "hybrid_cnn has one trained model x seed; an ensemble needs at least two" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_export_and_predict_refuse_what_is_not_an_ensemble(run_dir, tmp_path):
    assert main(["export", str(run_dir), "--format", "ensemble", "--model", "hybrid_cnn",
                 "--out", str(tmp_path / "x")]) == 2
    out = tmp_path / "export"
    assert main(["export", str(run_dir), "--format", "ensemble", "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    card["members"] = card["members"][:1]
    (out / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(BiomedError, match="members: expected at least two"):
        load_predictor(out)


def test_resume_adds_an_ensemble_without_retraining_and_refuses_a_changed_model(run_dir, tmp_path):
    from pipelines.config import load_config
    from pipelines.runner import run_experiment

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    trained = copy / "models" / "hybrid_cnn" / "seed_0" / "model.keras"
    before = trained.stat().st_mtime_ns
    config_file = tmp_path / "more.yaml"
    raw = yaml.safe_load((run_dir / "config.yaml").read_text())
    raw["ensembles"].append({"name": "equal", "members": ["expert_rf", "hybrid_cnn"], "weights": None})
    config_file.write_text(yaml.safe_dump(raw))
    run_experiment(load_config(config_file), copy)
    assert trained.stat().st_mtime_ns == before
    assert {"rf_hybrid", "equal"} <= set(pd.read_csv(copy / "metrics.csv")["model"])

    raw["models"][1]["params"]["filters"] = 8
    config_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(BiomedError, match="'hybrid_cnn' differs from the one this run folder was trained with"):
        run_experiment(load_config(config_file), copy)


@pytest.mark.parametrize("ensemble, message", [
    ({"name": "e", "members": ["expert_rf", "mina"]}, r"\['mina'\] are not models of this config"),
    ({"name": "expert_rf", "members": ["expert_rf", "hybrid_cnn"]}, "already the name of a model"),
    ({"name": "e", "members": ["expert_rf"]}, "at least two distinct model names"),
    ({"name": "e", "members": ["expert_rf", "hybrid_cnn"], "weights": [1]}, "2 positive numbers"),
])
def test_bad_ensembles_are_config_errors(tmp_path, ensemble, message):
    from pipelines.config import load_config

    config_file = write_tiny_experiment(tmp_path, MODELS)
    raw = yaml.safe_load(config_file.read_text())
    config_file.write_text(yaml.safe_dump({**raw, "ensembles": [ensemble]}))
    with pytest.raises(ConfigError, match=message):
        load_config(config_file)
    assert not os.path.exists(tmp_path / "run")


def test_overriding_models_leaves_out_ensembles_of_missing_members():
    from pipelines.config import load_config

    assert [e.name for e in load_config("quickstart").ensembles] == ["rf_hybrid"]
    assert load_config("quickstart", ["models=[cnn]"]).ensembles == []
    kept = load_config("quickstart", ["models=[expert_rf, hybrid_cnn]"]).ensembles
    assert [e.members for e in kept] == [["expert_rf", "hybrid_cnn"]]
    with pytest.raises(ConfigError, match="are not models of this config"):
        load_config("quickstart", ["models=[cnn]", "ensembles=[{name: e, members: [cnn, mina]}]"])


def test_predict_refuses_members_trained_on_another_feature_set(run_dir, tmp_path, monkeypatch):
    """An export from a biomed whose expert features had another width fails with a clear message, not inside Keras or scikit-learn."""
    from ecgnet.features import ECGFeatureExtractor

    out = tmp_path / "export"
    assert main(["export", str(run_dir), "--format", "ensemble", "--seed", "0", "--out", str(out)]) == 0
    network, _ = load_predictor(out / "members" / "hybrid_cnn")
    forest, _ = load_predictor(out / "members" / "expert_rf")
    x = np.random.default_rng(0).normal(size=(3, *network.input_shape[1:])).astype(np.float32)
    width = network.side_shapes["expert_features"][0]
    assert network.predict(x).shape == forest.predict(x).shape == (3, 2)
    with pytest.raises(BiomedError, match=rf"expert_features of shape \[{width}\] per sample, this biomed computes "
                                          rf"\[{width + 1}\].*retrain and export it"):
        network.predict(x, {"expert_features": np.zeros((3, width + 1), np.float32)})

    one_more = ECGFeatureExtractor._window_features
    monkeypatch.setattr(ECGFeatureExtractor, "_window_features",
                        lambda self, windows: np.hstack([one_more(self, windows), np.zeros((len(windows), 1))]))
    with pytest.raises(BiomedError, match=r"expert_rf.*features of its first step \('features'\) of shape "
                                          rf"\[{width}\] per sample, this biomed computes \[{width + 1}\]"):
        forest.predict(x)

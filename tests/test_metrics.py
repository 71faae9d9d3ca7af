"""Metrics agree with scikit-learn; thresholds come from validation; bootstrap behaves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score,
                             precision_score, recall_score, roc_auc_score)

from pipelines.metrics import (binary_metrics, bootstrap_auc_difference, choose_threshold, evaluate_predictions,
                               multiclass_metrics, summarise, weighted_curve_metric)
from pipelines.predictions import Predictions, Task

RNG = np.random.default_rng(42)
Y = RNG.integers(0, 2, 200)
SCORE = np.clip(RNG.normal(0.35 + 0.3 * Y, 0.2), 0, 1)


def _evaluate(frame: pd.DataFrame, classes: list[str], positive: str | None) -> list[dict]:
    return evaluate_predictions(Predictions.from_frame(frame, Task.of(classes, positive)))


def _predictions(split: str, y: list[int], p_pos: list[float], records: list[str] | None = None
                 ) -> pd.DataFrame:
    """A binary predictions frame (classes N, A) with one window per record unless records given."""
    records = records or [f"{split}{i}" for i in range(len(y))]
    frame = pd.DataFrame({"split": split, "record": records, "y_true": y,
                          "prob_N": 1 - np.asarray(p_pos), "prob_A": p_pos})
    frame.insert(2, "window", frame.groupby("record").cumcount())
    return frame


def test_binary_metrics_match_sklearn():
    result = binary_metrics(Y, SCORE, 0.5)
    y_pred = (SCORE >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(Y, y_pred).ravel()
    assert result["roc_auc"] == pytest.approx(roc_auc_score(Y, SCORE))
    assert result["pr_auc"] == pytest.approx(average_precision_score(Y, SCORE))
    assert result["f1"] == pytest.approx(f1_score(Y, y_pred))
    assert result["sensitivity"] == pytest.approx(recall_score(Y, y_pred))
    assert result["specificity"] == pytest.approx(recall_score(Y, y_pred, pos_label=0))
    assert result["precision"] == pytest.approx(precision_score(Y, y_pred))
    assert result["accuracy"] == pytest.approx(accuracy_score(Y, y_pred))
    assert (result["tn"], result["fp"], result["fn"], result["tp"]) == (tn, fp, fn, tp)
    assert result["threshold"] == 0.5


def test_binary_metrics_single_class_gives_nan_aucs():
    result = binary_metrics(np.zeros(5), np.linspace(0, 1, 5), 0.5)
    assert np.isnan(result["roc_auc"]) and np.isnan(result["pr_auc"])
    assert np.isnan(result["sensitivity"])
    assert result["specificity"] == pytest.approx(0.4)
    assert result["fp"] == 3


def test_choose_threshold_maximises_f1():
    threshold = choose_threshold(Y, SCORE)
    best = f1_score(Y, SCORE >= threshold)
    assert all(best >= f1_score(Y, SCORE >= t) - 1e-12 for t in np.unique(SCORE))
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.225)
    assert choose_threshold([1, 1, 1], [0.2, 0.3, 0.9]) == 0.5


def test_threshold_is_chosen_on_val_not_test():
    val = _predictions("val", [0, 0, 1], [0.1, 0.55, 0.58])
    test = _predictions("test", [0, 0, 1, 1], [0.3, 0.4, 0.5, 0.6])
    assert choose_threshold([0, 0, 1, 1], [0.3, 0.4, 0.5, 0.6]) == pytest.approx(0.45)
    rows = _evaluate(pd.concat([val, test]), ["N", "A"], "A")
    assert [r["level"] for r in rows] == ["window", "record"]
    for row in rows:
        assert row["threshold"] == pytest.approx(0.565)
        assert (row["tn"], row["fp"], row["fn"], row["tp"]) == (2, 0, 1, 1)
        assert row["f1"] == pytest.approx(f1_score([0, 0, 1, 1], [0, 0, 0, 1]))
        assert row["roc_auc"] == pytest.approx(1.0)


def test_evaluate_predictions_without_val_rows_uses_half():
    test = _predictions("test", [0, 1, 1], [0.2, 0.45, 0.9])
    row = _evaluate(test, ["N", "A"], "A")[1]
    assert row["threshold"] == 0.5 and row["tp"] == 1 and row["fn"] == 1


def test_positive_class_selects_the_score_column():
    test = _predictions("test", [0, 1, 0, 1], [0.2, 0.9, 0.6, 0.4])
    row = _evaluate(test, ["N", "A"], "N")[0]
    assert row["roc_auc"] == pytest.approx(roc_auc_score([1, 0, 1, 0], [0.8, 0.1, 0.4, 0.6]))


def test_by_record_means_windows():
    frame = _predictions("test", [1, 1, 1, 0, 0], [0.2, 0.4, 0.9, 0.1, 0.3],
                         records=["r1", "r1", "r1", "r2", "r2"])
    records = Predictions.from_frame(frame, Task.of(["N", "A"], "A")).by_record()
    assert list(records.record) == ["r1", "r2"] and list(records.window) == [3, 2]
    assert list(records.y_true) == [1, 0]
    np.testing.assert_allclose(records.probs, [[0.5, 0.5], [0.8, 0.2]])
    row = _evaluate(frame, ["N", "A"], "A")[1]
    assert row["tp"] + row["fn"] == 1 and row["tn"] + row["fp"] == 1


def test_multiclass_metrics_match_sklearn():
    classes = ["N", "A", "O", "~"]
    y = RNG.integers(0, 4, 300)
    logits = RNG.normal(size=(300, 4)) + 1.5 * np.eye(4)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = multiclass_metrics(y, probs, classes)
    y_pred = probs.argmax(axis=1)
    per_class = f1_score(y, y_pred, average=None)
    assert result["macro_f1"] == pytest.approx(f1_score(y, y_pred, average="macro"))
    assert result["accuracy"] == pytest.approx(accuracy_score(y, y_pred))
    assert result["f1_O"] == pytest.approx(per_class[2])
    assert result["cinc_score"] == pytest.approx(per_class[:3].mean())
    assert result["macro_roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    np.testing.assert_array_equal(result["confusion_matrix"], confusion_matrix(y, y_pred))
    assert "cinc_score" not in multiclass_metrics(y % 3, probs[:, :3], ["a", "b", "c"])


def test_evaluate_predictions_multiclass_rows_are_flat():
    y = [0, 1, 2, 2]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    frame = pd.DataFrame({"split": "test", "record": list("abcd"), "window": 0, "y_true": y,
                          **{f"prob_{c}": probs[:, k] for k, c in enumerate("NAO")}})
    rows = _evaluate(frame, ["N", "A", "O"], None)
    assert all(np.ndim(v) == 0 for row in rows for v in row.values())
    assert rows[1]["accuracy"] == pytest.approx(0.75)
    assert rows[1]["cinc_score"] == pytest.approx(f1_score(y, [0, 1, 2, 0], average="macro"))
    assert "threshold" not in rows[1]
    predictions = Predictions.from_frame(frame, Task.of(["N", "A", "O"]))
    assert list(predictions.decide()) == [0, 1, 2, 0]


def test_summarise_mean_and_std_over_seeds():
    metrics = pd.DataFrame({"model": ["m", "m", "m", "m", "b"], "role": ["deep"] * 4 + ["baseline"],
                            "seed": [0, 1, 0, 1, 0],
                            "level": ["window", "window", "record", "record", "record"],
                            "roc_auc": [0.8, 0.9, 0.7, 0.75, 0.6], "f1": [0.5, 0.7, 0.4, 0.4, 0.3]})
    summary = summarise(metrics)
    row = summary[(summary["model"] == "m") & (summary["level"] == "window")].iloc[0]
    assert row["roc_auc_mean"] == pytest.approx(0.85)
    assert row["roc_auc_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert row["n_seeds"] == 2
    assert "seed_mean" not in summary.columns
    single = summary[summary["model"] == "b"].iloc[0]
    assert single["n_seeds"] == 1 and np.isnan(single["f1_std"])


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_weighted_curve_metric_matches_sklearn_sample_weight(metric):
    score = np.round(SCORE, 1)  # ties
    weights = RNG.multinomial(Y.size, np.full(Y.size, 1 / Y.size), size=4)
    reference = roc_auc_score if metric == "roc_auc" else average_precision_score
    expected = [reference(Y, score, sample_weight=w) for w in weights]
    np.testing.assert_allclose(weighted_curve_metric(Y, score, weights, metric), expected)


def test_bootstrap_identical_scores_give_zero_difference():
    result = bootstrap_auc_difference(Y, SCORE, SCORE, n_boot=200)
    assert result["diff"] == 0
    assert result["ci_low"] <= 0 <= result["ci_high"]
    assert result["p_value"] == 1.0


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_bootstrap_clearly_better_score_excludes_zero(metric):
    noisy = np.clip(SCORE + RNG.normal(0, 0.4, SCORE.size), 0, 1)
    result = bootstrap_auc_difference(Y, SCORE, noisy, n_boot=500, metric=metric)
    reference = roc_auc_score if metric == "roc_auc" else average_precision_score
    assert result["diff"] == pytest.approx(reference(Y, SCORE) - reference(Y, noisy))
    assert 0 < result["ci_low"] < result["diff"] < result["ci_high"]
    assert result["p_value"] < 0.01
    assert bootstrap_auc_difference(Y, SCORE, noisy, n_boot=500, metric=metric) == result


def test_bootstrap_keeps_every_two_class_resample_and_validates_metric():
    y = RNG.integers(0, 2, 2000)
    score = RNG.random(2000) + 0.2 * y
    result = bootstrap_auc_difference(y, score, RNG.random(2000), n_boot=2000)
    assert result["n_boot"] == 2000
    with pytest.raises(ValueError, match="metric"):
        bootstrap_auc_difference(y, score, score, metric="f1")


def test_task_and_decisions():
    assert Task.of(["N", "A"]).positive == 1 and Task.of(["A", "N"], "A").positive == 0
    assert Task.of(["N", "A", "O"]).positive is None and not Task.of(["N", "A", "O"]).binary
    frame = _predictions("test", [0, 1, 1], [0.2, 0.45, 0.9])
    predictions = Predictions.from_frame(frame, Task.of(["N", "A"], "A"))
    assert list(predictions.decide(0.4)) == [0, 1, 1] and list(predictions.decide(0.5)) == [0, 0, 1]
    pd.testing.assert_frame_equal(predictions.to_frame(), frame, check_dtype=False)


def _biased_multiclass(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four classes whose probabilities understate class A (index 1) by a factor of 4: argmax misses most A."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, n, p=[0.5, 0.2, 0.25, 0.05])
    logits = rng.normal(size=(n, 4)) + 2.0 * np.eye(4)[y]
    probs = np.exp(logits) * np.array([1.0, 0.25, 1.0, 1.0])
    return y, probs / probs.sum(axis=1, keepdims=True)


def _multiclass_predictions(classes: list[str], **splits: tuple[np.ndarray, np.ndarray]) -> Predictions:
    """One window per record, for each ``split=(labels, probabilities)``."""
    frame = pd.concat([pd.DataFrame({"split": s, "record": [f"{s}{i}" for i in range(len(y))], "window": 0,
                                     "y_true": y, **{f"prob_{c}": p[:, k] for k, c in enumerate(classes)}})
                       for s, (y, p) in splits.items()])
    return Predictions.from_frame(frame, Task.of(classes))


def test_macro_f1_counts_agree_with_scikit_learn():
    from pipelines.metrics import macro_f1

    rng = np.random.default_rng(3)
    for n in (1, 7, 60):
        y_true, y_pred = rng.integers(0, 4, n), rng.integers(0, 4, n)
        assert macro_f1(y_true, y_pred, [0, 1, 2], 4) == pytest.approx(
            f1_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0.0), abs=1e-12)


def test_cross_fitted_class_weights_are_kept_only_when_they_beat_the_argmax_on_held_out_halves():
    from pipelines.metrics import class_weights_held_out_gain

    classes = ["N", "A", "O", "~"]
    y_val, p_val = _biased_multiclass(600, 1)
    y_test, p_test = _biased_multiclass(600, 2)
    assert class_weights_held_out_gain(y_val, p_val, classes) > 0.02          # the bias is real: weights carry over
    biased = _multiclass_predictions(classes, val=(y_val, p_val), test=(y_test, p_test))
    kept = evaluate_predictions(biased, class_weights="cross_fitted")[1]
    chosen = evaluate_predictions(biased, class_weights="validation")[1]
    assert kept["class_weights_held_out_gain"] > 0.02
    assert kept["class_weights"] == chosen["class_weights"] and kept["cinc_score"] == chosen["cinc_score"]

    # separable classes: the argmax is already right, weights gain nothing on held-out halves and are not used
    separable_val, separable_test = (0.1 + 0.6 * np.eye(4)[y_val]), (0.1 + 0.6 * np.eye(4)[y_test])
    assert class_weights_held_out_gain(y_val, separable_val, classes) == 0.0
    plain = evaluate_predictions(_multiclass_predictions(classes, val=(y_val, separable_val),
                                                         test=(y_test, separable_test)), "cross_fitted")[1]
    assert "class_weights" not in plain and plain["cinc_score"] == pytest.approx(1.0)

    assert np.isnan(class_weights_held_out_gain(np.array([0, 0, 1, 1, 2]), np.full((5, 4), 0.25), classes))
    with pytest.raises(ValueError, match="class_weights must be one of"):
        evaluate_predictions(biased, class_weights="yes")


def test_class_weights_chosen_on_validation_undo_a_class_bias_on_test():
    from pipelines.metrics import choose_class_weights, format_class_weights, parse_class_weights

    classes = ["N", "A", "O", "~"]
    y_val, p_val = _biased_multiclass(600, 1)
    y_test, p_test = _biased_multiclass(600, 2)
    weights = choose_class_weights(y_val, p_val, classes)
    assert weights[1] / weights[0] > 2                      # A is scaled back up
    assert np.exp(np.log(weights).mean()) == pytest.approx(1.0)
    plain = multiclass_metrics(y_test, p_test, classes)["cinc_score"]
    weighted = multiclass_metrics(y_test, p_test, classes, weights)["cinc_score"]
    assert weighted > plain + 0.02                           # learned on val, better on unseen test rows
    np.testing.assert_allclose(parse_class_weights(format_class_weights(weights)), weights, rtol=1e-5)
    assert parse_class_weights(float("nan")) is None and parse_class_weights("") is None
    assert np.all(choose_class_weights(np.zeros(0, int), np.zeros((0, 4)), classes) == 1)

    predictions = _multiclass_predictions(classes, val=(y_val, p_val), test=(y_test, p_test))
    argmax_row = evaluate_predictions(predictions)[1]
    tuned_row = evaluate_predictions(predictions, class_weights="validation")[1]
    assert "class_weights" not in argmax_row and argmax_row["cinc_score"] == pytest.approx(plain)
    assert tuned_row["cinc_score"] == pytest.approx(weighted)
    stored = parse_class_weights(tuned_row["class_weights"])
    test = predictions.by_record().subset("test")
    np.testing.assert_array_equal(test.decide(None, stored), (p_test * np.asarray(stored)).argmax(axis=1))

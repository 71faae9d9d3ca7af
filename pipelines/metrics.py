"""Classification metrics the runner stores and the report compares (numpy + scikit-learn only).

Binary tasks pick the decision threshold on the validation rows and apply it to
the test rows; multi-class tasks use the argmax, or (``evaluation.class_weights:
validation``) the argmax of probabilities scaled by per-class weights chosen on the
validation rows, or (``cross_fitted``) those weights only when, chosen on one half of the
validation rows, they beat the argmax on the other half. Both are computed per window and
per record (a record's score is the mean of its window probabilities).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, get_args

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score,
                             precision_recall_curve, roc_auc_score)
from sklearn.model_selection import StratifiedKFold

from pipelines.config import ClassWeightRule
from pipelines.predictions import Predictions, weighted_argmax

LEVELS = ("window", "record")
CINC_CLASSES = ("N", "A", "O")
CURVE_METRICS: dict[str, Callable[..., float]] = {"roc_auc": roc_auc_score,
                                                  "pr_auc": average_precision_score}
_KEYS = ("model", "role", "level")
#: Candidate per-class weights (log-spaced, 1/8 to 8) of the coordinate search of :func:`choose_class_weights`.
WEIGHT_GRID = np.exp(np.linspace(np.log(1 / 8), np.log(8), 49))
WEIGHT_SWEEPS = 3
#: Random halvings of the validation rows over which ``cross_fitted`` class weights must beat the argmax.
CROSS_FIT_REPEATS = 5
#: ``evaluation.class_weights``' rules, as the config declares them.
CLASS_WEIGHT_MODES = get_args(ClassWeightRule)


def choose_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """Return the threshold maximising F1 of ``score >= threshold`` (0.5 when one class only).

    The threshold is the midpoint between the best cut score and the next lower score,
    so it separates the same validation rows while generalising less tightly.
    """
    y_true, score = np.asarray(y_true), np.asarray(score, dtype=float)
    if np.unique(y_true).size < 2:
        return 0.5
    precision, recall, cuts = precision_recall_curve(y_true, score)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(precision), where=(precision + recall) > 0)[:-1]
    best = int(np.argmax(f1))
    lower = score[score < cuts[best]]
    return float((cuts[best] + lower.max()) / 2) if lower.size else float(cuts[best])


def binary_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC and the thresholded metrics of a binary score.

    Args:
        y_true: 0/1 labels (1 = positive class).
        score: positive-class probability or score.
        threshold: rows with ``score >= threshold`` are predicted positive.

    Returns:
        Flat dict of roc_auc, pr_auc, f1, sensitivity, specificity, precision, accuracy,
        threshold, tn, fp, fn, tp. AUCs are NaN when ``y_true`` has one class.
    """
    y_true = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    y_pred = (score >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    two_classes = np.unique(y_true).size == 2
    return {
        "roc_auc": float(roc_auc_score(y_true, score)) if two_classes else np.nan,
        "pr_auc": float(average_precision_score(y_true, score)) if two_classes else np.nan,
        "f1": float(f1_score(y_true, y_pred, labels=[0, 1], zero_division=0.0)),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "accuracy": _ratio(tp + tn, y_true.size),
        "threshold": float(threshold),
        "tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp),
    }


def scored_classes(classes: list[str] | tuple[str, ...]) -> list[int]:
    """Indices of the classes a multi-class decision is scored on: N, A, O for the CinC 2017 task, else all."""
    if set(CINC_CLASSES) <= set(classes):
        return [list(classes).index(c) for c in CINC_CLASSES]
    return list(range(len(classes)))


def choose_class_weights(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> np.ndarray:
    """Per-class weights maximising the macro F1 (over :func:`scored_classes`) of ``argmax(probs * w)``.

    A coordinate search: each class's weight in turn takes the best value of :data:`WEIGHT_GRID`
    (ties keep the smaller change), :data:`WEIGHT_SWEEPS` times; weights start at 1 and are
    returned divided by their geometric mean. All ones when ``y_true`` is empty.
    """
    y_true, probs = np.asarray(y_true).astype(int), np.asarray(probs, dtype=float)
    weights = np.ones(probs.shape[1])
    if not y_true.size:
        return weights
    labels = scored_classes(classes)

    def score(w: np.ndarray) -> float:
        return macro_f1(y_true, weighted_argmax(probs, w), labels, probs.shape[1])

    order = np.argsort(np.abs(np.log(WEIGHT_GRID)), kind="stable")   # 1 first, then growing changes
    for _ in range(WEIGHT_SWEEPS):
        for k in range(len(weights)):
            trials = [score(np.r_[weights[:k], g, weights[k + 1:]]) for g in WEIGHT_GRID[order]]
            weights[k] = WEIGHT_GRID[order][int(np.argmax(trials))]
    return weights / np.exp(np.log(weights).mean())


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int], n_classes: int) -> float:
    """Mean F1 over ``labels`` (0 for a label never true nor predicted), as ``f1_score(average="macro")``."""
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(counts)[labels]
    wrong = counts.sum(axis=0)[labels] + counts.sum(axis=1)[labels] - 2 * tp   # false positives + negatives
    return float(np.mean(np.divide(2 * tp, 2 * tp + wrong, out=np.zeros(len(labels)), where=(2 * tp + wrong) > 0)))


def class_weights_held_out_gain(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                                repeats: int = CROSS_FIT_REPEATS) -> float:
    """How much class weights beat the argmax on rows they were not chosen on (macro F1 of the scored classes).

    The rows are halved ``repeats`` times (stratified by class, seeded, so the result is
    reproducible); weights chosen on each half (:func:`choose_class_weights`) are scored on
    the other. Returns the mean gain over the ``2 * repeats`` held-out halves; NaN when a
    class has fewer than two rows, so no halving can hold it on both sides.
    """
    y_true, probs = np.asarray(y_true).astype(int), np.asarray(probs, dtype=float)
    present = np.bincount(y_true, minlength=probs.shape[1])
    if not y_true.size or present[present > 0].min() < 2:
        return np.nan
    labels, gains = scored_classes(classes), []
    for repeat in range(repeats):
        halves = StratifiedKFold(n_splits=2, shuffle=True, random_state=repeat).split(probs, y_true)
        for chosen_on, scored_on in halves:
            weights = choose_class_weights(y_true[chosen_on], probs[chosen_on], classes)
            y, p = y_true[scored_on], probs[scored_on]
            gains.append(macro_f1(y, weighted_argmax(p, weights), labels, p.shape[1])
                         - macro_f1(y, weighted_argmax(p, None), labels, p.shape[1]))
    return float(np.mean(gains))


def multiclass_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                       class_weights: np.ndarray | None = None) -> dict[str, Any]:
    """Argmax metrics of class probabilities (scaled by ``class_weights`` when given).

    Returns:
        accuracy, macro_f1, ``f1_<class>`` per class, macro_roc_auc (one-vs-rest mean over
        classes present with both labels), cinc_score (mean F1 of N, A, O; only when all
        three are classes) and ``confusion_matrix`` (an array, rows = true class; the only
        non-scalar entry, which ``evaluate_predictions`` leaves out).
    """
    y_true = np.asarray(y_true).astype(int)
    probs = np.asarray(probs, dtype=float)
    labels = list(range(len(classes)))
    y_pred = weighted_argmax(probs, class_weights)
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0.0)
    aucs = [roc_auc_score(y_true == k, probs[:, k]) for k in labels
            if 0 < np.sum(y_true == k) < y_true.size]
    result: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)) if y_true.size else np.nan,
        "macro_f1": float(per_class.mean()),
        **{f"f1_{name}": float(value) for name, value in zip(classes, per_class)},
        "macro_roc_auc": float(np.mean(aucs)) if aucs else np.nan,
    }
    if set(CINC_CLASSES) <= set(classes):
        result["cinc_score"] = float(np.mean([result[f"f1_{c}"] for c in CINC_CLASSES]))
    result["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels)
    return result


def format_class_weights(weights: np.ndarray) -> str:
    """Class weights as the space-separated text ``metrics.csv`` stores (``parse_class_weights`` reads it)."""
    return " ".join(f"{w:.6g}" for w in weights)


def parse_class_weights(text: Any) -> list[float] | None:
    """The class weights of a ``metrics.csv`` cell, or None for an empty cell (the argmax)."""
    if not isinstance(text, str) or not text.strip():
        return None
    return [float(w) for w in text.split()]


def level_predictions(predictions: Predictions, level: str) -> Predictions:
    """The predictions at ``level``: the window rows, or their per-record means."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return predictions if level == "window" else predictions.by_record()


def validation_threshold(predictions: Predictions) -> float:
    """The F1-optimal threshold on the validation rows of binary ``predictions`` (0.5 when there are none)."""
    val = predictions.subset("val")
    return choose_threshold(val.is_positive, val.scores) if len(val) else 0.5


def validation_roc_auc(predictions: Predictions) -> float:
    """Record-level ROC-AUC on the validation rows (macro one-vs-rest for multi-class tasks; NaN if undefined).

    The score :mod:`pipelines.export` chooses a model × seed by: never the test split.
    """
    val = predictions.by_record().subset("val")
    if predictions.task.binary:
        labels = val.is_positive
        return float(roc_auc_score(labels, val.scores)) if np.unique(labels).size == 2 else np.nan
    return multiclass_metrics(val.y_true, val.probs, list(predictions.task.classes))["macro_roc_auc"]


def evaluate_predictions(predictions: Predictions, class_weights: str = "none") -> list[dict[str, Any]]:
    """Test-set metrics of one model × seed, one flat dict per level ("window", "record").

    Binary tasks choose the decision threshold here, once per level, on the
    validation rows; it is stored in the row (``threshold``) for the report
    and the model card to read back. Multi-class tasks decide by the argmax, or by
    per-class weights chosen on the validation rows (:func:`choose_class_weights`),
    stored as ``class_weights`` (space-separated).

    Args:
        predictions: the window predictions of the val and test splits.
        class_weights: the multi-class decision (``CLASS_WEIGHT_MODES``): ``none`` (argmax),
            ``validation`` (weights chosen on validation), or ``cross_fitted`` (those weights
            only when their held-out gain on validation, :func:`class_weights_held_out_gain`,
            stored as ``class_weights_held_out_gain``, is positive).

    Returns:
        ``[{"level": "window", ...}, {"level": "record", ...}]`` with scalar metrics only.
    """
    if class_weights not in CLASS_WEIGHT_MODES:
        raise ValueError(f"class_weights must be one of {CLASS_WEIGHT_MODES}, got {class_weights!r}")
    rows = []
    for level in LEVELS:
        rows_at_level = level_predictions(predictions, level)
        test = rows_at_level.subset("test")
        if predictions.task.binary:
            metrics = binary_metrics(test.is_positive, test.scores, validation_threshold(rows_at_level))
        else:
            classes = list(predictions.task.classes)
            val = rows_at_level.subset("val")
            gain = (class_weights_held_out_gain(val.y_true, val.probs, classes)
                    if class_weights == "cross_fitted" else np.nan)
            use = class_weights == "validation" or gain > 0
            weights = choose_class_weights(val.y_true, val.probs, classes) if use else None
            metrics = multiclass_metrics(test.y_true, test.probs, classes, weights)
            if class_weights == "cross_fitted":
                metrics["class_weights_held_out_gain"] = gain
            if weights is not None:
                metrics["class_weights"] = format_class_weights(weights)
        rows.append({"level": level, **{k: v for k, v in metrics.items() if np.ndim(v) == 0}})
    return rows


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every numeric metric, per (model, role, level).

    Returns:
        One row per (model, role, level) in first-seen order with ``n_seeds`` and
        ``<metric>_mean`` / ``<metric>_std`` columns (std is NaN for a single seed).
    """
    columns = [c for c in metrics.select_dtypes("number").columns if c not in (*_KEYS, "seed")]
    grouped = metrics.groupby(list(_KEYS), sort=False)
    stats = grouped[columns].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats.insert(0, "n_seeds", grouped["seed"].nunique() if "seed" in metrics else grouped.size())
    return stats.reset_index()


def bootstrap_auc_difference(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *,
                             n_boot: int = 2000, seed: int = 0, metric: str = "roc_auc"
                             ) -> dict[str, float]:
    """Paired bootstrap of ``metric(a) - metric(b)`` over the same resampled records.

    Each resample draws records with replacement (as multinomial counts, used as sample
    weights, which equals scoring the resampled rows); resamples with one class are dropped.

    Args:
        y_true: 0/1 labels, one per record.
        score_a, score_b: the two models' scores for the same records.
        n_boot: number of resamples.
        seed: seed of the resampling generator.
        metric: "roc_auc" or "pr_auc".

    Returns:
        diff (on the full data), ci_low / ci_high (2.5 / 97.5 percentiles), p_value
        (two-sided: twice the smaller tail fraction on either side of 0, at most 1) and
        n_boot (valid resamples).
    """
    if metric not in CURVE_METRICS:
        raise ValueError(f"metric must be one of {sorted(CURVE_METRICS)}, got {metric!r}")
    y_true = np.asarray(y_true).astype(int)
    score_a, score_b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    if np.unique(y_true).size < 2:
        return {"diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n_boot": 0}
    diff = CURVE_METRICS[metric](y_true, score_a) - CURVE_METRICS[metric](y_true, score_b)
    rng = np.random.default_rng(seed)
    boot = np.concatenate([
        weighted_curve_metric(y_true, score_a, counts, metric)
        - weighted_curve_metric(y_true, score_b, counts, metric)
        for counts in _resample_counts(rng, y_true.size, n_boot)])
    boot = boot[~np.isnan(boot)]
    ci_low, ci_high = np.percentile(boot, [2.5, 97.5]) if boot.size else (np.nan, np.nan)
    tail = min(np.mean(boot <= 0), np.mean(boot >= 0)) if boot.size else np.nan
    return {"diff": float(diff), "ci_low": float(ci_low), "ci_high": float(ci_high),
            "p_value": float(min(1.0, 2 * tail)), "n_boot": int(boot.size)}


def weighted_curve_metric(y_true: np.ndarray, score: np.ndarray, weights: np.ndarray,
                          metric: str = "roc_auc") -> np.ndarray:
    """ROC-AUC or average precision for each row of sample ``weights`` at once.

    Equals scikit-learn's ``roc_auc_score`` / ``average_precision_score`` with
    ``sample_weight=weights[i]``; NaN for a row whose weighted labels have one class.

    Args:
        y_true: 0/1 labels, shape (n,).
        score: scores, shape (n,).
        weights: non-negative weights, shape (n_rows, n).
        metric: "roc_auc" or "pr_auc".
    """
    order = np.argsort(-score, kind="mergesort")
    y_sorted, s_sorted = y_true[order], score[order]
    w_sorted = np.atleast_2d(weights)[:, order].astype(float)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(w_sorted * y_sorted, axis=1)[:, last_of_tie]
    fps = np.cumsum(w_sorted * (1 - y_sorted), axis=1)[:, last_of_tie]
    tps = np.pad(tps, ((0, 0), (1, 0)))
    fps = np.pad(fps, ((0, 0), (1, 0)))
    pos, neg = tps[:, -1:], fps[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tps / pos
        if metric == "roc_auc":
            fpr = fps / neg
            value = np.sum(np.diff(fpr, axis=1) * (recall[:, 1:] + recall[:, :-1]) / 2, axis=1)
        else:
            precision = np.divide(tps, tps + fps, out=np.zeros_like(tps), where=(tps + fps) > 0)
            value = np.sum(np.diff(recall, axis=1) * precision[:, 1:], axis=1)
    return np.where((pos[:, 0] > 0) & (neg[:, 0] > 0), value, np.nan)


def _resample_counts(rng: np.random.Generator, n: int, n_boot: int, chunk: int = 250
                     ) -> Iterator[np.ndarray]:
    """Yield bootstrap resamples of ``n`` rows as count arrays, ``chunk`` resamples at a time."""
    for start in range(0, n_boot, chunk):
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, n_boot - start))


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` as a float, NaN when the denominator is 0."""
    return float(numerator / denominator) if denominator else np.nan

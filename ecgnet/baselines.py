"""Expert-feature baselines (MINA's ExpertLR / ExpertRF) as scikit-learn pipelines.

They take raw ECG windows ``(n, T)`` or ``(n, T, 1)``: the first pipeline step
turns them into expert features (``ecgnet.features``), so they plug into the
same runner as the Keras models. ``expert_rf_record`` also takes each window's
record context (``ecgnet.context``) as a side input.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from ecgnet.context import RECORD_FEATURES_INPUT
from ecgnet.features import ECGFeatureExtractor
from ecgnet.rpeaks import DEFAULT_METHOD
from pipelines.modeling import register_model

#: Every class a fitted expert baseline holds: what a ``.skops`` file of one may contain.
BASELINE_TYPES: tuple[type, ...] = (Pipeline, ECGFeatureExtractor, SimpleImputer, StandardScaler,
                                    LogisticRegression, RandomForestClassifier, DecisionTreeClassifier, Tree)


def _feature_pipeline(fs: float | None, n_classes: int, classifier: Any,
                      rpeak_method: str, side_inputs: tuple[str, ...] = ()) -> Pipeline:
    """Features (then the ``side_inputs`` columns) → mean imputation → standardisation → ``classifier``."""
    if fs is None or fs <= 0:
        raise ValueError(f"expert baselines need the sampling rate fs in Hz, got {fs!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    return Pipeline([("features", ECGFeatureExtractor(fs=float(fs), rpeak_method=rpeak_method,
                                                      side_inputs=side_inputs)),
                     ("impute", SimpleImputer()),
                     ("scale", StandardScaler()),
                     ("clf", classifier)])


@register_model("expert_lr", family="sklearn", modality="ecg", role="baseline")
def build_expert_lr(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
                    seed: int = 0, C: float = 1.0, max_iter: int = 2000,
                    rpeak_method: str = DEFAULT_METHOD) -> Pipeline:
    """Logistic regression (class-balanced) on expert ECG features.

    Args:
        input_shape: Window shape without the batch axis (unused: features are length-free).
        n_classes: Number of classes (binary or multi-class).
        fs: Sampling rate in Hz; required.
        seed: Random seed of the solver.
        C: Inverse L2 regularisation strength.
        max_iter: Solver iteration limit.
        rpeak_method: R-peak detector of the features (``ecgnet.rpeaks.METHODS``).

    Returns:
        An unfitted scikit-learn ``Pipeline`` with ``predict_proba``.
    """
    classifier = LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced",
                                    random_state=seed)
    return _feature_pipeline(fs, n_classes, classifier, rpeak_method)


@register_model("expert_rf", family="sklearn", modality="ecg", role="baseline")
def build_expert_rf(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
                    seed: int = 0, n_estimators: int = 500, min_samples_leaf: int = 2,
                    max_features: str | float = "sqrt",
                    rpeak_method: str = DEFAULT_METHOD) -> Pipeline:
    """Random forest (balanced bootstrap samples) on expert ECG features.

    Args:
        input_shape: Window shape without the batch axis (unused: features are length-free).
        n_classes: Number of classes (binary or multi-class).
        fs: Sampling rate in Hz; required.
        seed: Random seed of the forest.
        n_estimators: Number of trees.
        min_samples_leaf: Minimum samples per leaf.
        max_features: Features tried per split ("sqrt", "log2" or a fraction).
        rpeak_method: R-peak detector of the features (``ecgnet.rpeaks.METHODS``).

    Returns:
        An unfitted scikit-learn ``Pipeline`` with ``predict_proba``.
    """
    return _feature_pipeline(fs, n_classes, _forest(seed, n_estimators, min_samples_leaf, max_features),
                             rpeak_method)


@register_model("expert_rf_record", family="sklearn", modality="ecg", role="baseline",
                side_inputs=(RECORD_FEATURES_INPUT,))
def build_expert_rf_record(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
                           seed: int = 0, n_estimators: int = 500, min_samples_leaf: int = 2,
                           max_features: str | float = "sqrt",
                           rpeak_method: str = DEFAULT_METHOD) -> Pipeline:
    """``expert_rf`` reading each window with its record: the window's expert features plus the mean
    features of its record's windows (the ``record_expert_features`` side input, :mod:`ecgnet.context`).

    Same arguments as :func:`build_expert_rf`; the pipeline takes the dict of
    :func:`pipelines.side_inputs.sklearn_inputs`, which the engine and ``biomed predict`` build.
    """
    return _feature_pipeline(fs, n_classes, _forest(seed, n_estimators, min_samples_leaf, max_features),
                             rpeak_method, side_inputs=(RECORD_FEATURES_INPUT,))


def _forest(seed: int, n_estimators: int, min_samples_leaf: int, max_features: str | float) -> RandomForestClassifier:
    """The class-balanced forest of the expert baselines, on all cores."""
    return RandomForestClassifier(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                                  max_features=max_features, class_weight="balanced_subsample",
                                  random_state=seed, n_jobs=-1)

"""Tests for the expert-feature baselines registered in the model registry."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

import ecgnet.baselines  # noqa: F401  (registers expert_lr / expert_rf)
from pipelines.modeling import _REGISTRY

FS = 300.0
DURATION = 6.0


def _window(rr: np.ndarray, seed: int) -> np.ndarray:
    """A noisy synthetic ECG window (R spike and T wave) with the given RR intervals."""
    t = np.arange(int(DURATION * FS)) / FS
    r_times = 0.3 + np.concatenate([[0.0], np.cumsum(rr)])
    offset = t[:, None] - r_times[r_times < DURATION][None, :]
    x = (np.exp(-0.5 * (offset / 0.012) ** 2) + 0.3 * np.exp(-0.5 * ((offset - 0.3) / 0.05) ** 2))
    return x.sum(axis=1) + np.random.default_rng(seed).normal(0.0, 0.05, t.size)


def rhythm_dataset(n_per_class: int, seed: int, n_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Windows of class 0: regular 0.8 s RR, 1: irregular RR, 2: regular fast 0.45 s RR."""
    rng = np.random.default_rng(seed)
    makers = (lambda: np.full(20, 0.8) + rng.normal(0, 0.01, 20),
              lambda: rng.uniform(0.4, 1.1, 20),
              lambda: np.full(20, 0.45) + rng.normal(0, 0.01, 20))[:n_classes]
    X = np.stack([_window(make(), seed * 1000 + i)
                  for i in range(n_per_class) for make in makers])[:, :, None]
    y = np.tile(np.arange(n_classes), n_per_class)
    return X, y


@pytest.fixture(scope="module")
def binary_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = rhythm_dataset(15, seed=1)
    X_test, y_test = rhythm_dataset(10, seed=2)
    return X, y, X_test, y_test


@pytest.mark.parametrize("name, params", [("expert_lr", {}), ("expert_rf", {"n_estimators": 50})])
def test_baseline_separates_regular_from_irregular(binary_data, name: str, params: dict):
    X, y, X_test, y_test = binary_data
    model = _REGISTRY[name].build(X.shape[1:], 2, fs=FS, seed=0, **params).fit(X, y)
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(proba.argmax(axis=1) == y_test) > 0.9


def test_multiclass_and_clone():
    X, y = rhythm_dataset(8, seed=3, n_classes=3)
    model = _REGISTRY["expert_rf"].build(X.shape[1:], 3, fs=FS, n_estimators=30)
    proba = clone(model).fit(X, y).predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert np.mean(proba.argmax(axis=1) == y) > 0.9


def test_registry_entries_and_hyperparameters():
    for name in ("expert_lr", "expert_rf"):
        spec = _REGISTRY[name]
        assert (spec.family, spec.modality, spec.role) == ("sklearn", "ecg", "baseline")
    assert _REGISTRY["expert_lr"].defaults == {"C": 1.0, "max_iter": 2000,
                                               "rpeak_method": "pantompkins"}
    model = _REGISTRY["expert_rf"].build((1800, 1), 2, fs=250.0, seed=7, min_samples_leaf=3)
    clf = model.named_steps["clf"]
    assert (clf.random_state, clf.min_samples_leaf) == (7, 3)
    assert clf.class_weight == "balanced_subsample"
    assert model.named_steps["features"].fs == 250.0
    assert _REGISTRY["expert_lr"].build((1800, 1), 2, fs=FS, C=0.1).named_steps["clf"].C == 0.1
    xqrs = _REGISTRY["expert_lr"].build((1800, 1), 2, fs=FS, rpeak_method="xqrs")
    assert xqrs.named_steps["features"].rpeak_method == "xqrs"


@pytest.mark.parametrize("name", ["expert_lr", "expert_rf"])
def test_missing_sampling_rate_is_rejected(name: str):
    with pytest.raises(ValueError, match="fs"):
        _REGISTRY[name].build((1800, 1), 2)

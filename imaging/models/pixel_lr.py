"""``pixel_lr``: logistic regression on downsampled grayscale pixels and intensity statistics (baseline)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipelines.modeling import register_model

PERCENTILES = (5, 25, 50, 75, 95)


class PixelFeatures(TransformerMixin, BaseEstimator):
    """Images ``(n, H, W, C)`` to features: the grayscale image area-averaged to ``size`` x ``size``
    pixels, plus the mean, standard deviation and percentiles of its intensities.

    Args:
        size: side of the downsampled image (at most the image side).
    """

    def __init__(self, size: int = 8):
        self.size = size

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> "PixelFeatures":
        """Check the input; nothing is learned."""
        if np.ndim(x) != 4 or self.size < 1:
            raise ValueError(f"expected images (n, H, W, C) and size >= 1, got shape {np.shape(x)}, "
                             f"size {self.size}")
        self.n_features_in_ = int(np.prod(np.shape(x)[1:]))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The feature matrix ``(n, size * size + 2 + len(PERCENTILES))``."""
        gray = np.asarray(x, np.float32).mean(axis=-1)
        n, height, width = gray.shape
        rows = np.linspace(0, height, min(self.size, height) + 1).astype(int)[:-1]
        cols = np.linspace(0, width, min(self.size, width) + 1).astype(int)[:-1]
        sums = np.add.reduceat(np.add.reduceat(gray, rows, axis=1), cols, axis=2)
        counts = np.outer(np.diff(np.append(rows, height)), np.diff(np.append(cols, width)))
        flat = gray.reshape(n, -1)
        stats = [flat.mean(1), flat.std(1), *np.percentile(flat, PERCENTILES, axis=1)]
        return np.column_stack([(sums / counts).reshape(n, -1), *stats])


#: Every class a fitted ``pixel_lr`` holds: what a ``.skops`` file of one may contain.
PIXEL_LR_TYPES: tuple[type, ...] = (Pipeline, PixelFeatures, StandardScaler, LogisticRegression)


@register_model("pixel_lr", family="sklearn", modality="image", role="baseline")
def build_pixel_lr(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None, seed: int = 0,
                   size: int = 8, C: float = 0.1, max_iter: int = 2000) -> Pipeline:
    """Pixel features → standardisation → class-balanced logistic regression.

    Args:
        input_shape: ``(H, W, C)`` (unused: the features do not depend on it).
        n_classes: number of classes.
        fs: unused (images have no sampling rate).
        seed: random seed of the solver.
        size: side of the downsampled image.
        C: inverse L2 regularisation strength.
        max_iter: solver iteration limit.

    Returns:
        An unfitted scikit-learn ``Pipeline`` with ``predict_proba``.
    """
    return Pipeline([("pixels", PixelFeatures(size)), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced",
                                                random_state=seed))])

"""Report figures (matplotlib, Agg backend); each function writes one PNG atomically.

Curves come from scikit-learn's display objects so they match the reported metrics.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402

from pipelines.artifacts import atomic_path  # noqa: E402

Curves = dict[str, tuple[np.ndarray, np.ndarray]]
"""Model name -> (0/1 labels, positive-class scores)."""

_CURVE_DISPLAYS = {"roc": RocCurveDisplay, "pr": PrecisionRecallDisplay}
_CURVE_AXES = {"roc": ("False positive rate", "True positive rate"), "pr": ("Recall", "Precision")}


def plot_roc(curves: Curves, path: str | os.PathLike, title: str = "ROC curves") -> Path:
    """Overlay one ROC curve per model (with its AUC in the legend) and save a PNG."""
    return _plot_curves(curves, path, title, "roc")


def plot_pr(curves: Curves, path: str | os.PathLike, title: str = "Precision-recall curves") -> Path:
    """Overlay one precision-recall curve per model (with its AP in the legend) and save a PNG."""
    return _plot_curves(curves, path, title, "pr")


def plot_confusion(matrix: np.ndarray, classes: list[str], path: str | os.PathLike,
                   title: str = "Confusion matrix") -> Path:
    """Draw a confusion matrix (rows = true class, columns = predicted) and save a PNG."""
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.2 * len(classes) + 2))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=classes).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_history(history: pd.DataFrame, path: str | os.PathLike, title: str = "Training curves") -> Path:
    """Plot training vs validation curves of a Keras CSVLogger history, one panel per metric.

    Args:
        history: the CSVLogger frame (epoch, loss, val_loss, <metric>, val_<metric>, ...).
        path: where to save the PNG.
        title: figure title.
    """
    metrics = [c for c in history.columns
               if c not in ("epoch", "learning_rate", "lr") and not c.startswith("val_")]
    epochs = history["epoch"] + 1 if "epoch" in history else np.arange(1, len(history) + 1)
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.5 * max(len(metrics), 1), 3.5),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.plot(epochs, history[metric], marker=".", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker=".", label="validation")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def _plot_curves(curves: Curves, path: str | os.PathLike, title: str, kind: str) -> Path:
    """Overlay one ROC or PR curve per model on a single axis."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (y_true, score) in curves.items():
        _CURVE_DISPLAYS[kind].from_predictions(y_true, score, name=name, ax=ax)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set(title=title, xlabel=_CURVE_AXES[kind][0], ylabel=_CURVE_AXES[kind][1])
    ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize="small")
    return save_figure(fig, path)


def file_slug(name: str) -> str:
    """A file-name-safe form of a model display name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` to ``path`` as PNG atomically, close it and return the path."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)

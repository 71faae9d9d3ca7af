"""Results of a KerasTuner search: the trials table and the score plots of ``biomed tune``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from keras_tuner.engine.trial import Trial  # noqa: E402

from pipelines.artifacts import atomic_path  # noqa: E402
from pipelines.config import TuningConfig  # noqa: E402

TRIAL_METRICS = ("best_epoch", "epochs", "seconds")
META_COLUMNS = ("trial", "status", "score", *TRIAL_METRICS, "message")


def trial_table(trials: Iterable[Trial]) -> pd.DataFrame:
    """One row per trial: id, status, score, best epoch, epochs run, seconds, every hyperparameter, message.

    Hyperband's bookkeeping values (``tuner/epochs``, ``tuner/round``...) are
    kept as columns; ``message`` is the last line of a failed trial's error.
    """
    rows = []
    for trial in sorted(trials, key=lambda t: t.trial_id):
        metrics = {m: trial.metrics.get_last_value(m) if trial.metrics.exists(m) else np.nan
                   for m in TRIAL_METRICS}
        rows.append({"trial": trial.trial_id, "status": trial.status, "score": trial.score, **metrics,
                     **trial.hyperparameters.values,
                     "message": trial.message.strip().splitlines()[-1] if trial.message else ""})
    return pd.DataFrame(rows, columns=_columns(rows))


def hyperparameter_importance(table: pd.DataFrame) -> pd.Series:
    """|Spearman rank correlation| of each searched hyperparameter with the score, most important first.

    Computed over completed trials; hyperparameters that never varied are left out.
    """
    done = table[table["status"] == "COMPLETED"]
    names = [c for c in table.columns if c not in META_COLUMNS and "/" not in c]
    scores = {}
    for name in names:
        values = done[name]
        if values.nunique() > 1:
            codes = values.to_numpy() if pd.api.types.is_numeric_dtype(values) else pd.factorize(values)[0]
            scores[name] = abs(np.corrcoef(pd.Series(codes).rank(), done["score"].rank())[0, 1])
    return pd.Series(scores, dtype=float).fillna(0.0).sort_values(ascending=False)


def plot_trials(table: pd.DataFrame, tuning: TuningConfig, path: str | os.PathLike, top: int = 3) -> Path:
    """Plot the score vs trial (with the best so far) and vs the ``top`` most important hyperparameters.

    Args:
        table: the trials table of :func:`trial_table`.
        tuning: the tuning config (objective name and direction).
        path: where to write the PNG (atomically).
        top: how many hyperparameters to plot.
    """
    done = table[table["status"] == "COMPLETED"]
    importance = hyperparameter_importance(table)
    names = list(importance.index[:top])
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(4.5 * (1 + len(names)), 3.6), squeeze=False)
    ax = axes[0][0]
    number = done["trial"].astype(int) + 1
    best = done["score"].cummax() if tuning.direction == "max" else done["score"].cummin()
    ax.plot(number, done["score"], "o", label="trial")
    ax.step(number, best, where="post", label="best so far")
    ax.set(xlabel="trial", ylabel=tuning.objective, title=f"{tuning.objective} per trial")
    ax.legend(fontsize="small")
    for ax, name in zip(axes[0][1:], names):
        ax.plot(done[name].astype(str) if done[name].dtype == object else done[name], done["score"], "o")
        _log_axis_if_wide(ax, done[name])
        ax.set(xlabel=name, ylabel=tuning.objective, title=f"{name} (|rho| {importance[name]:.2f})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def _log_axis_if_wide(ax: plt.Axes, values: pd.Series) -> None:
    """Symmetric-log x axis for non-negative values spanning a decade or more (0 stays plottable)."""
    if not pd.api.types.is_numeric_dtype(values) or values.min() < 0:
        return
    positive = values[values > 0]
    if len(positive) and positive.max() / positive.min() >= 10:
        ax.set_xscale("symlog", linthresh=float(positive.min()))


def _columns(rows: list[dict]) -> list[str]:
    """Meta columns first, then the hyperparameters in order of first appearance, message last."""
    names = [k for row in rows for k in row if k not in META_COLUMNS]
    return [*META_COLUMNS[:-1], *dict.fromkeys(names), "message"]

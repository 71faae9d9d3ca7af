"""Validation scores of finished runs: ROC-AUC and PR-AUC on the validation split, per model × seed.

Model choices (e.g. MINA's defaults) are made on validation, never on test; a run
stores the validation predictions of every Keras and scikit-learn model in
``predictions.csv``, and this script scores them (binary tasks).

Example:
    python -m bench.val_scores runs/mina_3ch runs/mina_f24_sps3_s15 --out bench/results/mina_variants_val.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from pipelines.artifacts import write_csv
from pipelines.metrics import LEVELS, level_predictions
from pipelines.predictions import Predictions
from pipelines.report import load_run


def val_scores(predictions: Predictions) -> list[dict]:
    """Validation ROC-AUC and PR-AUC per level of a model's predictions."""
    rows = []
    for level in LEVELS:
        val = level_predictions(predictions, level).subset("val")
        rows.append({"level": level, "val_roc_auc": roc_auc_score(val.is_positive, val.scores),
                     "val_pr_auc": average_precision_score(val.is_positive, val.scores)})
    return rows


def run_table(run_dir: Path) -> pd.DataFrame:
    """One row per model × seed × level of a binary run: validation ROC-AUC and PR-AUC."""
    run = load_run(run_dir)
    rows = []
    for model in run.metrics["model"].unique():
        for seed in run.seeds(model):
            for row in val_scores(run.predictions(model, seed)):
                rows.append({"run": run.path.name, "model": model, "seed": seed, **row})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Print (and optionally write) the validation scores of every given run folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (binary tasks)")
    parser.add_argument("--out", type=Path, default=None, help="write the table as CSV here")
    args = parser.parse_args(argv)
    table = pd.concat([run_table(run) for run in args.runs], ignore_index=True)
    if args.out:
        write_csv(args.out, table)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()

"""Validation scores of finished runs, per model × seed (and, with ``--seed-ensembles``, per model with its seeds averaged).

Model choices (e.g. MINA's defaults) are made on validation, never on test; a run
stores the validation predictions of every Keras and scikit-learn model in
``predictions.csv``, and this script scores them: ROC-AUC and PR-AUC for binary
tasks; macro ROC-AUC and the argmax CinC score (mean F1 of N, A, O) for multi-class
ones, plus the CinC score with class weights chosen on these same records (in-sample,
so optimistic: what ``evaluation.class_weights: validation`` starts from) and those weights'
held-out gain over the argmax (chosen on half the records, scored on the other half: positive
means ``class_weights: cross_fitted`` keeps them).

Example:
    python -m bench.val_scores runs/mina_3ch runs/mina_f24_sps3_s15 --out bench/results/mina_variants_val.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from pipelines.artifacts import write_csv
from pipelines.ensembles import average_predictions
from pipelines.metrics import (LEVELS, choose_class_weights, class_weights_held_out_gain, level_predictions,
                               multiclass_metrics)
from pipelines.predictions import Predictions
from pipelines.report import load_run


def val_scores(predictions: Predictions) -> list[dict]:
    """Validation scores per level of a model's predictions (see the module docstring)."""
    rows = []
    for level in LEVELS:
        val = level_predictions(predictions, level).subset("val")
        if predictions.task.binary:
            rows.append({"level": level, "val_roc_auc": roc_auc_score(val.is_positive, val.scores),
                         "val_pr_auc": average_precision_score(val.is_positive, val.scores)})
            continue
        classes = list(predictions.task.classes)
        argmax = multiclass_metrics(val.y_true, val.probs, classes)
        weights = choose_class_weights(val.y_true, val.probs, classes)
        weighted = multiclass_metrics(val.y_true, val.probs, classes, weights)
        rows.append({"level": level, "val_macro_roc_auc": argmax["macro_roc_auc"],
                     "val_score_argmax": argmax.get("cinc_score", argmax["macro_f1"]),
                     "val_score_weighted_in_sample": weighted.get("cinc_score", weighted["macro_f1"]),
                     "val_class_weights_held_out_gain": class_weights_held_out_gain(val.y_true, val.probs, classes)})
    return rows


def run_table(run_dir: Path, seed_ensembles: bool = False) -> pd.DataFrame:
    """One row per model × seed × level of a run (seed "all": the model's seeds averaged)."""
    run = load_run(run_dir)
    rows = []
    for model in run.metrics["model"].unique():
        seeds = run.seeds(model)
        for seed in seeds:
            for row in val_scores(run.predictions(model, seed)):
                rows.append({"run": run.path.name, "model": model, "seed": seed, **row})
        if seed_ensembles and len(seeds) > 1:
            averaged = average_predictions(run.path, [(model, seed, 1.0) for seed in seeds], run.task)
            rows += [{"run": run.path.name, "model": model, "seed": "all", **row} for row in val_scores(averaged)]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Print (and optionally write) the validation scores of every given run folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--seed-ensembles", action="store_true", help="also score each model's seeds averaged")
    parser.add_argument("--out", type=Path, default=None, help="write the table as CSV here")
    args = parser.parse_args(argv)
    table = pd.concat([run_table(run, args.seed_ensembles) for run in args.runs], ignore_index=True)
    if args.out:
        write_csv(args.out, table)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()

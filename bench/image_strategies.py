"""Compare image training strategies on validation: ROC-AUC and accuracy per run, mean ± std over seeds.

Each argument is a finished binary run folder (e.g. one ``biomed run`` per strategy or
resolution). Scores come from its ``predictions.csv`` (argmax accuracy, as MedMNIST
reports it); ``--tta VIEW...`` re-scores the saved ``model.keras`` files with those
test-time augmentation views as well, so one trained model gives both rows.
Training time is ``train_seconds`` of ``info.json``.

Example:
    python -m bench.image_strategies runs/b15/A runs/b15/B --tta hflip shift --out bench/results/b15.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pipelines.artifacts import write_csv
from pipelines.config import load_config
from pipelines.predictions import Task, read_predictions


def scores(y: np.ndarray, probs: np.ndarray, positive: int) -> dict[str, float]:
    """ROC-AUC of the positive column and argmax accuracy."""
    return {"roc_auc": roc_auc_score(y == positive, probs[:, positive]),
            "accuracy": float(np.mean(probs.argmax(1) == y))}


def run_rows(run_dir: Path, tta: list[str]) -> list[dict]:
    """One row per model × seed × TTA setting × split of a run."""
    from pipelines.averaging import averaged_model, tta_views
    from pipelines.datasets import prepare_data
    from pipelines.export import load_keras_model
    from pipelines.tfdata import model_inputs

    config = load_config(run_dir / "config.yaml")
    data = prepare_data(config) if tta else None
    rows = []
    for info_file in sorted(run_dir.glob("models/*/seed_*/info.json")):
        info = json.loads(info_file.read_text())
        predictions = read_predictions(info_file.parent / "predictions.csv",
                                       Task.of(config.data.task.classes, config.data.task.positive))
        positive = predictions.task.positive
        base = {"run": run_dir.name, "model": info["model"], "seed": info["seed"],
                "train_seconds": info["train_seconds"], "epochs": info["epochs"]}
        settings = {"+".join(config.evaluation.tta) or "none": None}
        if tta and (info_file.parent / "model.keras").is_file():
            model = load_keras_model(info_file.parent / "model.keras")
            shape = tuple(model.inputs[0].shape[1:])
            settings["+".join(tta)] = averaged_model([model], tta_views(config.data.modality, tta, shape))
        for name, model in settings.items():
            for split in ("val", "test"):
                part = predictions.subset(split)
                probs = (part.probs if model is None else
                         model.predict(model_inputs(data.splits[split].x), batch_size=64, verbose=0))
                rows.append({**base, "tta": name, "split": split, **scores(part.y_true, probs, positive)})
    return rows


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per run × model × TTA × split."""
    grouped = rows.groupby(["run", "model", "tta", "split"], sort=False)
    table = grouped[["roc_auc", "accuracy", "train_seconds"]].agg(["mean", "std"]).round(3)
    table.columns = [f"{a}_{b}" for a, b in table.columns]
    return table.assign(seeds=grouped.size()).reset_index()


def main() -> None:
    """Score the runs and print (and optionally write) the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--tta", nargs="*", default=[], help="also score these TTA views (e.g. hflip shift)")
    parser.add_argument("--out", type=Path, help="CSV of the per-seed rows")
    args = parser.parse_args()
    rows = pd.DataFrame([row for run in args.runs for row in run_rows(run, args.tta)])
    if args.out:
        write_csv(args.out, rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(rows).to_string(index=False))


if __name__ == "__main__":
    main()

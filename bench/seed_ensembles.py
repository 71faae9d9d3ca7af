"""Seed ensembles of a finished binary run, compared on its test records with the paired bootstrap.

Each model's ensemble score of a record is the mean over its seeds of the record's mean window
probability (what ``biomed export --ensemble`` deploys); every model's ensemble is
compared with the ``--baseline`` ensemble on the same test records (``--split val`` scores the
validation records instead, to choose between ensembles without touching test).

Example:
    python -m bench.seed_ensembles runs/cinc2017_af --baseline expert_rf
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipelines.config import load_config
from pipelines.ensembles import average_predictions
from pipelines.metrics import CURVE_METRICS, bootstrap_auc_difference
from pipelines.predictions import Task


def ensemble_scores(run_dir: Path, model: str, task: Task, split: str = "test") -> pd.DataFrame:
    """``split`` records of ``model`` with columns y (0/1) and score (mean over the model's seeds)."""
    seeds = sorted(int(folder.name.removeprefix("seed_")) for folder in (run_dir / "models" / model).glob("seed_*")
                   if (folder / "predictions.csv").is_file())     # a seed still training has none yet
    if not seeds:
        raise SystemExit(f"{run_dir}: no seeds of {model!r}")
    averaged = average_predictions(run_dir, [(model, seed, 1.0) for seed in seeds], task, f"{model} seeds")
    part = averaged.by_record().subset(split)
    return pd.DataFrame({"y": part.is_positive.astype(int), "score": part.scores, "seeds": len(seeds)},
                        index=part.record)


def main(argv: list[str] | None = None) -> None:
    """Print one markdown row per model: ensemble ROC/PR-AUC and the bootstrap against the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--baseline", default="expert_rf")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--split", choices=["test", "val"], default="test")
    args = parser.parse_args(argv)
    config = load_config(args.run_dir / "config.yaml", check_data=False)
    task = Task.of(config.data.task.classes, config.data.task.positive)
    models = sorted(p.name for p in (args.run_dir / "models").iterdir() if any(p.glob("seed_*/predictions.csv")))
    base = ensemble_scores(args.run_dir, args.baseline, task, args.split)
    print("| model (seed ensemble) | seeds | ROC-AUC | PR-AUC | Δ ROC-AUC vs baseline [95 % CI] | Δ PR-AUC [95 % CI] |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model in models:
        ens = ensemble_scores(args.run_dir, model, task, args.split).merge(
            base[["score"]].rename(columns={"score": "score_base"}), left_index=True, right_index=True)
        cells = [f"{CURVE_METRICS[m](ens['y'], ens['score']):.4f}" for m in ("roc_auc", "pr_auc")]
        for metric in ("roc_auc", "pr_auc"):
            if model == args.baseline:
                cells.append("–")
                continue
            r = bootstrap_auc_difference(ens["y"], ens["score"], ens["score_base"], n_boot=args.n_boot, metric=metric)
            cells.append(f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]")
        print(f"| {model} | {int(ens['seeds'].iloc[0])} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Tuned vs untuned: a KerasTuner search against the model's default hyperparameters, on val and test.

Runs (or resumes) ``biomed tune CONFIG`` and ``biomed run CONFIG`` (the
config's model with its untuned defaults), then compares:

* the tuning objective on validation (by default window-level ``val_auc``) of
  models trained on train only: the best trial's score and the untuned model's
  best epoch (its history; early stopping restores that epoch);
* test metrics per level of the tuned model (retrained on train+val) and of the
  untuned one.

Writes ``comparison.json``, ``comparison.csv`` and a two-run report into ``--out``.

Example:
    python -m bench.tune_cinc2017                       # configs/cinc2017_tune.yaml, hours on CPU
    python -m bench.tune_cinc2017 --config configs/quickstart_tune.yaml --out runs/quick_bench
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipelines.artifacts import write_csv, write_json
from pipelines.config import ExperimentConfig, load_config
from pipelines.report import write_report
from pipelines.runner import run_experiment
from pipelines.tuning import tune

TEST_METRICS = ("roc_auc", "pr_auc", "f1", "sensitivity", "specificity")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/cinc2017_tune.yaml", help="config with a tuning section")
    parser.add_argument("--out", default="runs/cinc2017_tune_bench", help="benchmark folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    return parser.parse_args(argv)


def compare(config: ExperimentConfig, tuned_dir: Path, default_dir: Path) -> pd.DataFrame:
    """One row per (variant, level): validation objective and test scores of the tuned and untuned model."""
    tuning = config.tuning
    model = config.model_entry(tuning.model).label
    pick = min if tuning.direction == "min" else max
    trials = pd.read_csv(tuned_dir / "trials.csv")
    history = pd.read_csv(default_dir / "models" / model / f"seed_{config.seeds[0]}" / "history.csv")
    variants = (("tuned", tuned_dir, tuning.seed, pick(trials["score"].dropna())),
                ("default", default_dir, config.seeds[0], pick(history[tuning.objective])))
    rows = []
    for variant, run_dir, seed, objective in variants:
        metrics = pd.read_csv(run_dir / "metrics.csv")
        for _, test in metrics[(metrics["model"] == model) & (metrics["seed"] == seed)].iterrows():
            rows.append({"variant": variant, "level": test["level"], tuning.objective: objective,
                         **{f"test_{m}": test[m] for m in TEST_METRICS}})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Tune, run the untuned defaults, compare and report."""
    args = parse_args(argv)
    config = load_config(args.config, args.set)
    out = Path(args.out)
    tuned_dir, default_dir = out / "tuned", out / "default"
    tune(config, tuned_dir)
    untuned = load_config(args.config, args.set)
    untuned.models = [untuned.model_entry(config.tuning.model)]
    run_experiment(untuned, default_dir)
    table = compare(config, tuned_dir, default_dir)
    write_csv(out / "comparison.csv", table)
    trials = pd.read_csv(tuned_dir / "trials.csv")
    best = trials.sort_values("score", ascending=config.tuning.direction == "min")
    write_json(out / "comparison.json", {"config": config.name, "best_trial": best.iloc[0].to_dict(),
                                         "comparison": table.to_dict(orient="records")})
    write_report([tuned_dir, default_dir], out / "report")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out / 'comparison.csv'}, {out / 'comparison.json'} and {out / 'report' / 'report.html'}")


if __name__ == "__main__":
    main()

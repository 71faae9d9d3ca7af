"""The report of fabricated run folders: tables, bold best, embedded figures, data summary, errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.errors import BiomedError
from pipelines.metrics import evaluate_predictions, summarise
from pipelines.predictions import Predictions, Task
from pipelines.report import write_report

BINARY = ["N", "A"]
MULTI = ["N", "A", "O", "~"]
# model -> (role, signal strength of its scores)
MODELS = {"mina": ("deep", 3.0), "cnn": ("deep", 1.5), "rf_features": ("baseline", 0.8)}


def _predictions(rng: np.random.Generator, classes: list[str], strength: float, val: bool
                 ) -> pd.DataFrame:
    """Three windows per record; probabilities lean towards the true class by ``strength``."""
    splits = (["val"] * 20 if val else []) + ["test"] * 40
    rows = []
    for i, split in enumerate(splits):
        y = i % len(classes)
        for window in range(3):
            logits = rng.normal(size=len(classes)) + strength * np.eye(len(classes))[y]
            probs = np.exp(logits) / np.exp(logits).sum()
            rows.append({"split": split, "record": f"R{i:03d}", "window": window, "y_true": y,
                         **{f"prob_{c}": p for c, p in zip(classes, probs)}})
    return pd.DataFrame(rows)


def make_run(root: Path, name: str, *, classes: list[str] = BINARY, models: dict = MODELS,
             history: bool = True, val: bool = True) -> Path:
    """Write a run folder like the runner's with made-up predictions for 2 seeds per model."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": name, "models": list(models)}))
    counts = {c: 10 + k for k, c in enumerate(classes)}
    (run / "data_summary.json").write_text(json.dumps({
        "name": name, "modality": "ecg", "classes": classes,
        "positive": "A" if len(classes) == 2 else None, "fs": 300, "window_samples": 3000,
        "records": {s: counts for s in ("train", "val", "test")},
        "windows": {s: {c: 3 * n for c, n in counts.items()} for s in ("train", "val", "test")},
        "skipped": [{"record": "A00999", "reason": "signal shorter than one window"}],
        "excluded": {"O": 12, "~": 3} if len(classes) == 2 else {}}))
    rng = np.random.default_rng(len(name))
    rows = []
    for model, (role, strength) in models.items():
        for seed in (0, 1):
            folder = run / "models" / model / f"seed_{seed}"
            folder.mkdir(parents=True)
            predictions = _predictions(rng, classes, strength, val)
            predictions.to_csv(folder / "predictions.csv", index=False)
            (folder / "info.json").write_text(json.dumps({"model": model, "seed": seed, "role": role}))
            if history and role == "deep":
                pd.DataFrame({"epoch": range(4), "loss": [0.9, 0.7, 0.6, 0.5],
                              "val_loss": [1.0, 0.8, 0.75, 0.7], "auc": [0.6, 0.7, 0.8, 0.85],
                              "val_auc": [0.55, 0.65, 0.7, 0.72], "learning_rate": 1e-3}
                             ).to_csv(folder / "history.csv", index=False)
            rows += [{"model": model, "role": role, "seed": seed, **m}
                     for m in evaluate_predictions(Predictions.from_frame(
                         predictions, Task.of(classes, "A" if len(classes) == 2 else None)))]
    metrics = pd.DataFrame(rows)
    metrics.to_csv(run / "metrics.csv", index=False)
    summarise(metrics).to_csv(run / "summary.csv", index=False)
    return run


def _cell(summary: pd.DataFrame, model: str, level: str, metric: str) -> str:
    row = summary[(summary["model"] == model) & (summary["level"] == level)].iloc[0]
    return f"{row[f'{metric}_mean']:.4f} ± {row[f'{metric}_std']:.4f}"


def test_report_on_binary_run(tmp_path):
    run = make_run(tmp_path, "toy_af")
    paths = write_report([run], n_boot=200)
    assert paths == {"md": run / "report.md", "html": run / "report.html"}
    md, page = paths["md"].read_text(), paths["html"].read_text()
    summary = summarise(pd.read_csv(run / "metrics.csv"))

    assert md.startswith("# Model comparison: toy_af")
    assert "Classes: N, A" in md and "binary (positive class: A)" in md
    assert md.index("### Record level") < md.index("### Window level")
    for model, (role, _) in MODELS.items():
        assert f"| {model} | {role} | " in md
    best = summary[summary["level"] == "record"].sort_values("roc_auc_mean").iloc[-1]
    assert best["model"] == "mina"
    assert f"| mina | deep | **{_cell(summary, 'mina', 'record', 'roc_auc')}** |" in md
    assert f"| cnn | deep | {_cell(summary, 'cnn', 'record', 'roc_auc')} |" in md
    assert f"<td><strong>{_cell(summary, 'mina', 'record', 'roc_auc')}</strong></td>" in page

    paired = re.findall(r"^\| (mina|cnn) \| rf_features \| (\d) \| 40 \| ([+-]\d\.\d{4}) \[", md, re.M)
    assert sorted((m, s) for m, s, _ in paired) == [("cnn", "0"), ("cnn", "1"), ("mina", "0"), ("mina", "1")]

    for figure in ("roc", "pr", "confusion_mina", "confusion_rf_features", "history_cnn"):
        assert (run / "figures" / f"{figure}.png").is_file()
        assert f"(figures/{figure}.png)" in md
    assert not (run / "figures" / "history_rf_features.png").exists()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2 + 3 + 2
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "figures/" not in page and "http" not in page.replace("<!DOCTYPE html>", "")

    assert "| N | 10 | 10 | 10 | 30 | 30 | 30 |" in md
    assert "A00999: signal shorter than one window" in md and "<li>A00999: signal shorter" in page
    assert "O: 12, ~: 3" in md


def test_report_tolerates_only_baselines_without_val_or_history(tmp_path):
    run = make_run(tmp_path, "bare", models={"rf_features": ("baseline", 1.0)}, history=False, val=False)
    md = write_report([run], n_boot=50)["md"].read_text()
    assert "| rf_features | baseline |" in md
    assert "No paired comparison" in md
    assert "history_" not in md and "(figures/roc.png)" in md


def test_report_on_multiclass_run(tmp_path):
    run = make_run(tmp_path, "toy_cinc", classes=MULTI)
    md = write_report([run], n_boot=50)["md"].read_text()
    assert "| Model | Role | Macro F1 | F1 N | F1 A | F1 O | F1 ~ | CinC score | Macro ROC-AUC |" in md
    assert "binary tasks only" in md
    assert "(figures/confusion_mina.png)" in md and "roc.png" not in md


def test_report_on_several_runs_prefixes_clashing_names(tmp_path):
    runs = [make_run(tmp_path, "run_a"),
            make_run(tmp_path, "run_b", models={"mina": ("deep", 2.0), "svm": ("baseline", 0.5)})]
    with pytest.raises(BiomedError, match="out_dir"):
        write_report(runs)
    md = write_report(runs, tmp_path / "compare", n_boot=50)["md"].read_text()
    assert "| run_a/mina | deep |" in md and "| run_b/mina | deep |" in md
    assert "| cnn | deep |" in md and "| svm | baseline |" in md
    assert (tmp_path / "compare" / "figures" / "confusion_run_b_mina.png").is_file()
    assert "## Data" in md and "### Data: run_a" in md and "### Data: run_b" in md


def test_runs_of_different_tasks_are_refused(tmp_path):
    runs = [make_run(tmp_path, "binary"), make_run(tmp_path, "multi", classes=MULTI)]
    with pytest.raises(BiomedError, match="different tasks"):
        write_report(runs, tmp_path / "out")


def test_non_run_dir_raises_biomed_error_naming_the_path(tmp_path):
    with pytest.raises(BiomedError, match=re.escape(f"{tmp_path} (no metrics.csv)")):
        write_report([tmp_path])

"""The comparison report of one or more run folders: ``report.md`` and a self-contained ``report.html``.

The report is built once as a list of blocks (headings, paragraphs, tables, figures)
and rendered twice: Markdown linking the PNGs under ``figures/``, and HTML with the
same PNGs embedded as base64 data URIs and inline CSS.

Example:
    >>> paths = write_report([Path("runs/cinc2017_af")])   # doctest: +SKIP
    >>> paths["html"]                                       # doctest: +SKIP
    PosixPath('runs/cinc2017_af/report.html')
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import confusion_matrix

from pipelines import plots, plugins
from pipelines.artifacts import write_text
from pipelines.errors import BiomedError
from pipelines.metrics import bootstrap_auc_difference, parse_class_weights, summarise
from pipelines.predictions import Predictions, Task, read_predictions

SPLITS = ("train", "val", "test")
BINARY_COLUMNS = (("ROC-AUC", "roc_auc"), ("PR-AUC", "pr_auc"), ("F1", "f1"),
                  ("Sensitivity", "sensitivity"), ("Specificity", "specificity"),
                  ("Accuracy", "accuracy"))
LEVEL_NOTES = {
    "record": "Test records at natural prevalence; a record's score is the mean of its window "
              "probabilities; binary thresholds (and multi-class weights, when configured) are chosen on "
              "the validation records.",
    "window": "Every test window; binary thresholds (and multi-class weights) are chosen on the validation "
              "windows.",
}


# ----------------------------------------------------------------------------- run folders

@dataclass
class Run:
    """One run folder: its name, data summary, per-seed metrics and per-model files."""

    path: Path
    name: str
    data_summary: dict[str, Any]
    metrics: pd.DataFrame
    classes: list[str]
    positive: str | None
    display: dict[str, str] = field(default_factory=dict)

    def seeds(self, model: str) -> list[int]:
        """Seeds of ``model`` in metrics.csv, ascending."""
        return sorted(int(s) for s in self.metrics.loc[self.metrics["model"] == model, "seed"].unique())

    @property
    def task(self) -> Task:
        """The run's classification task."""
        return Task.of(self.classes, self.positive)

    def predictions(self, model: str, seed: int) -> Predictions | None:
        """The model × seed ``predictions.csv``, or None when absent."""
        path = self.path / "models" / model / f"seed_{seed}" / "predictions.csv"
        return read_predictions(path, self.task) if path.is_file() else None

    def threshold(self, model: str, seed: int) -> float | None:
        """The record-level decision threshold the metrics chose on validation (None: multi-class)."""
        rows = self.metrics[(self.metrics["model"] == model) & (self.metrics["seed"] == seed)
                            & (self.metrics["level"] == "record")]
        if "threshold" not in rows or rows.empty or pd.isna(rows["threshold"].iloc[0]):
            return None
        return float(rows["threshold"].iloc[0])

    def class_weights(self, model: str, seed: int) -> list[float] | None:
        """The record-level multi-class decision weights the metrics chose on validation (None: argmax)."""
        rows = self.metrics[(self.metrics["model"] == model) & (self.metrics["seed"] == seed)
                            & (self.metrics["level"] == "record")]
        return None if "class_weights" not in rows or rows.empty else parse_class_weights(rows["class_weights"].iloc[0])

    def history(self, model: str, seed: int) -> pd.DataFrame | None:
        """The model × seed Keras ``history.csv``, or None when absent or empty."""
        path = self.path / "models" / model / f"seed_{seed}" / "history.csv"
        frame = pd.read_csv(path) if path.is_file() and path.stat().st_size else None
        return frame if frame is not None and len(frame) else None


def load_run(path: str | os.PathLike) -> Run:
    """Read a run folder; raise BiomedError naming ``path`` when it has no ``metrics.csv``."""
    path = Path(path)
    if not (path / "metrics.csv").is_file():
        raise BiomedError(f"not a run folder: {path} (no metrics.csv)")
    metrics = pd.read_csv(path / "metrics.csv")
    missing = {"model", "role", "seed", "level"} - set(metrics.columns)
    if missing:
        raise BiomedError(f"{path / 'metrics.csv'} lacks columns: {', '.join(sorted(missing))}")
    metrics["model"] = metrics["model"].astype(str)
    summary_path = path / "data_summary.json"
    data_summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    config_path = path / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else None
    name = (config or {}).get("name") or data_summary.get("name") or path.name
    classes = data_summary.get("classes") or _classes_from_predictions(path)
    return Run(path, str(name), data_summary, metrics, list(classes), data_summary.get("positive"))


def _classes_from_predictions(path: Path) -> list[str]:
    """Class names from the ``prob_<class>`` columns of the run's first predictions.csv."""
    first = next(iter(sorted(path.glob("models/*/seed_*/predictions.csv"))), None)
    columns = pd.read_csv(first, nrows=0).columns if first else []
    return [c.removeprefix("prob_") for c in columns if c.startswith("prob_")]


def _name_models(runs: list[Run]) -> None:
    """Set each run's display names: the model name, prefixed by the run folder on clashes."""
    owners: dict[str, int] = {}
    for run in runs:
        for model in run.metrics["model"].unique():
            owners[model] = owners.get(model, 0) + 1
    for run in runs:
        run.display = {m: (f"{run.path.name}/{m}" if owners[m] > 1 else m)
                       for m in run.metrics["model"].unique()}


def _task(runs: list[Run]) -> tuple[list[str], str | None, bool]:
    """Classes, positive class and whether the task is binary, checked equal across runs."""
    tasks = {(tuple(r.classes), r.positive) for r in runs}
    if len(tasks) > 1:
        raise BiomedError("cannot compare runs of different tasks: " + "; ".join(
            f"{r.path}: classes {r.classes}, positive {r.positive}" for r in runs))
    classes, positive = tasks.pop()
    binary = all("roc_auc" in r.metrics.columns for r in runs)
    return list(classes), positive, binary


# ----------------------------------------------------------------------------- report blocks

@dataclass(frozen=True)
class Heading:
    """A section heading (level 1 = title)."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list of plain-text items."""

    items: list[str]


@dataclass(frozen=True)
class Table:
    """A table of text cells; ``bold`` holds (row, column) positions to emphasise."""

    header: list[str]
    rows: list[list[str]]
    bold: frozenset[tuple[int, int]] = frozenset()


@dataclass(frozen=True)
class Figure:
    """A PNG figure with its caption."""

    path: Path
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


def write_report(run_dirs: list[Path], out_dir: Path | None = None, *, n_boot: int = 2000
                 ) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` comparing the models of runs.

    Args:
        run_dirs: run folders written by the runner.
        out_dir: where to write; defaults to the run folder when there is exactly one.
        n_boot: bootstrap resamples of the paired comparisons.

    Returns:
        ``{"md": path, "html": path}``.

    Raises:
        BiomedError: a folder is not a run folder, the runs have different tasks, or
            ``out_dir`` is missing for several runs.
    """
    if not run_dirs:
        raise BiomedError("no run folders given to report on")
    runs = [load_run(p) for p in run_dirs]
    if out_dir is None and len(runs) > 1:
        raise BiomedError("out_dir is required when reporting on several run folders")
    out_dir = Path(out_dir) if out_dir is not None else runs[0].path
    _name_models(runs)
    classes, positive, binary = _task(runs)
    title = f"Model comparison: {', '.join(r.name for r in runs)}"
    blocks = [
        *_header(title, runs, classes, positive, binary),
        *_comparison_tables(runs, classes, binary),
        *_paired_comparison(runs, binary, n_boot),
        *_figures(runs, classes, binary, out_dir / "figures"),
        *_plugin_sections(runs, out_dir / "figures"),
        *_data_summary(runs),
    ]
    return {"md": write_text(out_dir / "report.md", render_markdown(blocks, out_dir)),
            "html": write_text(out_dir / "report.html", render_html(blocks, title))}


def _header(title: str, runs: list[Run], classes: list[str], positive: str | None,
            binary: bool) -> list[Block]:
    """Title, runs, date, modality, classes and task."""
    if not binary:
        task = f"multi-class ({len(classes)} classes)"
    else:
        task = f"binary (positive class: {classes[Task.of(classes, positive).positive] if classes else '?'})"
    modalities = sorted({str(r.data_summary.get("modality", "unknown")) for r in runs})
    return [Heading(title, 1), Bullets([
        "Runs: " + ", ".join(f"{r.name} ({r.path})" for r in runs),
        f"Date: {datetime.now():%Y-%m-%d %H:%M}",
        f"Modality: {', '.join(modalities)}",
        f"Classes: {', '.join(classes) or 'unknown'}",
        f"Task: {task}",
    ])]


def _comparison_tables(runs: list[Run], classes: list[str], binary: bool) -> list[Block]:
    """One `mean ± std over seeds` table per level, record level first, best per column in bold."""
    metrics = pd.concat([r.metrics.assign(model=r.metrics["model"].map(r.display)) for r in runs],
                        ignore_index=True)
    summary = summarise(metrics)
    columns = [(label, key) for label, key in _metric_columns(classes, binary)
               if f"{key}_mean" in summary.columns]
    blocks: list[Block] = [Heading("Comparison"), Paragraph(
        "Test-set metrics as mean ± std over seeds (4 decimals); the best value of each column "
        "is in bold. Baselines are marked in the Role column.")]
    for level in ("record", "window"):
        rows = summary[summary["level"] == level]
        if rows.empty:
            continue
        means = rows[[f"{key}_mean" for _, key in columns]].to_numpy(dtype=float).round(4)
        best = np.max(np.where(np.isnan(means), -np.inf, means), axis=0)
        bold = frozenset((i, 2 + j) for i, j in zip(*np.nonzero(means == best)))
        table_rows = [[row["model"], row["role"],
                       *[_mean_std(row[f"{key}_mean"], row[f"{key}_std"]) for _, key in columns],
                       str(row["n_seeds"])]
                      for row in rows.to_dict("records")]
        blocks += [Heading(f"{level.capitalize()} level", 3), Paragraph(LEVEL_NOTES[level]),
                   Table(["Model", "Role", *[label for label, _ in columns], "Seeds"], table_rows, bold)]
    return blocks


def _metric_columns(classes: list[str], binary: bool) -> list[tuple[str, str]]:
    """(header, metric) pairs of the comparison table for the task."""
    if binary:
        return list(BINARY_COLUMNS)
    return [("Macro F1", "macro_f1"), *[(f"F1 {c}", f"f1_{c}") for c in classes],
            ("CinC score", "cinc_score"), ("Macro ROC-AUC", "macro_roc_auc"), ("Accuracy", "accuracy")]


def _paired_comparison(runs: list[Run], binary: bool, n_boot: int) -> list[Block]:
    """Per seed, bootstrap ROC-AUC and PR-AUC differences of each deep model vs the best baseline."""
    blocks: list[Block] = [Heading("Paired comparison with the best baseline")]
    if not binary:
        return blocks + [Paragraph("Paired bootstrap comparisons are reported for binary tasks only.")]
    blocks.append(Paragraph(
        f"Deep model minus the best baseline (highest mean record-level ROC-AUC) on the same test "
        f"records, per seed: difference on all records, 95 % percentile CI and two-sided p-value "
        f"of a paired bootstrap over records ({n_boot} resamples)."))
    rows = []
    for run in runs:
        summary = summarise(run.metrics)
        record = summary[summary["level"] == "record"]
        baselines = record[record["role"] == "baseline"].sort_values("roc_auc_mean", ascending=False)
        if baselines.empty:
            continue
        baseline = baselines["model"].iloc[0]
        for model in record.loc[record["role"] != "baseline", "model"]:
            for seed in run.seeds(model):
                rows.append(_paired_row(run, model, baseline, seed, n_boot))
    rows = [row for row in rows if row is not None]
    if not rows:
        return blocks + [Paragraph("No paired comparison: the runs need a deep model and a baseline "
                                   "with test predictions.")]
    header = ["Deep model", "Baseline", "Seed", "Records", "Δ ROC-AUC [95 % CI]", "p (ROC-AUC)",
              "Δ PR-AUC [95 % CI]", "p (PR-AUC)"]
    return blocks + [Table(header, rows)]


def _paired_row(run: Run, model: str, baseline: str, seed: int, n_boot: int) -> list[str] | None:
    """One paired-comparison row, or None when either model lacks test predictions."""
    baseline_seeds = run.seeds(baseline)
    baseline_seed = seed if seed in baseline_seeds else baseline_seeds[0]
    deep = _test_scores(run.predictions(model, seed))
    base = _test_scores(run.predictions(baseline, baseline_seed))
    if deep is None or base is None:
        return None
    paired = deep.merge(base, on=["record", "y"], suffixes=("", "_baseline"))
    cells = []
    for metric in ("roc_auc", "pr_auc"):
        result = bootstrap_auc_difference(paired["y"], paired["score"], paired["score_baseline"],
                                          n_boot=n_boot, seed=seed, metric=metric)
        cells += [f"{result['diff']:+.4f} [{result['ci_low']:+.4f}, {result['ci_high']:+.4f}]",
                  _p_value(result["p_value"], result["n_boot"])]
    return [run.display[model], run.display[baseline], str(seed), str(len(paired)), *cells]


def _test_scores(predictions: Predictions | None) -> pd.DataFrame | None:
    """Record-level test labels and positive scores (columns record, y, score), or None."""
    if predictions is None:
        return None
    test = predictions.by_record().subset("test")
    return pd.DataFrame({"record": test.record, "y": test.is_positive, "score": test.scores}) if len(test) else None


def _figures(runs: list[Run], classes: list[str], binary: bool, figure_dir: Path) -> list[Block]:
    """ROC and PR overlays, confusion matrices and training curves, each model's lowest seed."""
    curves, confusions, histories = {}, [], []
    for run in runs:
        for model, name in run.display.items():
            seed = run.seeds(model)[0]
            label = f"{name} (seed {seed})"
            predictions = run.predictions(model, seed)
            scores = _test_scores(predictions) if binary else None
            if scores is not None and scores["y"].nunique() == 2:
                curves[label] = (scores["y"].to_numpy(), scores["score"].to_numpy())
            if predictions is not None:
                test = predictions.by_record().subset("test")
                predicted = test.decide(run.threshold(model, seed), run.class_weights(model, seed))
                matrix = confusion_matrix(test.y_true, predicted, labels=list(range(len(classes))))
                path = figure_dir / f"confusion_{plots.file_slug(name)}.png"
                confusions.append(Figure(
                    plots.plot_confusion(matrix, classes, path, f"{label}: test records"),
                    f"Confusion matrix of {label} on the test records (rows: true class)."))
            history = run.history(model, seed)
            if history is not None:
                histories.append(Figure(
                    plots.plot_history(history, figure_dir / f"history_{plots.file_slug(name)}.png", label),
                    f"Training and validation curves of {label}."))
    blocks: list[Block] = []
    if curves:
        note = "test records (record level), one curve per model: its lowest seed"
        blocks += [Figure(plots.plot_roc(curves, figure_dir / "roc.png"), f"ROC curves on the {note}."),
                   Figure(plots.plot_pr(curves, figure_dir / "pr.png"),
                          f"Precision-recall curves on the {note}.")]
    blocks += confusions + histories
    return [Heading("Figures"), *(blocks or [Paragraph("No predictions or histories to plot.")])]


def _plugin_sections(runs: list[Run], figure_dir: Path) -> list[Block]:
    """The sections modality plugins registered (e.g. Grad-CAM for image runs), in registration order."""
    return [block for _, section in plugins.REPORT_SECTIONS.items() for block in section(runs, figure_dir)]


def _data_summary(runs: list[Run]) -> list[Block]:
    """Records and windows per class and split, skipped records and excluded counts, per run."""
    blocks: list[Block] = [Heading("Data")]
    for run in runs:
        summary = run.data_summary
        blocks.append(Heading(f"Data: {run.name}", 3))
        if not summary:
            blocks.append(Paragraph(f"No data_summary.json in {run.path}."))
            continue
        classes = summary.get("classes", [])
        counts = {kind: summary.get(kind, {}) for kind in ("records", "windows")}
        header = ["Class", *[f"{kind.capitalize()} {split}" for kind in counts for split in SPLITS]]
        rows = [[c, *[str(counts[kind].get(split, {}).get(c, 0)) for kind in counts for split in SPLITS]]
                for c in classes]
        totals = [str(sum(counts[kind].get(split, {}).values())) for kind in counts for split in SPLITS]
        blocks.append(Table(header, rows + [["Total", *totals]]))
        skipped = summary.get("skipped", [])
        blocks.append(Paragraph(f"Skipped records: {len(skipped)}."))
        if skipped:
            blocks.append(Bullets([f"{s.get('record')}: {s.get('reason')}" for s in skipped]))
        excluded = summary.get("excluded", {})
        blocks.append(Paragraph("Records excluded by the label map: " + (
            ", ".join(f"{label}: {n}" for label, n in excluded.items()) if excluded else "none") + "."))
    return blocks


def _mean_std(mean: float, std: float) -> str:
    """``mean ± std`` with 4 decimals (the mean alone for one seed, n/a for NaN)."""
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.4f}" if np.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _p_value(p_value: float, n_boot: int) -> str:
    """A bootstrap p-value with 4 decimals; 0 is shown as below the resolution 2 / n_boot."""
    return f"< {2 / n_boot:.4f}" if p_value == 0 and n_boot else f"{p_value:.4f}"


# ----------------------------------------------------------------------------- rendering

def render_markdown(blocks: list[Block], base_dir: Path) -> str:
    """Render blocks as Markdown; figures link their PNG relative to ``base_dir``."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            cells = [[f"**{c}**" if (i, j) in block.bold else c for j, c in enumerate(row)]
                     for i, row in enumerate(block.rows)]
            lines = [block.header, ["---"] * len(block.header), *cells]
            parts.append("\n".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |"
                                   for line in lines))
        else:
            parts.append(f"![{block.caption}]({_relative(block.path, base_dir)})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


def render_html(blocks: list[Block], title: str) -> str:
    """Render blocks as one self-contained HTML page (inline CSS, figures as data URIs)."""
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(
                f"<td><strong>{html.escape(c)}</strong></td>" if (i, j) in block.bold
                else f"<td>{html.escape(c)}</td>" for j, c in enumerate(row)) + "</tr>"
                for i, row in enumerate(block.rows))
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            caption = html.escape(block.caption)
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                        f"<figcaption>{caption}</figcaption></figure>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _relative(path: Path, base_dir: Path) -> str:
    """``path`` relative to ``base_dir`` when inside it, else the path as given (POSIX form)."""
    try:
        return path.resolve().relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5rem 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 34rem; }
figcaption { font-size: 0.85rem; color: #555; max-width: 34rem; }
"""

"""``biomed run``: train every model × seed of a config, evaluate once on test, write the report.

A run folder is resumable: a finished model × seed (its ``info.json`` exists)
is not trained again, and an interrupted Keras fit resumes from its
BackupAndRestore checkpoint.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from pipelines.artifacts import write_csv, write_json, write_text
from pipelines.config import ExperimentConfig, ModelEntry, config_hash, config_to_yaml
from pipelines.console import progress
from pipelines.datasets import PreparedData, prepare_data
from pipelines.ensembles import ROLE as ENSEMBLE_ROLE, write_ensemble
from pipelines.errors import BiomedError
from pipelines.metrics import evaluate_predictions, summarise
from pipelines.modeling import get_model
from pipelines.predictions import Predictions, Task, read_predictions
from pipelines.report import write_report
from pipelines.runlock import check_run_folder, run_lock
from pipelines.runtime import artefact_dir, get_strategy, is_chief
from pipelines.summary import format_summary
from pipelines.training import FitResult, fit_model

log = logging.getLogger("biomed")


def default_run_dir(config: ExperimentConfig) -> Path:
    """``<output_dir>/<config name>-<timestamp>``."""
    return Path(config.output_dir) / f"{config.name}-{datetime.now():%Y%m%d-%H%M%S}"


def start_run_dir(config: ExperimentConfig, run_dir: Path, *,
                  may_change: tuple[tuple[str, ...], ...] = (), owned: tuple[str, ...] = ()) -> None:
    """Create the run folder and write the resolved config; refuse a folder of another config.

    Args:
        config: The resolved config of this run.
        run_dir: The run folder.
        may_change: Config keys (as paths, e.g. ``("tuning", "max_trials")``) that may differ
            from the folder's stored config; the new value is stored.
        owned: Entries biomed may have created in ``run_dir`` before its ``config.yaml``.
    """
    check_run_folder(run_dir, owned)
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = run_dir / "config.yaml"
    text = config_to_yaml(config)
    if existing.is_file() and (_without(_stored_config(existing), may_change)
                               != _without(yaml.safe_load(text), may_change)):
        raise BiomedError(f"{run_dir} already holds a run of a different config; "
                          f"choose another --out folder (or delete it)")
    write_text(existing, text)


def _stored_config(path: Path) -> dict:
    """The config stored in a run folder, as a mapping.

    Raises:
        BiomedError: the file is not YAML text with a mapping at the top level.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BiomedError(f"{path}: the run folder's config is not valid YAML "
                          f"({str(getattr(err, 'problem', None) or err)[:120]}); choose another --out folder "
                          f"(or delete it)") from None
    if not isinstance(raw, dict):
        raise BiomedError(f"{path}: the run folder's config is not a mapping; choose another --out folder "
                          f"(or delete it)")
    return raw


def _without(raw: dict, keys: tuple[tuple[str, ...], ...]) -> dict:
    """``raw`` with the nested ``keys`` removed (a copy; missing keys are ignored)."""
    raw = copy.deepcopy(raw)
    for key in keys:
        node = raw
        for part in key[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key[-1], None)
    return raw


#: Keys a resumed run may change: models, ensembles and seeds may be added (or left out); the
#: entries it keeps must be unchanged (:func:`check_kept_entries`), so finished results stay valid.
#: The multi-class decision rule only changes metrics, which a resumed run recomputes.
RUN_EXTENSIONS = (("models",), ("ensembles",), ("seeds",), ("evaluation", "class_weights"))


def check_kept_entries(stored: Path, config: ExperimentConfig) -> None:
    """Refuse to resume a run whose models or ensembles of the same name were configured differently.

    Raises:
        BiomedError: an entry of the stored config changed under the same name.
    """
    if not stored.is_file():
        return
    raw = _stored_config(stored)
    new = yaml.safe_load(config_to_yaml(config))
    for section, key in (("models", "name"), ("ensembles", "name")):
        current = {_entry_label(e, key): e for e in new.get(section) or []}
        for entry in raw.get(section) or []:
            label = _entry_label(entry, key) if isinstance(entry, dict) else None
            if label in current and current[label] != entry:
                raise BiomedError(f"{stored.parent}: {section} entry {label!r} differs from the one this run "
                                  f"folder was trained with; give it another name, or choose another --out folder")


def _entry_label(entry: dict, key: str) -> str:
    return entry.get(key) or entry.get("type")


def write_data_artifacts(config: ExperimentConfig, data: PreparedData, run_dir: Path) -> dict:
    """Write data_summary.json and splits.csv; return the summary."""
    summary = data.summary(config.name, config.data.task.positive)
    summary["config_hash"] = config_hash(config.data)
    write_json(run_dir / "data_summary.json", summary)
    write_csv(run_dir / "splits.csv", data.membership())
    return summary


def run_experiment(config: ExperimentConfig, run_dir: Path) -> Path:
    """Run a whole experiment into ``run_dir`` and return it.

    In a multi-worker run every worker executes this; only the chief writes
    into ``run_dir`` (the others write to a scratch folder that is removed).
    """
    get_strategy(config.runtime)  # a multi-worker strategy must exist before other TensorFlow work
    if is_chief():
        check_run_folder(run_dir)
    with artefact_dir(run_dir) as write_dir, run_lock(write_dir):
        check_kept_entries(write_dir / "config.yaml", config)
        start_run_dir(config, write_dir, may_change=RUN_EXTENSIONS)
        log.info(f"run folder: {run_dir}")
        data = prepare_data(config, progress=_loading_progress())
        summary = write_data_artifacts(config, data, write_dir)
        log.info(format_summary(summary))
        if not config.models:
            log.info("no models in the config: data prepared, nothing to train")
            return run_dir
        train_all(config, data, write_dir)
        paths = write_report([write_dir])
        log.info(f"report: {paths['html']}")
    return run_dir


def train_all(config: ExperimentConfig, data: PreparedData, run_dir: Path) -> None:
    """Fit and evaluate every model × seed, then every ensemble × seed, appending to metrics.csv as each finishes."""
    jobs = list(itertools.product(config.models, config.seeds))
    ensemble_jobs = list(itertools.product(config.ensembles, config.seeds))
    rows: list[dict] = []
    started, done_times = time.perf_counter(), []

    def record_rows(tag: str, new_rows: list[dict]) -> None:
        rows.extend(new_rows)
        record = next(r for r in new_rows if r["level"] == "record")
        log.info(f"{tag}: " + ", ".join(f"{k} {record[k]:.4f}" for k in _headline(record)))
        write_csv(run_dir / "metrics.csv", pd.DataFrame(rows))

    total = len(jobs) + len(ensemble_jobs)
    with progress(total, "training", "model") as bar:
        for number, (entry, seed) in enumerate(jobs, start=1):
            out = run_dir / "models" / entry.label / f"seed_{seed}"
            tag = f"[{number}/{total}] {entry.label} seed {seed}"
            bar.set_postfix_str(f"{entry.label} seed {seed}")
            if is_finished(out):
                log.info(f"{tag}: already trained (predictions.csv found), evaluated without retraining")
                new_rows = evaluate_run_predictions(
                    config, entry, seed, read_predictions(out / "predictions.csv", task_of(config, data)))
            else:
                log.debug(f"{tag}: training{_eta(started, done_times, len(jobs) - number + 1)}")
                job_start = time.perf_counter()
                new_rows = run_one(config, data, entry, seed, out)
                done_times.append(time.perf_counter() - job_start)
            record_rows(tag, new_rows)
            bar.update()
        for number, (ensemble, seed) in enumerate(ensemble_jobs, start=len(jobs) + 1):
            predictions = write_ensemble(run_dir, ensemble, seed, task_of(config, data))
            tag = f"[{number}/{total}] {ensemble.name} seed {seed} (ensemble of {' + '.join(ensemble.members)})"
            record_rows(tag, _metric_rows(config, ensemble.name, ENSEMBLE_ROLE, seed, predictions))
            bar.update()
    write_csv(run_dir / "summary.csv", summarise(pd.DataFrame(rows)))
    log.info(f"finished {total} model × seed runs in {time.perf_counter() - started:.0f} s")


def is_finished(out: Path) -> bool:
    """Whether the fit in ``out`` completed (its info and predictions are written): a resumed run keeps it."""
    return (out / "info.json").is_file() and (out / "predictions.csv").is_file()


#: Subfolder of a refitted model × seed holding the fit on the training records alone, whose
#: validation predictions the run's choices (thresholds, class weights, ensembles) are made on.
VAL_FIT_DIR = "val_fit"


def run_one(config: ExperimentConfig, data: PreparedData, entry: ModelEntry, seed: int, out: Path) -> list[dict]:
    """Train one model on one seed, write its artefacts and return its metric rows.

    With ``train.refit``, the model is first fitted on train (into ``val_fit/``) to predict
    validation, then fitted again on train + val: that refit is the saved model and predicts test.
    """
    spec = get_model(entry.type)
    out.mkdir(parents=True, exist_ok=True)
    refit = None
    if config.train_config(entry).refit:
        val_probs, val_fit = _fit_on_train(config, data, entry, seed, out / VAL_FIT_DIR)
        result = fit_model(spec, entry, config, data.refit_splits, seed, out, predict=("test",))
        probs = {"val": val_probs, **result.probs}
        refit = {"train_records": int(len(np.unique(data.refit_splits["train"].record))),
                 "val_fit": {key: val_fit[key] for key in ("epochs", "train_seconds", "monitor")}}
    else:
        result = fit_model(spec, entry, config, data.splits, seed, out)
        probs = result.probs
    predictions = split_predictions(data, task_of(config, data), probs)
    write_csv(out / "predictions.csv", predictions.to_frame())
    write_json(out / "info.json", {**_fit_info(entry, seed, result), "refit": refit})
    return evaluate_run_predictions(config, entry, seed, predictions)


def _fit_on_train(config: ExperimentConfig, data: PreparedData, entry: ModelEntry, seed: int, out: Path
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """The validation probabilities of a fit on the training records alone, and its info (kept in ``out``:
    a resumed run does not fit it again)."""
    task = task_of(config, data)
    if is_finished(out):
        return read_predictions(out / "predictions.csv", task).probs, json.loads((out / "info.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    result = fit_model(get_model(entry.type), entry, config, data.splits, seed, out, predict=("val",))
    write_csv(out / "predictions.csv", split_predictions(data, task, result.probs).to_frame())
    info = _fit_info(entry, seed, result)
    write_json(out / "info.json", info)
    return result.probs["val"], info


def _fit_info(entry: ModelEntry, seed: int, result: FitResult) -> dict[str, Any]:
    """What ``info.json`` records of one fit."""
    spec = get_model(entry.type)
    return {"model": entry.label, "type": entry.type, "seed": seed, "role": spec.role, "family": spec.family,
            "params": {**spec.defaults, **entry.params}, "train_seconds": round(result.seconds, 3),
            "epochs": result.epochs, "n_params": result.n_params, "monitor": result.monitor}


def task_of(config: ExperimentConfig, data: PreparedData) -> Task:
    """The task of a run: the data's classes and the configured positive class."""
    return Task.of(data.samples.classes, config.data.task.positive)


def split_predictions(data: PreparedData, task: Task, probs: dict[str, np.ndarray]) -> Predictions:
    """The window predictions of the splits in ``probs`` (val, test), in that order."""
    parts = [data.splits[split] for split in probs]
    return Predictions(task, np.concatenate([np.full(len(p), name) for name, p in zip(probs, parts)]),
                       np.concatenate([p.record for p in parts]), np.concatenate([p.window for p in parts]),
                       np.concatenate([np.asarray(p, np.float64) for p in probs.values()]),
                       np.concatenate([p.y for p in parts]))


def evaluate_run_predictions(config: ExperimentConfig, entry: ModelEntry, seed: int,
                             predictions: Predictions) -> list[dict]:
    """Metric rows (window and record level) of one model × seed from its predictions."""
    return _metric_rows(config, entry.label, get_model(entry.type).role, seed, predictions)


def _metric_rows(config: ExperimentConfig, label: str, role: str, seed: int, predictions: Predictions
                 ) -> list[dict]:
    rows = evaluate_predictions(predictions, class_weights=config.evaluation.class_weights)
    return [{"model": label, "role": role, "seed": seed,
             **{k: v for k, v in row.items() if not isinstance(v, (list, dict))}} for row in rows]


def _headline(row: dict) -> list[str]:
    keys = ["roc_auc", "pr_auc", "f1"] if "pr_auc" in row else ["macro_roc_auc", "macro_f1", "accuracy"]
    return [k for k in keys if k in row]


def _eta(started: float, durations: list[float], remaining: int) -> str:
    if not durations:
        return ""
    mean = sum(durations) / len(durations)
    return f" (elapsed {time.perf_counter() - started:.0f} s, ETA {mean * remaining:.0f} s)"


def _loading_progress() -> Callable[[int, int], None]:
    """A ``(done, total)`` callback: a progress bar, and a line per tenth at debug level (``--verbose``)."""
    bars: list[Any] = []

    def show(done: int, total: int) -> None:
        if not bars:
            bars.append(progress(total, "preprocessing", "record"))
        step, before = max(1, total // 10), bars[0].n
        bars[0].update(done - before)
        if done == total or done // step != before // step:
            log.debug(f"  preprocessing records: {done}/{total}")
        if done == total:
            bars[0].close()

    return show

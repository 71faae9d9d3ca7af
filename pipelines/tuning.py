"""``biomed tune``: a KerasTuner search over the hyperparameters of one Keras model of a config.

KerasTuner's own tuners (RandomSearch, Hyperband, BayesianOptimization) search
a :class:`SuiteHyperModel`: ``build(hp)`` builds the registered model with the
trial's hyperparameters, ``fit(hp, model)`` trains it through the suite's
tf.data pipelines with the trial's learning rate and batch size, and early
stopping and learning-rate reduction watch the objective in every trial.

The tuning folder is a run folder (``biomed report`` reads it)::

    config.yaml, data_summary.json, splits.csv   as written by ``biomed run``
    search/                                      KerasTuner's project: resume state, trial checkpoints
    trials.csv, tuning.png                       every trial; score vs trial and vs the top hyperparameters
    best_hyperparameters.yaml, best_config.yaml  config overlay and complete config of the best trial
    models/<name>/seed_<k>/, metrics.csv, report.html
                                                 best settings retrained on train+val, tested once

Resume: the same command again continues the search (finished trials are
kept), also with a larger ``tuning.max_trials`` to extend it; ``--overwrite``
starts afresh. Distributed: one ``--role chief``
process serves KerasTuner's oracle, ``--role worker`` processes run trials
(through the ``KERASTUNER_*`` environment variables, which may also be set by
hand); the folder must be shared, and only the chief writes artefacts.
"""

from __future__ import annotations

import argparse
import collections
import copy
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
from keras_tuner.engine.trial import Trial
import numpy as np
import yaml

from pipelines.artifacts import write_csv, write_json, write_text
from pipelines.config import ExperimentConfig, ModelEntry, TuningConfig, config_to_yaml, load_config
from pipelines.datasets import PreparedData, prepare_data
from pipelines.errors import BiomedError, ConfigError
from pipelines.modeling import get_model
from pipelines.report import write_report
from pipelines.runlock import LOCK_NAME, check_run_folder, run_lock
from pipelines.runner import run_one, start_run_dir, train_all, write_data_artifacts
from pipelines.runtime import get_strategy, global_batch_size, set_precision
from pipelines.samples import SampleSet
from pipelines.schedules import plateau_callbacks
from pipelines.schema import to_dict
from pipelines.search_space import check_space, declare_all, model_values
from pipelines.side_inputs import with_side_inputs
from pipelines.splits import monitored_splits
from pipelines.training import build_keras, fit_keras, weight_averaging_callbacks
from pipelines.tuning_results import plot_trials, trial_table

log = logging.getLogger("biomed")

SEARCH_DIR = "search"


class SuiteHyperModel(kt.HyperModel):
    """Any registered Keras model of the suite as a KerasTuner HyperModel.

    Args:
        config: the experiment config; its ``tuning`` section names the model and the space.
        splits: the prepared ``train`` and ``val`` sample sets; with ``train.monitor_split`` trials
            fit on part of ``train`` and are watched and scored on its held-out records.
        strategy: the tf.distribute strategy every trial compiles under.
    """

    def __init__(self, config: ExperimentConfig, splits: dict[str, SampleSet], strategy: Any) -> None:
        super().__init__(name=config.tuning.model)
        self.entry = config.model_entry(config.tuning.model)
        self.config = dataclasses.replace(config, train=config.train_config(self.entry))
        self.strategy = strategy
        self.spec = get_model(self.entry.type)
        with_side_inputs(splits, self.spec.side_inputs)
        watched = monitored_splits(splits, self.config.train.monitor_split, config.data.split.seed)
        self.train, self.val = watched["train"], watched["val"]
        self._fits: collections.Counter[str] = collections.Counter()

    def params(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """The model's hyperparameters: the config's, overridden by the trial's (declaring the space)."""
        return {**self.entry.params, **model_values(declare_all(hp, self.config.tuning.search_space))}

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """Build the (uncompiled) model; the n-th execution of a trial uses seed ``tuning.seed + n``."""
        return build_keras(self.spec, self.params(hp), self.train, self._seed(hp), self.strategy, self.config)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, callbacks: list | None = None,
            epochs: int = 1, initial_epoch: int = 0, verbose: int = 0, **kwargs: Any) -> dict[str, float]:
        """Train on train, validate on val; return the best epoch's val metrics and epoch counts.

        Runs the suite's one Keras fit (:func:`pipelines.training.fit_keras`).
        Multi-phase models (e.g. transfer learning) run their earlier phases as
        configured (their own epochs, else ``train.epochs``); the trial's epoch
        budget, callbacks and score apply to the last phase.
        """
        values = declare_all(hp, self.config.tuning.search_space)
        batch = global_batch_size(int(values.get("batch_size", self.config.loader.batch_size)),
                                  self.strategy.num_replicas_in_sync, self.config.runtime)
        start = time.perf_counter()
        history, _ = fit_keras(model, self.spec.training_phases(model, self.params(hp)), self.config,
                               {"train": self.train, "val": self.val}, seed=self._seed(hp), batch_size=batch,
                               learning_rate=float(values.get("learning_rate", self.config.train.learning_rate)),
                               strategy=self.strategy, callbacks=lambda phase, last: callbacks if last else None,
                               last_phase_epochs=(initial_epoch, epochs), verbose=verbose)
        self._fits[_key(hp)] += 1
        return trial_metrics(history, self.config.tuning, time.perf_counter() - start)

    def _seed(self, hp: kt.HyperParameters) -> int:
        return self.config.tuning.seed + self._fits[_key(hp)]


def trial_metrics(history: keras.callbacks.History, tuning: TuningConfig, seconds: float) -> dict[str, float]:
    """The validation metrics of the best epoch plus ``best_epoch``, ``epochs`` (1-based) and ``seconds``."""
    scores = np.asarray(history.history[tuning.objective], dtype=float)
    best = int(np.nanargmax(scores) if tuning.direction == "max" else np.nanargmin(scores))
    metrics = {k: float(v[best]) for k, v in history.history.items() if k.startswith("val_")}
    return {**metrics, tuning.objective: float(scores[best]), "best_epoch": history.epoch[best] + 1,
            "epochs": history.epoch[-1] + 1, "seconds": round(seconds, 3)}


def trial_callbacks(config: ExperimentConfig) -> list[keras.callbacks.Callback]:
    """Weight averaging (``train.ema_momentum``), EarlyStopping and (constant schedule) ReduceLROnPlateau.

    KerasTuner copies them per trial.
    """
    tuning, train = config.tuning, config.train
    return [
        *weight_averaging_callbacks(train),
        keras.callbacks.EarlyStopping(monitor=tuning.objective, mode=tuning.direction,
                                      patience=train.early_stopping_patience, restore_best_weights=True),
        *plateau_callbacks(train, tuning.objective, tuning.direction),
    ]


class _TrialProgress:
    """Tuner mixin: one line per finished trial with its score, the best so far and an ETA."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._durations, self._began = [], time.perf_counter()
        super().__init__(*args, **kwargs)

    def on_trial_begin(self, trial: Trial) -> None:
        super().on_trial_begin(trial)
        self._began = time.perf_counter()

    def on_trial_end(self, trial: Trial) -> None:
        super().on_trial_end(trial)
        self._durations.append(time.perf_counter() - self._began)
        done = self.oracle.get_trial(trial.trial_id)
        best = self.oracle.get_best_trials(1)
        remaining = self.oracle.max_trials - int(trial.trial_id) - 1 if self.oracle.max_trials else 0
        log.info(progress_line(done, best[0] if best else None, self.oracle.objective.name,
                                np.mean(self._durations) * remaining))


class RandomSearch(_TrialProgress, kt.RandomSearch):
    """KerasTuner's RandomSearch with one progress line per trial."""


class Hyperband(_TrialProgress, kt.Hyperband):
    """KerasTuner's Hyperband with one progress line per trial."""


class BayesianOptimization(_TrialProgress, kt.BayesianOptimization):
    """KerasTuner's BayesianOptimization with one progress line per trial."""


TUNERS = {"random": RandomSearch, "hyperband": Hyperband, "bayesian": BayesianOptimization}


def progress_line(trial: Trial, best: Trial | None, objective: str, eta_s: float) -> str:
    """``trial 03 COMPLETED: val_auc 0.8123, 7 epochs, 12 s | best 0.8450 (trial 01) | ETA 36 s``."""
    line = f"trial {trial.trial_id} {trial.status}"
    if trial.score is not None:
        line += (f": {objective} {trial.score:.4f}, {_metric(trial, 'epochs'):.0f} epochs, "
                 f"{_metric(trial, 'seconds'):.0f} s")
    elif trial.message:
        line += f": {trial.message.strip().splitlines()[-1]}"
    if best is not None and best.score is not None:
        line += f" | best {best.score:.4f} (trial {best.trial_id})"
    return line + (f" | ETA {eta_s:.0f} s" if eta_s else "")


def make_tuner(config: ExperimentConfig, hypermodel: SuiteHyperModel, directory: Path, *,
               overwrite: bool = False) -> kt.Tuner:
    """The configured KerasTuner tuner; its project (``directory/search``) is resumed unless ``overwrite``."""
    tuning = config.tuning
    common = dict(hypermodel=hypermodel, objective=kt.Objective(tuning.objective, tuning.direction),
                  seed=tuning.seed + 1,  # KerasTuner treats seed 0 as "no seed"
                  executions_per_trial=tuning.executions_per_trial, directory=str(directory),
                  project_name=SEARCH_DIR, overwrite=overwrite, distribution_strategy=hypermodel.strategy)
    if tuning.tuner == "hyperband":
        return Hyperband(max_epochs=tuning.max_epochs, factor=tuning.hyperband_factor, **common)
    return TUNERS[tuning.tuner](max_trials=tuning.max_trials, **common)


def distributed_role() -> str | None:
    """'chief' or 'worker' when KerasTuner's ``KERASTUNER_*`` variables are set, else None."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def distributed_env(role: str, address: str, port: int, worker_id: str | None = None) -> dict[str, str]:
    """The ``KERASTUNER_*`` variables of a chief or worker (worker id default: ``tuner<pid>``)."""
    tuner_id = "chief" if role == "chief" else (worker_id or f"tuner{os.getpid()}")
    return {"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": address,
            "KERASTUNER_ORACLE_PORT": str(port)}


def default_tune_dir(config: ExperimentConfig) -> Path:
    """``<output_dir>/<config name>-tune``."""
    return Path(config.output_dir) / f"{config.name}-tune"


def tune(config: ExperimentConfig, run_dir: Path, *, overwrite: bool = False) -> Path:
    """Run or resume the search of ``config.tuning`` into ``run_dir``, then retrain, test and report the best.

    Args:
        config: a config with a ``tuning`` section.
        run_dir: the tuning folder (shared by the chief and workers in distributed mode).
        overwrite: discard an existing search in ``run_dir`` and start afresh.

    Returns:
        ``run_dir``.
    """
    check_tuning(config)
    strategy = get_strategy(config.runtime)  # before any other TensorFlow work (multi-worker)
    role = distributed_role()
    if role == "worker":   # the chief holds the lock and writes; workers only run trials
        return _search(config, run_dir, strategy, role, overwrite)
    check_run_folder(run_dir, owned=(SEARCH_DIR,))
    with run_lock(run_dir):
        if overwrite and (run_dir / SEARCH_DIR).is_dir():
            for child in run_dir.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                elif child.name != LOCK_NAME:
                    child.unlink()
        # more trials extend a finished search
        start_run_dir(config, run_dir, may_change=(("tuning", "max_trials"),), owned=(SEARCH_DIR,))
        return _search(config, run_dir, strategy, role, overwrite)


def _search(config: ExperimentConfig, run_dir: Path, strategy: Any, role: str | None, overwrite: bool) -> Path:
    """Run the search (a chief or single process also writes the results); the run folder is prepared."""
    tuning = config.tuning
    writer = role != "worker"
    data = prepare_data(config)
    if writer:
        write_data_artifacts(config, data, run_dir)
    set_precision(config.runtime)
    hypermodel = SuiteHyperModel(config, data.splits, strategy)
    tuner = make_tuner(config, hypermodel, run_dir, overwrite=overwrite and writer)
    log.info(f"tuning {tuning.model} with {tuning.tuner} search on {tuning.objective} ({tuning.direction}) "
             f"in {run_dir}" + (f" as {os.environ['KERASTUNER_TUNER_ID']}" if role else ""))
    if role == "chief":
        log.info(f"serving the oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
                 f"{os.environ['KERASTUNER_ORACLE_PORT']}; waiting for the workers to finish")
    tuner.search(epochs=tuning.max_epochs, callbacks=trial_callbacks(config), verbose=0)
    if not writer:
        log.info("worker finished: the chief writes the results")
        return run_dir
    finish(config, data, tuner, run_dir)
    return run_dir


def finish(config: ExperimentConfig, data: PreparedData, tuner: kt.Tuner, run_dir: Path) -> None:
    """Write trials.csv, tuning.png, the best settings; retrain the best on train+val, test and report."""
    trials = trial_table(tuner.oracle.trials.values())
    write_csv(run_dir / "trials.csv", trials)
    plot_trials(trials, config.tuning, run_dir / "tuning.png")
    best = tuner.oracle.get_best_trials(1)
    if not best or best[0].status != "COMPLETED":
        raise BiomedError(f"no trial of the search completed; see {run_dir / 'trials.csv'} (status, message)")
    best = best[0]
    best_config = best_settings(config, best.hyperparameters.values)
    write_best(config, best_config, run_dir, trial_id=best.trial_id, score=best.score)
    settings = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in best.hyperparameters.values.items())
    log.info(f"best trial {best.trial_id}: {config.tuning.objective} {best.score:.4f} with {settings}; "
             f"retraining on train+val (see best_config.yaml)")
    final = retrain_best(best_config, data, best, run_dir, seed=config.tuning.seed)
    train_all(final, data, run_dir)
    log.info(f"report: {write_report([run_dir])['html']}")


def best_settings(config: ExperimentConfig, values: dict[str, Any]) -> ExperimentConfig:
    """``config`` reduced to the tuned model with the trial ``values``; no ``tuning`` section."""
    best = copy.deepcopy(config)
    entry = config.model_entry(config.tuning.model)
    best.models = [ModelEntry(entry.type, entry.name, {**entry.params, **model_values(values)})]
    best.train.learning_rate = float(values.get("learning_rate", best.train.learning_rate))
    best.loader.batch_size = int(values.get("batch_size", best.loader.batch_size))
    best.name, best.tuning = f"{config.name}-best", None
    return best


def retrain_best(best_config: ExperimentConfig, data: PreparedData, best: Trial, run_dir: Path, *,
                 seed: int) -> ExperimentConfig:
    """Retrain the best settings on train+val for the best trial's epochs and predict val and test once.

    Validation is part of training, so the model trains for a fixed number of
    epochs (the best trial's best epoch; no early stopping or learning-rate
    reduction). Its binary decision threshold is chosen on its own validation
    predictions, which are in-sample: the best trial's model (trained on train
    only) is calibrated differently, so its validation threshold does not carry
    over to the retrained model (on CinC 2017 it cut the test F1 from 0.64 to 0.37).

    Returns:
        The config of the retrained model (for evaluating it with the runner).
    """
    final = copy.deepcopy(best_config)
    epochs = max(1, int(round(best.metrics.get_last_value("best_epoch"))))
    final.seeds, final.train.epochs = [seed], epochs
    final.train.early_stopping_patience = final.train.reduce_lr_patience = epochs
    final.train.refit = False   # it already trains on train + val
    entry = final.models[0]
    out = run_dir / "models" / entry.label / f"seed_{seed}"
    origin = {"trial": best.trial_id, "hyperparameters": best.hyperparameters.values, "epochs": epochs}
    if _read_json(out / "tuned_from.json") != origin:
        shutil.rmtree(out, ignore_errors=True)
        write_json(out / "tuned_from.json", origin)
    if not (out / "info.json").is_file():
        trainval = data.refit_splits["train"]
        run_one(final, PreparedData(data.samples, data.assignment, {**data.splits, "train": trainval}, data.modality),
                entry, seed, out)
    return final


def tune_command(args: argparse.Namespace) -> None:
    """``biomed tune CONFIG [--out DIR] [--set K=V] [--overwrite] [--role chief|worker ...]``."""
    config = load_config(args.config, args.set)
    if args.role:
        os.environ.update(distributed_env(args.role, args.chief_address, args.chief_port, args.worker_id))
    tune(config, Path(args.out) if args.out else default_tune_dir(config), overwrite=args.overwrite)


def check_tuning(config: ExperimentConfig) -> TuningConfig:
    """The config's tuning section, checked: present, with a space KerasTuner accepts.

    The objective and its direction are checked when the config is loaded.
    """
    tuning = config.tuning
    if tuning is None:
        raise ConfigError("the config has no `tuning:` section (see configs/quickstart_tune.yaml)")
    check_space(tuning.search_space)
    return tuning


def write_best(config: ExperimentConfig, best_config: ExperimentConfig, run_dir: Path, *, trial_id: str,
               score: float) -> None:
    """Write ``best_config.yaml`` and ``best_hyperparameters.yaml``.

    The overlay has the shape of a config (``models: [{type, name, params}]``,
    ``train.learning_rate``, ``loader.batch_size``): merged into the config
    (its model entry replacing the tuned one) it gives ``best_config.yaml``.
    Its header lists the equivalent ``biomed run CONFIG --set ...`` flags.
    """
    entry = best_config.models[0]
    overlay = {"models": [{k: v for k, v in to_dict(entry).items() if v is not None}],
               "train": {"learning_rate": best_config.train.learning_rate},
               "loader": {"batch_size": best_config.loader.batch_size}}
    index = next((i for i, m in enumerate(config.models) if m.label == entry.label), None)
    flags = ([f"--set models.{index}.params.{k}={_scalar(v)}" for k, v in entry.params.items()]
             if index is not None else [])
    flags += [f"--set train.learning_rate={_scalar(best_config.train.learning_rate)}",
              f"--set loader.batch_size={best_config.loader.batch_size}"]
    header = (f"# Best trial {trial_id} of {config.name}: {config.tuning.objective} {score:.4f}.\n"
              f"# Merge into the config (this model entry replaces the tuned one), run best_config.yaml,\n"
              f"# or: biomed run CONFIG {' '.join(flags)}\n")
    write_text(run_dir / "best_hyperparameters.yaml", header + yaml.safe_dump(overlay, sort_keys=False))
    write_text(run_dir / "best_config.yaml", config_to_yaml(best_config))


def _metric(trial: Trial, name: str) -> float:
    return trial.metrics.get_last_value(name) if trial.metrics.exists(name) else float("nan")


def _scalar(value: Any) -> str:
    """``value`` as YAML reads it back (``1.0e-05``, not ``1e-05``, which YAML reads as a string)."""
    return yaml.safe_dump([value], default_flow_style=True).strip()[1:-1]


def _key(hp: kt.HyperParameters) -> str:
    return json.dumps(hp.values, sort_keys=True, default=str)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None

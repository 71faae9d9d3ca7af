"""Fitting one model on one seed: Keras through tf.data with standard callbacks, or scikit-learn.

Both paths end the same way: the trained model saved in ``out_dir`` and class
probabilities for the validation and test splits (the test split is predicted
once, after training is finished).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import skops.io

from pipelines import plugins
from pipelines.artifacts import atomic_path
from pipelines.averaging import averaged_model, tta_views
from pipelines.config import ExperimentConfig, ModelEntry, TrainConfig
from pipelines.console import keras_verbose
from pipelines.modeling import ModelSpec, TrainingPhase, sklearn_proba
from pipelines.predictions import Task
from pipelines.runtime import artefact_dir, get_strategy, global_batch_size, set_precision, sync_moving_statistics
from pipelines.samples import SampleSet
from pipelines.schedules import phase_learning_rate, plateau_callbacks, steps_per_epoch
from pipelines.side_inputs import dataset_inputs, sklearn_inputs, with_side_inputs
from pipelines.splits import monitored_splits


@dataclass
class FitResult:
    """What a fit produced: probabilities per split, epochs run, wall time and the fitted model.

    ``monitor`` says which records early stopping and LR plateaus watched (None: nothing was monitored).
    """

    probs: dict[str, np.ndarray]
    epochs: int
    seconds: float
    n_params: int | None
    model: Any = field(default=None, repr=False)
    monitor: dict[str, Any] | None = None


def fit_model(spec: ModelSpec, entry: ModelEntry, config: ExperimentConfig, splits: dict[str, SampleSet],
              seed: int, out_dir: Path, predict: tuple[str, ...] = ("val", "test")) -> FitResult:
    """Build, fit on ``splits["train"]`` and save one model, then predict the splits ``predict`` (each once).

    The entry's own ``train`` overrides (e.g. its epochs) replace the config's ``train`` keys.
    """
    config = dataclasses.replace(config, train=config.train_config(entry))
    if spec.family == "sklearn":
        return _fit_sklearn(spec, entry, splits, seed, out_dir, predict)
    return _fit_keras(spec, entry, config, splits, seed, out_dir, predict)


def input_shape_of(samples: SampleSet) -> tuple[int, ...]:
    """The per-sample model input shape (``(T, 1)`` for ECG windows)."""
    shape = samples.x.shape[1:]
    return (shape[0], 1) if len(shape) == 1 else tuple(shape)


def _fit_sklearn(spec: ModelSpec, entry: ModelEntry, splits: dict[str, SampleSet], seed: int,
                 out_dir: Path, predict: tuple[str, ...]) -> FitResult:
    with_side_inputs(splits, spec.side_inputs)
    train = splits["train"]
    start = time.perf_counter()
    model = spec.build(input_shape_of(train), len(train.classes), fs=train.fs, seed=seed, **entry.params)
    model.fit(sklearn_inputs(train.x, train.side, spec.side_inputs), train.y)
    seconds = time.perf_counter() - start
    with atomic_path(out_dir / "model.skops") as tmp:
        skops.io.dump(model, tmp)  # skops' format: loading it needs no pickle (see pipelines.export)
    probs = {name: sklearn_proba(model, sklearn_inputs(splits[name].x, splits[name].side, spec.side_inputs),
                                 len(train.classes)) for name in predict}
    return FitResult(probs, 1, seconds, None, model)


def _fit_keras(spec: ModelSpec, entry: ModelEntry, config: ExperimentConfig, splits: dict[str, SampleSet],
               seed: int, out_dir: Path, predict: tuple[str, ...]) -> FitResult:
    """Fit under the configured strategy; in multi-worker runs only the chief writes into ``out_dir``.

    The splits ``predict`` are predicted with the configured test-time augmentation (``evaluation.tta``).
    Early stopping watches val, or the training records held out by ``train.monitor_split``.
    """
    from pipelines.tfdata import make_dataset

    strategy = get_strategy(config.runtime)
    with_side_inputs(splits, spec.side_inputs)
    train = splits["train"]
    batch = global_batch_size(config.loader.batch_size, strategy.num_replicas_in_sync, config.runtime)
    views = tta_views(config.data.modality, config.evaluation.tta, input_shape_of(train))
    model = build_keras(spec, entry.params, train, seed, strategy, config)
    monitored = monitored_splits(splits, config.train.monitor_split, config.data.split.seed)
    start = time.perf_counter()
    with artefact_dir(out_dir) as write_dir:
        _, epoch = fit_keras(model, spec.training_phases(model, entry.params), config, monitored, seed=seed,
                             batch_size=batch, learning_rate=config.train.learning_rate, strategy=strategy,
                             callbacks=lambda phase, last: _callbacks(config, write_dir, phase.name))
        seconds = time.perf_counter() - start
        with atomic_path(write_dir / "model.keras") as tmp:
            model.save(tmp)
    evaluated = averaged_model([model], views, name=f"{model.name}_tta")
    probs = {name: evaluated.predict(make_dataset(splits[name], batch_size=batch, training=False,
                                                  **dataset_inputs(model, splits[name])), verbose=0)
             for name in predict}
    watched = np.unique(monitored["val"].record)
    monitor = {"split": "held-out train" if config.train.monitor_split else "val", "records": int(len(watched)),
               **({"record_ids": [str(r) for r in watched]} if config.train.monitor_split else {})}
    return FitResult(probs, epoch, seconds, int(model.count_params()), model, monitor)


def build_keras(spec: ModelSpec, params: dict[str, Any], train: SampleSet, seed: int, strategy: Any,
                config: ExperimentConfig) -> Any:
    """Seed Keras, set the configured precision and build the model under ``strategy``."""
    import keras

    keras.utils.set_random_seed(seed)
    set_precision(config.runtime)
    with strategy.scope():
        return spec.build(input_shape_of(train), len(train.classes), fs=train.fs, seed=seed, **params)


def fit_keras(model: Any, phases: list[TrainingPhase], config: ExperimentConfig, splits: dict[str, SampleSet],
              *, seed: int, batch_size: int, learning_rate: float, strategy: Any,
              callbacks: Callable[[TrainingPhase, bool], list | None],
              last_phase_epochs: tuple[int, int] | None = None, verbose: int | None = None) -> tuple[Any, int]:
    """The one Keras fit of the suite (runs and tuning trials): phase by phase on train, validated on val.

    Each phase is prepared, compiled under ``strategy`` with its learning rate
    and fitted on the seeded, shuffled (by tf.data, so ``shuffle=False``),
    optionally augmented and balanced training set; batch-norm moving statistics
    are synchronised across replicas at the end.

    Args:
        model: the built model (see :func:`build_keras`).
        phases: its training phases.
        config: the experiment config (loader, train and runtime sections).
        splits: the ``train`` and ``val`` sample sets.
        seed: seeds the shuffling and augmentation.
        batch_size: the global batch size.
        learning_rate: the base learning rate (scaled per phase).
        strategy: the tf.distribute strategy the model was built under.
        callbacks: ``(phase, is_last) -> callbacks`` of one phase.
        last_phase_epochs: ``(initial_epoch, epochs)`` of the last phase given by a tuner
            (earlier phases are skipped when the initial epoch is not 0: they are trained);
            None counts every phase's epochs on from the previous one.
        verbose: Keras' verbosity (default: ``train.verbose``, which the CLI shows with ``--verbose`` only).

    Returns:
        The last phase's History (None if no phase ran) and the number of epochs run.
    """
    from pipelines.mixing import one_hot_batches, training_mixer
    from pipelines.tfdata import class_weights, make_dataset

    train, val = splits["train"], splits["val"]
    loader, fit_cfg, n_classes = config.loader, config.train, len(train.classes)
    augment = plugins.AUGMENTERS.get(config.data.modality)(loader, train.fs)
    train_ds = one_hot_batches(make_dataset(train, batch_size=batch_size, training=True, seed=seed,
                                            shuffle_buffer=loader.shuffle_buffer,
                                            oversample=loader.balance == "oversample", augment=augment,
                                            **dataset_inputs(model, train)),
                               n_classes, mixer=training_mixer(loader, config.data.modality), seed=seed)
    val_ds = one_hot_batches(make_dataset(val, batch_size=batch_size, training=False, **dataset_inputs(model, val)),
                             n_classes)
    steps = steps_per_epoch(len(train), batch_size)
    weights = class_weights(train.y, len(train.classes)) if loader.balance == "class_weight" else None
    history, epoch = None, 0
    for number, phase in enumerate(phases, start=1):
        last = number == len(phases)
        if phase.prepare is not None:
            phase.prepare(model)
        if last and last_phase_epochs is not None:
            begin, end = last_phase_epochs
        elif last_phase_epochs is not None and last_phase_epochs[0]:
            continue
        else:
            begin, end = epoch, epoch + (phase.epochs or fit_cfg.epochs)
        rate = phase_learning_rate(fit_cfg, learning_rate * phase.learning_rate_scale, end - begin, steps)
        with strategy.scope():
            compile_model(model, config, train.classes, rate)
        history = model.fit(train_ds, validation_data=val_ds, initial_epoch=begin, epochs=end,
                            verbose=keras_verbose(fit_cfg.verbose) if verbose is None else verbose,
                            callbacks=callbacks(phase, last), class_weight=weights, shuffle=False)
        epoch = history.epoch[-1] + 1 if history.epoch else begin
    sync_moving_statistics(model, strategy)
    return history, epoch


def compile_model(model: Any, config: ExperimentConfig, classes: list[str], learning_rate: float | Any) -> None:
    """Compile for one-hot labels: the configured optimiser, categorical cross-entropy, accuracy, ROC/PR-AUC.

    ``learning_rate`` is a float or a Keras schedule; ``train.label_smoothing`` applies to the loss and
    ``train.ema_momentum`` (> 0) makes the optimiser keep a moving average of the weights.
    """
    import keras

    from pipelines.keras_metrics import SparseAUC

    positive = Task.of(classes, config.data.task.positive).positive
    model.compile(optimizer=_optimizer(config.train.optimizer, learning_rate, config.train.ema_momentum),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing),
                  metrics=["accuracy", SparseAUC(len(classes), positive, name="auc"),
                           SparseAUC(len(classes), positive, name="pr_auc", curve="PR")],
                  jit_compile=config.runtime.jit_compile,
                  steps_per_execution=config.runtime.steps_per_execution)


def _optimizer(name: str, learning_rate: float | Any, ema_momentum: float) -> Any:
    import keras

    optimizers = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
                  "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
    averaging = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
    return optimizers[name](learning_rate=learning_rate, **averaging)


def weight_averaging_callbacks(train: TrainConfig) -> list[Any]:
    """``[SwapEMAWeights]`` with ``train.ema_momentum`` > 0, else ``[]``; put it before the callbacks it serves.

    At each epoch's end the averaged weights replace the trained ones (and are swapped back before the next
    epoch), so validation, early stopping, checkpoints and the restored best model all see the averages.
    """
    import keras

    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if train.ema_momentum else []


def _callbacks(config: ExperimentConfig, out_dir: Path, phase: str) -> list[Any]:
    import keras

    fit_cfg = config.train
    mode = fit_cfg.monitor_direction
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out_dir / "backup" / phase)),   # first: backs up the trained weights
        *weight_averaging_callbacks(fit_cfg),
        keras.callbacks.EarlyStopping(monitor=fit_cfg.monitor, mode=mode,
                                      patience=fit_cfg.early_stopping_patience, restore_best_weights=True),
        *plateau_callbacks(fit_cfg, fit_cfg.monitor, mode),
        keras.callbacks.ModelCheckpoint(str(out_dir / "checkpoint.keras"), monitor=fit_cfg.monitor,
                                        mode=mode, save_best_only=True),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
    ]
    if fit_cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(out_dir / "logs"), profile_batch=0))
    return callbacks

"""Learning-rate schedules of a training phase: constant, cosine (with warmup) or cosine with warm restarts.

A schedule spans one training phase (it starts again, at the phase's learning
rate, when a transfer model moves from its head phase to fine-tuning) and
decays towards ``train.min_learning_rate``. A schedule owns the learning
rate: ReduceLROnPlateau, which would overwrite it, is used only with
``schedule: constant`` (:func:`plateau_callbacks`).
"""

from __future__ import annotations

import math
from typing import Any

from pipelines.config import TrainConfig


def plateau_callbacks(train: TrainConfig, monitor: str, mode: str) -> list[Any]:
    """``[ReduceLROnPlateau]`` on ``monitor`` with a constant schedule; ``[]`` with any other schedule."""
    import keras

    if train.schedule != "constant":
        return []
    return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, patience=train.reduce_lr_patience,
                                              factor=train.reduce_lr_factor, min_lr=train.min_learning_rate)]


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """Optimiser steps in one epoch of ``n_samples`` (the last batch may be partial)."""
    return max(1, math.ceil(n_samples / batch_size))


def phase_learning_rate(train: TrainConfig, base: float, epochs: int, steps: int) -> float | Any:
    """The learning rate of one phase: ``base`` or a Keras schedule over the phase's steps.

    Args:
        train: the ``train`` section (``schedule``, ``warmup_epochs``, ``restart_epochs``,
            ``min_learning_rate``).
        base: the phase's peak learning rate.
        epochs: epochs in the phase.
        steps: optimiser steps per epoch.

    Returns:
        ``base`` for ``constant``; else a ``keras.optimizers.schedules.LearningRateSchedule``.

    Example:
        >>> lr = phase_learning_rate(TrainConfig(schedule="cosine"), 1e-3, 10, 20)   # doctest: +SKIP
        >>> float(lr(200))  # the end of the phase: min_learning_rate               # doctest: +SKIP
        1e-05
    """
    import keras

    if train.schedule == "constant":
        return base
    floor = min(1.0, train.min_learning_rate / base)
    if train.schedule == "cosine_restarts":
        return keras.optimizers.schedules.CosineDecayRestarts(base, train.restart_epochs * steps, t_mul=2.0,
                                                              m_mul=1.0, alpha=floor)
    warmup = min(train.warmup_epochs, epochs - 1) * steps
    decay = max(1, epochs * steps - warmup)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(base, decay, alpha=floor)
    return keras.optimizers.schedules.CosineDecay(base * floor, decay, alpha=floor, warmup_target=base,
                                                  warmup_steps=warmup)

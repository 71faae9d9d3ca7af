"""The ``tuning.search_space`` of a config as KerasTuner hyperparameters.

Every entry names a hyperparameter of the tuned model (a keyword of its
builder: ``l1``, ``l2``, ``dropout``, ``filters``, ``depth``, ``units``, the
number of unfrozen layers of an imaging model...) or a training
hyperparameter (``learning_rate``, ``batch_size``), and is one of::

    dropout:       {type: float, min: 0.0, max: 0.5, step: 0.1}
    learning_rate: {type: float, min: 1.0e-4, max: 1.0e-2, sampling: log}
    depth:         {type: int, min: 2, max: 5}
    l2:            {type: choice, values: [0.0, 1.0e-5, 1.0e-4, 1.0e-3]}

A regularisation strength that may be switched off is a ``choice`` that
includes 0 (a log range cannot contain 0). Configs read ``1e-5`` as a number,
like ``1.0e-5`` (``pipelines.config.parse_yaml``).
"""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

from pipelines.config import TRAINING_HYPERPARAMETERS, HyperparameterSpec
from pipelines.errors import ConfigError


def declare(hp: kt.HyperParameters, name: str, spec: HyperparameterSpec) -> Any:
    """Declare one hyperparameter in ``hp`` and return its value for the current trial."""
    if spec.type == "choice":
        return hp.Choice(name, _one_type(name, spec.values or []))
    if spec.type == "int":
        step = int(spec.step) if spec.step else None
        return hp.Int(name, int(spec.min), int(spec.max), step=step, sampling=spec.sampling)
    return hp.Float(name, float(spec.min), float(spec.max), step=spec.step, sampling=spec.sampling)


def declare_all(hp: kt.HyperParameters, space: dict[str, HyperparameterSpec]) -> dict[str, Any]:
    """Declare every hyperparameter of ``space``; return ``{name: value}`` for the current trial."""
    return {name: declare(hp, name, spec) for name, spec in space.items()}


def check_space(space: dict[str, HyperparameterSpec]) -> None:
    """Raise ConfigError when KerasTuner rejects an entry of ``space`` (e.g. mixed choice types)."""
    try:
        declare_all(kt.HyperParameters(), space)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"tuning.search_space: {err}") from None


def model_values(values: dict[str, Any]) -> dict[str, Any]:
    """The model hyperparameters among trial ``values`` (training and tuner-internal ones dropped)."""
    return {k: v for k, v in values.items() if k not in TRAINING_HYPERPARAMETERS and "/" not in k}


def _one_type(name: str, values: list[Any]) -> list[Any]:
    """Choice values of one type: integers among floats become floats (``[0, 1.0e-4]``)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric and any(isinstance(v, float) for v in values):
        return [float(v) for v in values]
    if len({type(v) for v in values}) > 1:
        raise ConfigError(f"tuning.search_space.{name}.values: mixed types {values} (expected "
                          f"all numbers, all strings or all booleans)")
    return list(values)

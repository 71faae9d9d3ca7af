"""The one small interface every model plugs into: a registry of builders by name.

Deep models (Keras) and classical baselines (scikit-learn) register here with
``@register_model``; configs name them by string and the runner builds them
without a central ``if/elif``. Builders of both families share one signature::

    builder(input_shape, n_classes, *, fs, seed, **hyperparameters) -> model

``input_shape`` excludes the batch axis (``(T, 1)`` for an ECG window,
``(H, W, C)`` for an image); ``fs`` is the sampling rate in Hz (``None`` for
images). Keras builders return an uncompiled ``keras.Model`` whose output is a
float32 softmax over ``n_classes``; scikit-learn builders return an estimator
with ``fit(X, y)`` / ``predict_proba(X)`` taking the same windows as arrays.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pipelines.annotations import describe, fits_annotation, parameter_annotations
from pipelines.errors import ConfigError, suggest
from pipelines.plugins import load_plugins

FAMILIES = ("keras", "sklearn")
_RESERVED = ("input_shape", "n_classes", "fs", "seed")


@dataclass(frozen=True)
class TrainingPhase:
    """One phase of a Keras fit (e.g. 'head' then 'fine_tune' for transfer learning).

    Attributes:
        name: phase name, used for checkpoint folders and logs.
        epochs: epochs of this phase (None: the config's ``train.epochs``).
        learning_rate_scale: factor on the configured learning rate.
        prepare: called on the model before the phase is compiled (e.g. to unfreeze layers).
    """

    name: str
    epochs: int | None = None
    learning_rate_scale: float = 1.0
    prepare: Callable[[Any], None] | None = None


SINGLE_PHASE = (TrainingPhase("train"),)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, family, modality and default hyperparameters."""

    name: str
    builder: Callable[..., Any]
    family: str
    modality: str
    role: str = "deep"
    defaults: dict[str, Any] = field(default_factory=dict)
    phases: Callable[[Any, dict[str, Any]], list[TrainingPhase]] | None = None
    side_inputs: tuple[str, ...] = ()

    def training_phases(self, model: Any, hyperparameters: dict[str, Any]) -> list[TrainingPhase]:
        """The phases to fit ``model`` in (one plain phase unless the model registered others)."""
        if self.phases is None:
            return list(SINGLE_PHASE)
        return self.phases(model, {**self.defaults, **hyperparameters})

    def build(self, input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
              seed: int = 0, **hyperparameters: Any) -> Any:
        """Build the model with defaults overridden by ``hyperparameters``."""
        check_hyperparameters(self.name, hyperparameters)
        params = {**self.defaults, **hyperparameters}
        return self.builder(input_shape, n_classes, fs=fs, seed=seed, **params)

    @property
    def hyperparameter_names(self) -> list[str]:
        """Names the builder accepts as hyperparameters (beyond the reserved arguments)."""
        return sorted(self.defaults)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, family: str, modality: str, role: str = "deep",
                   phases: Callable[[Any, dict[str, Any]], list[TrainingPhase]] | None = None,
                   side_inputs: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a builder under ``name``; its keyword defaults become the hyperparameters.

    ``phases(model, hyperparameters)`` optionally splits Keras training into
    phases (transfer learning: train the head, then unfreeze and fine-tune).
    ``side_inputs`` names inputs the model takes beside its main one, each
    computed from the samples by the function a plugin registered in
    ``plugins.SIDE_INPUTS`` (in training and in ``biomed predict``); the Keras
    model's input layers carry these names, a scikit-learn model is fitted on
    the dict of :func:`pipelines.side_inputs.sklearn_inputs`.

    Example:
        >>> @register_model("tiny", family="keras", modality="ecg")   # doctest: +SKIP
        ... def build_tiny(input_shape, n_classes, *, fs=None, seed=0, dropout=0.1): ...
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        defaults = {
            p.name: p.default for p in inspect.signature(builder).parameters.values()
            if p.name not in _RESERVED and p.default is not inspect.Parameter.empty
        }
        _REGISTRY[name] = ModelSpec(name, builder, family, modality, role, defaults, phases, tuple(side_inputs))
        return builder

    return decorate


def get_model(name: str) -> ModelSpec:
    """Return the registered model ``name`` or raise ConfigError naming the closest match."""
    load_plugins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}{suggest(name, _REGISTRY)}; "
                          f"registered models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_names(modality: str | None = None) -> list[str]:
    """Names of registered models, optionally only those of one modality ('ecg' or 'image')."""
    load_plugins()
    return sorted(n for n, s in _REGISTRY.items() if modality in (None, s.modality))


def check_hyperparameters(model: str, hyperparameters: dict[str, Any]) -> None:
    """Raise ConfigError if ``model`` does not accept a hyperparameter's name or the type of its value."""
    spec = _REGISTRY.get(model) or get_model(model)
    annotations = parameter_annotations(spec.builder)
    for key, value in hyperparameters.items():
        if key not in spec.defaults:
            raise ConfigError(f"model {model!r} has no hyperparameter {key!r}"
                              f"{suggest(key, spec.defaults)}; valid: "
                              f"{', '.join(spec.hyperparameter_names)}")
        if key in annotations and not fits_annotation(value, annotations[key]):
            raise ConfigError(f"model {model!r}: hyperparameter {key!r} expects {describe(annotations[key])}, "
                              f"got {type(value).__name__} {value!r}")


def sklearn_proba(model: Any, x: Any, n_classes: int) -> np.ndarray:
    """A scikit-learn model's float32 ``predict_proba`` with a column for every class (0 for classes
    it never saw in training), as training and ``biomed predict`` both compute it. ``x`` is the
    samples, or the dict of samples and side inputs of a model that takes them."""
    proba = model.predict_proba(x)
    full = np.zeros((len(proba), n_classes), np.float32)
    full[:, model.classes_.astype(int)] = proba
    return full


def l1_l2(l1: float = 0.0, l2: float = 0.0) -> Any:
    """A Keras L1/L2 kernel regularizer, or None when both strengths are zero."""
    import keras

    if not l1 and not l2:
        return None
    return keras.regularizers.L1L2(l1=float(l1), l2=float(l2))

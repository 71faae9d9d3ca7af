"""Experiment configs: YAML files in ``configs/`` loaded into typed, validated objects.

Relative paths inside a config resolve against the folder of the config file;
``~`` and ``$VARS`` are expanded. ``--set data.preprocess.fs=250`` style
overrides are applied to the raw YAML before validation, so they are checked
like any other key.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from pipelines.errors import ConfigError, suggest
from pipelines.image_limits import DEFAULT_MAX_PIXELS
from pipelines.modeling import check_hyperparameters, get_model
from pipelines.schema import from_dict, to_dict

#: Whether DataConfig.validate checks that its files exist (set by load_config).
_CHECK_DATA_FILES: contextvars.ContextVar[bool] = contextvars.ContextVar("check_data_files", default=True)


@dataclass
class SyntheticConfig:
    """The built-in synthetic ECG dataset (written once into the cache folder)."""

    n_records: int = 240
    fs: float = 300.0
    duration_s: list[float] = field(default_factory=lambda: [10.0, 30.0])
    class_fractions: dict[str, float] | None = None
    seed: int = 0


@dataclass
class TaskConfig:
    """Which classes to learn and how raw labels map onto them."""

    classes: list[str] = field(default_factory=lambda: ["N", "A"])
    label_map: dict[str, str | None] = field(default_factory=dict)
    positive: str | None = None
    known_labels: list[str] | None = None

    def validate(self, where: str) -> None:
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"{where}.classes: expected at least two distinct class names, got {self.classes}")
        for raw, target in self.label_map.items():
            if target is not None and target not in self.classes:
                raise ConfigError(f"{where}.label_map.{raw}: maps to {target!r}, which is not in "
                                  f"classes {self.classes} (use null to drop)")
        if self.positive is not None and self.positive not in self.classes:
            raise ConfigError(f"{where}.positive: {self.positive!r} is not in classes {self.classes}")

    def map_label(self, raw: str) -> tuple[str, int | None]:
        """Return ('class', index), ('excluded', None) or ('unknown', None) for a raw label."""
        target = self.label_map.get(raw, raw if raw in self.classes else KeyError)
        if target is KeyError:
            if self.known_labels is not None and raw in self.known_labels:
                return "excluded", None
            return "unknown", None
        if target is None:
            return "excluded", None
        return "class", self.classes.index(target)


@dataclass
class PreprocessConfig:
    """Signal preprocessing applied to every record before windowing."""

    fs: float = 300.0
    bandpass: list[float] | None = field(default_factory=lambda: [0.5, 40.0])
    filter_order: int = 3
    normalize: Literal["zscore", "robust", "minmax", "none"] = "zscore"
    window_s: float = 10.0
    stride_s: float | None = None
    train_stride_s: float | None = None
    crop: Literal["start", "center"] = "center"
    pad: Literal["zero", "edge", "drop"] = "zero"
    min_length_s: float = 5.0
    max_windows_per_record: int | None = None

    def validate(self, where: str) -> None:
        if self.fs <= 0 or self.window_s <= 0:
            raise ConfigError(f"{where}: fs and window_s must be positive")
        if self.bandpass is not None:
            if len(self.bandpass) != 2 or not 0 <= self.bandpass[0] < self.bandpass[1]:
                raise ConfigError(f"{where}.bandpass: expected [low_hz, high_hz] with 0 <= low < high, "
                                  f"got {self.bandpass}")
            if self.bandpass[1] >= self.fs / 2:
                raise ConfigError(f"{where}.bandpass: high edge {self.bandpass[1]} Hz must be below "
                                  f"the Nyquist frequency {self.fs / 2} Hz")
        if self.stride_s is not None and self.stride_s <= 0:
            raise ConfigError(f"{where}.stride_s: must be positive or null")
        if self.train_stride_s is not None:
            self._validate_train_stride(where)

    def _validate_train_stride(self, where: str) -> None:
        ratio = (self.stride_s or 0) / self.train_stride_s if self.train_stride_s > 0 else 0
        if self.stride_s is None or ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"{where}.train_stride_s: expected a positive number that divides stride_s "
                              f"(e.g. stride_s: 10, train_stride_s: 2), got train_stride_s "
                              f"{self.train_stride_s} with stride_s {self.stride_s}")
        if self.max_windows_per_record is not None:
            raise ConfigError(f"{where}: train_stride_s and max_windows_per_record cannot be combined")

    @property
    def windows_per_stride(self) -> int:
        """Training windows per evaluation window: ``stride_s / train_stride_s`` (1 without a training stride)."""
        return 1 if self.train_stride_s is None else int(round(self.stride_s / self.train_stride_s))

    @property
    def window_samples(self) -> int:
        """Window length in samples at the target rate."""
        return int(round(self.window_s * self.fs))


@dataclass
class AnnotatedConfig:
    """How rhythm annotations (``.atr`` aux notes such as ``(AFIB``) become window labels."""

    annotator: str = "atr"
    rhythm_map: dict[str, str | None] = field(
        default_factory=lambda: {"(N": "N", "(AFIB": "A", "(AFL": "O", "(B": "O", "(T": "O",
                                 "(SBR": "O", "(SVTA": "O", "(VT": "O", "(PREX": "O", "(AB": "O",
                                 "(BII": "O", "(IVR": "O", "(NOD": "O", "(P": "O", "(VFL": "O"})
    purity: float = 1.0


@dataclass
class SplitConfig:
    """Grouped, stratified train/val/test split (or k-fold) with a seed."""

    val: float = 0.15
    test: float = 0.15
    kfold: int | None = None
    fold: int = 0
    group_by: Literal["record", "patient"] = "record"
    seed: int = 0

    def validate(self, where: str) -> None:
        if self.kfold is None:
            if not (0 < self.val < 1 and 0 < self.test < 1 and self.val + self.test < 1):
                raise ConfigError(f"{where}: val and test must be fractions in (0, 1) summing to < 1")
        elif self.kfold < 2 or not 0 <= self.fold < self.kfold:
            raise ConfigError(f"{where}: kfold must be >= 2 and fold in [0, kfold)")


@dataclass
class CacheConfig:
    """On-disk cache of preprocessed arrays, keyed by a hash of (files, config)."""

    enabled: bool = True
    dir: str | None = None


@dataclass
class ImageConfig:
    """Image sources: layout options, target size and the built-in synthetic images."""

    image_size: list[int] = field(default_factory=lambda: [64, 64])
    channels: int = 3
    official_split: bool = True
    path_column: str = "path"
    label_column: str = "label"
    patient_column: str | None = None
    n_per_class: int = 60
    synthetic_classes: list[str] = field(default_factory=lambda: ["disc", "ring", "stripes"])
    max_pixels: int = DEFAULT_MAX_PIXELS

    def validate(self, where: str) -> None:
        if self.max_pixels < 1:
            raise ConfigError(f"{where}.max_pixels: expected a positive number of pixels, got {self.max_pixels}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ConfigError(f"{where}.image_size: expected [height, width] of at least 8 pixels, "
                              f"got {self.image_size}")
        if self.channels not in (1, 3):
            raise ConfigError(f"{where}.channels: expected 1 or 3, got {self.channels}")


ECG_SOURCES = ("synthetic", "cinc2017", "wfdb", "annotated")
IMAGE_SOURCES = ("synthetic_images", "image_folders", "image_csv", "image_npz")
GENERATED_SOURCES = ("synthetic", "synthetic_images")


@dataclass
class DataConfig:
    """Where the records come from and how they become labelled windows (ECG) or images."""

    source: Literal["synthetic", "cinc2017", "wfdb", "annotated",
                    "synthetic_images", "image_folders", "image_csv", "image_npz"] = "synthetic"
    path: str | None = None
    labels: str | None = None
    records: list[str] | None = None
    channel: int = 0
    physionet_db: str | None = None
    workers: int | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    annotated: AnnotatedConfig = field(default_factory=AnnotatedConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    image: ImageConfig = field(default_factory=ImageConfig)

    @property
    def modality(self) -> str:
        """'image' for image sources, else 'ecg'."""
        return "image" if self.source in IMAGE_SOURCES else "ecg"

    def validate(self, where: str) -> None:
        if self.source not in GENERATED_SOURCES and not self.path:
            raise ConfigError(f"{where}.path: required for source {self.source!r}")
        if self.source == "annotated" and self.preprocess.train_stride_s is not None:
            raise ConfigError(f"{where}.preprocess.train_stride_s: not supported by the annotated source "
                              f"(its windows are labelled by rhythm spans); use stride_s")
        if _CHECK_DATA_FILES.get():
            self._check_files(where)

    def _check_files(self, where: str) -> None:
        if self.path and self.source == "image_npz":
            if not Path(self.path).is_file():
                raise ConfigError(f"{where}.path: .npz file {self.path} does not exist")
        elif self.path and self.source == "image_csv":
            if not Path(self.path).is_file():
                raise ConfigError(f"{where}.path: index CSV {self.path} does not exist")
        elif self.path and not Path(self.path).is_dir():
            hint = (f"; download it with `biomed data download {self.physionet_db} {self.path}`"
                    if self.physionet_db else "")
            raise ConfigError(f"{where}.path: data folder {self.path} does not exist{hint}")
        if self.labels and not Path(self.labels).is_file():
            raise ConfigError(f"{where}.labels: labels file {self.labels} does not exist")


@dataclass
class AugmentConfig:
    """On-the-fly training augmentation (never applied at evaluation)."""

    enabled: bool = False
    noise_std: float = 0.05
    scale_range: list[float] = field(default_factory=lambda: [0.8, 1.2])
    baseline_wander: float = 0.1
    max_shift_s: float = 0.5


@dataclass
class ImageAugmentConfig:
    """Keras preprocessing-layer augmentation for images (training only)."""

    enabled: bool = False
    flip: Literal["horizontal", "vertical", "horizontal_and_vertical", "none"] = "horizontal"
    rotation: float = 0.05
    zoom: float = 0.1
    translation: float = 0.05
    contrast: float = 0.1
    cutmix_alpha: float = 0.0
    cutmix_prob: float = 0.5

    def validate(self, where: str) -> None:
        _check_fraction(self.cutmix_prob, f"{where}.cutmix_prob", upper_open=False)
        if self.cutmix_alpha < 0:
            raise ConfigError(f"{where}.cutmix_alpha: expected a number >= 0, got {self.cutmix_alpha}")


@dataclass
class LoaderConfig:
    """tf.data settings: batching, shuffling, class balance, augmentation."""

    batch_size: int = 64
    shuffle_buffer: int = 8192
    balance: Literal["none", "class_weight", "oversample"] = "class_weight"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    image_augment: ImageAugmentConfig = field(default_factory=ImageAugmentConfig)
    mixup_alpha: float = 0.0

    def validate(self, where: str) -> None:
        if self.mixup_alpha < 0:
            raise ConfigError(f"{where}.mixup_alpha: expected a number >= 0, got {self.mixup_alpha}")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size: expected an integer >= 1, got {self.batch_size}")
        if self.shuffle_buffer < 1:
            raise ConfigError(f"{where}.shuffle_buffer: expected an integer >= 1, got {self.shuffle_buffer}")


@dataclass
class TrainConfig:
    """Fitting: optimiser, epochs and the standard Keras callbacks."""

    epochs: int = 30
    learning_rate: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    monitor: str = "val_loss"
    early_stopping_patience: int = 6
    reduce_lr_patience: int = 3
    reduce_lr_factor: float = 0.3
    min_learning_rate: float = 1e-5
    label_smoothing: float = 0.0
    ema_momentum: float = 0.0
    monitor_split: float = 0.0
    refit: bool = False
    schedule: Literal["constant", "cosine", "cosine_restarts"] = "constant"
    warmup_epochs: int = 0
    restart_epochs: int = 5
    tensorboard: bool = True
    verbose: int = 2

    def validate(self, where: str) -> None:
        if self.epochs < 1:
            raise ConfigError(f"{where}.epochs: expected an integer >= 1, got {self.epochs} "
                              f"(use `biomed run --data-only` to train nothing)")
        if not self.learning_rate > 0:
            raise ConfigError(f"{where}.learning_rate: expected a positive number, got {self.learning_rate}")
        metric_direction(self.monitor, f"{where}.monitor")
        _check_fraction(self.label_smoothing, f"{where}.label_smoothing", upper_open=True)
        _check_fraction(self.ema_momentum, f"{where}.ema_momentum", upper_open=True)
        _check_fraction(self.monitor_split, f"{where}.monitor_split", upper_open=True)
        if self.refit and not self.monitor_split:
            raise ConfigError(f"{where}.refit: refitting on train + val needs {where}.monitor_split > 0 (e.g. 0.1), "
                              f"so that early stopping watches records the refit does not train on")
        if self.warmup_epochs < 0 or self.restart_epochs < 1:
            raise ConfigError(f"{where}: expected warmup_epochs >= 0 and restart_epochs >= 1, got "
                              f"{self.warmup_epochs} and {self.restart_epochs}")
        if self.warmup_epochs and self.schedule != "cosine":
            raise ConfigError(f"{where}.warmup_epochs: a warmup needs schedule: cosine, got {self.schedule!r}")

    @property
    def monitor_direction(self) -> str:
        """'min' or 'max': the direction in which ``monitor`` improves."""
        return metric_direction(self.monitor)


#: The metrics Keras training logs (``val_`` prefixed on validation) and the direction each improves in.
LOGGED_METRICS = {"loss": "min", "accuracy": "max", "auc": "max", "pr_auc": "max"}


def metric_direction(name: str, where: str = "train.monitor") -> str:
    """'min' or 'max': the direction in which the logged metric ``name`` (e.g. ``val_auc``) improves.

    Raises:
        ConfigError: ``name`` is not a metric that training logs.
    """
    direction = LOGGED_METRICS.get(name.removeprefix("val_"))
    if direction is None:
        valid = [f"{p}{m}" for p in ("", "val_") for m in LOGGED_METRICS]
        raise ConfigError(f"{where}: {name!r} is not a logged metric{suggest(name, valid)}; "
                          f"valid: {', '.join(valid)}")
    return direction


@dataclass
class RuntimeConfig:
    """Where and how training runs: distribution strategy, precision, XLA."""

    strategy: Literal["auto", "default", "one_device", "mirrored", "multi_worker"] = "auto"
    mixed_precision: Literal["off", "float16", "bfloat16"] = "off"
    jit_compile: bool = False
    steps_per_execution: int = 1
    scale_batch_size: bool = True


@dataclass
class HyperparameterSpec:
    """One tunable hyperparameter: a choice, an int range or a float range (linear or log)."""

    type: Literal["choice", "int", "float"]
    values: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    sampling: Literal["linear", "log"] = "linear"

    def validate(self, where: str) -> None:
        if self.type == "choice" and not self.values:
            raise ConfigError(f"{where}.values: a choice needs a non-empty list of values")
        if self.type != "choice" and (self.min is None or self.max is None or self.min > self.max):
            raise ConfigError(f"{where}: an {self.type} range needs min <= max")
        if self.sampling == "log" and self.type != "choice" and (self.min or 0) <= 0:
            raise ConfigError(f"{where}: log sampling needs min > 0 (add 0 through a choice instead)")


@dataclass
class TuningConfig:
    """A KerasTuner search over the hyperparameters of one model of the config."""

    model: str
    tuner: Literal["random", "hyperband", "bayesian"] = "random"
    objective: str = "val_auc"
    direction: Literal["max", "min"] = "max"
    max_trials: int = 10
    executions_per_trial: int = 1
    max_epochs: int = 10
    hyperband_factor: int = 3
    seed: int = 0
    search_space: dict[str, HyperparameterSpec] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        expected = metric_direction(self.objective, f"{where}.objective")
        if self.direction != expected:
            raise ConfigError(f"{where}.direction: {self.objective!r} improves towards {expected!r}, "
                              f"got {self.direction!r}")


TRAINING_HYPERPARAMETERS = ("learning_rate", "batch_size")


@dataclass
class ModelEntry:
    """One model of the comparison: registry ``type``, display ``name``, hyperparameters, own ``train`` keys.

    ``train`` overrides keys of the config's ``train`` section for this model only (e.g. ``{epochs: 5}``).
    """

    type: str
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The name used in folders and report tables."""
        return self.name or self.type


@dataclass
class EnsembleEntry:
    """An ensemble of trained models of the run: per seed, the weighted mean of its members' probabilities.

    Members may mix families (a scikit-learn baseline with a Keras network); the ensemble
    trains nothing, is evaluated like a model and exports with ``biomed export --format ensemble``.
    """

    name: str
    members: list[str] = field(default_factory=list)
    weights: list[float] | None = None

    def validate(self, where: str) -> None:
        if len(self.members) < 2 or len(set(self.members)) != len(self.members):
            raise ConfigError(f"{where}.members: expected at least two distinct model names, got {self.members}")
        if self.weights is not None and (len(self.weights) != len(self.members)
                                         or not all(w > 0 for w in self.weights)):
            raise ConfigError(f"{where}.weights: expected {len(self.members)} positive numbers (one per "
                              f"member), got {self.weights}")

    @property
    def member_weights(self) -> list[float]:
        """The members' weights, summing to 1 (equal unless ``weights`` is given)."""
        weights = self.weights or [1.0] * len(self.members)
        return [w / sum(weights) for w in weights]


#: The decision rules of multi-class tasks (``evaluation.class_weights``).
ClassWeightRule = Literal["none", "validation", "cross_fitted"]


@dataclass
class EvaluationConfig:
    """How trained models are evaluated (and exported): test-time augmentation views and the multi-class decision.

    ``class_weights: validation`` decides multi-class tasks by the argmax of the probabilities scaled
    by per-class weights chosen on the validation split (maximising macro F1; over N, A, O for the
    CinC 2017 task), as binary tasks choose their threshold there; ``cross_fitted`` uses those weights
    only when, chosen on one half of the validation records and scored on the other, they beat the
    argmax (per model × seed; ``pipelines.metrics.class_weights_held_out_gain``); ``none`` takes the
    plain argmax.
    """

    tta: list[str] = field(default_factory=list)
    class_weights: ClassWeightRule = "none"


def _check_fraction(value: float, where: str, *, upper_open: bool) -> None:
    """Raise ConfigError unless ``0 <= value <= 1`` (``< 1`` when ``upper_open``)."""
    if not (0 <= value < 1 if upper_open else 0 <= value <= 1):
        raise ConfigError(f"{where}: expected a number in [0, 1{')' if upper_open else ']'}, got {value}")


@dataclass
class ExperimentConfig:
    """A whole experiment: data, loader, training, models and seeds."""

    name: str
    description: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    data: DataConfig = field(default_factory=DataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    models: list[ModelEntry] = field(default_factory=list)
    ensembles: list[EnsembleEntry] = field(default_factory=list)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tuning: TuningConfig | None = None
    output_dir: str = "runs"

    def validate(self, where: str) -> None:
        if not self.seeds:
            raise ConfigError("seeds: expected at least one seed")
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"models: names must be unique, got {labels}")
        for i, entry in enumerate(self.models):
            spec = get_model(entry.type)
            try:
                check_hyperparameters(spec.name, entry.params)
            except ConfigError as err:
                raise ConfigError(f"models[{i}].params: {err}") from None
            self.train_config(entry, where=f"models[{i}].train")
            if spec.side_inputs and spec.family == "keras" and self.loader.augment.enabled:   # tf.data augments
                raise ConfigError(f"models[{i}]: {entry.label!r} takes side inputs {list(spec.side_inputs)} computed "
                                  f"once from the windows as they are, so loader.augment (noise, scaling, wander, "
                                  f"time shift) would no longer match them; set loader.augment.enabled: false")
        for i, ensemble in enumerate(self.ensembles):
            if ensemble.name in labels or [e.name for e in self.ensembles].count(ensemble.name) > 1:
                raise ConfigError(f"ensembles[{i}].name: {ensemble.name!r} is already the name of a model or "
                                  f"another ensemble")
            unknown = [m for m in ensemble.members if m not in labels]
            if unknown:
                raise ConfigError(f"ensembles[{i}].members: {unknown} are not models of this config "
                                  f"(models: {', '.join(labels) or 'none'})")
        if self.tuning is not None:
            self._validate_tuning(self.tuning)

    def train_config(self, entry: ModelEntry, where: str = "train") -> TrainConfig:
        """The ``train`` section with the model entry's own overrides applied (validated)."""
        if not entry.train:
            return self.train
        return from_dict(TrainConfig, {**to_dict(self.train), **entry.train}, where)

    def model_entry(self, label: str) -> ModelEntry:
        """The model entry named ``label`` (or of registry type ``label``)."""
        for entry in self.models:
            if label in (entry.label, entry.type):
                return entry
        return ModelEntry(type=label)

    def _validate_tuning(self, tuning: TuningConfig) -> None:
        spec = get_model(self.model_entry(tuning.model).type)
        if spec.family != "keras":
            raise ConfigError(f"tuning.model: {tuning.model!r} is a {spec.family} model; "
                              f"KerasTuner searches Keras models")
        valid = spec.hyperparameter_names + list(TRAINING_HYPERPARAMETERS)
        for name, space in tuning.search_space.items():
            if name not in valid:
                raise ConfigError(f"tuning.search_space: unknown hyperparameter {name!r} for "
                                  f"{tuning.model!r}{suggest(name, valid)}; valid: {', '.join(valid)}")
            if name in spec.defaults:   # the values the tuner would give the builder, checked now
                samples = space.values if space.type == "choice" else [
                    float(space.min) if space.type == "float" else int(space.min)]
                try:
                    for value in samples:
                        check_hyperparameters(spec.name, {name: value})
                except ConfigError as err:
                    raise ConfigError(f"tuning.search_space.{name} (type {space.type}): {err}") from None


PATH_KEYS = (("data", "path"), ("data", "cache", "dir"))


class _ConfigLoader(yaml.SafeLoader):
    """Safe YAML that reads ``1e-4`` as a number (YAML 1.2), not as the text YAML 1.1 makes of it."""


_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                    list("-+0123456789"))


def parse_yaml(text: str) -> Any:
    """Parse config YAML safely (no Python objects), exponent-only floats included."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None, *,
                check_data: bool = True) -> ExperimentConfig:
    """Load, override and validate an experiment YAML file.

    Args:
        path: the YAML file, or the bare name of a shipped config (e.g. ``quickstart``).
        overrides: ``key.sub=value`` strings; values are parsed as YAML scalars/lists.
        check_data: Check that the data folder and labels file exist. ``False`` reads the
            config of a finished run on a machine without its data (export, model cards).

    Returns:
        The validated ExperimentConfig, with every path made absolute.
    """
    path = find_config(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist{suggest(path.name, shipped_configs())}")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    _upgrade_moved_keys(raw)
    raw["models"] = [_model_entry(m) for m in raw.get("models") or []]
    for item in overrides or []:
        apply_override(raw, item)
    raw["models"] = [_model_entry(m) for m in raw.get("models") or []]  # --set models=[cnn, mina]
    if any(item.split("=", 1)[0].strip() == "models" for item in overrides or []) and not any(
            item.strip().startswith("ensembles") for item in overrides or []):
        _drop_orphan_ensembles(raw)
    _resolve_paths(raw, path.parent)
    token = _CHECK_DATA_FILES.set(check_data)
    try:
        return from_dict(ExperimentConfig, raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    finally:
        _CHECK_DATA_FILES.reset(token)


def _drop_orphan_ensembles(raw: dict[str, Any]) -> None:
    """After ``--set models=[...]``, drop the config's ensembles whose members that list left out (noted)."""
    labels = {m.get("name") or m.get("type") for m in raw["models"] if isinstance(m, dict)}
    kept = []
    for ensemble in raw.get("ensembles") or []:
        members = ensemble.get("members") if isinstance(ensemble, dict) else None
        if isinstance(members, list) and not set(members) <= labels:
            logging.getLogger("biomed").info(f"note: ensemble {ensemble.get('name')!r} left out: --set models "
                                             f"does not include its members {members}")
            continue
        kept.append(ensemble)
    if "ensembles" in raw:
        raw["ensembles"] = kept


def _upgrade_moved_keys(raw: dict[str, Any]) -> None:
    """Read configs written by earlier versions (run folders): ``loader.image_augment.mixup_alpha``
    became ``loader.mixup_alpha`` (mixup now applies to every modality)."""
    loader = raw.get("loader")
    augment = loader.get("image_augment") if isinstance(loader, dict) else None
    if isinstance(augment, dict) and "mixup_alpha" in augment:
        loader.setdefault("mixup_alpha", augment.pop("mixup_alpha"))


def shipped_configs() -> list[str]:
    """Names of the example configs shipped with biomed (the ``configs`` package)."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("configs").iterdir()
                  if p.name.endswith(".yaml"))


def find_config(path: str | os.PathLike) -> Path:
    """The config file ``path``; a bare name that is no file (``quickstart``) is a shipped config.

    Example:
        >>> find_config("quickstart").name
        'quickstart.yaml'
    """
    path = Path(path)
    if path.is_file() or path.suffix or len(path.parts) != 1:
        return path
    shipped = resources.files("configs") / f"{path.name}.yaml"
    return Path(str(shipped)) if shipped.is_file() else path


def apply_override(raw: dict, item: str) -> None:
    """Apply one ``a.b.c=value`` override to the raw config mapping in place."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. data.preprocess.fs=250")
    key, text = item.split("=", 1)
    try:
        value = parse_yaml(text) if text else None
    except yaml.YAMLError as err:
        problem = str(getattr(err, "problem", None) or "unparsable")
        raise ConfigError(f"--set {item!r}: the value is not valid YAML ({problem}); quote a string, "
                          f"close every bracket, e.g. --set 'train.epochs=5'") from None
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_list_index(node, part, key)]
            continue
        node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
    if isinstance(node, list):
        node[_list_index(node, parts[-1], key)] = value
    else:
        node[parts[-1]] = value


def config_to_yaml(config: ExperimentConfig) -> str:
    """The fully resolved config as YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def config_hash(obj: Any) -> str:
    """A short stable hash of any config object or plain data."""
    data = json.dumps(to_dict(obj), sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _model_entry(item: Any) -> Any:
    return {"type": item} if isinstance(item, str) else item


def _list_index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {key}: {part!r} is not a valid index (list has {len(node)} items)")
    return int(part)


def _resolve_paths(raw: dict, base: Path) -> None:
    """Make config paths absolute: against the config folder (also weights files in model params),
    and ``data.labels`` against ``data.path``."""
    for keys in PATH_KEYS:
        node = raw
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
            value = os.path.expandvars(os.path.expanduser(node[keys[-1]]))
            node[keys[-1]] = str((base / value).resolve()) if not os.path.isabs(value) else value
    for entry in raw.get("models") or []:
        params = entry.get("params") if isinstance(entry, dict) else None
        weights = params.get("weights") if isinstance(params, dict) else None
        if isinstance(weights, str) and weights.endswith((".h5", ".keras", ".weights.h5")):
            weights = os.path.expandvars(os.path.expanduser(weights))
            params["weights"] = weights if os.path.isabs(weights) else str((base / weights).resolve())
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("labels"), str):
        labels = os.path.expandvars(os.path.expanduser(data["labels"]))
        if not os.path.isabs(labels):
            labels = str(Path(data.get("path") or base) / labels)
        data["labels"] = labels

"""ImageNet backbones from ``keras.applications`` by name, with their preprocessing and weights.

Every backbone is built without its classifier (``include_top=False``, no
pooling) for 3-channel inputs in [0, 255]; :func:`preprocessing_layer` gives the
layer that applies the backbone's own ``preprocess_input`` inside the model
(MobileNetV3, EfficientNet and ConvNeXt rescale internally and need none).

``weights`` is ``"none"`` (random init), ``"imagenet"`` (the Keras cache file,
which must already be in ``$KERAS_HOME/models``: nothing is downloaded) or a
path to a weights file. A relative path is tried against the current directory,
then against the repository's ``configs/`` folder, so the shipped configs can
name ``../../shared/data/weights/<file>.h5``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras

from pipelines.errors import BiomedError, ConfigError, suggest

MIN_SIZE = 32
PREPROCESS_MODULES = ("mobilenet", "mobilenet_v2", "resnet50", "densenet")


def _mobilenet_file(alpha: float, rows: int) -> str:
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0"}.get(float(alpha), "2_5")
    rows = rows if rows in (128, 160, 192, 224) else 224
    return f"mobilenet_{text}_{rows}_tf_no_top.h5"


def _mobilenet_v2_file(alpha: float, rows: int) -> str:
    rows = rows if rows in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def _fixed(name: str) -> Callable[[float, int], str]:
    return lambda alpha, rows: name


def _mobilenet_v3_file(kind: str) -> Callable[[float, int], str]:
    return lambda alpha, rows: f"weights_mobilenet_v3_{kind}_224_{float(alpha)}_float_no_top_v2.h5"


@dataclass(frozen=True)
class Backbone:
    """A ``keras.applications`` constructor and what it needs around it.

    Attributes:
        constructor: attribute of ``keras.applications`` (e.g. ``"MobileNetV2"``).
        preprocess: ``keras.applications`` module whose ``preprocess_input`` the model
            applies first, or None when the backbone rescales its inputs itself.
        imagenet_file: ``(alpha, input rows) -> file name`` of the no-top ImageNet
            weights in the Keras cache (the name Keras would download).
        alpha: whether the constructor takes a width multiplier ``alpha``.
    """

    constructor: str
    preprocess: str | None
    imagenet_file: Callable[[float, int], str]
    alpha: bool = False


BACKBONES: dict[str, Backbone] = {
    "mobilenet": Backbone("MobileNet", "mobilenet", _mobilenet_file, alpha=True),
    "mobilenet_v2": Backbone("MobileNetV2", "mobilenet_v2", _mobilenet_v2_file, alpha=True),
    "mobilenet_v3_small": Backbone("MobileNetV3Small", None, _mobilenet_v3_file("small"), alpha=True),
    "mobilenet_v3_large": Backbone("MobileNetV3Large", None, _mobilenet_v3_file("large"), alpha=True),
    **{f"efficientnet_b{i}": Backbone(f"EfficientNetB{i}", None, _fixed(f"efficientnetb{i}_notop.h5"))
       for i in range(4)},
    "efficientnet_v2_b0": Backbone("EfficientNetV2B0", None, _fixed("efficientnetv2-b0_notop.h5")),
    "resnet50": Backbone("ResNet50", "resnet50",
                         _fixed("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")),
    "densenet121": Backbone("DenseNet121", "densenet",
                            _fixed("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5")),
    "convnext_tiny": Backbone("ConvNeXtTiny", None, _fixed("convnext_tiny_notop.h5")),
}


def get_backbone(name: str) -> Backbone:
    """The backbone registered as ``name``; ConfigError naming the closest match otherwise."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}{suggest(name, BACKBONES)}; "
                          f"available: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def keras_cache_dir() -> Path:
    """The folder Keras looks in for downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``).

    The same rule as Keras' own (``keras.utils.get_file``): ``$KERAS_HOME``,
    else ``~/.keras``, else ``/tmp/.keras`` when the home folder is not writable.
    """
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"]) / "models"
    home = Path.home() if os.access(Path.home(), os.W_OK) else Path("/tmp")
    return home / ".keras" / "models"


def is_pretrained(weights: str | None) -> bool:
    """Whether the ``weights`` hyperparameter loads weights (anything but ``none``)."""
    return weights is not None and str(weights).lower() != "none"


def resolve_weights(weights: str | None) -> str | None:
    """Turn the ``weights`` hyperparameter into what the Keras constructor takes.

    Args:
        weights: ``"none"``/None, ``"imagenet"`` or a path to a weights file.

    Returns:
        None, ``"imagenet"`` or an absolute file path.

    Raises:
        BiomedError: the weights file does not exist.
    """
    if not is_pretrained(weights):
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(os.path.expandvars(os.path.expanduser(str(weights)))).resolve()
    if not path.is_file():
        raise BiomedError(f"weights file {path} not found; use 'none', 'imagenet' or a path to a weights "
                          f"file (relative paths in a config resolve against the config's folder)")
    return str(path)


def missing_imagenet_message(backbone: str, alpha: float, rows: int, reason: str) -> str:
    """The offline error for ImageNet weights: the exact file to place in the Keras cache."""
    file_name = get_backbone(backbone).imagenet_file(alpha, rows)
    return (f"ImageNet weights of backbone {backbone!r} are not in the Keras cache and could not be "
            f"downloaded ({reason}): put {file_name} in {keras_cache_dir()} (the Keras cache folder, "
            f"$KERAS_HOME/models) or pass the file's path as weights: <path>")


def build_backbone(name: str, input_shape: tuple[int, int, int], *, alpha: float = 1.0,
                   weights: str | None = "none") -> keras.Model:
    """Build the no-top backbone ``name`` for ``(H, W, 3)`` inputs, loading ``weights``.

    Raises:
        ConfigError: unknown backbone, input smaller than 32 pixels or ``alpha`` on a
            backbone without a width multiplier.
        BiomedError: a weights file that does not exist, or ImageNet weights that are neither
            cached nor downloadable (the message names the file to place in the Keras cache).
    """
    spec = get_backbone(name)
    height, width, channels = input_shape
    if min(height, width) < MIN_SIZE:
        raise ConfigError(f"backbone {name!r} needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels, "
                          f"got {height}x{width}: raise data.image.image_size")
    if channels != 3:
        raise ConfigError(f"backbone {name!r} takes 3-channel images, got {channels} channels")
    if not spec.alpha and float(alpha) != 1.0:
        raise ConfigError(f"backbone {name!r} has no width multiplier: alpha must be 1.0, got {alpha}")
    resolved = resolve_weights(weights)
    kwargs = {"alpha": float(alpha)} if spec.alpha else {}
    constructor = getattr(keras.applications, spec.constructor)
    try:  # "imagenet" goes through Keras' normal download and cache
        return constructor(include_top=False, weights=resolved, input_shape=tuple(input_shape), **kwargs)
    except ValueError as err:
        if resolved in (None, "imagenet"):
            raise
        raise BiomedError(f"weights file {resolved} does not fit backbone {name!r} (alpha {alpha}): "
                          f"{str(err).splitlines()[0]}") from None
    except Exception as err:
        if resolved != "imagenet" or (keras_cache_dir() / spec.imagenet_file(alpha, height)).is_file():
            raise
        raise BiomedError(missing_imagenet_message(name, alpha, height, type(err).__name__)) from None


@keras.saving.register_keras_serializable(package="biomed")
class ImageNetPreprocess(keras.layers.Layer):
    """Apply ``keras.applications.<module>.preprocess_input`` to RGB images in [0, 255].

    Args:
        module: one of ``PREPROCESS_MODULES`` (``"mobilenet"`` scales to [-1, 1],
            ``"resnet50"`` flips to BGR and subtracts the ImageNet mean, ``"densenet"``
            standardises with the ImageNet mean and std).
    """

    def __init__(self, module: str, **kwargs):
        super().__init__(**kwargs)
        if module not in PREPROCESS_MODULES:
            raise ValueError(f"module must be one of {PREPROCESS_MODULES}, got {module!r}")
        self.module = module

    def call(self, images):
        return getattr(keras.applications, self.module).preprocess_input(images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "module": self.module}


def preprocessing_layer(name: str) -> ImageNetPreprocess | None:
    """The layer applying backbone ``name``'s ``preprocess_input``, or None when it is built in."""
    module = get_backbone(name).preprocess
    return ImageNetPreprocess(module, name="preprocess") if module else None

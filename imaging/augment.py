"""Training-time image augmentation with Keras preprocessing layers, deterministic per element.

The layers (RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
RandomContrast) draw their random transformation from the per-element
stateless seed that :func:`pipelines.tfdata.make_dataset` passes, instead of
their own stateful generator, so a seed always gives the same images and
parallel ``tf.data`` maps stay reproducible. Evaluation pipelines never call
the augmenter. Mixup is not implemented: it needs soft labels, which the shared
sparse cross-entropy training does not take.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from pipelines.config import ImageAugmentConfig, LoaderConfig
from pipelines.errors import ConfigError

Augmenter = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


class _ElementSeed(keras.random.SeedGenerator):
    """A seed source for one element: successive stateless seeds folded from a ``(2,)`` seed tensor.

    It subclasses ``SeedGenerator`` only so the layers accept it as ``seed``; it
    holds no variable (``tf.data`` functions cannot create one).
    """

    def __init__(self, seed: tf.Tensor):  # noqa: D107 - no SeedGenerator state on purpose
        self._seed = tf.cast(seed, tf.int64)
        self._draws = 0

    def next(self, ordered: bool = True) -> tf.Tensor:
        self._draws += 1
        return tf.random.experimental.stateless_fold_in(self._seed, self._draws)


def augmentation_layers(cfg: ImageAugmentConfig) -> list[keras.layers.Layer]:
    """The configured Keras preprocessing layers (zero-strength ones left out)."""
    chosen: list[keras.layers.Layer] = []
    if cfg.flip != "none":
        chosen.append(keras.layers.RandomFlip(cfg.flip))
    if cfg.rotation:
        chosen.append(keras.layers.RandomRotation(cfg.rotation, fill_mode="reflect"))
    if cfg.zoom:
        chosen.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="reflect"))
    if cfg.translation:
        chosen.append(keras.layers.RandomTranslation(cfg.translation, cfg.translation, fill_mode="reflect"))
    if cfg.contrast:
        chosen.append(keras.layers.RandomContrast(cfg.contrast, value_range=(0, 255)))
    return chosen


def image_augmenter(cfg: ImageAugmentConfig) -> Augmenter:
    """Return ``fn(image, seed) -> image`` applying the configured layers in training.

    Args:
        cfg: ``loader.image_augment``; ``mixup_alpha`` must be 0 (see the module doc).

    Returns:
        A function of one ``(H, W, C)`` float image in [0, 255] and a shape-(2,) int seed.

    Example:
        >>> fn = image_augmenter(ImageAugmentConfig(enabled=True))        # doctest: +SKIP
        >>> fn(tf.zeros((32, 32, 3)), tf.constant([1, 2], tf.int64)).shape  # doctest: +SKIP
        TensorShape([32, 32, 3])
    """
    if cfg.mixup_alpha:
        raise ConfigError("loader.image_augment.mixup_alpha: mixup is not supported (the shared training "
                         "uses sparse integer labels); set it to 0")
    chosen = augmentation_layers(cfg)

    def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        source = _ElementSeed(seed)
        for layer in chosen:
            transformation = layer.get_random_transformation(image, training=True, seed=source)
            image = layer.transform_images(image, transformation, training=True)
        return tf.clip_by_value(image, 0.0, 255.0)

    return augment


def training_augmenter(loader: LoaderConfig, fs: float | None = None) -> Augmenter | None:
    """The configured image training augmentation, or None when ``loader.image_augment`` is off."""
    return image_augmenter(loader.image_augment) if loader.image_augment.enabled else None

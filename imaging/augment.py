"""Training-time image augmentation with Keras preprocessing layers, deterministic per element.

The layers (RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
RandomContrast) draw their random transformation from the per-element
stateless seed that :func:`pipelines.tfdata.make_dataset` passes, instead of
their own stateful generator, so a seed always gives the same images and
parallel ``tf.data`` maps stay reproducible. Evaluation pipelines never call
the augmenter. CutMix (Yun et al., ICCV 2019) is a batch mixer
(:mod:`pipelines.mixing`, where mixup lives): a box of a shuffled copy of the
batch is pasted into each image and the one-hot labels are mixed by area.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from pipelines.config import ImageAugmentConfig, LoaderConfig
from pipelines.mixing import BatchMixer, batch_permutation, sample_beta

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
        cfg: ``loader.image_augment``.

    Returns:
        A function of one ``(H, W, C)`` float image in [0, 255] and a shape-(2,) int seed.

    Example:
        >>> fn = image_augmenter(ImageAugmentConfig(enabled=True))        # doctest: +SKIP
        >>> fn(tf.zeros((32, 32, 3)), tf.constant([1, 2], tf.int64)).shape  # doctest: +SKIP
        TensorShape([32, 32, 3])
    """
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


def cutmix(alpha: float) -> BatchMixer:
    """The CutMix mixer: ``lam ~ Beta(alpha, alpha)``, one box of side ``sqrt(1 - lam)`` per batch.

    The box centre is uniform and the box is clipped at the borders; labels are
    mixed by the pasted box's actual area fraction.
    """

    def mix(x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        lam = sample_beta(alpha, seed)
        height, width = tf.shape(x)[1], tf.shape(x)[2]
        side = tf.sqrt(1.0 - lam)
        centre = tf.random.stateless_uniform((2,), tf.random.experimental.stateless_fold_in(seed, 4))
        sizes = tf.cast(tf.stack([height, width]), tf.float32)
        low = tf.cast(tf.clip_by_value(tf.round((centre - side / 2) * sizes), 0, sizes), tf.int32)
        high = tf.cast(tf.clip_by_value(tf.round((centre + side / 2) * sizes), 0, sizes), tf.int32)
        rows = tf.range(height)[:, None]
        cols = tf.range(width)[None, :]
        inside = (rows >= low[0]) & (rows < high[0]) & (cols >= low[1]) & (cols < high[1])
        mask = tf.cast(inside, x.dtype)[None, :, :, None]
        order = batch_permutation(y, seed)
        kept = 1.0 - tf.reduce_mean(mask)
        return x * (1.0 - mask) + tf.gather(x, order) * mask, kept * y + (1.0 - kept) * tf.gather(y, order)

    return mix


def batch_mixer(loader: LoaderConfig) -> tuple[BatchMixer | None, float]:
    """The configured CutMix and its per-batch probability (None when off or augmentation is disabled)."""
    cfg = loader.image_augment
    if not cfg.enabled or cfg.cutmix_alpha <= 0:
        return None, 0.0
    return cutmix(cfg.cutmix_alpha), cfg.cutmix_prob

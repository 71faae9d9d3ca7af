"""One-hot labels and batch mixing (mixup, and modality plug-ins such as CutMix) for tf.data.

Keras training takes one-hot (or soft) labels with categorical cross-entropy,
so training batches can be mixed: mixup (Zhang et al., ICLR 2018) blends two
shuffled copies of a batch, ``x = lam * x + (1 - lam) * x[perm]`` and the
labels alike, with ``lam ~ Beta(alpha, alpha)`` drawn once per batch from a
stateless seed (every input of a dict of inputs is blended with the same draw). A modality may register another :data:`BatchMixer` (images:
CutMix) in :data:`pipelines.plugins.BATCH_MIXERS`; when both are on, each batch
gets the plug-in's mixer with its probability, otherwise mixup. Validation and
test batches keep hard labels (one-hot, unmixed).
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from pipelines import plugins
from pipelines.config import LoaderConfig

AUTOTUNE = tf.data.AUTOTUNE

#: ``mix(x, y, seed) -> (x, y)`` on one batch: x the inputs (a tensor or a dict of tensors),
#: y one-hot labels, seed a shape-(2,) int64 tensor.
BatchMixer = Callable[[Any, tf.Tensor, tf.Tensor], tuple[Any, tf.Tensor]]


def sample_beta(alpha: float, seed: tf.Tensor) -> tf.Tensor:
    """One stateless draw from ``Beta(alpha, alpha)`` (as the ratio of two Gamma draws)."""
    first = tf.random.stateless_gamma((), seed, alpha)
    second = tf.random.stateless_gamma((), tf.random.experimental.stateless_fold_in(seed, 1), alpha)
    return first / tf.maximum(first + second, 1e-12)


def batch_permutation(y: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A seeded random permutation of the batch indices of the labels ``y``."""
    size = tf.shape(y)[0]
    keys = tf.random.stateless_uniform((size,), tf.random.experimental.stateless_fold_in(seed, 2))
    return tf.argsort(keys)


def mixup(alpha: float) -> BatchMixer:
    """The mixup mixer with ``lam ~ Beta(alpha, alpha)`` (inputs and labels blended alike)."""

    def mix(x: Any, y: tf.Tensor, seed: tf.Tensor) -> tuple[Any, tf.Tensor]:
        lam = sample_beta(alpha, seed)
        order = batch_permutation(y, seed)

        def blend(a: tf.Tensor) -> tf.Tensor:
            return lam * a + (1.0 - lam) * tf.gather(a, order)

        return tf.nest.map_structure(blend, x), blend(y)

    return mix


def either(first: BatchMixer | None, second: BatchMixer | None, first_prob: float) -> BatchMixer | None:
    """``first`` with probability ``first_prob`` per batch, else ``second`` (a missing one is identity)."""
    if first is None:
        return second
    if second is None and first_prob >= 1:
        return first

    def mix(x: Any, y: tf.Tensor, seed: tf.Tensor) -> tuple[Any, tf.Tensor]:
        draw = tf.random.stateless_uniform((), tf.random.experimental.stateless_fold_in(seed, 3))
        other = second if second is not None else (lambda a, b, _: (a, b))
        return tf.cond(draw < first_prob, lambda: first(x, y, seed), lambda: other(x, y, seed))

    return mix


def one_hot_batches(ds: tf.data.Dataset, n_classes: int, *, mixer: BatchMixer | None = None,
                    seed: int = 0) -> tf.data.Dataset:
    """Batches of ``ds`` with one-hot labels, mixed by ``mixer`` (training) when given.

    Args:
        ds: batched ``(inputs, integer labels)``, as :func:`pipelines.tfdata.make_dataset` returns.
        n_classes: the number of classes.
        mixer: the batch mixer, or None for hard one-hot labels.
        seed: seeds the per-batch draws (reshuffled every epoch).

    Returns:
        A dataset of ``(inputs, float32 labels of shape (batch, n_classes))``.
    """
    def hard(features: Any, labels: tf.Tensor) -> tuple[Any, tf.Tensor]:
        return features, tf.one_hot(tf.reshape(labels, (-1,)), n_classes, dtype=tf.float32)

    ds = ds.map(hard, num_parallel_calls=AUTOTUNE, deterministic=True)
    if mixer is None:
        return ds.prefetch(AUTOTUNE)
    seeds = tf.data.Dataset.random(seed=seed + 7919, rerandomize_each_iteration=True).batch(2)

    def mixed(element: tuple, pair: tf.Tensor) -> tuple[Any, tf.Tensor]:
        return mixer(*element, pair)

    return tf.data.Dataset.zip((ds, seeds)).map(mixed, num_parallel_calls=AUTOTUNE,
                                                 deterministic=True).prefetch(AUTOTUNE)


def training_mixer(loader: LoaderConfig, modality: str) -> BatchMixer | None:
    """The configured batch mixing of training: mixup and/or the modality's registered mixer, or None."""
    plug = dict(plugins.BATCH_MIXERS.items()).get(modality)
    extra, extra_prob = plug(loader) if plug is not None else (None, 0.0)
    return either(extra, mixup(loader.mixup_alpha) if loader.mixup_alpha > 0 else None, extra_prob)

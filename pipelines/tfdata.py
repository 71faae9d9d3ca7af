"""tf.data input pipelines shared by ECG and imaging models.

Training pipelines shuffle (seeded, reshuffled each epoch), optionally rebalance
classes by sampling, augment with a per-element stateless seed, batch and
prefetch; evaluation pipelines only batch and prefetch. Multi-input models get
a dict of inputs: the main input plus named side channels.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from pipelines.samples import SampleSet

AUTOTUNE = tf.data.AUTOTUNE


def model_inputs(x: np.ndarray) -> np.ndarray:
    """Add the channel axis ECG windows need (``(n, T) -> (n, T, 1)``); images pass through."""
    return x[..., None] if x.ndim == 2 else x


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced class weights ``n / (k * count_c)`` (classes absent from ``y`` get weight 1)."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return {c: (len(y) / (n_classes * counts[c]) if counts[c] else 1.0) for c in range(n_classes)}


def make_dataset(samples: SampleSet, *, batch_size: int, training: bool, seed: int = 0,
                 shuffle_buffer: int = 8192, oversample: bool = False,
                 augment: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
                 input_name: str | None = None,
                 side_inputs: dict[str, np.ndarray] | None = None) -> tf.data.Dataset:
    """Build the tf.data pipeline for one split.

    Args:
        samples: the split's samples.
        batch_size: global batch size.
        training: shuffle/oversample/augment only when True.
        seed: seed of shuffling, sampling and augmentation.
        shuffle_buffer: shuffle buffer size (capped at the number of samples).
        oversample: draw classes with equal probability (one epoch = ``len(samples)`` draws).
        augment: ``fn(x, seed) -> x`` applied per element in training.
        input_name: name of the main input when the model takes a dict of inputs.
        side_inputs: extra per-sample arrays fed as named inputs beside the main one.

    Returns:
        A dataset of ``(inputs, labels)`` batches.
    """
    x = model_inputs(samples.x).astype(np.float32, copy=False)
    key = (input_name or "input") if (side_inputs or input_name) else None
    features = x if key is None else {key: x, **(side_inputs or {})}
    ds = tf.data.Dataset.from_tensor_slices((features, samples.y.astype(np.int32)))
    if training:
        if oversample:
            ds = _rebalanced(ds, samples.y, seed)
        ds = ds.shuffle(min(shuffle_buffer, len(samples)), seed=seed, reshuffle_each_iteration=True)
        if augment is not None:
            ds = _augmented(ds, augment, seed, key)
    ds = ds.batch(batch_size, drop_remainder=False).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _rebalanced(ds: tf.data.Dataset, y: np.ndarray, seed: int) -> tf.data.Dataset:
    present = np.unique(y)
    per_class = [ds.filter(lambda _, label, c=int(c): tf.equal(label, c)).repeat() for c in present]
    mixed = tf.data.Dataset.sample_from_datasets(per_class, weights=[1 / len(present)] * len(present),
                                                 seed=seed, rerandomize_each_iteration=True)
    return mixed.take(len(y))


def _augmented(ds: tf.data.Dataset, augment: Callable, seed: int, key: str | None) -> tf.data.Dataset:
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def apply(element: tuple, pair: tf.Tensor) -> tuple:
        features, label = element
        if key is None:
            return augment(features, pair), label
        return {**features, key: augment(features[key], pair)}, label

    return tf.data.Dataset.zip((ds, seeds)).map(apply, num_parallel_calls=AUTOTUNE, deterministic=True)

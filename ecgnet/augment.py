"""On-the-fly ECG augmentation as stateless TensorFlow ops (deterministic given a seed)."""

from __future__ import annotations

import math
from typing import Callable

import tensorflow as tf

from pipelines.config import AugmentConfig, LoaderConfig

Augmenter = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def ecg_augmenter(cfg: AugmentConfig, fs: float) -> Augmenter:
    """Return ``fn(window, seed) -> window`` adding noise, scaling, baseline wander and a time shift.

    ``window`` has shape ``(T, 1)``; ``seed`` is a shape-(2,) int tensor, so the
    same seed always gives the same augmentation.
    """
    low, high = cfg.scale_range
    max_shift = int(round(cfg.max_shift_s * fs))

    def augment(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(seed, 5)
        length = tf.shape(x)[0]
        scale = tf.random.stateless_uniform([], seeds[0], low, high)
        x = x * scale
        if cfg.noise_std > 0:
            x = x + tf.random.stateless_normal(tf.shape(x), seeds[1], stddev=cfg.noise_std)
        if cfg.baseline_wander > 0:
            freq = tf.random.stateless_uniform([], seeds[2], 0.05, 0.5)
            phase = tf.random.stateless_uniform([], seeds[3], 0.0, 2 * math.pi)
            t = tf.cast(tf.range(length), tf.float32) / fs
            x = x + (cfg.baseline_wander * tf.sin(2 * math.pi * freq * t + phase))[:, None]
        if max_shift > 0:
            shift = tf.random.stateless_uniform([], seeds[4], -max_shift, max_shift + 1, dtype=tf.int32)
            x = tf.roll(x, shift, axis=0)
        return x

    return augment


def training_augmenter(loader: LoaderConfig, fs: float | None) -> Augmenter | None:
    """The configured ECG training augmentation, or None when ``loader.augment`` is off."""
    return ecg_augmenter(loader.augment, fs) if loader.augment.enabled else None

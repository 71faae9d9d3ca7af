"""Where training runs: tf.distribute strategy, mixed precision and XLA from the ``runtime:`` config."""

from __future__ import annotations

import json
import os
from functools import lru_cache

from pipelines.config import RuntimeConfig


@lru_cache(maxsize=None)
def _strategy(name: str):
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else ("multi_worker" if os.environ.get("TF_CONFIG") else "default")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def get_strategy(runtime: RuntimeConfig):
    """The tf.distribute strategy for this process (created once; multi-worker reads TF_CONFIG).

    ``auto`` picks MirroredStrategy when more than one GPU is visible,
    MultiWorkerMirroredStrategy when TF_CONFIG is set, the default strategy otherwise.
    """
    return _strategy(runtime.strategy)


def set_precision(runtime: RuntimeConfig) -> None:
    """Set the global Keras dtype policy (model output layers stay float32)."""
    import keras

    policy = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
    keras.mixed_precision.set_global_policy(policy[runtime.mixed_precision])


def global_batch_size(batch_size: int, replicas: int, runtime: RuntimeConfig) -> int:
    """Per-replica batch size scaled by the number of replicas when ``scale_batch_size`` is on."""
    return batch_size * replicas if runtime.scale_batch_size else batch_size


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief worker (only the chief writes artefacts)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if not task:
        return True
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") in (None, "worker") and int(task.get("index", 0)) == 0

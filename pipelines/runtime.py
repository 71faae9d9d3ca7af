"""Where training runs: tf.distribute strategy, mixed precision and XLA from the ``runtime:`` config.

Multi-worker training follows TensorFlow's own recipe: every worker runs the
same program with a ``TF_CONFIG`` environment variable naming the cluster and
its own task, and ``MultiWorkerMirroredStrategy`` keeps the replicas in sync.
That strategy must be created before any other TensorFlow op runs, so entry
points call :func:`get_strategy` first. Only the chief writes artefacts; other
workers write to a scratch folder (:func:`artefact_dir`), as the Keras
multi-worker guide does.

Example (two workers on one machine, each started with its own ``TF_CONFIG``)::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]},
                "task": {"type": "worker", "index": 0}}' biomed run configs/quickstart_multiworker.yaml
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from pipelines.config import RuntimeConfig

POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def tf_config() -> dict[str, Any]:
    """The parsed ``TF_CONFIG`` environment variable (``{}`` when unset)."""
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def cluster_size() -> int:
    """Number of training tasks (chief and workers) named by ``TF_CONFIG``; 1 without it."""
    cluster = tf_config().get("cluster") or {}
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def strategy_kind(runtime: RuntimeConfig, n_gpus: int | None = None) -> str:
    """The strategy ``runtime.strategy`` resolves to: 'default', 'one_device', 'mirrored' or 'multi_worker'.

    ``auto`` picks ``multi_worker`` when ``TF_CONFIG`` names more than one task,
    else ``mirrored`` when more than one GPU is visible, else ``default``.

    Args:
        runtime: The ``runtime:`` config section.
        n_gpus: Visible GPUs (default: counted without initialising the TensorFlow runtime).
    """
    if runtime.strategy != "auto":
        return runtime.strategy
    if cluster_size() > 1:
        return "multi_worker"
    if n_gpus is None:
        import tensorflow as tf

        n_gpus = len(tf.config.list_physical_devices("GPU"))
    return "mirrored" if n_gpus > 1 else "default"


@lru_cache(maxsize=None)
def _strategy(kind: str) -> Any:
    import tensorflow as tf

    if kind == "multi_worker":
        return _keras_multi_worker_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0")
    return tf.distribute.get_strategy()


def _keras_multi_worker_strategy() -> Any:
    """A ``MultiWorkerMirroredStrategy`` whose ``reduce`` also takes what Keras 3 passes it.

    In multi-worker mode Keras 3 (up to at least 3.15) reduces a whole nested data
    batch and per-replica scalars with ``axis=0`` (keras-team/keras#20585,
    tensorflow/tensorflow#72388); TensorFlow's ``reduce`` supports neither across
    workers, so ``fit`` fails. This reduces each leaf with TensorFlow's own
    ``reduce``, and scalars across replicas only.
    """
    import tensorflow as tf

    class Strategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op: Any, value: Any, axis: int | None) -> Any:
            reduce_leaf = super().reduce

            def leaf(v: Any) -> Any:
                scalar = self.experimental_local_results(v)[0].shape.rank == 0
                return reduce_leaf(reduce_op, v, None if scalar else axis)

            return tf.nest.map_structure(leaf, value)

    return Strategy()


def get_strategy(runtime: RuntimeConfig) -> Any:
    """The ``tf.distribute.Strategy`` of this process, created once (see :func:`strategy_kind`).

    Call it at program start in multi-worker runs: ``MultiWorkerMirroredStrategy``
    reads ``TF_CONFIG`` and must exist before any other TensorFlow op runs.
    """
    return _strategy(strategy_kind(runtime))


def sync_moving_statistics(model: Any, strategy: Any) -> None:
    """Average a model's non-trainable float variables (BatchNorm moving statistics) over all replicas.

    Keras 3 updates BatchNormalization moving statistics on each replica from its
    own batches only, so replicas end training with different statistics although
    their trainable weights are identical. Call this after ``fit`` (on every
    worker) so that all replicas save and predict with the same model.
    """
    import keras
    import tensorflow as tf

    variables = [v for v in model.non_trainable_variables if keras.backend.is_float_dtype(v.dtype)]
    if strategy.num_replicas_in_sync == 1 or not variables:
        return

    @tf.function
    def replica_means() -> Any:
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(
            "MEAN", [tf.identity(v.value) for v in variables]))

    for variable, mean in zip(variables, replica_means()):
        variable.assign(strategy.experimental_local_results(mean)[0])


def set_precision(runtime: RuntimeConfig) -> None:
    """Set the global Keras dtype policy; model output layers stay float32.

    Under ``float16`` Keras wraps the optimizer in a ``LossScaleOptimizer`` at
    compile time; ``bfloat16`` needs no loss scaling.
    """
    import keras

    keras.mixed_precision.set_global_policy(POLICIES[runtime.mixed_precision])


def global_batch_size(batch_size: int, replicas: int, runtime: RuntimeConfig) -> int:
    """Per-replica batch size scaled by the number of replicas when ``scale_batch_size`` is on."""
    return batch_size * replicas if runtime.scale_batch_size else batch_size


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief worker (only the chief writes artefacts)."""
    config = tf_config()
    task = config.get("task") or {}
    if not task:
        return True
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") in (None, "worker") and int(task.get("index", 0)) == 0


@contextlib.contextmanager
def artefact_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield the (created) folder this process writes ``out_dir``'s artefacts to.

    The chief (and any single-process run) writes to ``out_dir`` itself. Other
    workers must still run the same saves and callbacks as the chief (saving
    can take part in collective ops), so they write to a scratch folder named
    after ``out_dir`` and their task. The scratch folder is removed when the
    block ends normally and kept after an error, so a restarted worker finds
    its ``BackupAndRestore`` state again.

    Example:
        >>> with artefact_dir(run_dir / "models" / "cnn") as folder:   # doctest: +SKIP
        ...     model.save(folder / "model.keras")
    """
    if is_chief():
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        yield Path(out_dir)
        return
    task = tf_config()["task"]
    digest = hashlib.sha256(str(Path(out_dir).resolve()).encode()).hexdigest()[:12]
    scratch = Path(tempfile.gettempdir()) / f"biomed-{task['type']}{task.get('index', 0)}-{digest}"
    scratch.mkdir(parents=True, exist_ok=True)
    yield scratch
    shutil.rmtree(scratch, ignore_errors=True)

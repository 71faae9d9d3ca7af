"""One worker of the multi-worker test: fit a tiny CNN through ``fit_model`` under TF_CONFIG.

Usage: ``python tests/mw_worker.py ROOT`` (started by ``tests/test_multiworker.py``
once per worker). Worker ``i`` fits with ``ROOT/worker<i>`` as its artefact folder
and writes ``ROOT/result<i>.npz``: the final weights, the val/test probabilities
and the same probabilities computed by a plain local call of the model (outside
the distributed predict), for the test to compare.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipelines.config import (ExperimentConfig, LoaderConfig, ModelEntry,  # noqa: E402
                              RuntimeConfig, TrainConfig)
from pipelines.runtime import get_strategy, tf_config  # noqa: E402

RUNTIME = RuntimeConfig(strategy="auto")
STRATEGY = get_strategy(RUNTIME)  # before any other TensorFlow op

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pipelines.modeling import get_model  # noqa: E402
from pipelines.samples import SampleSet  # noqa: E402
from pipelines.training import fit_model  # noqa: E402


def tiny_split(n: int, seed: int) -> SampleSet:
    """``n`` random windows of 128 samples, the positives shifted up so there is something to learn."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int32)
    x = (rng.standard_normal((n, 128)) + y[:, None]).astype(np.float32)
    ids = np.array([f"r{seed}_{i}" for i in range(n)])
    return SampleSet(x, y, ids, ids, np.zeros(n, np.int32), ["N", "A"], fs=100.0)


def main(root: Path) -> None:
    assert isinstance(STRATEGY, tf.distribute.MultiWorkerMirroredStrategy), type(STRATEGY)
    entry = ModelEntry("cnn", params={"filters": 4, "depth": 2, "kernel_size": 5})
    config = ExperimentConfig(name="mw", models=[entry], runtime=RUNTIME,
                              loader=LoaderConfig(batch_size=8, shuffle_buffer=64),
                              train=TrainConfig(epochs=2, tensorboard=False, verbose=0))
    splits = {"train": tiny_split(48, 0), "val": tiny_split(21, 1), "test": tiny_split(13, 2)}
    index = tf_config()["task"]["index"]
    result = fit_model(get_model("cnn"), entry, config, splits, seed=0, out_dir=root / f"worker{index}")
    local = {name: np.asarray(result.model(splits[name].x[..., None], training=False)) for name in ("val", "test")}
    weights = {f"w{i}": w for i, w in enumerate(result.model.get_weights())}
    np.savez(root / f"result{index}.npz", **weights, replicas=STRATEGY.num_replicas_in_sync,
             **{f"probs_{k}": v for k, v in result.probs.items()},
             **{f"local_{k}": v for k, v in local.items()})


if __name__ == "__main__":
    main(Path(sys.argv[1]))

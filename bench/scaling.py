"""How training time grows with the dataset size (1x, 2x, 4x records) and with the number of workers.

Both parts train through the suite's own ``fit_model`` (the runner's path: the
configured callbacks, tf.data pipeline and strategy) on random windows, one
window per record, and report the fit time (``FitResult.seconds``: every epoch,
including the one-off tracing in the first).

* Dataset size: one process, default strategy, ``--sizes`` multiples of ``--records``.
* Workers: 1 and 2 local worker processes with TF_CONFIG on 127.0.0.1 under
  MultiWorkerMirroredStrategy, the per-worker batch fixed (so 2 workers take
  half the steps per epoch with a doubled global batch). On one machine the
  workers share its cores: this measures the synchronisation overhead; a real
  speed-up needs one worker per host (or per GPU).

Example:
    python -m bench.scaling --models cnn --records 64 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipelines.config import (ExperimentConfig, LoaderConfig, ModelEntry,  # noqa: E402
                              RuntimeConfig, TrainConfig)
from pipelines.runtime import get_strategy, is_chief  # noqa: E402
from tests.workers import run_local_workers  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (shared options come from ``bench/train_throughput.py``)."""
    from bench.train_throughput import common_args

    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1024, help="training records at 1x")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4], help="dataset multiples")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local worker counts")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per multi-worker run")
    parser.add_argument("--worker-result", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def fit_seconds(name: str, records: int, args: argparse.Namespace, runtime: RuntimeConfig) -> dict[str, Any]:
    """Train model ``name`` on ``records`` random windows; return its fit time and replicas."""
    from bench.input_pipeline import random_windows
    from pipelines.modeling import get_model
    from pipelines.training import fit_model

    entry = ModelEntry(name)
    config = ExperimentConfig(name="scaling", models=[entry], runtime=runtime,
                              loader=LoaderConfig(batch_size=args.batch),
                              train=TrainConfig(epochs=args.epochs, tensorboard=False, verbose=0,
                                                early_stopping_patience=args.epochs))
    splits = {"train": random_windows(records, args.window_samples, args.fs, seed=0),
              "val": random_windows(max(args.batch, records // 8), args.window_samples, args.fs, seed=1),
              "test": random_windows(8, args.window_samples, args.fs, seed=2)}
    with tempfile.TemporaryDirectory() as out:
        result = fit_model(get_model(name), entry, config, splits, seed=0, out_dir=Path(out))
    return {"seconds": round(result.seconds, 2), "epochs": result.epochs,
            "replicas": get_strategy(runtime).num_replicas_in_sync}


def worker_main(args: argparse.Namespace) -> None:
    """One worker of a local cluster: create the strategy first, fit, the chief writes the result."""
    runtime = RuntimeConfig(strategy="multi_worker")
    get_strategy(runtime)
    rows = [{"model": name, **fit_seconds(name, args.records, args, runtime)} for name in args.models]
    if is_chief():
        args.worker_result.write_text(json.dumps(rows))


def worker_rows(n_workers: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run this script as ``n_workers`` local workers and return the chief's rows."""
    options = {"--batch": args.batch, "--records": args.records, "--epochs": args.epochs,
               "--window-samples": args.window_samples, "--fs": args.fs}
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        command = [sys.executable, "-m", "bench.scaling", "--models", *args.models,
                   *(str(v) for item in options.items() for v in item), "--worker-result", str(result)]
        runs = run_local_workers(command, n_workers, timeout_s=args.timeout)
        for index, run in enumerate(runs):
            if run.returncode != 0:
                raise RuntimeError(f"worker {index} of {n_workers} failed:\n{run.output[-3000:]}")
        return [{**row, "workers": n_workers} for row in json.loads(result.read_text())]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Time training for every dataset size and worker count; print and save the table."""
    args = parse_args(argv)
    if args.worker_result is not None:
        worker_main(args)
        return []
    from bench.train_throughput import keras_ecg_models, print_table, save_results

    args.models = args.models or keras_ecg_models()
    rows = [{"part": "workers", **row} for n in args.workers for row in worker_rows(n, args)]
    for name in args.models:
        for size in args.sizes:
            records = args.records * size
            row = {"part": "size", "model": name, "size": f"{size}x", "records": records,
                   **fit_seconds(name, records, args, RuntimeConfig(strategy="default"))}
            rows.append({**row, "seconds_per_record": round(row["seconds"] / records, 5)})
            print(f"  {name} {size}x: {row['seconds']} s", flush=True)
    print_table(rows, ["part", "model", "size", "records", "workers", "replicas", "epochs", "seconds",
                       "seconds_per_record"])
    print(f"results: {save_results('scaling', vars(args) | {'worker_result': None}, rows)}")
    return rows


if __name__ == "__main__":
    main()

"""Training throughput (windows/s) of the deep ECG models with and without XLA and mixed precision.

Every model is compiled as the runner compiles it (``compile_model``: optimiser,
loss, accuracy and AUC metrics) and trained through ``model.fit`` on one
in-memory batch repeated, so the input pipeline costs nothing and the number is
what a training step can consume. Mixed precision is bfloat16 on CPU and
float16 on GPU (``--precision`` overrides). The best of ``--repeats`` timings
is kept. A setting that fails (e.g. an op XLA cannot compile) is reported with
its error instead of a rate.

Example:
    python bench/train_throughput.py --models cnn mina --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pipelines.config import ExperimentConfig, RuntimeConfig  # noqa: E402
from pipelines.modeling import get_model, model_names  # noqa: E402
from pipelines.runtime import set_precision  # noqa: E402
from pipelines.training import compile_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = ["N", "A", "O", "~"]


def keras_ecg_models() -> list[str]:
    """Names of the registered Keras ECG models."""
    return [n for n in model_names("ecg") if get_model(n).family == "keras"]


def common_args(description: str) -> argparse.ArgumentParser:
    """A parser with the options every benchmark here shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", nargs="+", default=None, help="Keras ECG models (default: all)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="timings per measurement; best kept")
    parser.add_argument("--window-samples", type=int, default=3000)
    parser.add_argument("--fs", type=float, default=300.0)
    return parser


def training_rate(name: str, runtime: RuntimeConfig, *, batch: int, steps: int, repeats: int,
                  window_samples: int, fs: float) -> float:
    """Windows/s one training step of model ``name`` consumes (data already in memory).

    Args:
        name: Registered Keras ECG model (default hyperparameters).
        runtime: Precision and XLA settings (``mixed_precision``, ``jit_compile``).
        batch: Batch size.
        steps: Timed steps per timing.
        repeats: Timings; the best is kept.
        window_samples: Window length T.
        fs: Sampling rate in Hz.
    """
    set_precision(runtime)
    try:
        model = get_model(name).build((window_samples, 1), len(CLASSES), fs=fs, seed=0)
        compile_model(model, ExperimentConfig(name="bench", runtime=runtime), CLASSES, 1e-3)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, window_samples, 1), dtype=np.float32)
        y = np.eye(len(CLASSES), dtype=np.float32)[rng.integers(0, len(CLASSES), batch)]  # one-hot, as in fit
        data = tf.data.Dataset.from_tensors((x, y)).repeat()
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # trace and compile
        return batch * steps / best_seconds(
            lambda: model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False), repeats)
    finally:
        set_precision(RuntimeConfig())


def best_seconds(fn: Any, repeats: int) -> float:
    """Smallest wall-clock time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def save_results(name: str, settings: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write ``bench/results/<name>.json`` (settings, device and rows) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    device = {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")], "cpu_count": os.cpu_count(),
              "tensorflow": tf.__version__}
    path.write_text(json.dumps({"settings": settings, "device": device, "results": rows}, indent=2) + "\n")
    return path


def print_table(rows: Iterable[dict[str, Any]], columns: list[str]) -> None:
    """Print ``rows`` as a fixed-width table of ``columns``."""
    rows = list(rows)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)[:60]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Measure every model in four settings: plain, XLA, mixed precision, both."""
    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=["float16", "bfloat16"], default=None,
                        help="mixed precision to compare (default: float16 on GPU, bfloat16 on CPU)")
    args = parser.parse_args(argv)
    precision = args.precision or ("float16" if tf.config.list_physical_devices("GPU") else "bfloat16")
    rows = []
    for name in args.models or keras_ecg_models():
        base = None
        for jit in (False, True):
            for mixed in ("off", precision):
                row = {"model": name, "jit_compile": jit, "mixed_precision": mixed}
                try:
                    rate = training_rate(name, RuntimeConfig(jit_compile=jit, mixed_precision=mixed),
                                         batch=args.batch, steps=args.steps, repeats=args.repeats,
                                         window_samples=args.window_samples, fs=args.fs)
                except Exception as err:  # a setting some model does not support is a result too
                    row["error"] = f"{type(err).__name__}: {err}".splitlines()[0]
                else:
                    base = base or rate
                    row.update(windows_per_s=round(rate, 1), speedup=round(rate / base, 2))
                rows.append(row)
                print(f"  {name} jit_compile={jit} mixed_precision={mixed}: "
                      f"{row.get('windows_per_s', row.get('error'))}", flush=True)
    print_table(rows, ["model", "jit_compile", "mixed_precision", "windows_per_s", "speedup", "error"])
    print(f"results: {save_results('train_throughput', vars(args), rows)}")
    return rows


if __name__ == "__main__":
    main()

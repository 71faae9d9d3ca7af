"""Training and inference throughput (windows/s) of the registered deep ECG models.

Synthetic ECG windows, default hyperparameters (or ``--param`` overrides), Adam and
sparse categorical cross-entropy as the runner compiles them. Each model gets
warm-up steps, then ``--steps`` timed ``train_on_batch`` calls and one timed
``predict`` over ``--steps`` batches; the best of ``--repeats`` timings is kept
to damp noise from other processes. Models with side inputs (``hybrid_cnn``,
``mina_rr``) get them computed from the windows (a first untimed pass starts the
worker processes, then the best of ``--repeats`` timed passes, each on the windows
rolled in time by a different shift so that no memoised result answers it); that time is
reported apart (``side_input_windows_per_s``) and in the end-to-end inference
rate (``infer_with_side_inputs_windows_per_s``). Besides wall-clock windows/s it reports the
process CPU time per window (all threads), which other processes sharing the
CPU disturb much less: on an idle machine with C cores, wall-clock throughput
lies between ``1000 / cpu_ms`` and ``C * 1000 / cpu_ms`` windows/s.

Example:
    python -m bench.model_speed --models mina cnn --batch 128 --steps 10 --out speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ecgnet.synthetic import synthesize_beat_train
from pipelines.modeling import get_model, model_names
from pipelines.side_inputs import compute_side_input


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help="registered Keras ECG models (default: all of them)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timings per measurement; best kept")
    parser.add_argument("--window-samples", type=int, default=3000)
    parser.add_argument("--fs", type=float, default=300.0)
    parser.add_argument("--n-classes", type=int, default=4)
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="hyperparameter override (JSON value) for every model that has it")
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return parser.parse_args(argv)


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Smallest wall-clock and smallest process CPU time of ``repeats`` calls of ``fn``, in s."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def measure(name: str, args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """Build, compile and time one model; returns its row of the results table."""
    spec = get_model(name)
    params = {k: v for k, v in overrides.items() if k in spec.defaults}
    model = spec.build((args.window_samples, 1), args.n_classes, fs=args.fs, seed=0, **params)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  jit_compile=args.jit_compile)
    rng = np.random.default_rng(0)
    x = synthetic_windows(args.batch * args.steps, args.window_samples, args.fs, rng)
    y = rng.integers(0, args.n_classes, len(x))
    side = {n: compute_side_input(n, x, args.fs) for n in spec.side_inputs}   # also starts the workers
    rolled = iter([np.roll(x, 37 * (r + 1), axis=1) for r in range(args.repeats)])  # no memo hit

    def side_inputs() -> None:
        windows = next(rolled)
        for side_name in spec.side_inputs:
            compute_side_input(side_name, windows, args.fs)

    side_s, _ = best_time(side_inputs, args.repeats)
    inputs = {"ecg": x, **side} if side else x
    batches = [(_rows(inputs, slice(i, i + args.batch)), y[i:i + args.batch])
               for i in range(0, len(x), args.batch)]

    def train() -> None:
        for xb, yb in batches:
            model.train_on_batch(xb, yb)

    for xb, yb in batches[:args.warmup]:
        model.train_on_batch(xb, yb)
    train_s, train_cpu = best_time(train, args.repeats)
    model.predict(batches[0][0], batch_size=args.batch, verbose=0)
    infer_s, infer_cpu = best_time(lambda: model.predict(inputs, batch_size=args.batch, verbose=0),
                                   args.repeats)
    side_rates = ({"side_input_windows_per_s": round(len(x) / side_s, 1),
                   "infer_with_side_inputs_windows_per_s": round(len(x) / (infer_s + side_s), 1)}
                  if side else {})
    return {"model": name, "params": int(model.count_params()), "hyperparameters": params,
            "train_windows_per_s": round(len(x) / train_s, 1),
            "infer_windows_per_s": round(len(x) / infer_s, 1), **side_rates,
            "train_cpu_ms_per_window": round(1000 * train_cpu / len(x), 3),
            "infer_cpu_ms_per_window": round(1000 * infer_cpu / len(x), 3)}


def synthetic_windows(n: int, length: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` z-scored synthetic ECG windows ``(n, length, 1)`` (sinus, AF and other rhythms in turn).

    Realistic beats matter for the side inputs: an R-peak detector works harder on noise.
    """
    rows = [synthesize_beat_train(length / fs, fs, "NAO"[i % 3], rng) for i in range(n)]
    x = np.stack(rows).astype(np.float32)
    return ((x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6))[..., None]


def _rows(inputs: Any, rows: slice) -> Any:
    """``rows`` of an array or of each array of a dict of inputs."""
    return {k: v[rows] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[rows]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Measure every requested model, print a table and optionally write JSON."""
    args = parse_args(argv)
    overrides = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    names = args.models or [n for n in model_names("ecg") if get_model(n).family == "keras"]
    rows = [measure(name, args, overrides) for name in names]
    print(f"batch {args.batch}, T = {args.window_samples} ({args.window_samples / args.fs:g} s "
          f"at {args.fs:g} Hz), {args.steps} timed batches, best of {args.repeats}, "
          f"XLA {'on' if args.jit_compile else 'off'}")
    print(f"{'model':<10} {'params':>9} {'train w/s':>10} {'infer w/s':>10} "
          f"{'train cpu-ms/w':>15} {'infer cpu-ms/w':>15} {'infer+side w/s':>15}")
    for row in rows:
        print(f"{row['model']:<10} {row['params']:>9} {row['train_windows_per_s']:>10.1f} "
              f"{row['infer_windows_per_s']:>10.1f} {row['train_cpu_ms_per_window']:>15.3f} "
              f"{row['infer_cpu_ms_per_window']:>15.3f} {row.get('infer_with_side_inputs_windows_per_s', ''):>15}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                        "results": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()

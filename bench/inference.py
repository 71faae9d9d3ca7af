"""Inference benchmark: Keras vs SavedModel vs TFLite (float32, int8) latency, throughput and file size.

Builds MINA (ECG) and one imaging model with random weights (speed does not
depend on training), exports each format with :mod:`pipelines.export`, and
times single-sample latency (median over ``--repeats`` calls) and batched
throughput (samples/s). A format that cannot be exported or run (e.g. int8
TFLite of an LSTM model, which crashes the converter) is reported with its error.

Usage::

    python -m bench.inference --out bench/results/inference.json     # full sizes
    python -m bench.inference --tiny --repeats 3 --out /tmp/b.json   # quick check
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import BiomedError
from pipelines.export import ExportSource, convert_tflite_isolated, export_model
from pipelines.modeling import get_model
from pipelines.predict import KerasPredictor, Predictor, SavedModelPredictor, TFLitePredictor

FULL = {"mina": ((3000, 1), {"fs": 300.0}), "cnn2d": ((64, 64, 3), {})}
TINY = {"mina": ((250, 1), {"fs": 50.0, "filters": 4, "units": 4, "attention_units": 4}),
        "cnn2d": ((16, 16, 3), {"filters": 4, "depth": 2})}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _time(predictor: Predictor, x: np.ndarray, batch: int, repeats: int) -> dict[str, float]:
    predictor.predict(x[:1])
    predictor.predict(x[:batch])  # warm-up (tracing, tensor allocation)
    single = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(x[:1])
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(repeats):
        predictor.predict(x[:batch])
    seconds = time.perf_counter() - start
    return {"latency_ms": 1000 * statistics.median(single), "throughput_per_s": repeats * batch / seconds}


def bench_model(name: str, input_shape: tuple[int, ...], params: dict[str, Any], folder: Path,
                batch: int, repeats: int) -> list[dict[str, Any]]:
    """Export ``name`` in every format and time each; one result row per format."""
    fs = params.pop("fs", None)
    model = get_model(name).build(input_shape, 2, fs=fs, **params)
    keras_file = folder / f"{name}.keras"
    model.save(keras_file)
    x = np.random.default_rng(0).uniform(0, 255 if len(input_shape) == 3 else 1,
                                          (batch, *input_shape)).astype(np.float32)
    export_model(ExportSource(keras_file), "savedmodel", folder / f"{name}_sm")
    builders = {"keras": (keras_file, KerasPredictor), "savedmodel": (folder / f"{name}_sm" / "1",
                                                                      SavedModelPredictor)}
    for quantize in (None, "int8"):
        tflite = folder / f"{name}_{quantize or 'float32'}.tflite"
        try:
            convert_tflite_isolated(keras_file, tflite, quantize, representative=x[:16])
            builders[f"tflite_{quantize or 'float32'}"] = (tflite, TFLitePredictor)
        except BiomedError as err:
            builders[f"tflite_{quantize or 'float32'}"] = (None, str(err)[:200])
    rows = []
    for fmt, (path, backend) in builders.items():
        row: dict[str, Any] = {"model": name, "format": fmt}
        if path is None:
            rows.append({**row, "error": backend})
            continue
        try:
            rows.append({**row, "size_kb": _size(path) / 1024, **_time(backend(path), x, batch, repeats)})
        except BiomedError as err:
            rows.append({**row, "size_kb": _size(path) / 1024, "error": str(err)[:200]})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The results as a fixed-width text table."""
    lines = [f"{'model':<8} {'format':<15} {'size KB':>9} {'latency ms':>11} {'samples/s':>10}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<8} {r['format']:<15} {'-':>9} error: {r['error'][:70]}")
        else:
            lines.append(f"{r['model']:<8} {r['format']:<15} {r['size_kb']:>9.1f} {r['latency_ms']:>11.2f} "
                         f"{r['throughput_per_s']:>10.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models and inputs (a quick check)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="bench/results/inference.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (shape, params) in (TINY if args.tiny else FULL).items():
            rows.extend(bench_model(name, shape, dict(params), Path(tmp), args.batch, args.repeats))
    print(format_table(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"batch": args.batch, "repeats": args.repeats, "tiny": args.tiny,
                                          "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

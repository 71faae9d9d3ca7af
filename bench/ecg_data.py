"""Benchmark the ECG data layer on real CinC 2017 records.

Measures, on this machine: a plain single-process ``wfdb.rdrecord`` loop (the
reference), the full preprocessing (decode, resample, filter, normalise,
window) without cache, the cached reload, and tf.data delivery (windows/s).

    python bench/ecg_data.py --data ../shared/data/ecg/cinc2017 --out bench/results/ecg_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import wfdb  # noqa: E402

from pipelines.config import DataConfig, PreprocessConfig, TaskConfig  # noqa: E402
from ecgnet.dataset import load_ecg_samples  # noqa: E402


def plain_wfdb_loop(folder: Path) -> tuple[float, int]:
    """Seconds to read every record once with wfdb.rdrecord in one process."""
    names = (folder / "RECORDS").read_text().split()
    start = time.perf_counter()
    for name in names:
        wfdb.rdrecord(str(folder / name))
    return time.perf_counter() - start, len(names)


def tfdata_rate(samples, batch_size: int, epochs: int = 3) -> float:
    """Windows per second delivered by the training pipeline (shuffle, batch, prefetch)."""
    from pipelines.tfdata import make_dataset

    ds = make_dataset(samples, batch_size=batch_size, training=True, seed=0)
    for _ in ds.take(2):
        pass
    start, n = time.perf_counter(), 0
    for _ in range(epochs):
        for x, _ in ds:
            n += int(x.shape[0])
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/ecg/cinc2017")
    parser.add_argument("--stride-s", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="bench/results/ecg_data.json")
    args = parser.parse_args()
    folder = Path(args.data).resolve()
    with tempfile.TemporaryDirectory() as cache_dir:
        os.environ["BIOMED_CACHE"] = cache_dir
        data = DataConfig(source="cinc2017", path=str(folder), labels=str(folder / "REFERENCE-v3.csv"),
                          task=TaskConfig(classes=["N", "A", "O", "~"]),
                          preprocess=PreprocessConfig(fs=300, window_s=10, stride_s=args.stride_s))
        plain_s, n_records = plain_wfdb_loop(folder)
        start = time.perf_counter()
        samples = load_ecg_samples(data)
        cold_s = time.perf_counter() - start
        del samples  # a reload in a fresh run does not hold a second copy in memory
        start = time.perf_counter()
        samples = load_ecg_samples(data)
        cached_s = time.perf_counter() - start
    rate = tfdata_rate(samples, args.batch_size)
    result = {
        "records": n_records, "windows": len(samples), "skipped": len(samples.skipped),
        "cpu_count": os.cpu_count(),
        "plain_wfdb_loop_s": round(plain_s, 2), "preprocess_cold_s": round(cold_s, 2),
        "preprocess_cold_records_per_s": round(n_records / cold_s, 1),
        "cold_vs_plain_wfdb": round(cold_s / plain_s, 2),
        "cached_reload_s": round(cached_s, 2),
        "tfdata_windows_per_s": round(rate, 0),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

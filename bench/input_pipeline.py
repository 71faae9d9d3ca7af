"""Does the tf.data input pipeline keep up with training? Windows/s delivered vs consumed, per model.

Delivered: the training pipeline of ``pipelines.tfdata.make_dataset`` (shuffle,
batch, prefetch), without and with the ECG augmentation, iterated for
``--batches`` batches. Consumed: one training step of each model on in-memory
data (``bench/train_throughput.py``). The ratio delivered / consumed should be
at least 3, so that on a faster device the model, not the input, is the limit.
Data are random windows unless ``--data`` names a CinC 2017 folder.

Example:
    python bench/input_pipeline.py --models cnn --steps 2
    python bench/input_pipeline.py --data ../shared/data/ecg/cinc2017
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.train_throughput import (common_args, keras_ecg_models, print_table, save_results,
                                    training_rate)
from ecgnet.augment import ecg_augmenter
from pipelines.config import AugmentConfig, RuntimeConfig
from pipelines.samples import SampleSet
from pipelines.tfdata import make_dataset


def random_windows(n: int, window_samples: int, fs: float, seed: int = 0) -> SampleSet:
    """``n`` random windows with 4 classes (stand-ins with the shape and size of real data)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n).astype(np.int32)
    ids = np.array([f"r{i}" for i in range(n)])
    return SampleSet(rng.standard_normal((n, window_samples), dtype=np.float32), y, ids, ids,
                     np.zeros(n, np.int32), ["N", "A", "O", "~"], fs=fs)


def cinc2017_windows(folder: Path, fs: float, window_s: float) -> SampleSet:
    """Preprocessed CinC 2017 windows (read through the suite's own loader and cache)."""
    from pipelines.config import DataConfig, PreprocessConfig, TaskConfig
    from ecgnet.dataset import load_ecg_samples

    folder = folder.resolve()
    return load_ecg_samples(DataConfig(source="cinc2017", path=str(folder),
                                       labels=str(folder / "REFERENCE-v3.csv"),
                                       task=TaskConfig(classes=["N", "A", "O", "~"]),
                                       preprocess=PreprocessConfig(fs=fs, window_s=window_s)))


def delivery_rate(samples: SampleSet, batch: int, batches: int, augment: Any) -> float:
    """Windows/s the training pipeline delivers over ``batches`` batches (epochs repeat as needed)."""
    ds = make_dataset(samples, batch_size=batch, training=True, seed=0, augment=augment).repeat()
    iterator = iter(ds)
    next(iterator)
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        n += int(next(iterator)[1].shape[0])
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Measure delivery with and without augmentation, consumption per model; print and save the ratios."""
    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="CinC 2017 folder (default: random windows)")
    parser.add_argument("--windows", type=int, default=4096, help="random windows to generate")
    parser.add_argument("--batches", type=int, default=50, help="batches timed for delivery")
    args = parser.parse_args(argv)
    samples = (cinc2017_windows(args.data, args.fs, args.window_samples / args.fs) if args.data
               else random_windows(args.windows, args.window_samples, args.fs))
    augment = ecg_augmenter(AugmentConfig(enabled=True), samples.fs)
    delivered = {"plain": delivery_rate(samples, args.batch, args.batches, None),
                 "augmented": delivery_rate(samples, args.batch, args.batches, augment)}
    print(f"delivered windows/s: plain {delivered['plain']:.0f}, augmented {delivered['augmented']:.0f}")
    rows = []
    for name in args.models or keras_ecg_models():
        consumed = training_rate(name, RuntimeConfig(), batch=args.batch, steps=args.steps,
                                 repeats=args.repeats, window_samples=samples.x.shape[1], fs=samples.fs)
        rows.append({"model": name, "consumed_per_s": round(consumed, 1),
                     "delivered_per_s": round(delivered["plain"], 1),
                     "delivered_augmented_per_s": round(delivered["augmented"], 1),
                     "ratio": round(delivered["plain"] / consumed, 1),
                     "ratio_augmented": round(delivered["augmented"] / consumed, 1)})
        print(f"  {name}: consumes {consumed:.0f} windows/s", flush=True)
    print_table(rows, list(rows[0]))
    settings = {**vars(args), "data": str(args.data or "random"), "windows": len(samples)}
    print(f"results: {save_results('input_pipeline', settings, rows)}")
    low = [r["model"] for r in rows if min(r["ratio"], r["ratio_augmented"]) < 3]
    print("input keeps up (ratio >= 3) for every model" if not low else f"ratio < 3 for: {', '.join(low)}")
    return rows


if __name__ == "__main__":
    main()

"""Benchmark image transfer learning on a MedMNIST-style .npz through the shared runner.

Runs every backbone x fine-tuning strategy x seed (plus ``cnn2d`` and ``pixel_lr`` unless
``--no-baselines``) with :func:`pipelines.runner.run_experiment`, then times inference of each
saved Keras model on the test split, and writes ``bench_images.json`` and a table of test
ROC-AUC / accuracy (mean over seeds) and images/s for training and inference.

Example (a tiny check)::

    python bench/images.py ../shared/data/images/breastmnist/breastmnist.npz \\
        --classes benign_or_normal malignant --label-map 0=malignant 1=benign_or_normal \\
        --positive malignant --backbones mobilenet --alpha 0.25 --strategies head \\
        --weights mobilenet=../shared/data/weights/mobilenet_2_5_224_tf_no_top.h5 \\
        --seeds 0 --epochs 1 --image-size 32 --out /tmp/bench_images
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.artifacts import write_json
from pipelines.config import ExperimentConfig
from pipelines.datasets import prepare_data
from pipelines.runner import run_experiment
from pipelines.schema import from_dict


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("npz", type=Path, help="MedMNIST-style .npz (train/val[/test] images and labels)")
    parser.add_argument("--classes", nargs="+", default=["negative", "positive"],
                        help="class names; integer label i is classes[i] unless --label-map says otherwise")
    parser.add_argument("--label-map", nargs="*", default=[], metavar="RAW=CLASS")
    parser.add_argument("--positive", default=None, help="positive class (default: the second)")
    parser.add_argument("--backbones", nargs="+", default=["mobilenet", "mobilenet_v2"])
    parser.add_argument("--alpha", type=float, default=1.0, help="width multiplier of the MobileNets")
    parser.add_argument("--strategies", nargs="+", default=["head", "partial", "full"],
                        choices=["head", "partial", "full"])
    parser.add_argument("--weights", nargs="*", default=[], metavar="BACKBONE=FILE",
                        help="weights file per backbone (others: none)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per phase")
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-baselines", action="store_true", help="skip cnn2d and pixel_lr")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_images"))
    return parser.parse_args(argv)


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def bench_config(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment config of the benchmark (validated like a YAML config)."""
    weights = {k: str(Path(v).resolve()) for k, v in _pairs(args.weights).items()}
    models = [] if args.no_baselines else ["pixel_lr", {"type": "cnn2d"}]
    for backbone in args.backbones:
        for strategy in args.strategies:
            params = {"backbone": backbone, "weights": weights.get(backbone, "none"), "fine_tune": strategy,
                      "head_epochs": args.head_epochs}
            if backbone.startswith("mobilenet"):
                params["alpha"] = args.alpha
            models.append({"name": f"{backbone}_{strategy}", "type": "transfer", "params": params})
    raw = {
        "name": f"bench_{args.npz.stem}", "seeds": args.seeds,
        "data": {"source": "image_npz", "path": str(args.npz.resolve()),
                 "image": {"image_size": [args.image_size] * 2, "channels": 3},
                 "task": {"classes": args.classes, "label_map": _pairs(args.label_map),
                          "positive": args.positive}},
        "loader": {"batch_size": args.batch_size},
        "train": {"epochs": args.epochs, "tensorboard": False, "verbose": 0},
        "models": [{"type": m} if isinstance(m, str) else m for m in models],
    }
    return from_dict(ExperimentConfig, raw)


def inference_rate(model_path: Path, x: np.ndarray, batch_size: int) -> float:
    """Images per second of ``predict`` on ``x`` (after one warm-up batch)."""
    import keras

    import imaging.backbones  # noqa: F401  (custom layers of saved models)

    model = keras.saving.load_model(model_path)
    model.predict(x[:batch_size], batch_size=batch_size, verbose=0)
    start = time.perf_counter()
    model.predict(x, batch_size=batch_size, verbose=0)
    return len(x) / (time.perf_counter() - start)


def collect(run_dir: Path, config: ExperimentConfig) -> pd.DataFrame:
    """One row per model x seed: test ROC-AUC / accuracy and training / inference images per second."""
    splits = prepare_data(config).splits
    metrics = pd.read_csv(run_dir / "metrics.csv")
    metrics = metrics[metrics["level"] == "record"].set_index(["model", "seed"])
    rows = []
    for entry in config.models:
        for seed in config.seeds:
            folder = run_dir / "models" / entry.label / f"seed_{seed}"
            info = json.loads((folder / "info.json").read_text())
            row = metrics.loc[(entry.label, seed)]
            trained = len(splits["train"]) * info["epochs"]
            keras_model = folder / "model.keras"
            rows.append({
                "model": entry.label, "seed": seed, "backbone": entry.params.get("backbone", entry.type),
                "strategy": entry.params.get("fine_tune", "-"),
                "roc_auc": row.get("roc_auc", row.get("macro_roc_auc")), "accuracy": row["accuracy"],
                "epochs": info["epochs"], "train_seconds": info["train_seconds"],
                "train_images_per_s": trained / max(info["train_seconds"], 1e-9),
                "inference_images_per_s": (inference_rate(keras_model, splits["test"].x, config.loader.batch_size)
                                           if keras_model.is_file() else np.nan),
            })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = bench_config(args)
    run_dir = run_experiment(config, args.out / "run")
    results = collect(run_dir, config)
    table = (results.groupby(["backbone", "strategy"], sort=False)
             [["roc_auc", "accuracy", "train_images_per_s", "inference_images_per_s"]].mean().round(4))
    write_json(args.out / "bench_images.json", {"args": {k: str(v) for k, v in vars(args).items()},
                                                "runs": results.to_dict("records")})
    print(table.to_string())
    print(f"results: {args.out / 'bench_images.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

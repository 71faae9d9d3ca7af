"""The shared runner on a tiny synthetic-images config: the same artefacts as an ECG run, plus Grad-CAM."""

import json

import pandas as pd

from pipelines.config import load_config
from pipelines.runner import run_experiment

CONFIG = """
name: tiny_images
seeds: [0]
data:
  source: synthetic_images
  image: {image_size: [32, 32], n_per_class: 10, synthetic_classes: [disc, ring]}
  task: {classes: [disc, ring], positive: ring}
  split: {val: 0.3, test: 0.3, seed: 0}
loader:
  batch_size: 8
  image_augment: {enabled: true}
train: {epochs: 1, tensorboard: false, verbose: 0}
models:
  - pixel_lr
  - {type: cnn2d, params: {filters: 4, depth: 2}}
  - name: mobilenet_partial
    type: transfer
    params: {backbone: mobilenet, alpha: 0.25, fine_tune: partial, unfreeze_layers: 5, head_epochs: 1}
"""


def test_image_run_writes_the_ecg_artefacts_and_gradcam(tmp_path):
    path = tmp_path / "tiny_images.yaml"
    path.write_text(CONFIG)
    run = run_experiment(load_config(path), tmp_path / "run")
    for name in ("config.yaml", "splits.csv", "data_summary.json", "metrics.csv", "summary.csv",
                 "report.md", "report.html"):
        assert (run / name).is_file(), name
    for model in ("pixel_lr", "cnn2d", "mobilenet_partial"):
        folder = run / "models" / model / "seed_0"
        assert (folder / "predictions.csv").is_file() and (folder / "info.json").is_file()
    for model in ("cnn2d", "mobilenet_partial"):
        assert (run / "models" / model / "seed_0" / "model.keras").is_file()
    info = json.loads((run / "models" / "mobilenet_partial" / "seed_0" / "info.json").read_text())
    assert info["epochs"] == 2 and info["params"]["fine_tune"] == "partial"
    summary = json.loads((run / "data_summary.json").read_text())
    assert summary["modality"] == "image" and summary["input_shape"] == [32, 32, 3]
    assert set(pd.read_csv(run / "metrics.csv")["model"]) == {"pixel_lr", "cnn2d", "mobilenet_partial"}
    report = (run / "report.md").read_text()
    assert "## Grad-CAM" in report and "figures/gradcam_mobilenet_partial.png" in report
    assert (run / "figures" / "gradcam_cnn2d.png").is_file()

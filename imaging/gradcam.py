"""Grad-CAM heat maps (Selvaraju et al., 2017) of image models, drawn for the run report.

The explained feature map is the input of the model's global pooling layer
(named ``pool`` by :func:`imaging.models.head.classifier_head`): the backbone's
last feature map for ``transfer``, the last conv block for ``cnn2d``. Each map
is the ReLU of the feature channels weighted by the spatially averaged gradient
of the log-probability of the explained class, scaled to [0, 1] and resized to
the image.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

import imaging.backbones  # noqa: F401  (registers the custom layers saved models use)
import pipelines.keras_metrics  # noqa: F401  (registers SparseAUC, named in saved compile configs)
from pipelines.config import ExperimentConfig
from pipelines.datasets import prepare_data
from pipelines.errors import BiomedError
from pipelines.plots import file_slug, plt, save_figure
from pipelines.report import Block, Figure, Heading, Paragraph, Run
from pipelines.samples import SampleSet
from pipelines.schema import from_dict

POOL_LAYER = "pool"


def gradcam(model: keras.Model, images: np.ndarray, class_index: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps of ``images`` for ``class_index`` (default: each image's predicted class).

    Args:
        model: a model with a global pooling layer named ``pool``.
        images: ``(n, H, W, C)`` model inputs.
        class_index: ``(n,)`` class to explain per image, or None for the predicted class.

    Returns:
        ``(maps, probs)``: ``(n, H, W)`` heat maps in [0, 1] and the ``(n, k)`` probabilities.
    """
    pool = model.get_layer(POOL_LAYER)
    explainer = keras.Model(model.inputs, [pool.input, model.output])
    x = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        features, probs = explainer(x, training=False)
        tape.watch(features)
        target = tf.argmax(probs, -1) if class_index is None else tf.constant(class_index, tf.int64)
        score = tf.math.log(tf.gather(probs, target, batch_dims=1) + 1e-7)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
    maps = maps / (tf.reduce_max(maps, axis=(1, 2), keepdims=True) + 1e-7)
    maps = tf.image.resize(maps[..., None], x.shape[1:3])[..., 0]
    return maps.numpy(), probs.numpy()


def pick_examples(samples: SampleSet, per_class: int = 3) -> np.ndarray:
    """Indices of the first ``per_class`` samples (by record id) of every class."""
    order = np.argsort(samples.record, kind="stable")
    return np.concatenate([order[samples.y[order] == c][:per_class] for c in range(len(samples.classes))])


def plot_gradcam(images: np.ndarray, maps: np.ndarray, titles: list[str], path: Path, title: str,
                 columns: int) -> Path:
    """Draw images with their heat maps overlaid in a grid and save a PNG atomically."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, heat, text in zip(axes.ravel(), images, maps, titles):
        ax.imshow(image.mean(axis=-1), cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        ax.set_title(text, fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def gradcam_figures(run_dir: Path, figure_dir: Path, display: dict[str, str] | None = None,
                    per_class: int = 3) -> list[tuple[Path, str]]:
    """Write ``gradcam_<model>.png`` for every Keras model of an image run (its lowest seed).

    The test images are reloaded from the run's ``config.yaml`` (the same
    deterministic split); ``per_class`` images of each class are explained.

    Args:
        run_dir: the run folder.
        figure_dir: where the PNGs go.
        display: model folder name -> name shown (default: the folder name).
        per_class: test images per class.

    Returns:
        ``(png path, caption)`` per model; empty for ECG runs or when the data is unavailable.
    """
    models = _saved_models(run_dir)
    if not models:
        return []
    try:
        test = _test_split(run_dir)
    except (BiomedError, OSError):
        return []
    if test is None or not len(test):
        return []
    chosen = pick_examples(test, per_class)
    images, classes = test.x[chosen], test.classes
    figures = []
    for model_name, (seed, path) in models.items():
        model = keras.saving.load_model(path)
        maps, probs = gradcam(model, images)
        titles = [f"true {classes[t]}\npred {classes[p.argmax()]} ({p.max():.2f})"
                  for t, p in zip(test.y[chosen], probs)]
        name = (display or {}).get(model_name, model_name)
        label = f"{name} (seed {seed})"
        png = figure_dir / f"gradcam_{file_slug(name)}.png"
        plot_gradcam(images, maps, titles, png, f"Grad-CAM: {label}", per_class)
        figures.append((png, f"Grad-CAM of {label} on {per_class} test images per class (rows in class "
                             f"order); the heat map explains the predicted class."))
    return figures


def gradcam_section(runs: list[Run], figure_dir: Path) -> list[Block]:
    """The report's Grad-CAM section: heat maps of the Keras models of image runs (none for ECG runs)."""
    image_runs = [r for r in runs if r.data_summary.get("modality") == "image"]
    if not image_runs:
        return []
    figures = [Figure(path, caption) for run in image_runs
               for path, caption in gradcam_figures(run.path, figure_dir, run.display)]
    return [Heading("Grad-CAM"), *(figures or [Paragraph("No saved Keras image models to explain.")])]


def _saved_models(run_dir: Path) -> dict[str, tuple[int, Path]]:
    """Model folder name -> (lowest seed, its model.keras) for every saved Keras model."""
    found: dict[str, tuple[int, Path]] = {}
    for path in sorted(run_dir.glob("models/*/seed_*/model.keras")):
        model, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed_"))
        if model not in found or seed < found[model][0]:
            found[model] = (seed, path)
    return found


def _test_split(run_dir: Path) -> SampleSet | None:
    """The run's test split, reloaded from its config (None for ECG runs)."""
    config = from_dict(ExperimentConfig, yaml.safe_load((run_dir / "config.yaml").read_text()))
    if config.data.modality != "image":
        return None
    return prepare_data(config).splits["test"]

"""Image training features end to end: CutMix, TTA views, a run with mixing, ensemble export, predict on files."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from imaging.augment import cutmix
from imaging.tta import ImageView, image_views
from pipelines.averaging import averaged_model
from pipelines.cli import main
from pipelines.config import load_config
from pipelines.datasets import prepare_data
from pipelines.errors import ConfigError
from pipelines.export import load_keras_model
from pipelines.model_card import read_card

CONFIG = """
name: tiny_mixing
seeds: [0, 1]
data:
  source: synthetic_images
  image: {image_size: [16, 16], n_per_class: 12, synthetic_classes: [disc, ring]}
  task: {classes: [disc, ring], positive: ring}
  split: {val: 0.25, test: 0.25, seed: 0}
loader:
  batch_size: 8
  mixup_alpha: 0.4
  image_augment: {enabled: true, cutmix_alpha: 1.0, cutmix_prob: 0.5}
train: {epochs: 2, label_smoothing: 0.1, schedule: cosine, warmup_epochs: 1, tensorboard: false, verbose: 0}
evaluation: {tta: [hflip, shift]}
models:
  - {type: cnn2d, params: {filters: 4, depth: 2}}
"""


def test_cutmix_pastes_one_box_and_mixes_labels_by_its_area():
    n = 6
    x = tf.constant(np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 20, 20, 1), np.float32))
    y = tf.one_hot(np.arange(n) % 2, 2)
    mixed, labels = cutmix(1.0)(x, y, tf.constant([4, 2], tf.int64))
    mixed, labels = mixed.numpy(), labels.numpy()
    for i in range(n):
        pasted = mixed[i, ..., 0] != i
        rows, cols = np.where(pasted)
        if pasted.any():                                   # one axis-aligned rectangle of one source image
            assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
            source = int(mixed[i, rows[0], cols[0], 0])
            expected = (1 - pasted.mean()) * y.numpy()[i] + pasted.mean() * y.numpy()[source]
        else:                                              # the box landed on the image itself
            expected = labels[i]
        np.testing.assert_allclose(labels[i], expected, atol=1e-6)
    assert (mixed != x.numpy()).any()


def test_image_views_flip_and_shift_with_reflected_borders():
    image = np.arange(2 * 5 * 6 * 1, dtype=np.float32).reshape(2, 5, 6, 1)
    np.testing.assert_array_equal(ImageView("horizontal")(image), image[:, :, ::-1])
    np.testing.assert_array_equal(ImageView("vertical")(image), image[:, ::-1])
    down = ImageView(shift=(1, 0))(image).numpy()
    np.testing.assert_array_equal(down[:, 1:], image[:, :-1])
    np.testing.assert_array_equal(down[:, 0], image[:, 1])    # reflected border
    left = ImageView(shift=(0, -2))(image).numpy()
    np.testing.assert_array_equal(left[:, :, :-2], image[:, :, 2:])
    assert [v.shift for v in image_views(["shift"], 32)] == [(2, 0), (-2, 0), (0, 2), (0, -2)]
    assert [v.flip for v in image_views(["hflip", "vflip"], 32)] == ["horizontal", "vertical"]
    with pytest.raises(ConfigError, match="did you mean 'hflip'"):
        image_views(["hflp"], 32)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """A tiny finished run with mixup, CutMix, label smoothing, a cosine schedule and TTA; 2 seeds."""
    base = tmp_path_factory.mktemp("mixing")
    (base / "tiny.yaml").write_text(CONFIG)
    assert main(["run", str(base / "tiny.yaml"), "--out", str(base / "run")]) == 0
    return base / "run"


def test_run_trains_with_mixing_and_evaluates_with_tta(mixed_run):
    config = load_config(mixed_run / "config.yaml")
    val = prepare_data(config).splits["val"]
    folder = mixed_run / "models" / "cnn2d" / "seed_0"
    history = pd.read_csv(folder / "history.csv")
    assert {"auc", "val_auc"} <= set(history) and np.isfinite(history["loss"]).all()
    model = load_keras_model(folder / "model.keras")
    views = image_views(["hflip", "shift"], 16)
    predictions = pd.read_csv(folder / "predictions.csv")
    stored = predictions[predictions["split"] == "val"][["prob_disc", "prob_ring"]].to_numpy()
    np.testing.assert_allclose(stored, averaged_model([model], views).predict(val.x, verbose=0), atol=1e-5)
    assert not np.allclose(stored, model.predict(val.x, verbose=0), atol=1e-4)


def _write_images(folder):
    """Grey and RGB PNG and JPEG files; returns ``name -> (H, W, 3) uint8`` pixels as written."""
    rng = np.random.default_rng(1)
    folder.mkdir()
    written = {}
    for name, channels, suffix in (("grey_png", 1, ".png"), ("rgb_png", 3, ".png"),
                                   ("grey_jpeg", 1, ".jpg"), ("rgb_jpeg", 3, ".jpeg")):
        pixels = rng.integers(0, 256, (20, 24, channels), dtype=np.uint8)
        keras.utils.save_img(folder / f"{name}{suffix}", pixels, scale=False)
        decoded = np.asarray(keras.utils.load_img(folder / f"{name}{suffix}", color_mode="rgb"))
        written[name] = decoded
        if suffix == ".png":
            np.testing.assert_array_equal(decoded, np.repeat(pixels, 3 // channels, axis=-1))
    return written


def test_ensemble_export_and_predict_on_png_and_jpeg_files_and_folders(mixed_run, tmp_path):
    out = tmp_path / "ensemble"
    assert main(["export", str(mixed_run), "--ensemble", "--out", str(out)]) == 0
    card = read_card(out)
    assert card["ensemble"] == [{"model": "cnn2d", "seed": 0}, {"model": "cnn2d", "seed": 1}]
    assert card["tta"] == ["hflip", "shift"] and card["input"]["shape"] == [None, 16, 16, 3]
    members = [load_keras_model(mixed_run / "models" / "cnn2d" / f"seed_{s}" / "model.keras") for s in (0, 1)]
    reference = averaged_model(members, image_views(["hflip", "shift"], 16))
    written = _write_images(tmp_path / "images")

    def expected(name):
        x = tf.image.resize(tf.cast(written[name], tf.float32), (16, 16)).numpy()[None]
        return reference.predict(x, verbose=0)[0]

    assert main(["predict", str(out), str(tmp_path / "images"), "--out", str(tmp_path / "folder.csv")]) == 0
    frame = pd.read_csv(tmp_path / "folder.csv").set_index("record")
    assert sorted(frame.index) == sorted(written)
    for name in written:
        atol = 1e-5 if name.endswith("png") else 2e-3   # JPEG decoders may differ by a grey level
        np.testing.assert_allclose(frame.loc[name, ["prob_disc", "prob_ring"]], expected(name), atol=atol)
    single = tmp_path / "images" / "grey_png.png"
    assert main(["predict", str(out), str(single), "--out", str(tmp_path / "one.csv")]) == 0
    one = pd.read_csv(tmp_path / "one.csv").set_index("record")
    np.testing.assert_allclose(one.loc["grey_png", ["prob_disc", "prob_ring"]], expected("grey_png"), atol=1e-5)
    assert json.loads((out / "model_card.json").read_text())["seed"] is None


def test_ensemble_of_an_unknown_model_is_refused(mixed_run, tmp_path, capsys):
    assert main(["export", str(mixed_run), "--ensemble", "resnet", "--out", str(tmp_path / "x")]) == 2
    assert "no trained Keras model resnet" in capsys.readouterr().err
    assert main(["export", str(mixed_run), "--ensemble", "--format", "ensemble", "--out", str(tmp_path / "x")]) == 2
    assert "the run has no ensembles; name the models" in capsys.readouterr().err

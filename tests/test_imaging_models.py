"""Image models: backbone registry, weights files, fine-tuning strategies, offline ImageNet error,
safe-mode saving, the pixel baseline, augmentation only in training, Grad-CAM."""

from pathlib import Path

import keras
import numpy as np
import pytest

import imaging.backbones as backbones
from imaging.augment import image_augmenter
from imaging.backbones import BACKBONES, build_backbone
from imaging.finetune import backbone_of
from imaging.gradcam import gradcam
from pipelines.config import ImageAugmentConfig
from pipelines.errors import BiomedError, ConfigError
from pipelines.modeling import get_model, model_names
from pipelines.samples import SampleSet
from pipelines.tfdata import make_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared"
MOBILENET_FILE = SHARED / "data" / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
SMALL = {"backbone": "mobilenet", "alpha": 0.25, "dropout": 0.0}


def images(n: int = 4, size: int = 32, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, channels)).astype(np.float32)


def transfer(**params) -> keras.Model:
    return get_model("transfer").build((32, 32, 3), 2, **{**SMALL, **params})


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """A weights file saved from a tiny randomly initialised MobileNet (no shared data needed)."""
    keras.utils.set_random_seed(123)
    path = tmp_path_factory.mktemp("weights") / "tiny_mobilenet.weights.h5"
    build_backbone("mobilenet", (32, 32, 3), alpha=0.25).save_weights(path)
    return path


def kernels(model: keras.Model) -> list[np.ndarray]:
    return [w.numpy() for w in backbone_of(model).weights if "kernel" in w.path]


def test_image_models_are_registered():
    assert {"transfer", "cnn2d", "pixel_lr"} <= set(model_names("image"))
    assert get_model("pixel_lr").role == "baseline" and get_model("pixel_lr").family == "sklearn"
    assert {"mobilenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
            "efficientnet_b3", "efficientnet_v2_b0", "resnet50", "densenet121", "convnext_tiny"} <= set(BACKBONES)


# The small backbones run in every test run; the large ones (minutes on 2 CPU cores) with --runslow.
QUICK_BACKBONES = {"mobilenet", "mobilenet_v2", "mobilenet_v3_small"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in QUICK_BACKBONES else pytest.mark.slow)
                                  for n in sorted(BACKBONES)])
def test_every_backbone_builds_and_trains_one_step(name):
    model = get_model("transfer").build((32, 32, 3), 3, backbone=name, fine_tune="full")
    model.compile("adam", "sparse_categorical_crossentropy")
    loss = model.train_on_batch(images(2), np.array([0, 2]))
    assert np.isfinite(loss) and model.output_shape == (None, 3)


def test_small_transfer_trains_one_step_on_gray_input():
    model = get_model("transfer").build((32, 32, 1), 2, **SMALL)
    model.compile("adam", "sparse_categorical_crossentropy")
    assert np.isfinite(model.train_on_batch(images(2, channels=1), np.array([0, 1])))


def test_self_made_weights_file_is_loaded(weights_file):
    keras.utils.set_random_seed(7)
    loaded = transfer(weights=str(weights_file))
    keras.utils.set_random_seed(123)
    expected = build_backbone("mobilenet", (32, 32, 3), alpha=0.25, weights=str(weights_file))
    keras.utils.set_random_seed(7)
    random = transfer()
    for a, b, c in zip(kernels(loaded), [w.numpy() for w in expected.weights if "kernel" in w.path],
                       kernels(random)):
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


def test_shared_imagenet_mobilenet_file_changes_the_weights():
    if not MOBILENET_FILE.is_file():
        pytest.skip("shared ImageNet weights not available")
    keras.utils.set_random_seed(0)
    first = kernels(transfer(weights=str(MOBILENET_FILE)))
    keras.utils.set_random_seed(1)
    second = kernels(transfer(weights=str(MOBILENET_FILE)))
    random = kernels(transfer())
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not any(np.allclose(a, c) for a, c in zip(first, random))


def test_offline_imagenet_error_names_the_cache_file(tmp_path, monkeypatch):
    from urllib.error import URLError

    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise URLError("offline (simulated: the test never touches the network)")

    monkeypatch.setattr(file_utils, "get_file", offline)  # where keras.applications downloads weights
    monkeypatch.setattr(backbones, "keras_cache_dir", lambda: tmp_path)
    with pytest.raises(BiomedError, match="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"):
        get_model("transfer").build((64, 64, 3), 2, backbone="mobilenet_v2", weights="imagenet")
    with pytest.raises(BiomedError, match=f"mobilenet_2_5_128_tf_no_top.h5 in {tmp_path}"):
        get_model("transfer").build((128, 128, 3), 2, weights="imagenet", **SMALL)
    with pytest.raises(BiomedError, match="not found"):
        transfer(weights="no/such/file.h5")


def test_weights_file_of_another_width_is_a_clear_error(weights_file):
    with pytest.raises(BiomedError, match="does not fit backbone 'mobilenet' \\(alpha 0.5\\)"):
        get_model("transfer").build((32, 32, 3), 2, **{**SMALL, "alpha": 0.5, "weights": str(weights_file)})


def test_bad_hyperparameters_fail_at_build():
    with pytest.raises(ConfigError, match="did you mean 'mobilenet_v2'"):
        get_model("transfer").build((32, 32, 3), 2, backbone="mobilenet_v22")
    with pytest.raises(ConfigError, match="at least 32x32"):
        get_model("transfer").build((16, 16, 3), 2, **SMALL)
    with pytest.raises(ConfigError, match="unfreeze_from"):
        transfer(fine_tune="partial", unfreeze_from="no_such_layer")


def trainable_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in backbone_of(model).layers if layer.trainable and layer.weights]


def test_freezing_strategies_unfreeze_exactly_the_intended_layers(weights_file):
    hp = lambda **kw: {**get_model("transfer").defaults, **SMALL, "weights": str(weights_file), **kw}  # noqa: E731
    spec = get_model("transfer")
    head = transfer(weights=str(weights_file), fine_tune="head")
    assert [p.name for p in spec.training_phases(head, hp(fine_tune="head"))] == ["head"]
    assert trainable_layers(head) == [] and len(head.trainable_weights) == 2

    partial = transfer(weights=str(weights_file), fine_tune="partial", unfreeze_layers=6)
    phases = spec.training_phases(partial, hp(fine_tune="partial", unfreeze_layers=6, head_epochs=2))
    assert [(p.name, p.epochs, p.learning_rate_scale) for p in phases] == [("head", 2, 1.0), ("fine_tune", None, 0.1)]
    phases[1].prepare(partial)
    layers = backbone_of(partial).layers
    assert trainable_layers(partial) == [l.name for l in layers[-6:] if l.weights and "bn" not in l.name]
    assert not any(l.trainable for l in layers if isinstance(l, keras.layers.BatchNormalization))

    named = transfer(weights=str(weights_file), fine_tune="partial", unfreeze_from="conv_pw_13")
    spec.training_phases(named, hp(fine_tune="partial", unfreeze_from="conv_pw_13"))[-1].prepare(named)
    assert trainable_layers(named) == ["conv_pw_13"]

    full = transfer(weights=str(weights_file), fine_tune="full")
    spec.training_phases(full, hp(fine_tune="full", head_epochs=0))[-1].prepare(full)
    assert trainable_layers(full) == [l.name for l in backbone_of(full).layers
                                      if l.weights and not isinstance(l, keras.layers.BatchNormalization)]


def test_pretrained_batchnorm_stays_in_inference_mode_while_fine_tuning(weights_file):
    model = transfer(weights=str(weights_file), fine_tune="full")
    spec = get_model("transfer")
    spec.training_phases(model, {**spec.defaults, **SMALL, "weights": str(weights_file), "fine_tune": "full"}
                         )[-1].prepare(model)
    base = backbone_of(model)
    bn = next(l for l in base.layers if isinstance(l, keras.layers.BatchNormalization))
    conv = base.get_layer("conv_pw_13")
    assert any(w is conv.kernel for w in model.trainable_weights)
    before = bn.moving_mean.numpy()
    x = images()
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), atol=1e-6)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.train_on_batch(x, np.array([0, 1, 0, 1]))
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)


def test_transfer_model_saves_and_loads_in_safe_mode(tmp_path, weights_file):
    model = get_model("transfer").build((32, 32, 1), 2, **SMALL, weights=str(weights_file))
    assert model.get_layer("preprocess").module == "mobilenet"
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = images(channels=1)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_pixel_lr_baseline_fits_and_predicts():
    x = images(20, size=12)
    y = np.arange(20) % 2
    x[y == 1] *= 0.5
    model = get_model("pixel_lr").build((12, 12, 3), 2, size=4).fit(x, y)
    assert model.predict_proba(x).shape == (20, 2) and model.score(x, y) == 1.0


def test_augmentation_only_in_training_and_deterministic():
    fn = image_augmenter(ImageAugmentConfig(enabled=True, flip="horizontal_and_vertical", rotation=0.1))
    x = images(6)
    ids = np.array([str(i) for i in range(6)])
    samples = SampleSet(x, np.arange(6) % 2, ids, ids, np.zeros(6, int), ["a", "b"])
    evaluation = np.concatenate([b[0].numpy() for b in make_dataset(samples, batch_size=4, training=False,
                                                                    augment=fn)])
    np.testing.assert_array_equal(evaluation, x)
    runs = [np.concatenate([b[0].numpy() for b in make_dataset(samples, batch_size=4, training=True,
                                                               seed=3, augment=fn)]) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(np.sort(runs[0].sum(axis=(1, 2, 3))), np.sort(x.sum(axis=(1, 2, 3))))


def test_gradcam_maps_are_image_sized_and_normalised():
    model = get_model("cnn2d").build((16, 16, 3), 2, filters=4, depth=2)
    maps, probs = gradcam(model, images(3, size=16))
    assert maps.shape == (3, 16, 16) and probs.shape == (3, 2)
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6

"""Deep ECG models: build, train a step, save/reload, attention, regularisation, filter bank."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from ecgnet.attention import attention_weights
from ecgnet.knowledge import BandFilterBank, design_filter_bank
from ecgnet.layers import AttentionPooling, FoldBatch, UnfoldBatch
from pipelines.errors import ConfigError
from pipelines.modeling import get_model

FS = 60.0
T = 600
N_CLASSES = 3
#: Tiny widths so every model trains a step in about a second.
TINY = {
    "cnn": {"filters": 4, "depth": 2},
    "crnn": {"filters": 4, "depth": 2, "units": 4},
    "acrnn": {"filters": 4, "depth": 2, "units": 4, "attention_units": 4},
    "mina": {"filters": 4, "kernel_size": 4, "conv_stride": 5, "segments_per_second": 6, "units": 4,
             "attention_units": 4},
    "resnet1d": {"filters": 4, "kernel_size": 5, "depth": 3, "double_every": 2},
}
MODELS = sorted(TINY)


def windows(n: int = 8, length: int = T, seed: int = 0) -> np.ndarray:
    """Random z-scored windows ``(n, length, 1)``."""
    return np.random.default_rng(seed).standard_normal((n, length, 1)).astype("float32")


def build(name: str, length: int = T, **params: object) -> keras.Model:
    """Build a tiny registered model."""
    return get_model(name).build((length, 1), N_CLASSES, fs=FS, seed=0, **{**TINY[name], **params})


@pytest.fixture(scope="module", params=MODELS)
def trained(request, tmp_path_factory):
    """(name, model trained one step, the same model reloaded from .keras).

    The step runs eagerly to keep the file fast; graph-mode training is what
    ``bench/model_speed.py`` runs.
    """
    model = build(request.param)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    loss = model.train_on_batch(windows(), np.arange(8) % N_CLASSES)
    assert np.isfinite(loss)
    path = tmp_path_factory.mktemp(request.param) / "model.keras"
    model.save(path)
    return request.param, model, keras.models.load_model(path)


def test_output_is_probabilities(trained):
    _, model, _ = trained
    probs = model.predict(windows(5), verbose=0)
    assert probs.shape == (5, N_CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_reload_gives_identical_predictions(trained):
    _, model, reloaded = trained
    x = windows(6, seed=1)
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)


def test_attention_weights_sum_to_one_after_reload(trained):
    name, model, reloaded = trained
    if name not in ("acrnn", "mina"):
        with pytest.raises(ValueError, match="no '\\*_attention' layer"):
            attention_weights(model, windows(2))
        return
    x = windows(4, seed=2)
    weights = attention_weights(reloaded, x)
    segments = T // int(FS / 6)      # MINA: L = fs / 6 = 10 samples, 2 positions at stride 5
    # acrnn: two "same" max-pools of 4 before the LSTM.
    expected = {"acrnn": {"time_attention": (4, math.ceil(T / 4 / 4))},
                "mina": {"beat_attention": (4, 3, segments, 2),     # 3 frequency channels
                         "rhythm_attention": (4, 3, segments), "frequency_attention": (4, 3)}}[name]
    assert {key: value.shape for key, value in weights.items()} == expected
    for value in weights.values():
        np.testing.assert_allclose(value.sum(axis=-1), 1.0, atol=1e-5)
    for key, value in attention_weights(model, x).items():
        np.testing.assert_allclose(weights[key], value, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_regularisation_and_dropout_reach_the_layers(name):
    model = build(name, l1=0.003, l2=0.02, dropout=0.35)
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    kernels = [layer for layer in layers if isinstance(
        layer, (keras.layers.Conv1D, keras.layers.Dense, keras.layers.LSTMCell, AttentionPooling))]
    assert kernels
    for layer in kernels:
        reg = layer.kernel_regularizer
        assert reg is not None, layer.name
        assert (pytest.approx(float(reg.l1)), pytest.approx(float(reg.l2))) == (0.003, 0.02)
    dropouts = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts and all(layer.rate == 0.35 for layer in dropouts)


@pytest.mark.parametrize("name", MODELS)
def test_hyperparameters_are_registered(name):
    names = get_model(name).hyperparameter_names
    assert {"l1", "l2", "dropout", "filters"} <= set(names)


def test_mina_runs_when_window_is_not_a_multiple_of_the_segment():
    model = build("mina", length=T + 5)
    x = windows(3, length=T + 5)
    assert model.predict(x, verbose=0).shape == (3, N_CLASSES)
    assert attention_weights(model, x)["rhythm_attention"].shape == (3, 3, T // 10 + 1)


def test_mina_needs_fs():
    with pytest.raises(ConfigError, match="fs"):
        get_model("mina").build((T, 1), N_CLASSES, fs=None)


def sine_gains(freq: float, fs: float = 300.0, seconds: float = 10.0) -> np.ndarray:
    """RMS gain of each filter-bank channel for a sine, away from the window edges."""
    t = np.arange(int(fs * seconds)) / fs
    x = np.sin(2 * np.pi * freq * t).astype("float32")[None, :, None]
    out = np.asarray(BandFilterBank(fs)(x))[0]
    middle = slice(len(t) // 4, -len(t) // 4)
    return np.sqrt((out[middle] ** 2).mean(axis=0) / (x[0, middle] ** 2).mean())


def test_filter_bank_passes_its_band_and_attenuates_others():
    raw, baseline, ecg, noise = sine_gains(10.0)
    assert raw == pytest.approx(1.0, abs=1e-5)
    assert ecg > 0.9 and baseline < 0.1 and noise < 0.1
    raw, baseline, ecg, noise = sine_gains(70.0)
    assert noise > 0.9 and ecg < 0.1 and baseline < 0.1


def test_filter_bank_caps_cutoffs_below_nyquist():
    raw, baseline, ecg, noise = sine_gains(10.0, fs=FS)
    assert ecg > 0.9 and baseline < 0.1 and noise < 0.1


def test_filter_bank_equals_a_same_padded_convolution():
    x = windows(2, length=400)
    out = np.asarray(BandFilterBank(FS)(x))
    taps = design_filter_bank(FS)
    for k in range(taps.shape[1]):
        expected = np.convolve(x[0, :, 0], taps[:, k], mode="same")
        np.testing.assert_allclose(out[0, :, k], expected, atol=1e-4)
    np.testing.assert_array_equal(out[..., 0], x[..., 0])        # the raw band is the input itself
    np.testing.assert_array_equal(np.asarray(BandFilterBank(FS, bands=[("raw", None, None)])(x)), x)
    only_filtered = np.asarray(BandFilterBank(FS, bands=[("ecg", 0.5, 20.0)])(x))
    np.testing.assert_allclose(only_filtered[0, :, 0], np.convolve(
        x[0, :, 0], design_filter_bank(FS, [("ecg", 0.5, 20.0)])[:, 0], mode="same"), atol=1e-4)


def test_attention_pooling_is_a_weighted_mean():
    features = np.random.default_rng(3).standard_normal((2, 3, 5, 4)).astype("float32")
    knowledge = np.ones((2, 3, 5, 1), "float32")
    pooled, weights = AttentionPooling(6)([features, knowledge])
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(pooled, (features * weights[..., None]).sum(-2), atol=1e-5)


def test_fold_and_unfold_batch_are_inverse():
    x = np.arange(2 * 3 * 4 * 5, dtype="float32").reshape(2, 3, 4, 5)
    folded = FoldBatch(2)(x)
    assert folded.shape == (24, 5)
    np.testing.assert_array_equal(UnfoldBatch((3, 4))(folded), x)


def test_mina_trains_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build("mina")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
        assert np.isfinite(model.train_on_batch(windows(4), np.arange(4) % N_CLASSES))
        assert model.get_layer("filter_bank").compute_dtype == "float32"
        assert np.asarray(model(windows(2))).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mina_channels_are_chosen_by_name():
    params = {**TINY["mina"], "channels": ["ecg", "noise"]}
    model = get_model("mina").build((T, 1), N_CLASSES, fs=FS, **params)
    weights = attention_weights(model, windows(3))
    assert weights["frequency_attention"].shape == (3, 2)
    np.testing.assert_allclose(weights["frequency_attention"].sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ConfigError, match="must be one or more of \\['raw', 'baseline', 'ecg', 'noise'\\]"):
        get_model("mina").build((T, 1), N_CLASSES, fs=FS, **{**params, "channels": ["ecg", "qrs"]})

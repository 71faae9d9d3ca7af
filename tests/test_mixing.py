"""Engine training features: one-hot labels, mixup, schedules, soft-label AUC, averaged models, their keys."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines.averaging import averaged_model
from pipelines.config import ExperimentConfig, TrainConfig
from pipelines.errors import ConfigError
from pipelines.keras_metrics import SparseAUC
from pipelines.mixing import either, mixup, one_hot_batches, sample_beta
from pipelines.schedules import phase_learning_rate, plateau_callbacks
from pipelines.schema import from_dict


def _batches(features, y, batch=16):
    return tf.data.Dataset.from_tensor_slices((features, y)).batch(batch)


def test_one_hot_batches_keep_hard_labels_without_a_mixer():
    y = np.array([0, 2, 1, 2], np.int32)
    _, labels = next(iter(one_hot_batches(_batches(np.zeros((4, 3), np.float32), y), 3)))
    np.testing.assert_array_equal(labels.numpy(), np.eye(3)[y])


def test_mixup_blends_inputs_and_labels_alike_and_is_seeded():
    y = np.arange(32) % 3
    x = np.eye(3, dtype=np.float32)[y]                  # the input is the label: mixing must keep them equal
    ds = _batches({"a": x, "b": 2 * x}, y.astype(np.int32), batch=32)
    first = [(f["a"].numpy(), f["b"].numpy(), l.numpy()) for f, l in one_hot_batches(ds, 3, mixer=mixup(0.4), seed=3)]
    again = [(f["a"].numpy(), l.numpy()) for f, l in one_hot_batches(ds, 3, mixer=mixup(0.4), seed=3)]
    a, b, labels = first[0]
    np.testing.assert_allclose(a, labels, atol=1e-6)
    np.testing.assert_allclose(b, 2 * labels, atol=1e-6)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    assert 0 < np.mean((labels > 0) & (labels < 1)) < 1    # some rows mixed
    np.testing.assert_array_equal(again[0][1], labels)


def test_beta_draws_and_either():
    draws = np.array([float(sample_beta(0.4, tf.constant([s, 1], tf.int64))) for s in range(200)])
    assert draws.min() >= 0 and draws.max() <= 1 and abs(draws.mean() - 0.5) < 0.08
    assert np.mean((draws < 0.1) | (draws > 0.9)) > 0.3     # alpha < 1: U-shaped
    ones = lambda x, y, s: (x + 1, y)                        # noqa: E731
    x, y, seed = tf.zeros((2, 1)), tf.zeros((2, 2)), tf.constant([0, 0], tf.int64)
    assert float(either(ones, None, 1.0)(x, y, seed)[0][0, 0]) == 1
    assert all(float(either(ones, None, 0.0)(x, y, tf.constant([s, 0], tf.int64))[0][0, 0]) == 0 for s in range(5))
    assert either(None, None, 0.5) is None


def test_schedules_span_the_phase():
    assert phase_learning_rate(TrainConfig(), 1e-3, 10, 5) == 1e-3
    cosine = phase_learning_rate(TrainConfig(schedule="cosine", min_learning_rate=1e-5), 1e-3, 10, 5)
    assert float(cosine(0)) == pytest.approx(1e-3) and float(cosine(50)) == pytest.approx(1e-5)
    assert float(cosine(25)) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-3)
    warm = phase_learning_rate(TrainConfig(schedule="cosine", warmup_epochs=2, min_learning_rate=1e-5), 1e-3, 10, 5)
    assert float(warm(0)) == pytest.approx(1e-5) and float(warm(10)) == pytest.approx(1e-3)
    assert float(warm(5)) < float(warm(10)) and float(warm(50)) == pytest.approx(1e-5)
    restarts = phase_learning_rate(TrainConfig(schedule="cosine_restarts", restart_epochs=2), 1e-3, 10, 5)
    assert float(restarts(9)) < 1e-4 and float(restarts(10)) == pytest.approx(1e-3)   # restart after 2 epochs
    assert len(plateau_callbacks(TrainConfig(), "val_loss", "min")) == 1
    assert plateau_callbacks(TrainConfig(schedule="cosine"), "val_loss", "min") == []


@pytest.mark.parametrize("raw, match", [
    ({"train": {"warmup_epochs": 2}}, "warmup needs schedule: cosine"),
    ({"train": {"label_smoothing": 1.0}}, "label_smoothing"),
    ({"train": {"schedule": "step"}}, "schedule"),
    ({"loader": {"mixup_alpha": -1}}, "mixup_alpha"),
    ({"loader": {"image_augment": {"cutmix_prob": 1.5}}}, "cutmix_prob"),
    ({"loader": {"image_augment": {"mixup_alpha": 0.2}}}, "unknown key"),
])
def test_bad_training_keys_are_refused(raw, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(ExperimentConfig, {"name": "x", **raw})


def test_auc_takes_integer_one_hot_and_soft_labels_alike():
    y = np.array([0, 1, 1, 0, 1])
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9]], np.float32)
    soft = np.eye(2)[y] * 0.8 + 0.1                          # label smoothing / mixing keeps the argmax
    values = []
    for labels in (y, np.eye(2)[y], soft):
        metric = SparseAUC(2, 1)
        metric.update_state(labels, probs)
        values.append(float(metric.result()))
    assert values[0] == pytest.approx(5 / 6, abs=1e-3) and values[0] == values[1] == values[2]


def test_averaged_model_is_the_mean_over_members_and_views_and_loads_safely(tmp_path):
    def member(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, activation="softmax")],
                                name="m")

    first, second = member(0), member(1)
    negate = keras.layers.Rescaling(-1.0)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    both = averaged_model([first, second], [negate])
    expected = np.mean([m.predict(v, verbose=0) for m in (first, second) for v in (x, -x)], axis=0)
    np.testing.assert_allclose(both.predict(x, verbose=0), expected, atol=1e-6)
    both.save(tmp_path / "avg.keras")
    loaded = keras.saving.load_model(tmp_path / "avg.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    assert averaged_model([first]) is first
    with pytest.raises(ConfigError, match="one input shape"):
        averaged_model([first, keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])])

"""tf.data pipelines: shapes, determinism, class balance, augmentation only in training, multi-input."""

import numpy as np
import tensorflow as tf

from ecgnet.augment import ecg_augmenter
from pipelines.config import AugmentConfig
from pipelines.samples import SampleSet
from pipelines.tfdata import class_weights, make_dataset


def samples(n: int = 40, t: int = 64, positives: int = 8) -> SampleSet:
    rng = np.random.default_rng(0)
    y = np.array([1] * positives + [0] * (n - positives), np.int32)
    x = (rng.standard_normal((n, t)) + y[:, None]).astype(np.float32)
    ids = np.array([f"r{i}" for i in range(n)])
    return SampleSet(x, y, ids, ids, np.zeros(n, np.int32), ["N", "A"], fs=32.0)


def labels_of(ds: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([y.numpy() for _, y in ds])


def test_batches_have_channel_axis_and_eval_order_is_kept():
    s = samples()
    batches = list(make_dataset(s, batch_size=16, training=False))
    assert [b[0].shape for b in batches] == [(16, 64, 1), (16, 64, 1), (8, 64, 1)]
    np.testing.assert_array_equal(np.concatenate([b[0].numpy()[..., 0] for b in batches]), s.x)


def test_training_shuffle_is_seeded_and_reshuffled_each_epoch():
    s = samples()
    a = make_dataset(s, batch_size=8, training=True, seed=1)
    b = make_dataset(s, batch_size=8, training=True, seed=1)
    epoch1, epoch2 = labels_of(a), labels_of(a)
    np.testing.assert_array_equal(epoch1, labels_of(b))
    first = np.concatenate([x.numpy()[:, 0, 0] for x, _ in make_dataset(s, batch_size=40, training=True, seed=1)])
    second = np.concatenate([x.numpy()[:, 0, 0] for x, _ in make_dataset(s, batch_size=40, training=True, seed=2)])
    assert not np.array_equal(first, second)
    assert sorted(epoch1) == sorted(epoch2) == sorted(s.y)


def test_oversampling_balances_classes():
    s = samples(n=200, positives=20)
    y = labels_of(make_dataset(s, batch_size=50, training=True, seed=0, oversample=True))
    assert len(y) == 200 and 0.35 < y.mean() < 0.65


def test_class_weights_are_balanced():
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights == {0: 4 / 6, 1: 2.0}
    assert class_weights(np.array([0, 0]), 2)[1] == 1.0


def test_augmentation_only_in_training_and_deterministic():
    s = samples()
    augment = ecg_augmenter(AugmentConfig(enabled=True, noise_std=0.1, max_shift_s=0.2), fs=32.0)
    evaluation = np.concatenate([x.numpy() for x, _ in make_dataset(s, batch_size=40, training=False,
                                                                     augment=augment)])
    np.testing.assert_array_equal(evaluation[..., 0], s.x)
    train = make_dataset(s, batch_size=40, training=True, seed=3, augment=augment, shuffle_buffer=1)
    again = make_dataset(s, batch_size=40, training=True, seed=3, augment=augment, shuffle_buffer=1)
    x1 = next(iter(train))[0].numpy()
    np.testing.assert_allclose(x1, next(iter(again))[0].numpy())
    assert not np.allclose(x1[..., 0], s.x)
    assert x1.shape == (40, 64, 1)


def test_augmenter_changes_amplitude_within_range():
    augment = ecg_augmenter(AugmentConfig(noise_std=0, baseline_wander=0, max_shift_s=0,
                                          scale_range=[2.0, 2.0]), fs=10.0)
    x = tf.ones((20, 1))
    np.testing.assert_allclose(augment(x, tf.constant([1, 2], tf.int64)).numpy(), 2.0)


def test_multi_input_models_get_a_dict_of_inputs():
    s = samples()
    side = {"rr": np.arange(40 * 3, dtype=np.float32).reshape(40, 3)}
    augment = ecg_augmenter(AugmentConfig(), fs=32.0)
    features, y = next(iter(make_dataset(s, batch_size=4, training=True, input_name="ecg",
                                         side_inputs=side, augment=augment, seed=0)))
    assert set(features) == {"ecg", "rr"}
    assert features["ecg"].shape == (4, 64, 1) and features["rr"].shape == (4, 3)
    rows = features["rr"].numpy()[:, 0].astype(int) // 3
    np.testing.assert_array_equal(y.numpy(), s.y[rows])  # side channels stay aligned after shuffling

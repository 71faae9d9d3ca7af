"""RR-interval rhythm knowledge: the ``rr_intervals`` side input, its layer and ``mina_rr``."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import wfdb

from ecgnet import rhythm
from ecgnet.features import FEATURE_NAMES
from ecgnet.knowledge import RRKnowledge
from ecgnet.layers import Segment
from ecgnet.synthetic import synthesize_annotated_record
from pipelines.errors import ConfigError
from pipelines.modeling import get_model

FS = 100.0


def test_each_sample_gets_the_interval_it_lies_in(monkeypatch):
    monkeypatch.setattr(rhythm, "detect_r_peaks", lambda signal, fs, method: np.array([100, 400, 1000]))
    series = rhythm.rr_series(np.zeros(1200), FS)
    assert series.dtype == np.float32 and series.shape == (1200,)
    np.testing.assert_allclose(series[:400], 3.0)      # before the 2nd beat: the first interval
    np.testing.assert_allclose(series[400:], 6.0)      # after the last beat: the last interval


@pytest.mark.parametrize("peaks", [[], [500]])
def test_fewer_than_two_beats_give_zeros(monkeypatch, peaks):
    monkeypatch.setattr(rhythm, "detect_r_peaks", lambda signal, fs, method: np.array(peaks, dtype=np.int64))
    assert not rhythm.rr_series(np.zeros(1000), FS).any()


def test_matrix_follows_the_detected_beats_and_chunks_agree(tmp_path):
    path = synthesize_annotated_record(tmp_path, "rr", fs=FS, seed=3, segments=(("N", 60.0),))
    signal = wfdb.rdrecord(str(path), channels=[0]).p_signal[:, 0].astype(np.float32)
    beats = wfdb.rdann(str(path), "atr").sample
    true_rr = np.median(np.diff(beats)) / FS
    windows = np.stack([signal[i:i + 300] for i in range(0, len(signal) - 300, 20)])   # 3 s windows
    assert len(windows) > 256                                                         # several chunks
    parallel = rhythm.rr_interval_matrix(windows[..., None], FS, n_jobs=2)
    assert parallel.shape == (len(windows), 300, 1) and parallel.dtype == np.float32
    np.testing.assert_array_equal(parallel, rhythm.rr_interval_matrix(windows, FS, n_jobs=1))
    assert np.median(parallel) == pytest.approx(true_rr, rel=0.05)
    with pytest.raises(ValueError, match="sampling rate"):
        rhythm.rr_interval_matrix(windows, None)


def test_rr_knowledge_per_segment():
    series = np.repeat([1.0, 1.0, 0.5, 1.5], 10).astype(np.float32)[None, :, None]   # 4 segments of 10
    knowledge = np.asarray(RRKnowledge(2)(Segment(10)(series)))
    assert knowledge.shape == (1, 2, 4, 3)
    np.testing.assert_allclose(knowledge[0, 0, :, 0], [1.0, 1.0, 0.5, 1.5], atol=1e-6)
    np.testing.assert_allclose(knowledge[0, 0, :, 1], [0.0, 0.0, -0.5, 0.5], atol=1e-6)   # vs the mean 1.0
    np.testing.assert_allclose(knowledge[0, 0, :, 2], [0.0, 0.0, 0.5, 1.0], atol=1e-6)
    np.testing.assert_array_equal(knowledge[0, 0], knowledge[0, 1])                        # every channel
    assert not np.asarray(RRKnowledge(2)(Segment(10)(np.zeros((1, 35, 1), np.float32)))).any()  # no beats


def test_mina_rr_takes_the_series_and_reloads(tmp_path):
    tiny = {"filters": 4, "kernel_size": 4, "conv_stride": 5, "segments_per_second": 6, "units": 4,
            "attention_units": 4}
    model = get_model("mina_rr").build((600, 1), 2, fs=60.0, seed=0, **tiny)
    assert [t.name for t in model.inputs] == ["ecg", "rr_intervals"]
    assert get_model("mina_rr").side_inputs == ("rr_intervals",)
    rng = np.random.default_rng(0)
    ecg = rng.standard_normal((4, 600, 1)).astype(np.float32)
    steady, irregular = np.full((4, 600, 1), 0.8, np.float32), rng.uniform(0.4, 1.2, (4, 600, 1)).astype(np.float32)
    out = np.asarray(model({"ecg": ecg, "rr_intervals": steady}))
    assert not np.allclose(out, model({"ecg": ecg, "rr_intervals": irregular}))     # the rhythm is read
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded({"ecg": ecg, "rr_intervals": steady}), out, atol=1e-6)


def test_mina_hybrid_reads_rr_and_expert_features_and_reloads(tmp_path):
    tiny = {"filters": 4, "kernel_size": 4, "conv_stride": 5, "segments_per_second": 6, "units": 4,
            "attention_units": 4, "feature_units": 8, "dropout": 0.0, "feature_dropout": 0.0}
    model = get_model("mina_hybrid").build((600, 1), 2, fs=60.0, seed=0, **tiny)
    assert sorted(t.name for t in model.inputs) == ["ecg", "expert_features", "rr_intervals"]
    assert set(get_model("mina_hybrid").side_inputs) == {"rr_intervals", "expert_features"}
    rng = np.random.default_rng(0)
    ecg = rng.standard_normal((4, 600, 1)).astype(np.float32)
    rr = rng.uniform(0.4, 1.2, (4, 600, 1)).astype(np.float32)
    features = rng.uniform(0, 3, (4, len(FEATURE_NAMES))).astype(np.float32)
    inputs = {"ecg": ecg, "rr_intervals": rr, "expert_features": features}
    out = np.asarray(model(inputs))
    assert out.shape == (4, 2)
    assert not np.allclose(out, model({**inputs, "expert_features": features[::-1]}))   # the features are read
    assert not np.allclose(out, model({**inputs, "rr_intervals": np.full_like(rr, 0.8)}))  # and the rhythm
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded(inputs), out, atol=1e-6)


def test_mina_hybrid_refuses_a_missing_feature_branch():
    with pytest.raises(ConfigError, match="feature_units must be a positive integer"):
        get_model("mina_hybrid").build((600, 1), 2, fs=60.0, feature_units=0)

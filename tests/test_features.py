"""Tests for the R-peak detector and the expert ECG features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from ecgnet.features import (ECGFeatureExtractor, FEATURE_NAMES, extract_features,
                             sample_entropy)
from ecgnet.rpeaks import detect_r_peaks

FS = 300.0
CINC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg" / "cinc2017"


def synthetic_ecg(r_times: np.ndarray, duration: float, fs: float = FS, noise: float = 0.0,
                  seed: int = 0) -> np.ndarray:
    """P, QRS (R spike + small S) and T waves as Gaussians around known R times, plus noise."""
    t = np.arange(int(round(duration * fs))) / fs
    waves = ((0.15, -0.17, 0.025), (1.0, 0.0, 0.012), (-0.15, 0.03, 0.01), (0.3, 0.3, 0.05))
    offset = t[:, None] - np.asarray(r_times)[None, :]
    x = sum(a * np.exp(-0.5 * ((offset - shift) / width) ** 2).sum(axis=1)
            for a, shift, width in waves)
    return x + np.random.default_rng(seed).normal(0.0, noise, t.size)


def features_of(r_times: np.ndarray, duration: float = 10.0, **kwargs: float) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, extract_features(synthetic_ecg(r_times, duration, **kwargs), FS)))


def irregular_r_times(seed: int, duration: float = 10.0) -> np.ndarray:
    rr = np.random.default_rng(seed).uniform(0.45, 1.1, size=40)
    times = 0.3 + np.concatenate([[0.0], np.cumsum(rr)])
    return times[times < duration - 0.3]


def test_constant_rr_gives_known_rhythm_features():
    f = features_of(np.arange(0.4, 10.0, 0.8))
    assert f["heart_rate"] == pytest.approx(75.0, abs=0.5)
    assert f["rr_mean"] == pytest.approx(0.8, abs=0.004)
    assert f["rr_sd"] < 0.004 and f["rr_rmssd"] < 0.004 and f["rr_pnn50"] == 0.0
    assert f["rr_turning_point_ratio"] == 0.0 and f["rr_shannon_entropy"] == pytest.approx(0.0)
    assert f["beat_corr_mean"] > 0.99 and f["p_corr"] > 0.9
    assert f["qrs_width"] == pytest.approx(2.355 * 0.012, abs=0.008)  # FWHM of the R Gaussian


def test_alternating_rr_gives_known_rmssd_and_pnn50():
    r_times = 0.4 + np.concatenate([[0.0], np.cumsum(np.tile([0.7, 0.9], 5))])
    f = features_of(r_times)
    assert f["rr_mean"] == pytest.approx(0.8, abs=0.004)
    assert f["rr_rmssd"] == pytest.approx(0.2, abs=0.007)
    assert f["rr_pnn50"] == 1.0
    assert f["rr_sd"] == pytest.approx(0.1, abs=0.005)
    assert f["rr_turning_point_ratio"] == 1.0


def test_irregular_rhythm_is_more_irregular_than_regular():
    regular = features_of(np.arange(0.4, 10.0, 0.8), noise=0.02)
    irregular = features_of(irregular_r_times(0), noise=0.02)
    for name in ("rr_cv", "rr_sampen", "rr_cosen", "rr_shannon_entropy", "poincare_sd1"):
        assert irregular[name] > regular[name], name


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_detector_finds_known_peaks_on_noisy_and_inverted_ecg(sign: float):
    r_times = irregular_r_times(1, duration=20.0)
    x = sign * synthetic_ecg(r_times, 20.0, noise=0.08, seed=1) + 0.3 * np.sin(np.arange(6000) / 300)
    peaks = detect_r_peaks(x, FS)
    assert len(peaks) == len(r_times)
    assert np.max(np.abs(peaks / FS - r_times)) <= 0.010


def test_flat_and_short_signals():
    assert detect_r_peaks(np.zeros(3000), FS).size == 0
    assert detect_r_peaks(np.ones(100), FS).size == 0
    for signal in (np.zeros(3000), np.full(3000, 2.5), np.zeros(10)):
        vector = extract_features(signal, FS)
        assert vector.shape == (len(FEATURE_NAMES),) and np.isfinite(vector).all()


def test_noise_only_signal_is_finite():
    vector = extract_features(np.random.default_rng(3).normal(size=3000), FS)
    assert np.isfinite(vector).all()


def test_sample_entropy_orders_regular_and_random_series():
    rng = np.random.default_rng(0)
    regular = 0.8 + rng.normal(0.0, 0.002, 60)
    random = rng.uniform(0.4, 1.2, 60)
    assert sample_entropy(regular, 1, 0.03) < 0.1 < sample_entropy(random, 1, 0.03)
    no_match = np.array([0.1, 0.5, 0.9, 1.3, 1.7])
    assert sample_entropy(no_match, 1, 0.03) == pytest.approx(np.log(6))  # 4 templates: 6 pairs


def test_transformer_shapes_parallel_and_clone():
    windows = np.stack([synthetic_ecg(irregular_r_times(s, 6.0), 6.0, noise=0.05, seed=s)
                        for s in range(70)])
    serial = ECGFeatureExtractor(fs=FS, n_jobs=1).fit(windows).transform(windows)
    parallel = ECGFeatureExtractor(fs=FS, n_jobs=2).fit_transform(windows[:, :, None])
    assert serial.shape == (70, len(FEATURE_NAMES))
    np.testing.assert_allclose(parallel, serial)
    extractor = clone(ECGFeatureExtractor(fs=250.0, n_jobs=1))
    assert extractor.get_params() == {"fs": 250.0, "n_jobs": 1, "rpeak_method": "pantompkins", "side_inputs": ()}
    assert list(extractor.get_feature_names_out()) == list(FEATURE_NAMES)


def test_transformer_rejects_bad_input():
    with pytest.raises(ValueError):
        ECGFeatureExtractor().transform(np.zeros((2, 100, 2)))
    with pytest.raises(ValueError):
        ECGFeatureExtractor(fs=0).fit(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="R-peak method"):
        ECGFeatureExtractor(rpeak_method="hamilton").fit(np.zeros((2, 100)))


def _match_f1(found: np.ndarray, reference: np.ndarray, tolerance: int) -> float:
    if found.size == 0 or reference.size == 0:
        return float(found.size == reference.size)
    hits = (np.abs(found[:, None] - reference[None, :]).min(axis=1) <= tolerance).sum()
    return 2.0 * hits / (found.size + reference.size)


@pytest.mark.slow
def test_detector_agrees_with_xqrs_on_real_records():
    if not CINC_DIR.is_dir():
        pytest.skip(f"CinC 2017 data not found at {CINC_DIR}")
    wfdb = pytest.importorskip("wfdb")
    processing = pytest.importorskip("wfdb.processing")
    records = sorted(CINC_DIR.glob("*.hea"))[::60][:100]
    scores = []
    for header in records:
        signal = wfdb.rdrecord(str(header.with_suffix(""))).p_signal[:, 0]
        reference = processing.xqrs_detect(signal, fs=FS, verbose=False)
        scores.append(_match_f1(detect_r_peaks(signal, FS), reference, int(0.05 * FS)))
    assert np.median(scores) > 0.9


def test_a_block_of_windows_gives_each_window_its_own_features():
    rng = np.random.default_rng(5)
    windows = np.stack([synthetic_ecg(np.arange(0.3, 9.9, gap), 10.0) for gap in (0.6, 0.8, 1.0)]
                       + [rng.normal(size=3000), np.zeros(3000)])
    together = ECGFeatureExtractor(fs=FS, n_jobs=1).transform(windows)
    alone = np.stack([extract_features(window, FS) for window in windows])
    np.testing.assert_allclose(together, alone, rtol=1e-12, atol=1e-12)  # same float64 filters per row
    heart_rate = together[:3, FEATURE_NAMES.index("heart_rate")]
    np.testing.assert_allclose(heart_rate, [100.0, 75.0, 60.0], rtol=0.02)

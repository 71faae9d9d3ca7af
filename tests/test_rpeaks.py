"""Tests for the R-peak detectors of ecgnet.rpeaks (every method, default on real MIT-BIH)."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb
from conftest import SHARED_DATA
from scipy import ndimage

from ecgnet import rpeaks
from ecgnet.rpeaks import DEFAULT_METHOD, METHODS, detect_r_peaks, detect_r_peaks_rows
from ecgnet.synthetic import synthesize_annotated_record

FS = 300.0
MITDB = SHARED_DATA / "ecg" / "mitdb"


@pytest.fixture(scope="module")
def annotated_ecg(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """60 s of synthetic MLII (sinus, AF, ventricular bigeminy) and its annotated R peaks."""
    path = synthesize_annotated_record(tmp_path_factory.mktemp("syn"), "rp", fs=FS, seed=2,
                                       segments=(("N", 20.0), ("AFIB", 20.0), ("B", 20.0)))
    signal = wfdb.rdrecord(str(path), channels=[0]).p_signal[:, 0]
    annotation = wfdb.rdann(str(path), "atr")
    return signal, annotation.sample[np.asarray(annotation.symbol) != "+"]  # beats, not rhythms


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_the_synthetic_beats_upright_and_inverted(annotated_ecg, method, sign):
    signal, r_peaks = annotated_ecg
    found = detect_r_peaks(sign * signal, FS, method=method)
    distance = np.abs(found[:, None] - r_peaks[None, :])
    tolerance = 0.1 * FS
    # f-waves of the AF segment may cost a beat or two; wide PVCs may be placed at their S wave
    assert np.mean(distance.min(axis=0) <= tolerance) >= 0.97   # sensitivity
    assert np.mean(distance.min(axis=1) <= tolerance) >= 0.97   # positive predictivity
    assert np.median(distance.min(axis=1)) <= 0.01 * FS


@pytest.mark.parametrize("method", METHODS)
def test_flat_short_and_empty_signals_give_no_peaks(method):
    for signal in (np.zeros(3000), np.full(3000, 2.5), np.ones(100), np.zeros(0),
                   np.full(3000, np.nan)):
        peaks = detect_r_peaks(signal, FS, method=method)
        assert peaks.dtype == np.int64 and peaks.size == 0


def test_unknown_method_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="unknown R-peak method 'hamilton'.*xqrs"):
        detect_r_peaks(np.zeros(3000), FS, method="hamilton")


@pytest.mark.slow
def test_default_detector_on_a_mitbih_record():
    if not (MITDB / "RECORDS").is_file():
        pytest.skip(f"MIT-BIH records not found at {MITDB}")
    from bench.rpeaks import evaluate_record, load_record, scores

    signal, fs, beats = load_record(MITDB / "221")  # AF record; 201 and 203 score below 0.99
    result = evaluate_record(lambda x, rate: detect_r_peaks(x, rate, method=DEFAULT_METHOD),
                             signal, fs, beats, window_s=None)
    assert scores(result["tp"], result["fp"], result["fn"])["f1"] >= 0.99


@pytest.mark.parametrize("method", METHODS)
def test_batched_detection_equals_one_window_at_a_time(annotated_ecg, method):
    signal, _ = annotated_ecg
    windows = np.stack([signal[i:i + 3000] for i in range(0, 15000, 1500)])
    windows[1] *= -1.0                    # inverted lead
    windows[2] = 0.0                      # flat
    windows[3, 100:200] = np.nan          # gap
    found = detect_r_peaks_rows(windows, FS, method=method)
    assert len(found) == len(windows) and found[2].size == 0
    assert sum(p.size for p in found) > 100
    for window, peaks in zip(windows, found):
        np.testing.assert_array_equal(peaks, detect_r_peaks(window, FS, method=method))


def test_batched_detection_checks_its_input():
    with pytest.raises(ValueError, match=r"shape \(n, T\)"):
        detect_r_peaks_rows(np.zeros(3000), FS)
    assert [p.size for p in detect_r_peaks_rows(np.ones((3, 100)), FS)] == [0, 0, 0]   # under a second


def test_short_list_statistics_equal_numpy():
    rng = np.random.default_rng(4)
    for n in range(1, 40):
        values = rng.lognormal(size=n) * 10.0 ** rng.uniform(-3, 3)
        # numpy's linear interpolation in float64: equal up to rounding of the interpolation step
        assert rpeaks._upper_decile(values.tolist()) == pytest.approx(np.percentile(values, 90), rel=1e-12)
        assert rpeaks._median(values.tolist()) == pytest.approx(np.median(values), rel=1e-12)


@pytest.mark.parametrize("width", [1, 2, 44, 45])
def test_slopes_at_candidates_equal_the_maximum_filter(width):
    steepness = np.abs(np.random.default_rng(width).standard_normal(300))
    at = np.array([0, 1, 20, 150, 298, 299])
    np.testing.assert_array_equal(rpeaks._slopes_at(steepness, at, width),
                                  ndimage.maximum_filter1d(steepness, width)[at])

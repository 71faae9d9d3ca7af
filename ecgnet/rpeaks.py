"""R-peak detection: one entry point over a choice of QRS detectors.

``detect_r_peaks(signal, fs, method=...)`` runs one of ``METHODS``:

- ``"pantompkins"`` (default): the Pan–Tompkins style detector written here;
- ``"xqrs"``: wfdb's maintained XQRS detector (``wfdb.processing.xqrs_detect``).

``bench/rpeaks.py`` compares them (and sleepecg, neurokit2 and wfdb's gqrs) on
MIT-BIH: on 10 s windows at 300 Hz, how the expert features use it, XQRS finds
slightly more beats (F1 0.991 vs 0.985) but needs about 8 times the CPU time
per window; on whole records this detector is the more accurate of the two
(RESULTS.md).
Both work on inverted leads: XQRS squares its matched-filter output, and this
detector places each beat in the lead's dominant QRS polarity.

The ``"pantompkins"`` detector: the signal is band-passed to 5–15 Hz (where QRS
energy concentrates), differentiated, squared and integrated over 150 ms. Local
maxima of that energy at least 200 ms apart are classified as beats or noise with
the running signal/noise levels of Pan & Tompkins (1985), with a T-wave slope
test and a search-back for missed beats. Each beat is finally moved to the
extremum of the 0.5–40 Hz signal in the lead's dominant QRS polarity.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage
from scipy import signal as sps
from wfdb import processing as wfdb_processing

from ecgnet.preprocess import bandpass

DEFAULT_METHOD = "pantompkins"
REFRACTORY_S = 0.2
_INTEGRATION_S = 0.15
_SLOPE_WINDOW_S = 0.15
_REFINE_S = 0.1
_T_WAVE_S = 0.36
_SEARCHBACK_FACTOR = 1.66
_MIN_DURATION_S = 1.0
_MAX_SILENCE_S = 2.0


def is_flat(signal: np.ndarray) -> bool:
    """True when ``signal`` is constant up to rounding (no ECG to analyse)."""
    x = np.asarray(signal, dtype=float)
    return x.size == 0 or float(np.ptp(x)) <= 1e-9 * max(1.0, float(np.abs(x).max()))


def detect_r_peaks(signal: np.ndarray, fs: float, method: str = DEFAULT_METHOD) -> np.ndarray:
    """Detect R peaks in a single-lead ECG.

    Args:
        signal: 1-D ECG (any scale or polarity; NaNs are treated as 0).
        fs: Sampling rate in Hz.
        method: One of ``METHODS`` (see the module docstring).

    Returns:
        Sorted int64 sample indices of the R peaks; empty for flat or sub-second signals.

    Raises:
        ValueError: If ``method`` is not one of ``METHODS``.

    Example:
        >>> peaks = detect_r_peaks(ecg, fs=300.0)   # doctest: +SKIP
        >>> heart_rate = 60.0 * fs / np.diff(peaks).mean()   # doctest: +SKIP
    """
    if method not in _DETECTORS:
        raise ValueError(f"unknown R-peak method {method!r}; choose one of {METHODS}")
    x = np.nan_to_num(np.asarray(signal, dtype=float).ravel())
    if x.size < _MIN_DURATION_S * fs or is_flat(x):
        return np.empty(0, dtype=np.int64)
    return np.unique(np.asarray(_DETECTORS[method](x, fs), dtype=np.int64))


def _xqrs(x: np.ndarray, fs: float) -> np.ndarray:
    """wfdb's XQRS detector: peaks of the squared Ricker-wavelet matched filter output."""
    return wfdb_processing.xqrs_detect(x, fs=fs, verbose=False)


def _pan_tompkins(x: np.ndarray, fs: float) -> np.ndarray:
    """The Pan–Tompkins style detector of this module (see the module docstring)."""
    qrs_band = bandpass(x, fs, 5.0, 15.0, order=2)
    derivative = np.gradient(qrs_band)
    width = max(1, int(round(_INTEGRATION_S * fs)))
    energy = np.convolve(derivative**2, np.ones(width) / width, mode="same")
    slope = ndimage.maximum_filter1d(np.abs(derivative), max(1, int(_SLOPE_WINDOW_S * fs)))
    approx = _classify_candidates(energy, slope, fs)
    return _refine(bandpass(x, fs, 0.5, 40.0, order=2), approx, fs)


def _classify_candidates(energy: np.ndarray, slope: np.ndarray, fs: float) -> np.ndarray:
    """Pan–Tompkins decision rules on the integrated energy's local maxima."""
    refractory = max(1, int(REFRACTORY_S * fs))
    candidates, _ = sps.find_peaks(energy, distance=refractory)
    if candidates.size == 0:
        return candidates.astype(np.int64)
    heights = energy[candidates]
    signal_level = float(np.percentile(heights, 90))
    noise_level = float(energy.mean())
    beats: list[int] = []  # indices into ``candidates``
    for k, height in enumerate(heights):
        threshold = noise_level + 0.25 * (signal_level - noise_level)
        clipped = min(height, 2.0 * signal_level)  # one artifact must not blind the detector
        if height <= threshold or _is_t_wave(candidates, slope, beats, k, fs):
            noise_level = 0.125 * clipped + 0.875 * noise_level
            if _silent_too_long(candidates, beats, k, fs):
                signal_level *= 0.5
            continue
        missed = _search_back(candidates, heights, beats, k, threshold / 2, fs)
        if missed is not None:
            beats.append(missed)
            signal_level = 0.25 * min(heights[missed], signal_level) + 0.75 * signal_level
        beats.append(k)
        signal_level = 0.125 * clipped + 0.875 * signal_level
    return candidates[beats].astype(np.int64)


def _is_t_wave(candidates: np.ndarray, slope: np.ndarray, beats: list[int], k: int,
               fs: float) -> bool:
    """A candidate soon after a beat with less than half its slope is a T wave."""
    if not beats:
        return False
    last = candidates[beats[-1]]
    return (candidates[k] - last < _T_WAVE_S * fs
            and slope[candidates[k]] < 0.5 * slope[last])


def _silent_too_long(candidates: np.ndarray, beats: list[int], k: int, fs: float) -> bool:
    """True when no beat was accepted for over ``_MAX_SILENCE_S`` before candidate ``k``."""
    last = candidates[beats[-1]] if beats else 0
    return candidates[k] - last > _MAX_SILENCE_S * fs


def _search_back(candidates: np.ndarray, heights: np.ndarray, beats: list[int], k: int,
                 threshold: float, fs: float) -> int | None:
    """Index of the strongest skipped candidate in an overly long gap, if any clears ``threshold``."""
    if len(beats) < 3:
        return None
    recent = np.diff(candidates[beats[-9:]])
    if candidates[k] - candidates[beats[-1]] <= _SEARCHBACK_FACTOR * recent.mean():
        return None
    gap = np.arange(beats[-1] + 1, k)
    gap = gap[(candidates[gap] - candidates[beats[-1]] >= REFRACTORY_S * fs)
              & (candidates[k] - candidates[gap] >= REFRACTORY_S * fs)]
    if gap.size == 0 or heights[gap].max() <= threshold:
        return None
    return int(gap[np.argmax(heights[gap])])


def _refine(clean: np.ndarray, approx: np.ndarray, fs: float) -> np.ndarray:
    """Move each beat to the QRS extremum in the lead's dominant polarity; keep the refractory gap."""
    if approx.size == 0:
        return approx
    half = int(_REFINE_S * fs)
    windows = np.clip(approx[:, None] + np.arange(-half, half + 1), 0, clean.size - 1)
    segments = clean[windows]
    polarity = 1.0 if np.median(segments.max(1)) >= np.median(-segments.min(1)) else -1.0
    peaks = windows[np.arange(approx.size), np.argmax(polarity * segments, axis=1)]
    return _enforce_refractory(peaks, polarity * clean, int(REFRACTORY_S * fs))


def _enforce_refractory(peaks: np.ndarray, amplitude: np.ndarray, min_gap: int) -> np.ndarray:
    """Drop the weaker of any two peaks closer than ``min_gap`` samples."""
    kept: list[int] = []
    for peak in np.unique(peaks):
        if kept and peak - kept[-1] < min_gap:
            if amplitude[peak] > amplitude[kept[-1]]:
                kept[-1] = int(peak)
            continue
        kept.append(int(peak))
    return np.asarray(kept, dtype=np.int64)


_DETECTORS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "pantompkins": _pan_tompkins, "xqrs": _xqrs}
METHODS: tuple[str, ...] = tuple(_DETECTORS)

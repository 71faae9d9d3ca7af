"""R-peak detection: one entry point over a choice of QRS detectors.

``detect_r_peaks(signal, fs, method=...)`` runs one of ``METHODS`` on one signal,
``detect_r_peaks_rows(windows, fs, method=...)`` on every row of ``(n, T)`` windows
(the same peaks; the Pan–Tompkins filters then run on blocks of rows at once):

- ``"pantompkins"`` (default): the Pan–Tompkins style detector written here;
- ``"xqrs"``: wfdb's maintained XQRS detector (``wfdb.processing.xqrs_detect``).

``bench/rpeaks.py`` compares them (and sleepecg, neurokit2 and wfdb's gqrs) on
MIT-BIH: on 10 s windows at 300 Hz, how the expert features use it, XQRS finds
slightly more beats (F1 0.991 vs 0.985) but needs several times the CPU time
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

from typing import Callable, Iterator

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
ROWS_PER_BLOCK = 256


def is_flat(signal: np.ndarray) -> bool:
    """True when ``signal`` is constant up to rounding (no ECG to analyse)."""
    x = np.asarray(signal, dtype=float).ravel()
    return x.size == 0 or bool(_flat_rows(x[None, :])[0])


def _flat_rows(x: np.ndarray) -> np.ndarray:
    """Which rows of a 2-D array are constant up to rounding."""
    return np.ptp(x, axis=1) <= 1e-9 * np.maximum(1.0, np.abs(x).max(axis=1))


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
    return detect_r_peaks_rows(np.asarray(signal).ravel()[None, :], fs, method=method)[0]


def detect_r_peaks_rows(windows: np.ndarray, fs: float, method: str = DEFAULT_METHOD) -> list[np.ndarray]:
    """R peaks of every row of ``(n, T)`` ECG windows: :func:`detect_r_peaks` row by row.

    The Pan–Tompkins filters run on blocks of rows at once, which is several times faster than a
    loop over :func:`detect_r_peaks` and gives the same peaks.

    Raises:
        ValueError: If ``method`` is not one of ``METHODS`` or ``windows`` is not 2-D.
    """
    if method not in _DETECTORS:
        raise ValueError(f"unknown R-peak method {method!r}; choose one of {METHODS}")
    windows = np.asarray(windows)
    if windows.ndim != 2:
        raise ValueError(f"expected ECG windows of shape (n, T), got {windows.shape}")
    peaks = [np.empty(0, dtype=np.int64)] * len(windows)
    if windows.shape[1] < _MIN_DURATION_S * fs:
        return peaks
    for start, x in float_blocks(windows):
        rows = np.flatnonzero(~_flat_rows(x))
        for row, found in zip(rows, _DETECTORS[method](x[rows], fs)):
            peaks[start + row] = np.unique(np.asarray(found, dtype=np.int64))
    return peaks


def float_blocks(windows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, block)`` over ``(n, T)`` windows, in float64 blocks of rows small enough to stay in the CPU caches.

    NaNs become 0: this is how the detector and the expert features both read a window.
    """
    for start in range(0, len(windows), ROWS_PER_BLOCK):
        yield start, np.nan_to_num(np.asarray(windows[start:start + ROWS_PER_BLOCK], dtype=float))


def _xqrs(x: np.ndarray, fs: float) -> list[np.ndarray]:
    """wfdb's XQRS detector on each row: peaks of the squared Ricker-wavelet matched filter output."""
    return [wfdb_processing.xqrs_detect(row, fs=fs, verbose=False) for row in x]


def _pan_tompkins(x: np.ndarray, fs: float) -> list[np.ndarray]:
    """The Pan–Tompkins style detector of this module on each row (see the module docstring)."""
    derivative = np.gradient(bandpass(x, fs, 5.0, 15.0, order=2), axis=1)
    width = max(1, int(round(_INTEGRATION_S * fs)))
    energies = ndimage.uniform_filter1d(derivative**2, width, axis=1, mode="constant")
    cleans = bandpass(x, fs, 0.5, 40.0, order=2)
    return [_refine(clean, _classify_candidates(energy, np.abs(d), fs), fs)
            for energy, d, clean in zip(energies, derivative, cleans)]


def _classify_candidates(energy: np.ndarray, steepness: np.ndarray, fs: float) -> np.ndarray:
    """Pan–Tompkins decision rules on the integrated energy's local maxima.

    A plain-Python loop over the candidates (a few dozen per window): scalar arithmetic is
    several times faster there than numpy calls on tiny arrays.
    """
    refractory = max(1, int(REFRACTORY_S * fs))
    found, _ = sps.find_peaks(energy, distance=refractory)
    if found.size == 0:
        return found.astype(np.int64)
    candidates, heights = found.tolist(), energy[found].tolist()
    slopes = _slopes_at(steepness, found, max(1, int(_SLOPE_WINDOW_S * fs))).tolist()
    signal_level = _upper_decile(heights)
    noise_level = float(energy.mean())
    beats: list[int] = []  # indices into ``candidates``
    for k, height in enumerate(heights):
        threshold = noise_level + 0.25 * (signal_level - noise_level)
        clipped = min(height, 2.0 * signal_level)  # one artifact must not blind the detector
        if height <= threshold or _is_t_wave(candidates, slopes, beats, k, fs):
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
    return found[beats].astype(np.int64)


def _slopes_at(steepness: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """The largest ``steepness`` (|derivative|) in a window of ``width`` samples centred on each of ``at``.

    ``scipy.ndimage.maximum_filter1d(steepness, width)[at]`` without filtering the whole signal:
    its mirrored edges repeat samples already inside the window, so clipping gives the same maxima.
    """
    offsets = np.arange(width) - width // 2
    return steepness[np.clip(at[:, None] + offsets, 0, steepness.size - 1)].max(axis=1)


def _is_t_wave(candidates: list[int], slopes: list[float], beats: list[int], k: int,
               fs: float) -> bool:
    """A candidate soon after a beat with less than half its slope is a T wave."""
    if not beats:
        return False
    last = beats[-1]
    return candidates[k] - candidates[last] < _T_WAVE_S * fs and slopes[k] < 0.5 * slopes[last]


def _silent_too_long(candidates: list[int], beats: list[int], k: int, fs: float) -> bool:
    """True when no beat was accepted for over ``_MAX_SILENCE_S`` before candidate ``k``."""
    last = candidates[beats[-1]] if beats else 0
    return candidates[k] - last > _MAX_SILENCE_S * fs


def _search_back(candidates: list[int], heights: list[float], beats: list[int], k: int,
                 threshold: float, fs: float) -> int | None:
    """Index of the strongest skipped candidate in an overly long gap, if any clears ``threshold``."""
    if len(beats) < 3:
        return None
    recent = beats[-9:]
    last = candidates[beats[-1]]
    mean_rr = (last - candidates[recent[0]]) / (len(recent) - 1)
    if candidates[k] - last <= _SEARCHBACK_FACTOR * mean_rr:
        return None
    best = None
    for j in range(beats[-1] + 1, k):
        if (candidates[j] - last >= REFRACTORY_S * fs and candidates[k] - candidates[j] >= REFRACTORY_S * fs
                and (best is None or heights[j] > heights[best])):
            best = j
    return best if best is not None and heights[best] > threshold else None


def _refine(clean: np.ndarray, approx: np.ndarray, fs: float) -> np.ndarray:
    """Move each beat to the QRS extremum in the lead's dominant polarity; keep the refractory gap."""
    if approx.size == 0:
        return approx
    half = int(_REFINE_S * fs)
    windows = np.clip(approx[:, None] + np.arange(-half, half + 1), 0, clean.size - 1)
    segments = clean[windows]
    upright = _median(segments.max(1).tolist()) >= _median((-segments.min(1)).tolist())
    polarity = 1.0 if upright else -1.0
    peaks = windows[np.arange(approx.size), np.argmax(polarity * segments, axis=1)]
    return _enforce_refractory(peaks, polarity * clean, int(REFRACTORY_S * fs))


def _upper_decile(values: list[float]) -> float:
    """The 90th percentile with linear interpolation (``np.percentile(values, 90)``), for short lists."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * 0.9
    below = int(position)
    fraction = position - below
    low, high = ordered[below], ordered[min(below + 1, len(ordered) - 1)]
    if fraction >= 0.5:  # interpolate from the nearer end, as numpy does
        return high - (high - low) * (1 - fraction)
    return low + (high - low) * fraction


def _median(values: list[float]) -> float:
    """The median of a non-empty list (``np.median``), for short lists."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


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


_DETECTORS: dict[str, Callable[[np.ndarray, float], list[np.ndarray]]] = {
    "pantompkins": _pan_tompkins, "xqrs": _xqrs}
METHODS: tuple[str, ...] = tuple(_DETECTORS)

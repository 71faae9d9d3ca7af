"""Rhythm knowledge from detected R peaks: the ``rr_intervals`` side input of ``mina_rr``.

For each ECG window, the R peaks are detected (:func:`ecgnet.rpeaks.detect_r_peaks`)
and every sample gets the RR interval, in seconds, of the beat-to-beat interval it
lies in (the first and last intervals extend to the window's edges). Windows with
fewer than two detected beats get zeros. The series has the window's length, so a
model can cut it into the same segments as the signal; irregular rhythms such as
atrial fibrillation show as a series that changes at every beat.
"""

from __future__ import annotations

import numpy as np

from ecgnet.features import as_windows, map_window_chunks
from ecgnet.rpeaks import DEFAULT_METHOD, detect_r_peaks, detect_r_peaks_rows

RR_INPUT = "rr_intervals"
_ROWS_PER_CHUNK = 256


def rr_series(signal: np.ndarray, fs: float, method: str = DEFAULT_METHOD) -> np.ndarray:
    """The per-sample RR interval (s) of a 1-D ECG: ``(T,)`` float32, zeros below two beats."""
    return _series_from_peaks(detect_r_peaks(signal, fs, method=method), len(signal), fs)


def _series_from_peaks(peaks: np.ndarray, length: int, fs: float) -> np.ndarray:
    """The per-sample RR interval (s) of a signal of ``length`` samples with R peaks at ``peaks``."""
    series = np.zeros(length, dtype=np.float32)
    if len(peaks) < 2:
        return series
    rr = np.diff(peaks) / fs
    # Sample t lies in interval i when peaks[i] <= t < peaks[i+1]; the edges take the nearest interval.
    interval = np.clip(np.searchsorted(peaks, np.arange(length), side="right") - 1, 0, len(rr) - 1)
    series[:] = rr[interval]
    return series


def rr_interval_matrix(windows: np.ndarray, fs: float | None, records: np.ndarray | None = None,
                       n_jobs: int = -1) -> np.ndarray:
    """RR-interval series of ECG windows ``(n, T)`` or ``(n, T, 1)``: float32 ``(n, T, 1)``.

    The ``rr_intervals`` side input, computed in parallel chunks; each window is described
    alone, so the side-input protocol's ``records`` is not used.
    """
    if not fs:
        raise ValueError("RR intervals need the sampling rate fs")
    return map_window_chunks(_rows, as_windows(windows), n_jobs, _ROWS_PER_CHUNK, float(fs))[..., None]


def _rows(windows: np.ndarray, fs: float) -> np.ndarray:
    """The RR series of every row (R peaks of all rows detected in one batch)."""
    out = np.empty(windows.shape, dtype=np.float32)
    for i, peaks in enumerate(detect_r_peaks_rows(windows, fs)):
        out[i] = _series_from_peaks(peaks, windows.shape[1], fs)
    return out

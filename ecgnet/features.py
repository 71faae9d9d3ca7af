"""Expert ECG features for classical baselines: rhythm, irregularity, atrial activity, morphology.

``extract_features`` turns one single-lead window into a fixed-length vector in
the order of ``FEATURE_NAMES``; ``ECGFeatureExtractor`` does the same for a batch
of windows as a scikit-learn transformer, in parallel. Features that are
undefined for a window (too few beats, no T–Q interval) are filled with 0, so
the vector is always finite.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from scipy import signal as sps
from sklearn.base import BaseEstimator, TransformerMixin

from ecgnet.preprocess import bandpass
from ecgnet.rpeaks import DEFAULT_METHOD, METHODS, detect_r_peaks_rows, float_blocks, is_flat
from pipelines.side_inputs import MAIN_INPUT

RHYTHM_FEATURES = (
    "heart_rate", "rr_mean", "rr_sd", "rr_rmssd", "rr_pnn50", "rr_cv", "rr_min", "rr_max",
    "rr_median", "rr_iqr_norm", "drr_mean_abs", "drr_sd", "drr_max_abs", "drr_median_norm",
    "drr_frac_gt_10pct", "rr_outlier_frac",
)
IRREGULARITY_FEATURES = (
    "rr_sampen", "rr_cosen", "rr_turning_point_ratio", "rr_shannon_entropy",
    "poincare_sd1", "poincare_sd2", "poincare_ratio", "poincare_sd1_norm",
)
MORPHOLOGY_FEATURES = (
    "p_corr", "p_energy", "tq_fwave_power", "tq_sd", "qrs_width", "beat_corr_mean",
    "beat_corr_sd", "r_amp_cv",
)
SPECTRAL_FEATURES = (
    "dominant_freq", "power_0_4", "power_4_9", "power_9_15", "power_15_40", "spectral_entropy",
)
QUALITY_FEATURES = ("kurtosis", "skewness", "clipped_frac")
FEATURE_NAMES: tuple[str, ...] = (RHYTHM_FEATURES + IRREGULARITY_FEATURES + MORPHOLOGY_FEATURES
                                  + SPECTRAL_FEATURES + QUALITY_FEATURES)

_COMPUTED: "OrderedDict[tuple, np.ndarray]" = OrderedDict()  # feature arrays by window-array digest
_COMPUTED_MAX = 16

SAMPEN_M = 1
SAMPEN_R_S = 0.03          # tolerance of the RR sample entropy (Lake & Moorman's COSEn)
_SAMPEN_MAX_LEN = 300      # bounds the O(n^2) template matching
_BEAT_WINDOW_S = (0.25, 0.45)   # averaged-beat window before/after R
_P_WINDOW_S = (0.25, 0.05)      # pre-R segment holding the P wave
_FWAVE_BAND_HZ = (4.0, 9.0)
_BANDS_HZ = ((0.0, 4.0), (4.0, 9.0), (9.0, 15.0), (15.0, 40.0))
_CLIP_MARGIN = 0.01


def extract_features(signal: np.ndarray, fs: float, rpeak_method: str = DEFAULT_METHOD) -> np.ndarray:
    """Expert features of one single-lead ECG window.

    Args:
        signal: 1-D ECG window (any scale; polarity may be inverted).
        fs: Sampling rate in Hz.
        rpeak_method: R-peak detector, one of ``ecgnet.rpeaks.METHODS``.

    Returns:
        float64 array of shape ``(len(FEATURE_NAMES),)``, NaN-free (undefined features are 0).
    """
    return _extract_rows(np.asarray(signal, dtype=float).ravel()[None, :], fs, rpeak_method)[0]


@dataclass(frozen=True)
class _Filtered:
    """A block of windows filtered and analysed at once: 0.5–40 Hz, its f-wave band and Welch spectra."""

    clean: np.ndarray
    fwaves: np.ndarray
    freqs: np.ndarray
    psd: np.ndarray

    @classmethod
    def of(cls, raw: np.ndarray, fs: float) -> _Filtered:
        """Filter the rows of ``raw`` ``(n, T)``; each row as it would be alone."""
        clean = bandpass(raw, fs, 0.5, 40.0, order=2)
        freqs, psd = sps.welch(clean, fs=fs, nperseg=min(raw.shape[1], int(4 * fs)), axis=-1)
        return cls(clean, bandpass(clean, fs, *_FWAVE_BAND_HZ, order=2), freqs, psd)


def _window_features(raw: np.ndarray, fs: float, peaks: np.ndarray, filtered: _Filtered | None,
                     row: int) -> np.ndarray:
    """The feature vector of one window from its R peaks and row ``row`` of the block's filtered signals."""
    values: dict[str, float] = dict(_quality_features(raw))
    if filtered is not None and not is_flat(raw):
        clean = filtered.clean[row]
        rr = np.diff(peaks) / fs
        values.update(_rhythm_features(rr))
        values.update(_irregularity_features(rr))
        values.update(_morphology_features(clean, filtered.fwaves[row], peaks, fs))
        values.update(_spectral_features(filtered.freqs, filtered.psd[row]))
    vector = np.array([values.get(name, np.nan) for name in FEATURE_NAMES], dtype=float)
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


def _rhythm_features(rr: np.ndarray) -> dict[str, float]:
    """Heart rate and RR / successive-difference statistics (seconds)."""
    if rr.size == 0:
        return {}
    mean = rr.mean()
    q25, median, q75 = np.percentile(rr, [25, 50, 75])
    out = {"heart_rate": 60.0 / mean, "rr_mean": mean, "rr_sd": rr.std(), "rr_cv": rr.std() / mean,
           "rr_min": rr.min(), "rr_max": rr.max(), "rr_median": median,
           "rr_iqr_norm": (q75 - q25) / median,
           "rr_outlier_frac": np.mean((rr < 0.25) | (rr > 2.0))}
    drr = np.abs(np.diff(rr))
    if drr.size:
        out.update({"rr_rmssd": np.sqrt(np.mean(drr**2)), "rr_pnn50": np.mean(drr > 0.05),
                    "drr_mean_abs": drr.mean(), "drr_sd": np.diff(rr).std(),
                    "drr_max_abs": drr.max(), "drr_median_norm": np.median(drr) / median,
                    "drr_frac_gt_10pct": np.mean(drr > 0.1 * mean)})
    return out


def _irregularity_features(rr: np.ndarray) -> dict[str, float]:
    """Entropy, turning-point and Poincaré measures of RR irregularity."""
    out: dict[str, float] = {}
    if rr.size >= 2:
        pairs = np.stack([rr[:-1], rr[1:]])
        sd1 = np.std((pairs[1] - pairs[0]) / np.sqrt(2))
        sd2 = np.std((pairs[1] + pairs[0]) / np.sqrt(2))
        out.update({"poincare_sd1": sd1, "poincare_sd2": sd2,
                    "poincare_ratio": sd1 / sd2 if sd2 > 0 else np.nan,
                    "poincare_sd1_norm": sd1 / rr.mean(),
                    "rr_shannon_entropy": _histogram_entropy(rr)})
    if rr.size >= 3:
        middle, before, after = rr[1:-1], rr[:-2], rr[2:]
        turning = ((middle > before) & (middle > after)) | ((middle < before) & (middle < after))
        out["rr_turning_point_ratio"] = turning.mean()
    if rr.size >= SAMPEN_M + 2:
        sampen = sample_entropy(rr, SAMPEN_M, SAMPEN_R_S)
        out.update({"rr_sampen": sampen,
                    "rr_cosen": sampen + np.log(2 * SAMPEN_R_S) - np.log(rr.mean())})
    return out


def sample_entropy(x: np.ndarray, m: int, r: float) -> float:
    """Sample entropy ``-ln(A/B)`` of ``x`` with template length ``m`` and tolerance ``r``.

    Vectorised over all template pairs; only the last ``_SAMPEN_MAX_LEN`` points are
    used. When no template pair matches (A or B is 0) the finite-sample upper bound
    ``ln(n_pairs)`` is returned instead of infinity.
    """
    x = np.asarray(x, dtype=float)[-_SAMPEN_MAX_LEN:]
    templates = np.lib.stride_tricks.sliding_window_view(x, m + 1)
    distance = np.zeros((len(templates), len(templates)))
    upper = np.triu(np.ones_like(distance, dtype=bool), k=1)
    for k in range(m):
        distance = np.maximum(distance, np.abs(templates[:, None, k] - templates[None, :, k]))
    matches_m = np.count_nonzero((distance <= r) & upper)
    distance = np.maximum(distance, np.abs(templates[:, None, m] - templates[None, :, m]))
    matches_m1 = np.count_nonzero((distance <= r) & upper)
    n_pairs = len(templates) * (len(templates) - 1) / 2
    if matches_m == 0 or matches_m1 == 0:
        return float(np.log(max(n_pairs, 1.0)))
    return float(-np.log(matches_m1 / matches_m))


def _histogram_entropy(rr: np.ndarray) -> float:
    """Shannon entropy (nats) of the RR histogram with bins 1/16 of the median RR wide."""
    width = np.median(rr) / 16
    _, counts = np.unique(np.floor(rr / width), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _beat_matrix(x: np.ndarray, peaks: np.ndarray, before: int, after: int) -> np.ndarray:
    """Rows ``x[R - before : R + after]`` for the peaks whose window lies inside ``x``."""
    inside = peaks[(peaks >= before) & (peaks + after <= x.size)]
    return x[inside[:, None] + np.arange(-before, after)]


def _mean_pairwise_corr(rows: np.ndarray) -> float:
    """Mean Pearson correlation over all distinct pairs of rows."""
    centred = rows - rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = centred / np.where(norms > 0, norms, 1.0)
    k = len(rows)
    return float((np.sum(unit.sum(axis=0) ** 2) - np.sum(unit**2)) / (k * (k - 1)))


def _row_corr(rows: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row with ``template``."""
    a = rows - rows.mean(axis=1, keepdims=True)
    b = template - template.mean()
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b)
    return (a @ b) / np.where(denom > 0, denom, np.inf)


def _morphology_features(x: np.ndarray, fwaves: np.ndarray, peaks: np.ndarray, fs: float) -> dict[str, float]:
    """Averaged-beat, P-wave and T–Q (fibrillatory wave) features of the 0.5–40 Hz signal ``x``."""
    before, after = (int(s * fs) for s in _BEAT_WINDOW_S)
    beats = _beat_matrix(x, peaks, before, after)
    out = _tq_features(x, fwaves, peaks, fs)
    if len(beats) == 0:
        out.pop("tq_sd", None)  # cannot be scaled without a QRS amplitude
        return out
    average = beats.mean(axis=0)
    template = average if average[before] >= 0 else -average
    qrs_amplitude = template[before] - np.median(template[:before])
    scale = qrs_amplitude if qrs_amplitude > 0 else np.nan
    p_start, p_end = before - int(_P_WINDOW_S[0] * fs), before - int(_P_WINDOW_S[1] * fs)
    out.update({"qrs_width": _half_height_width(template, before, fs),
                "p_energy": template[p_start:p_end].std() / scale,
                "tq_sd": out.get("tq_sd", np.nan) / scale})
    if len(beats) >= 2:
        corr = _row_corr(beats, average)
        amplitudes = np.abs(beats[:, before])
        out.update({"beat_corr_mean": corr.mean(), "beat_corr_sd": corr.std(),
                    "p_corr": _mean_pairwise_corr(beats[:, p_start:p_end]),
                    "r_amp_cv": amplitudes.std() / amplitudes.mean()})
    return out


def _half_height_width(template: np.ndarray, r_index: int, fs: float) -> float:
    """Width (s) of the contiguous run around ``r_index`` above half the R height."""
    baseline = np.median(template[:r_index])
    above = template - baseline >= 0.5 * (template[r_index] - baseline)
    below = np.flatnonzero(~above)
    left = below[below < r_index]
    right = below[below > r_index]
    start = left[-1] + 1 if left.size else 0
    stop = right[0] if right.size else template.size
    return (stop - start) / fs


def _tq_features(x: np.ndarray, fwaves: np.ndarray, peaks: np.ndarray, fs: float) -> dict[str, float]:
    """4–9 Hz power (``fwaves``: ``x`` band-passed there) and spread in the T–Q intervals (T end by Bazett,
    before the P wave)."""
    if peaks.size < 2:
        return {}
    rr = np.diff(peaks) / fs
    starts = peaks[:-1] + (0.4 * np.sqrt(rr) * fs).astype(int)
    stops = peaks[1:] - (np.minimum(_P_WINDOW_S[0], 0.3 * rr) * fs).astype(int)
    keep = stops > starts
    if not keep.any():
        return {}
    mask = np.zeros(x.size, dtype=bool)
    mask[_ranges(starts[keep], stops[keep])] = True
    power = np.mean(x**2)
    return {"tq_fwave_power": np.mean(fwaves[mask] ** 2) / power if power > 0 else np.nan,
            "tq_sd": x[mask].std()}


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, stop)`` for every pair, without a Python loop."""
    lengths = stops - starts
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets


def _spectral_features(freqs: np.ndarray, psd: np.ndarray) -> dict[str, float]:
    """Dominant frequency, band power ratios and spectral entropy of the 0–40 Hz band of a Welch spectrum."""
    in_range = freqs <= 40.0
    freqs, psd = freqs[in_range], psd[in_range]
    total = psd.sum()
    if total <= 0:
        return {}
    p = psd / total
    out = {"dominant_freq": freqs[np.argmax(psd)],
           "spectral_entropy": -np.sum(p[p > 0] * np.log(p[p > 0])) / np.log(p.size)}
    for (low, high), name in zip(_BANDS_HZ, SPECTRAL_FEATURES[1:5]):
        out[name] = p[(freqs >= low) & (freqs < high)].sum()
    return out


def _quality_features(raw: np.ndarray) -> dict[str, float]:
    """Excess kurtosis, skewness (biased moments) and the fraction of samples at the extremes."""
    if is_flat(raw):
        return {"clipped_frac": 1.0 if raw.size else 0.0}
    margin = _CLIP_MARGIN * np.ptp(raw)
    clipped = (raw >= raw.max() - margin) | (raw <= raw.min() + margin)
    z = (raw - raw.mean()) / raw.std()
    z2 = z * z   # products, not z**4 and z**3: numpy's generic power is ~100x slower
    return {"kurtosis": np.mean(z2 * z2) - 3.0, "skewness": np.mean(z2 * z),
            "clipped_frac": clipped.mean()}


class ECGFeatureExtractor(BaseEstimator, TransformerMixin):
    """Scikit-learn transformer from ECG windows to expert features (stateless).

    Args:
        fs: Sampling rate of the windows in Hz.
        n_jobs: Parallel workers for ``transform`` (joblib convention; -1 = all cores).
        rpeak_method: R-peak detector, one of ``ecgnet.rpeaks.METHODS``.
        side_inputs: Side inputs appended, in this order, to each window's features; the
            extractor then takes the dict of :func:`pipelines.side_inputs.sklearn_inputs`.

    Example:
        >>> features = ECGFeatureExtractor(fs=300.0).fit_transform(windows)   # doctest: +SKIP
    """

    _ROWS_PER_CHUNK = 64

    def __init__(self, fs: float = 300.0, n_jobs: int = -1, rpeak_method: str = DEFAULT_METHOD,
                 side_inputs: tuple[str, ...] = ()):
        self.fs = fs
        self.n_jobs = n_jobs
        self.rpeak_method = rpeak_method
        self.side_inputs = side_inputs

    def fit(self, X: Any, y: np.ndarray | None = None) -> "ECGFeatureExtractor":
        """Validate the parameters and the input shape; nothing is learned."""
        if not self.fs or self.fs <= 0:
            raise ValueError(f"fs must be a positive sampling rate, got {self.fs!r}")
        if self.rpeak_method not in METHODS:
            raise ValueError(f"unknown R-peak method {self.rpeak_method!r}; choose one of {METHODS}")
        self.n_features_in_ = as_windows(self._split(X)[0]).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Features of each window, followed by its side inputs' columns.

        Args:
            X: Windows of shape ``(n, T)`` or ``(n, T, 1)``; with ``side_inputs``, the dict
                ``{"x": windows, name: (n, d) array, ...}``.

        Returns:
            Array of shape ``(n, len(FEATURE_NAMES) + side columns)``. The features of an
            identical window array are computed once per process and then reused (the
            baselines, seeds and side inputs of a run share them).
        """
        windows, side = self._split(X)
        return np.hstack([self._window_features(windows), *side]) if side else self._window_features(windows)

    def _split(self, X: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        """The windows and the side-input columns (2-D, row-aligned) of an input."""
        if not self.side_inputs:
            return X, []
        missing = [k for k in (MAIN_INPUT, *self.side_inputs) if not isinstance(X, Mapping) or k not in X]
        if missing:
            raise ValueError(f"expected a dict of the windows ({MAIN_INPUT!r}) and the side inputs "
                             f"{list(self.side_inputs)}; missing {missing}")
        side = [np.asarray(X[name], dtype=float).reshape(len(X[name]), -1) for name in self.side_inputs]
        if any(len(columns) != len(X[MAIN_INPUT]) for columns in side):
            raise ValueError(f"side inputs {list(self.side_inputs)} have {[len(c) for c in side]} rows for "
                             f"{len(X[MAIN_INPUT])} windows")
        return X[MAIN_INPUT], side

    def _window_features(self, X: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(X)
        key = (hashlib.sha1(array.view(np.uint8)).hexdigest(), array.shape, array.dtype.str,
               float(self.fs), self.rpeak_method)
        if key not in _COMPUTED:
            _COMPUTED[key] = self._compute(as_windows(X))
            while len(_COMPUTED) > _COMPUTED_MAX:
                _COMPUTED.popitem(last=False)
        return _COMPUTED[key].copy()

    def _compute(self, windows: np.ndarray) -> np.ndarray:
        return map_window_chunks(_extract_rows, windows, self.n_jobs, self._ROWS_PER_CHUNK,
                                 self.fs, self.rpeak_method)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the window features (side-input columns follow them, not named here)."""
        return np.asarray(FEATURE_NAMES, dtype=object)


def expert_feature_matrix(windows: np.ndarray, fs: float | None, records: np.ndarray | None = None) -> np.ndarray:
    """The expert features of ECG windows ``(n, T)`` or ``(n, T, 1)`` as float32 ``(n, 41)``.

    The ``expert_features`` side input of models such as ``hybrid_cnn``; each window is
    described alone, so the side-input protocol's ``records`` is not used.
    """
    if not fs:
        raise ValueError("expert features need the sampling rate fs")
    return ECGFeatureExtractor(fs=float(fs)).fit(windows).transform(windows).astype(np.float32)


def map_window_chunks(rows_fn: Callable[..., np.ndarray], windows: np.ndarray, n_jobs: int,
                      rows_per_chunk: int, *args: Any) -> np.ndarray:
    """``rows_fn(chunk, *args)`` over chunks of ``windows`` in parallel (joblib), concatenated in order.

    Up to four chunks per worker balance uneven rows; a small array runs in this process. Chunks
    travel to the workers pickled, not through joblib's temporary memory-mapped files, whose writing
    cost more than the rows' work for a few thousand windows.
    """
    n_chunks = min(-(-len(windows) // rows_per_chunk), 4 * effective_n_jobs(n_jobs))
    if n_chunks <= 1:
        return rows_fn(windows, *args)
    chunks = np.array_split(windows, n_chunks)
    parts = Parallel(n_jobs=n_jobs, max_nbytes=None)(delayed(rows_fn)(chunk, *args) for chunk in chunks)
    return np.concatenate(parts, axis=0)


def as_windows(X: np.ndarray) -> np.ndarray:
    """Check ``X`` is ``(n, T)`` or ``(n, T, 1)`` and return it as a numeric ``(n, T)`` array.

    Numeric arrays are viewed, not copied (blocks of rows become float64 only while their features
    are computed): ``fit`` only needs the shape, and a float64 copy of a run's windows is gigabytes.
    """
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.number):
        X = X.astype(float)
    if X.ndim == 3 and X.shape[2] == 1:
        X = X[:, :, 0]
    if X.ndim != 2:
        raise ValueError(f"expected windows of shape (n, T) or (n, T, 1), got {X.shape}")
    return X


def _extract_rows(windows: np.ndarray, fs: float, rpeak_method: str) -> np.ndarray:
    """Features of every row of ``windows``: R peaks, filters and spectra computed for blocks of rows."""
    out = np.empty((len(windows), len(FEATURE_NAMES)))
    for start, raw in float_blocks(windows):
        filtered = _Filtered.of(raw, fs) if raw.shape[1] > 3 * fs / 2 else None   # used only then
        for row, peaks in enumerate(detect_r_peaks_rows(raw, fs, rpeak_method)):
            out[start + row] = _window_features(raw[row], fs, peaks, filtered, row)
    return out

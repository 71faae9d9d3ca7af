"""Signal preprocessing: resampling, band-pass filtering, normalisation and windowing."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from pipelines.config import PreprocessConfig
from pipelines.errors import RecordError

FLAT_STD = 1e-6


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample a 1-D signal from ``fs_in`` to ``fs_out`` Hz with a polyphase filter."""
    if abs(fs_in - fs_out) < 1e-9:
        return x
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator)


@lru_cache(maxsize=32)
def _bandpass_sos(fs: float, low: float, high: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """The filter's second-order sections and their steady-state initial conditions (``sosfilt_zi``)."""
    if low > 0:
        sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    else:
        sos = sps.butter(order, high, btype="lowpass", fs=fs, output="sos")
    return sos, sps.sosfilt_zi(sos)


def bandpass(x: np.ndarray, fs: float, low: float, high: float, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth band-pass (low-pass when ``low`` is 0) along the last axis; ``high`` ≤ 0.45·fs.

    The same computation as ``scipy.signal.sosfiltfilt`` (odd extension of ``3 * (2 * sections + 1)``
    samples, forward and backward passes started in the steady state of the edge samples), with the
    filter's initial conditions computed once per filter instead of once per record. A 2-D array is
    filtered row by row in one call, with the same result as filtering each row alone.
    """
    sos, zi = _bandpass_sos(float(fs), float(low), float(min(high, 0.45 * fs)), int(order))
    x = np.asarray(x, dtype=float)
    edge = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1))
    if edge > 0:
        x = np.concatenate([2 * x[..., :1] - x[..., edge:0:-1], x,
                            2 * x[..., -1:] - x[..., -2:-edge - 2:-1]], axis=-1)
    zi = zi.reshape(len(sos), *([1] * (x.ndim - 1)), 2)
    forward, _ = sps.sosfilt(sos, x, zi=zi * x[..., :1])
    backward, _ = sps.sosfilt(sos, forward[..., ::-1], zi=zi * forward[..., -1:])
    y = backward[..., ::-1]
    return y[..., edge:y.shape[-1] - edge] if edge > 0 else y


def normalize(x: np.ndarray, method: str) -> np.ndarray:
    """Per-record normalisation: 'zscore', 'robust' (median/IQR), 'minmax' or 'none'."""
    if method == "zscore":
        return (x - x.mean()) / max(float(x.std()), FLAT_STD)
    if method == "robust":
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        return (x - med) / max(float(q3 - q1), FLAT_STD)
    if method == "minmax":
        lo, hi = float(x.min()), float(x.max())
        return 2 * (x - lo) / max(hi - lo, FLAT_STD) - 1
    return x


@dataclass(frozen=True)
class RecordWindows:
    """One record's windows held as its float32 signal and the windows' start samples.

    Worker processes send this back instead of the windows themselves, which repeat each sample
    ``window / stride`` times; the windows are copied out once, where they are gathered.
    """

    signal: np.ndarray
    starts: np.ndarray
    window: int

    def __len__(self) -> int:
        return len(self.starts)

    def copy_to(self, out: np.ndarray) -> None:
        """Write the windows into ``out``, a float32 array of shape ``(len(self), window)``."""
        for row, start in enumerate(self.starts.tolist()):
            out[row] = self.signal[start:start + self.window]

    def array(self) -> np.ndarray:
        """The windows as a new float32 array ``(n, window)``."""
        out = np.empty((len(self), self.window), dtype=np.float32)
        self.copy_to(out)
        return out


def make_windows(x: np.ndarray, window: int, stride: int | None, *, crop: str = "center",
                 pad: str = "zero", max_windows: int | None = None) -> np.ndarray:
    """Cut a 1-D signal into windows of ``window`` samples, shape ``(n, window)``.

    With ``stride`` None one window is taken (cropped at the start or centre);
    otherwise sliding windows every ``stride`` samples. A signal shorter than
    the window is padded (``zero`` or ``edge``) or rejected (``drop``).
    """
    x = pad_to_window(x, window, pad)
    starts = window_starts(len(x), window, stride, crop=crop, max_windows=max_windows)
    return np.lib.stride_tricks.sliding_window_view(x, window)[starts]


def pad_to_window(x: np.ndarray, window: int, pad: str) -> np.ndarray:
    """``x`` itself when it holds a window, else padded to one (``zero``/``edge``) or refused (``drop``)."""
    n = len(x)
    if n >= window:
        return x
    if pad == "drop":
        raise RecordError(f"{n} samples after resampling, shorter than the {window}-sample window "
                          f"(preprocess.pad is 'drop')")
    return np.pad(x, (0, window - n), mode="constant" if pad == "zero" else "edge")


def window_starts(n: int, window: int, stride: int | None, *, crop: str = "center",
                  max_windows: int | None = None) -> np.ndarray:
    """Start samples of the windows :func:`make_windows` cuts from ``n >= window`` samples."""
    if stride is None:
        return np.array([0 if crop == "start" else (n - window) // 2])
    starts = np.arange(0, n - window + 1, stride)
    if max_windows is not None and len(starts) > max_windows:
        starts = starts[np.linspace(0, len(starts) - 1, max_windows).round().astype(int)]
    return starts


def clean_signal(x: np.ndarray, fs_in: float, cfg: PreprocessConfig) -> np.ndarray:
    """Check, resample, filter and normalise one record's signal (no windowing).

    Raises:
        RecordError: NaN samples, a flat line, or a record shorter than ``min_length_s``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise RecordError("empty signal")
    if not np.all(np.isfinite(x)):
        raise RecordError(f"{int((~np.isfinite(x)).sum())} NaN/inf samples")
    if float(x.std()) < FLAT_STD:
        raise RecordError("flat line (zero variance)")
    duration = len(x) / fs_in
    if duration < cfg.min_length_s:
        raise RecordError(f"{duration:.2f} s long, shorter than min_length_s={cfg.min_length_s}")
    x = resample(x, fs_in, cfg.fs)
    if cfg.bandpass is not None:
        x = bandpass(x, cfg.fs, cfg.bandpass[0], cfg.bandpass[1], cfg.filter_order)
    return normalize(x, cfg.normalize)


def preprocess_record(x: np.ndarray, fs_in: float, cfg: PreprocessConfig) -> np.ndarray:
    """Full preprocessing of one record into float32 windows ``(n, window_samples)``.

    With ``train_stride_s`` the windows are cut at that (denser) stride; every
    ``cfg.windows_per_stride``-th one, starting with the first, is a window of ``stride_s``.
    """
    return record_windows(x, fs_in, cfg).array()


def record_windows(x: np.ndarray, fs_in: float, cfg: PreprocessConfig) -> RecordWindows:
    """:func:`preprocess_record` without copying out the windows (see :class:`RecordWindows`)."""
    clean = pad_to_window(clean_signal(x, fs_in, cfg), cfg.window_samples, cfg.pad)
    stride_s = cfg.train_stride_s or cfg.stride_s
    stride = None if stride_s is None else max(1, int(round(stride_s * cfg.fs)))
    starts = window_starts(len(clean), cfg.window_samples, stride, crop=cfg.crop,
                           max_windows=cfg.max_windows_per_record)
    return RecordWindows(clean.astype(np.float32), starts, cfg.window_samples)

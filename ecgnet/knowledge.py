"""ECG domain knowledge computed inside a model: frequency bands, beat, rhythm and band power.

These layers let an exported model take only the raw ECG window: the fixed FIR
filter bank splits it into frequency channels, and the knowledge layers derive
the signals MINA uses to guide its attention (Hong et al., IJCAI 2019):

* beat knowledge: ``|x[t] - x[t-1]|``, large at the steep QRS slopes (MINA takes
  it within each segment);
* rhythm knowledge: the standard deviation of each segment, which varies between
  segments when the rhythm is irregular;
* frequency knowledge: the log power of each frequency channel.

All of them work on every channel at once (no per-channel copies).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import scipy.fft
import scipy.signal
from keras import layers, ops

#: Default MINA channels as (name, low cutoff Hz, high cutoff Hz); ``None`` means open.
DEFAULT_BANDS: tuple[tuple[str, float | None, float | None], ...] = (
    ("raw", None, None),         # passthrough
    ("baseline", None, 0.7),     # baseline wander
    ("ecg", 0.5, 40.0),          # the ECG band
    ("noise", 40.0, None),       # high-frequency noise / muscle artefact
)
#: Cutoffs are capped at this fraction of the Nyquist rate (e.g. 40 Hz -> 24 Hz at fs = 60 Hz).
MAX_CUTOFF = 0.8


def design_filter_bank(fs: float, bands: Sequence[Sequence[Any]] = DEFAULT_BANDS,
                       filter_seconds: float = 1.0) -> np.ndarray:
    """Linear-phase FIR taps (``scipy.signal.firwin``, Hamming window) for each band.

    Args:
        fs: Sampling rate in Hz.
        bands: ``(name, low, high)`` per channel; ``(None, None)`` is a passthrough,
            ``(None, f)`` a low-pass, ``(f, None)`` a high-pass, ``(f1, f2)`` a band-pass.
        filter_seconds: Filter length in seconds (rounded to an odd number of taps).

    Returns:
        Taps of shape ``(numtaps, len(bands))``.
    """
    numtaps = 2 * int(round(fs * filter_seconds / 2)) + 1
    cap = MAX_CUTOFF * fs / 2
    columns = []
    for band in bands:
        _, low, high = band
        low = None if low is None else min(float(low), cap)
        high = None if high is None else min(float(high), cap)
        if _is_passthrough(band):
            taps = np.zeros(numtaps)
            taps[numtaps // 2] = 1.0
        elif low is None:
            taps = scipy.signal.firwin(numtaps, high, fs=fs)
        elif high is None:
            taps = scipy.signal.firwin(numtaps, low, fs=fs, pass_zero=False)
        else:
            taps = scipy.signal.firwin(numtaps, [low, high], fs=fs, pass_zero=False)
        columns.append(taps)
    return np.stack(columns, axis=1).astype("float32")


@keras.saving.register_keras_serializable(package="biomed")
class BandFilterBank(layers.Layer):
    """Fixed FIR filter bank: ``(B, T, 1)`` raw window -> ``(B, T, K)`` frequency channels.

    The taps come from :func:`design_filter_bank` at build time and are kept as a
    non-trainable weight, so a saved model carries them. By default the bank is
    applied as one zero-padded FFT convolution, which gives the output of a
    ``padding="same"`` Conv1D with a ``(numtaps, 1, K)`` kernel (up to float
    round-off) but is several times faster on CPU for 1-second-long filters;
    ``method="conv"`` runs that convolution itself, which TFLite supports with
    builtin ops (see :meth:`use_builtin_ops`). Its dtype policy defaults to
    float32 (FFTs need it), also under mixed precision.

    Args:
        fs: Sampling rate in Hz.
        bands: ``(name, low, high)`` per output channel (see :data:`DEFAULT_BANDS`).
        filter_seconds: Filter length in seconds.
        method: ``"fft"`` (fast on CPU) or ``"conv"`` (TFLite builtin ops).
    """

    def __init__(self, fs: float, bands: Sequence[Sequence[Any]] = DEFAULT_BANDS,
                 filter_seconds: float = 1.0, method: str = "fft", **kwargs: Any) -> None:
        super().__init__(**{"dtype": "float32", **kwargs})
        if method not in ("fft", "conv"):
            raise ValueError(f"method must be 'fft' or 'conv', got {method!r}")
        self.fs = float(fs)
        self.bands = [list(band) for band in bands]
        self.filter_seconds = float(filter_seconds)
        self.method = method

    def use_builtin_ops(self) -> None:
        """Switch to the plain convolution, which converts to TFLite builtin ops."""
        self.method = "conv"

    def build(self, input_shape: tuple[int, ...]) -> None:
        if input_shape[-1] != 1 or input_shape[1] is None:
            raise ValueError(f"BandFilterBank needs a fixed-length (T, 1) window, "
                             f"got {input_shape}")
        taps = design_filter_bank(self.fs, self.bands, self.filter_seconds)
        self.taps = self.add_weight(name="taps", shape=taps.shape, trainable=False, dtype="float32",
                                    initializer=keras.initializers.Constant(taps))
        self.n_fft = scipy.fft.next_fast_len(input_shape[1] + taps.shape[0] - 1, real=True)

    def call(self, inputs: Any) -> Any:
        if self.method == "conv":
            return ops.conv(inputs, ops.expand_dims(self.taps[::-1], 1), padding="same")
        # Passthrough bands are the input itself; only the others go through the FFT.
        signal = ops.squeeze(inputs, axis=-1)                                    # (B, T)
        filtered = iter(self._fft_filter(signal))
        return ops.stack([signal if _is_passthrough(band) else next(filtered) for band in self.bands],
                         axis=-1)                                                # (B, T, K)

    def _fft_filter(self, signal: Any) -> list[Any]:
        """One ``(B, T)`` output per non-passthrough band, in band order, from one FFT convolution."""
        columns = [i for i, band in enumerate(self.bands) if not _is_passthrough(band)]
        if not columns:
            return []
        length = signal.shape[1]
        x_re, x_im = ops.rfft(ops.expand_dims(signal, 1), fft_length=self.n_fft)  # (B, 1, F)
        taps = ops.take(self.taps, columns, axis=1)
        h_re, h_im = ops.rfft(ops.transpose(taps), fft_length=self.n_fft)        # (Kf, F)
        product = (x_re * h_re - x_im * h_im, x_re * h_im + x_im * h_re)
        filtered = ops.irfft(product, fft_length=self.n_fft)                     # (B, Kf, n_fft)
        delay = (self.taps.shape[0] - 1) // 2
        return [filtered[:, j, delay:delay + length] for j in range(len(columns))]

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], len(self.bands))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fs": self.fs, "bands": self.bands,
                "filter_seconds": self.filter_seconds, "method": self.method}


def _is_passthrough(band: Sequence[Any]) -> bool:
    """Whether a ``(name, low, high)`` band has no cutoff (its filter is a unit impulse)."""
    return band[1] is None and band[2] is None


@keras.saving.register_keras_serializable(package="biomed")
class BeatKnowledge(layers.Layer):
    """Beat knowledge ``|x[t] - x[t-1]|`` along axis 1 (0 at t = 0): ``(N, T, C) -> (N, T, C)``."""

    def call(self, inputs: Any) -> Any:
        diff = ops.abs(inputs[:, 1:] - inputs[:, :-1])
        return ops.pad(diff, [[0, 0], [1, 0], [0, 0]])


@keras.saving.register_keras_serializable(package="biomed")
class RhythmKnowledge(layers.Layer):
    """Rhythm knowledge: standard deviation of each segment, ``(..., M, L) -> (..., M, 1)``."""

    def call(self, inputs: Any) -> Any:
        return ops.std(inputs, axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="biomed")
class FrequencyKnowledge(layers.Layer):
    """Frequency knowledge: log mean power of each channel, ``(B, T, K) -> (B, K, 1)``."""

    def call(self, inputs: Any) -> Any:
        power = ops.mean(ops.square(inputs), axis=1)
        return ops.expand_dims(ops.log(power + 1e-6), -1)


@keras.saving.register_keras_serializable(package="biomed")
class RRKnowledge(layers.Layer):
    """Rhythm knowledge from R peaks: segmented RR series ``(B, M, L, 1)`` -> ``(B, K, M, 3)``.

    For each of the M segments (cut by :class:`~ecgnet.layers.Segment`): the mean RR
    interval ``r`` (s), its deviation from the window's mean ``r / mean(r) - 1`` and
    the change from the previous segment ``|r_m - r_{m-1}|``; the same values for
    each of the K channels. The series is the ``rr_intervals`` side input
    (:mod:`ecgnet.rhythm`); windows without beats give zeros.

    Args:
        n_channels: Number of channels K to repeat the knowledge for.
    """

    def __init__(self, n_channels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_channels = int(n_channels)

    def call(self, inputs: Any) -> Any:
        rr = ops.mean(inputs[..., 0], axis=-1)                                          # (B, M)
        window_mean = ops.mean(rr, axis=-1, keepdims=True)
        deviation = ops.where(window_mean > 0, rr / ops.maximum(window_mean, 1e-6) - 1.0, 0.0)
        change = ops.pad(ops.abs(rr[:, 1:] - rr[:, :-1]), [[0, 0], [1, 0]])
        knowledge = ops.stack([rr, deviation, change], axis=-1)                          # (B, M, 3)
        return ops.repeat(ops.expand_dims(knowledge, 1), self.n_channels, axis=1)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.n_channels, input_shape[1], 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_channels": self.n_channels}

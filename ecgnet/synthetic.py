"""Synthetic ECG: the built-in default dataset, written as real WFDB records.

Beats are sums of Gaussian waves (P, Q, R, S, T) placed at R-peak times drawn from
a rhythm model; atrial activity, baseline wander, powerline hum and noise are
added on top. :func:`synthesize_records` writes a CinC 2017 style folder (records
``S00001``..., ``RECORDS``, header-less ``REFERENCE.csv``) that the suite loads
exactly like the real data; :func:`synthesize_annotated_record` writes one long
two-lead MIT-BIH style record with beat and rhythm annotations.

Example:
    >>> table = synthesize_records("data/synthetic", n_records=50, seed=1)  # doctest: +SKIP
    >>> table.label.value_counts()                                          # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import wfdb

from pipelines.artifacts import write_text
from pipelines.errors import ConfigError

CLASSES = ("N", "A", "O", "~")
DEFAULT_CLASS_FRACTIONS = {"N": 0.55, "A": 0.25, "O": 0.15, "~": 0.05}
ADC_GAIN = 1000.0  # digital units per mV: 1 µV resolution, range about ±32 mV in format 16

_P, _Q, _R, _S, _T = range(5)
# Columns: offset from the R peak (s), Gaussian width sigma (s), amplitude (mV).
_SINUS_BEAT = np.array([
    [-0.170, 0.022, 0.15],
    [-0.025, 0.009, -0.12],
    [0.000, 0.010, 1.00],
    [0.025, 0.010, -0.28],
    [0.260, 0.050, 0.32],
])
# Premature ventricular beat: no P wave, wide QRS (~180 ms), discordant T wave.
_PVC_BEAT = np.array([
    [-0.170, 0.022, 0.00],
    [-0.045, 0.020, -0.10],
    [0.000, 0.028, 1.30],
    [0.060, 0.030, -0.50],
    [0.320, 0.070, -0.40],
])
_V1_WAVE_GAIN = np.array([0.6, 0.0, 0.3, 2.5, 0.5])  # V1-like lead: small r, deep S
_V1_ATRIAL_GAIN = 1.5                               # f-waves are most visible in V1
_T_REF_RR = 0.8         # RR (s) at which the T offset equals its tabulated value
_MIN_RR = 0.25          # shortest RR interval (s) any rhythm may produce
_WINDOW_S = (-0.5, 0.8)  # span around each R peak that holds all of its waves
_RECORD_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class _Morphology:
    """Beat templates of one synthetic subject (rows P, Q, R, S, T; see ``_SINUS_BEAT``)."""

    sinus: np.ndarray
    ectopic: np.ndarray


@dataclass(frozen=True)
class _Beats:
    """A beat sequence: the RR interval before each beat, its waves, ectopic flags."""

    rr: np.ndarray       # (n,) seconds since the previous beat
    waves: np.ndarray    # (n, 5, 3) per-beat copy of the template columns
    ectopic: np.ndarray  # (n,) True for premature ventricular beats

    def times(self, start: float) -> np.ndarray:
        """R-peak times (s) when the beat before the first one is at ``start``."""
        return start + np.cumsum(self.rr)


@dataclass(frozen=True)
class _Trace:
    """One synthetic single-lead record and the ground truth behind it."""

    signal: np.ndarray   # mV, everything (beats, atrial activity, noise)
    beats: np.ndarray    # mV, the PQRST waves alone
    r_times: np.ndarray  # s, R peaks inside the record


_Builder = Callable[[float, np.random.Generator, _Morphology], _Beats]


# ----------------------------------------------------------------------------- morphology


def _morphology(rng: np.random.Generator) -> _Morphology:
    """Draw a subject: record gain, wave amplitudes/widths and ectopic polarity."""
    gain = rng.uniform(0.5, 1.6)
    sinus = _SINUS_BEAT.copy()
    sinus[:, 2] *= gain * rng.uniform([0.6, 0.3, 0.85, 0.5, 0.5], [1.4, 1.5, 1.15, 1.5, 1.4])
    sinus[:, 1] *= rng.uniform(0.9, 1.15, size=5)
    ectopic = _PVC_BEAT.copy()
    ectopic[:, 2] *= gain * rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.2)
    return _Morphology(sinus=sinus, ectopic=ectopic)


def _assemble(rr: np.ndarray, ectopic: np.ndarray, morph: _Morphology, rng: np.random.Generator,
              *, pr_s: float | None = None, p_waves: bool = True) -> _Beats:
    """Give each beat its template, a rate-adapted T wave and small amplitude jitter."""
    waves = np.where(ectopic[:, None, None], morph.ectopic, morph.sinus)
    if pr_s is not None:
        waves[~ectopic, _P, 0] = -pr_s
    if not p_waves:
        waves[:, _P, 2] = 0.0
    waves[:, _T, 0] *= np.sqrt(np.clip(rr / _T_REF_RR, 0.5, 2.5))  # QT shortens with rate
    waves[:, :, 2] *= rng.normal(1.0, 0.03, size=(len(rr), 1))
    return _Beats(rr=rr, waves=waves, ectopic=ectopic)


# ----------------------------------------------------------------------------- rhythms


def _max_beats(duration: float) -> int:
    return int(np.ceil(duration / _MIN_RR)) + 1


def _truncate(rr: np.ndarray, duration: float) -> np.ndarray:
    """Keep the leading intervals whose beats fall within ``duration`` seconds."""
    rr = np.maximum(rr, _MIN_RR)
    return rr[np.cumsum(rr) < duration]


def _sinus_rr(duration: float, rng: np.random.Generator, bpm: tuple[float, float]) -> np.ndarray:
    """Sinus RR intervals: respiratory sinus arrhythmia (~0.25 Hz) plus random jitter."""
    rr0 = 60.0 / rng.uniform(*bpm)
    n = _max_beats(duration)
    t = rr0 * np.arange(n)
    rsa = rng.uniform(0.02, 0.05) * np.sin(2 * np.pi * rng.uniform(0.2, 0.3) * t
                                          + rng.uniform(0, 2 * np.pi))
    jitter = rng.normal(0.0, rng.uniform(0.01, 0.025), n)
    return _truncate(rr0 * (1.0 + rsa + jitter), duration)


def _sinus_beats(duration: float, rng: np.random.Generator, morph: _Morphology, *,
                 bpm: tuple[float, float] = (55.0, 95.0),
                 pr_s: tuple[float, float] | None = None) -> _Beats:
    """Sinus rhythm; ``pr_s`` sets a (prolonged) P-to-R offset range, as in AV block."""
    rr = _sinus_rr(duration, rng, bpm)
    pr = None if pr_s is None else rng.uniform(*pr_s)
    return _assemble(rr, np.zeros(len(rr), bool), morph, rng, pr_s=pr)


def _ectopic_beats(duration: float, rng: np.random.Generator, morph: _Morphology, *,
                   bigeminy: bool = False) -> _Beats:
    """Sinus rhythm with premature ventricular beats followed by a compensatory pause."""
    rr = _sinus_rr(duration, rng, (60.0, 90.0))
    index = np.arange(len(rr))
    if bigeminy:
        ectopic = index % 2 == 1
    else:
        ectopic = rng.random(len(rr)) < rng.uniform(0.1, 0.3)
        ectopic[1:] &= ~ectopic[:-1]  # isolated ectopics only
    ectopic &= (index > 0) & (index < len(rr) - 1)
    shift = np.where(ectopic, (1.0 - rng.uniform(0.55, 0.7)) * rr, 0.0)
    rr = rr - shift + np.roll(shift, 1)  # early beat, then the pause: the sum is kept
    return _assemble(rr, ectopic, morph, rng)


def _fibrillation_beats(duration: float, rng: np.random.Generator, morph: _Morphology) -> _Beats:
    """Atrial fibrillation: i.i.d. gamma RR (CV 0.15-0.3, 80-150 bpm) and no P waves."""
    rr0 = 60.0 / rng.uniform(80.0, 150.0)
    shape = 1.0 / rng.uniform(0.15, 0.3) ** 2
    rr = _truncate(rng.gamma(shape, rr0 / shape, _max_beats(duration)), duration)
    return _assemble(rr, np.zeros(len(rr), bool), morph, rng, p_waves=False)


def _other_beats(duration: float, rng: np.random.Generator, morph: _Morphology) -> _Beats:
    """'Other' rhythm: frequent ectopy, or sinus brady/tachycardia with first-degree block."""
    variant = rng.integers(3)
    if variant == 0:
        return _ectopic_beats(duration, rng, morph)
    bpm = (40.0, 54.0) if variant == 1 else (100.0, 120.0)
    return _sinus_beats(duration, rng, morph, bpm=bpm, pr_s=(0.24, 0.32))


_CLASS_RHYTHMS: dict[str, _Builder] = {
    "N": _sinus_beats,
    "A": _fibrillation_beats,
    "O": _other_beats,
    "~": partial(_sinus_beats, bpm=(55.0, 110.0)),
}
_SEGMENT_RHYTHMS: dict[str, _Builder] = {
    "N": _sinus_beats,
    "AFIB": _fibrillation_beats,
    "B": partial(_ectopic_beats, bigeminy=True),
}
_FIBRILLATING = {"A", "AFIB"}


# ----------------------------------------------------------------------------- waveforms


def _render(times: np.ndarray, waves: np.ndarray, n: int, fs: float) -> np.ndarray:
    """Sum each beat's Gaussian waves over a window around its R peak into ``n`` samples."""
    offsets = np.arange(int(np.floor(_WINDOW_S[0] * fs)), int(np.ceil(_WINDOW_S[1] * fs)) + 1)
    index = np.round(times * fs).astype(int)[:, None] + offsets          # (beats, window)
    tau = index / fs - times[:, None]
    centre, width, amplitude = (waves[:, :, k, None] for k in range(3))  # (beats, 5, 1)
    values = np.sum(amplitude * np.exp(-0.5 * ((tau[:, None, :] - centre) / width) ** 2), axis=1)
    inside = (index >= 0) & (index < n)
    return np.bincount(index[inside], weights=values[inside], minlength=n)


def _band_noise(n: int, fs: float, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS Gaussian noise with its power confined to ``[low, high]`` Hz."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    spectrum[(freqs < low) | (freqs > high) | (freqs == 0)] = 0.0
    noise = np.fft.irfft(spectrum, n)
    rms = np.sqrt(np.mean(noise ** 2))
    return noise / rms if rms > 0 else noise


def _bursts(n: int, fs: float, rng: np.random.Generator, count: int,
            length_s: tuple[float, float]) -> np.ndarray:
    """Boolean mask of ``count`` randomly placed bursts with lengths in ``length_s``."""
    starts = rng.integers(0, n, count)
    stops = np.minimum(starts + (rng.uniform(*length_s, count) * fs).astype(int), n)
    edges = np.zeros(n + 1, int)
    np.add.at(edges, starts, 1)
    np.add.at(edges, stops, -1)
    return np.cumsum(edges[:-1]) > 0


def _fibrillatory_waves(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Atrial f-waves: 0.03-0.1 mV oscillation whose frequency wanders within 4-9 Hz."""
    freq = np.clip(rng.uniform(5.0, 8.0) + 1.5 * _band_noise(n, fs, 0.0, 0.5, rng), 4.0, 9.0)
    phase = 2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi)
    envelope = rng.uniform(0.03, 0.1) * np.clip(1 + 0.3 * _band_noise(n, fs, 0.0, 0.3, rng), 0.3, None)
    return envelope * (np.sin(phase) + 0.3 * np.sin(2 * phase + rng.uniform(0, 2 * np.pi)))


def _ambient_noise(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Baseline wander (<0.5 Hz), a little powerline hum, muscle and white noise."""
    t = np.arange(n) / fs
    noise = rng.uniform(0.03, 0.3) * _band_noise(n, fs, 0.05, 0.5, rng)
    line_hz = rng.choice([50.0, 60.0])
    if line_hz < fs / 2:
        noise += rng.uniform(0.0, 0.03) * np.sin(2 * np.pi * line_hz * t + rng.uniform(0, 2 * np.pi))
    noise += rng.uniform(0.0, 0.03) * _band_noise(n, fs, 20.0, fs / 2, rng)
    return noise + rng.normal(0.0, rng.uniform(0.005, 0.04), n)


def _bury_in_noise(signal: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Heavy artifacts: electrode motion, large wander, muscle noise and clipping bursts."""
    n = len(signal)
    motion = _bursts(n, fs, rng, rng.integers(2, 6), (2.0, 8.0)) * _band_noise(n, fs, 0.5, 10.0, rng)
    noisy = (signal + rng.uniform(0.5, 2.0) * motion
             + rng.uniform(1.0, 3.0) * _band_noise(n, fs, 0.05, 0.5, rng)
             + rng.uniform(0.05, 0.3) * _band_noise(n, fs, 20.0, fs / 2, rng))
    rail = rng.uniform(1.0, 3.0)
    saturated = np.clip(noisy * rng.uniform(3.0, 6.0), -rail, rail)
    return np.where(_bursts(n, fs, rng, rng.integers(1, 4), (0.5, 3.0)), saturated, noisy)


# ----------------------------------------------------------------------------- records


def _synthesize(duration_s: float, fs: float, label: str, rng: np.random.Generator) -> _Trace:
    """One single-lead record of class ``label`` with its clean beats and R-peak times."""
    if label not in CLASSES:
        raise ConfigError(f"unknown synthetic class {label!r}; expected one of {CLASSES}")
    if duration_s <= 0 or fs <= 0:
        raise ConfigError(f"duration and fs must be positive, got {duration_s} s at {fs} Hz")
    n = int(round(duration_s * fs))
    lead_in = rng.uniform(0.0, 1.0)  # the rhythm starts before the record does
    beats = _CLASS_RHYTHMS[label](duration_s + lead_in, rng, _morphology(rng))
    times = beats.times(-lead_in)
    clean = _render(times, beats.waves, n, fs)
    signal = clean + _ambient_noise(n, fs, rng)
    if label in _FIBRILLATING:
        signal += _fibrillatory_waves(n, fs, rng)
    if label == "~":
        signal = _bury_in_noise(signal, fs, rng)
    return _Trace(signal=signal, beats=clean, r_times=times[(times >= 0) & (times < n / fs)])


def synthesize_beat_train(duration_s: float, fs: float, label: str,
                          rng: np.random.Generator) -> np.ndarray:
    """Synthesize the single-lead ECG (mV) of one record of a CinC 2017 class.

    Args:
        duration_s: Length in seconds.
        fs: Sampling rate in Hz.
        label: One of ``CLASSES``: ``"N"`` sinus rhythm, ``"A"`` atrial fibrillation,
            ``"O"`` other rhythm, ``"~"`` too noisy to classify.
        rng: Source of randomness; the same generator state gives the same signal.

    Returns:
        A float array of ``round(duration_s * fs)`` samples in mV, noise included.

    Raises:
        ConfigError: If ``label`` is unknown or ``duration_s``/``fs`` is not positive.
    """
    return _synthesize(duration_s, fs, label, rng).signal


def _class_counts(n_records: int, fractions: dict[str, float]) -> dict[str, int]:
    """Split ``n_records`` by ``fractions`` with largest-remainder rounding."""
    unknown = set(fractions) - set(CLASSES)
    if unknown or any(v < 0 for v in fractions.values()) or not np.isclose(sum(fractions.values()), 1.0):
        raise ConfigError(f"class_fractions must map classes of {CLASSES} to non-negative "
                          f"fractions summing to 1, got {fractions}")
    labels = list(fractions)
    exact = np.array([fractions[c] for c in labels]) * n_records
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: n_records - counts.sum()]] += 1
    return dict(zip(labels, counts.tolist()))


def _write_signal(write_dir: Path, name: str, fs: float, signals: np.ndarray,
                  sig_names: Sequence[str]) -> None:
    """Write ``signals`` (samples, channels; mV) as a format-16 WFDB record."""
    digital = np.clip(np.round(signals * ADC_GAIN), -32767, 32767).astype(np.int16)
    n_sig = digital.shape[1]
    wfdb.wrsamp(name, fs=fs, units=["mV"] * n_sig, sig_name=list(sig_names), d_signal=digital,
                fmt=["16"] * n_sig, adc_gain=[ADC_GAIN] * n_sig, baseline=[0] * n_sig,
                write_dir=str(write_dir))


def _publish(staging: Path, out_dir: Path) -> None:
    """Move staged files into ``out_dir``, headers last so a record appears complete at once."""
    for path in sorted(staging.iterdir(), key=lambda p: (p.suffix == ".hea", p.name)):
        os.replace(path, out_dir / path.name)


def synthesize_records(out_dir: str | Path, *, n_records: int = 200, fs: float = 300.0,
                       duration_s: tuple[float, float] = (10.0, 30.0),
                       class_fractions: dict[str, float] | None = None,
                       seed: int = 0) -> pd.DataFrame:
    """Write a CinC 2017 style synthetic dataset and return its reference table.

    Records ``S00001``... are single-lead WFDB records (signal ``ECG``, mV, format 16,
    gain ``ADC_GAIN``); ``RECORDS`` lists them and ``REFERENCE.csv`` (``record,label``
    rows, no header) is written last and atomically, so a folder with a
    ``REFERENCE.csv`` holds a complete dataset.

    Args:
        out_dir: Folder to write into (created if missing).
        n_records: Number of records.
        fs: Sampling rate in Hz.
        duration_s: Range of record lengths in seconds, drawn uniformly per record.
        class_fractions: Fraction of records per class; defaults to
            ``DEFAULT_CLASS_FRACTIONS``.
        seed: Seed; the same arguments give byte-identical records.

    Returns:
        DataFrame with columns ``record`` and ``label`` in record order.

    Raises:
        ConfigError: If an argument is out of range.
    """
    low, high = duration_s
    if n_records < 1 or not 0 < low <= high or fs <= 0:
        raise ConfigError(f"need n_records >= 1, 0 < duration_s[0] <= duration_s[1] and fs > 0; "
                          f"got {n_records}, {duration_s}, {fs}")
    counts = _class_counts(n_records, class_fractions or DEFAULT_CLASS_FRACTIONS)
    label_seed, *record_seeds = np.random.SeedSequence(seed).spawn(n_records + 1)
    labels = np.random.default_rng(label_seed).permutation(np.repeat(list(counts), list(counts.values())))
    table = pd.DataFrame({"record": [f"S{i:05d}" for i in range(1, n_records + 1)], "label": labels})

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "REFERENCE.csv").unlink(missing_ok=True)  # an interrupted rewrite must not look complete
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=out) as staging:
        for name, label, record_seed in zip(table.record, table.label, record_seeds):
            rng = np.random.default_rng(record_seed)
            signal = synthesize_beat_train(rng.uniform(low, high), fs, label, rng)
            _write_signal(Path(staging), name, fs, signal[:, None], ["ECG"])
        _publish(Path(staging), out)
    write_text(out / "RECORDS", "".join(f"{name}\n" for name in table.record))
    write_text(out / "REFERENCE.csv", table.to_csv(header=False, index=False))
    return table


def synthesize_annotated_record(out_dir: str | Path, name: str, *, fs: float = 360.0,
                                segments: Sequence[tuple[str, float]] = (("N", 60.0), ("AFIB", 60.0),
                                                                         ("N", 60.0)),
                                seed: int = 0) -> Path:
    """Write a long two-lead MIT-BIH style record with rhythm and beat annotations.

    Leads ``MLII`` and a V1-like ``V1`` (format 16, mV). The ``.atr`` file holds a
    rhythm annotation (symbol ``+``, aux note ``"(N"``, ``"(AFIB"`` or ``"(B"``) at
    the first sample of each segment and a beat annotation at every R peak
    (``N``, or ``V`` for the ventricular beats of bigeminy).

    Args:
        out_dir: Folder to write into (created if missing).
        name: Record name (letters, digits, ``_`` and ``-``).
        fs: Sampling rate in Hz.
        segments: ``(rhythm, seconds)`` pairs, rhythm one of ``"N"``, ``"AFIB"``, ``"B"``.
        seed: Seed; the same arguments give identical files.

    Returns:
        The record path without extension (for ``wfdb.rdrecord`` / ``wfdb.rdann``).

    Raises:
        ConfigError: If the name, a rhythm or a duration is invalid.
    """
    if not _RECORD_NAME.match(name) or not segments or fs <= 0:
        raise ConfigError(f"invalid annotated record request: name={name!r}, fs={fs}, segments={segments}")
    for rhythm, seconds in segments:
        if rhythm not in _SEGMENT_RHYTHMS or seconds <= 0:
            raise ConfigError(f"segment ({rhythm!r}, {seconds}) needs a rhythm of "
                              f"{sorted(_SEGMENT_RHYTHMS)} and a positive duration")
    rng = np.random.default_rng(seed)
    morph = _morphology(rng)
    bounds = np.concatenate([[0.0], np.cumsum([seconds for _, seconds in segments])])
    n = int(round(bounds[-1] * fs))
    times, waves, ectopic, atrial = [], [], [], np.zeros(n, bool)
    last_beat = -rng.uniform(0.0, 1.0)
    for (rhythm, _), start, stop in zip(segments, bounds[:-1], bounds[1:]):
        beats = _SEGMENT_RHYTHMS[rhythm](stop - last_beat, rng, morph)
        times.append(beats.times(last_beat))
        waves.append(beats.waves)
        ectopic.append(beats.ectopic)
        last_beat = times[-1][-1] if len(times[-1]) else last_beat
        if rhythm in _FIBRILLATING:
            atrial[int(round(start * fs)):int(round(stop * fs))] = True
    beat_times, beat_waves, is_ectopic = map(np.concatenate, (times, waves, ectopic))

    v1_waves = beat_waves.copy()
    v1_waves[:, :, 2] *= _V1_WAVE_GAIN
    f_waves = atrial * _fibrillatory_waves(n, fs, rng)
    mlii = _render(beat_times, beat_waves, n, fs) + f_waves + _ambient_noise(n, fs, rng)
    v1 = _render(beat_times, v1_waves, n, fs) + _V1_ATRIAL_GAIN * f_waves + _ambient_noise(n, fs, rng)

    beat_samples = np.round(beat_times * fs).astype(int)
    keep = (beat_samples >= 0) & (beat_samples < n)
    rhythm_samples = np.round(bounds[:-1] * fs).astype(int)
    samples = np.concatenate([rhythm_samples, beat_samples[keep]])
    symbols = ["+"] * len(segments) + np.where(is_ectopic[keep], "V", "N").tolist()
    aux = [f"({rhythm}" for rhythm, _ in segments] + [""] * int(keep.sum())
    order = np.argsort(samples, kind="stable")  # a rhythm change precedes a beat on its sample

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=out) as staging:
        _write_signal(Path(staging), name, fs, np.column_stack([mlii, v1]), ["MLII", "V1"])
        wfdb.wrann(name, "atr", samples[order], symbol=[symbols[i] for i in order],
                   aux_note=[aux[i] for i in order], fs=fs, write_dir=staging)
        _publish(Path(staging), out)
    return out / name

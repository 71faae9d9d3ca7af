"""Tests of the synthetic ECG generator: WFDB files, reference table, physiology."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.signal import welch

from ecgnet import synthetic
from pipelines.errors import ConfigError

FS = 300.0


def _traces(label: str, seeds: range, duration_s: float = 20.0) -> list:
    return [synthetic._synthesize(duration_s, FS, label, np.random.default_rng(s)) for s in seeds]


def _rr_cv(trace) -> float:
    rr = np.diff(trace.r_times)
    return float(rr.std() / rr.mean())


def test_write_signal_round_trips_through_rdrecord(tmp_path: Path) -> None:
    signal = synthetic.synthesize_beat_train(3.0, FS, "N", np.random.default_rng(0))
    synthetic._write_signal(tmp_path, "X1", FS, signal[:, None], ["ECG"])
    record = wfdb.rdrecord(str(tmp_path / "X1"))
    assert record.fs == FS and record.sig_len == 900 and record.n_sig == 1
    assert record.units == ["mV"] and record.sig_name == ["ECG"] and record.fmt == ["16"]
    assert record.adc_gain == [synthetic.ADC_GAIN]
    np.testing.assert_allclose(record.p_signal[:, 0], signal, atol=0.5 / synthetic.ADC_GAIN + 1e-9)


def test_records_reference_and_records_files(tmp_path: Path) -> None:
    table = synthetic.synthesize_records(tmp_path, n_records=20, duration_s=(2.0, 4.0), seed=1)
    assert list(table.columns) == ["record", "label"]
    assert table.record.tolist() == [f"S{i:05d}" for i in range(1, 21)]
    assert table.label.value_counts().to_dict() == {"N": 11, "A": 5, "O": 3, "~": 1}
    assert (tmp_path / "REFERENCE.csv").read_text().splitlines()[0] == f"S00001,{table.label[0]}"
    reference = pd.read_csv(tmp_path / "REFERENCE.csv", header=None, names=["record", "label"])
    pd.testing.assert_frame_equal(reference, table)
    assert (tmp_path / "RECORDS").read_text().split() == table.record.tolist()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging cleaned up
    for name in table.record:
        record = wfdb.rdrecord(str(tmp_path / name))
        assert record.fs == FS and record.sig_name == ["ECG"] and record.units == ["mV"]
        assert 2.0 * FS <= record.sig_len <= 4.0 * FS


def test_class_fractions_are_honoured_and_validated(tmp_path: Path) -> None:
    table = synthetic.synthesize_records(tmp_path, n_records=6, duration_s=(1.0, 1.0),
                                         class_fractions={"A": 0.5, "~": 0.5})
    assert sorted(table.label) == ["A"] * 3 + ["~"] * 3
    for fractions in ({"X": 1.0}, {"N": 0.5}, {"N": 1.5, "A": -0.5}):
        with pytest.raises(ConfigError):
            synthetic.synthesize_records(tmp_path, n_records=4, class_fractions=fractions)
    with pytest.raises(ConfigError):
        synthetic.synthesize_records(tmp_path, duration_s=(5.0, 1.0))
    with pytest.raises(ConfigError):
        synthetic.synthesize_beat_train(1.0, FS, "AF", np.random.default_rng(0))


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    args = dict(n_records=4, duration_s=(1.0, 2.0))
    synthetic.synthesize_records(tmp_path / "a", seed=7, **args)
    synthetic.synthesize_records(tmp_path / "b", seed=7, **args)
    synthetic.synthesize_records(tmp_path / "c", seed=8, **args)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "S00001.dat").read_bytes() != (tmp_path / "c" / "S00001.dat").read_bytes()


def test_interrupted_generation_does_not_look_complete(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "REFERENCE.csv").write_text("S00001,N\n")  # left over from an earlier run
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise OSError("disk full")

    monkeypatch.setattr(synthetic, "_write_signal", failing_write)
    with pytest.raises(OSError):
        synthetic.synthesize_records(tmp_path, n_records=5, duration_s=(1.0, 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_af_rr_is_irregular_and_sinus_rr_is_not() -> None:
    af, sinus = _traces("A", range(4)), _traces("N", range(4))
    assert min(map(_rr_cv, af)) > 0.1 > max(map(_rr_cv, sinus))
    for trace in sinus:
        assert 50 <= 60 / np.diff(trace.r_times).mean() <= 100


def test_r_times_are_the_peaks_of_the_clean_beats() -> None:
    for trace in _traces("N", range(2)) + _traces("A", range(2)):
        samples = np.round(trace.r_times * FS).astype(int)
        samples = samples[(samples > 10) & (samples < len(trace.beats) - 10)]
        windows = trace.beats[samples[:, None] + np.arange(-10, 11)]
        assert np.all(np.abs(windows.argmax(axis=1) - 10) <= 1)
        assert 0.3 < np.median(trace.beats[samples]) < 2.5  # R of about 1 mV


def test_sinus_beats_have_p_waves_and_af_beats_do_not() -> None:
    def p_wave_height(trace) -> float:
        rr = np.diff(trace.r_times)
        times = trace.r_times[1:][rr > 0.7]  # P wave clear of the preceding T wave
        samples = np.round((times - 0.17) * FS).astype(int)
        return float(np.median(trace.beats[samples[samples > 0]]))

    assert all(p_wave_height(t) > 0.03 for t in _traces("N", range(3)))
    af = [t for t in _traces("A", range(6)) if np.mean(np.diff(t.r_times)) > 0.6]
    assert all(abs(p_wave_height(t)) < 0.02 for t in af)


def test_af_has_more_4_to_9_hz_power_between_beats() -> None:
    def band_power(trace) -> float:
        freqs, power = welch(trace.signal - trace.beats, fs=FS, nperseg=1024)
        return float(power[(freqs >= 4) & (freqs <= 9)].sum())

    af, sinus = _traces("A", range(4)), _traces("N", range(4))
    assert min(map(band_power, af)) > 3 * max(map(band_power, sinus))


def test_noisy_class_buries_the_ecg() -> None:
    def noise_rms(trace) -> float:
        return float(np.std(trace.signal - trace.beats))

    assert min(map(noise_rms, _traces("~", range(3)))) > 3 * max(map(noise_rms, _traces("N", range(3))))


def test_annotated_record_round_trip(tmp_path: Path) -> None:
    fs = 360.0
    path = synthetic.synthesize_annotated_record(tmp_path, "syn1", fs=fs, seed=3,
                                                 segments=[("N", 8.0), ("AFIB", 8.0), ("N", 8.0)])
    assert path == tmp_path / "syn1"
    record = wfdb.rdrecord(str(path))
    assert record.sig_name == ["MLII", "V1"] and record.fs == fs and record.sig_len == 24 * 360
    annotation = wfdb.rdann(str(path), "atr")
    rhythm = [i for i, s in enumerate(annotation.symbol) if s == "+"]
    assert [annotation.aux_note[i] for i in rhythm] == ["(N", "(AFIB", "(N"]
    assert annotation.sample[rhythm].tolist() == [0, 8 * 360, 16 * 360]
    beats = np.array([s for i, s in enumerate(annotation.sample) if annotation.symbol[i] == "N"])
    assert set(annotation.symbol) == {"+", "N"} and 24 <= len(beats) <= 24 * 160 / 60
    assert all(annotation.aux_note[i] == "" for i in range(len(beats)) if i not in rhythm)
    inner = beats[(beats > 20) & (beats < record.sig_len - 20)]
    mlii = record.p_signal[:, 0]
    peaks = mlii[inner[:, None] + np.arange(-20, 21)].argmax(axis=1) - 20
    assert np.all(np.abs(peaks) <= 3)


def test_annotated_record_bigeminy_and_validation(tmp_path: Path) -> None:
    path = synthetic.synthesize_annotated_record(tmp_path, "big", segments=[("B", 10.0)], seed=1)
    symbols = "".join(wfdb.rdann(str(path), "atr").symbol)
    assert symbols.startswith("+NVNVNV") and "VV" not in symbols
    assert symbols.count("V") >= (len(symbols) - 1) // 2 - 1  # only the last beat escapes
    with pytest.raises(ConfigError):
        synthetic.synthesize_annotated_record(tmp_path, "bad", segments=[("VT", 5.0)])
    with pytest.raises(ConfigError):
        synthetic.synthesize_annotated_record(tmp_path, "bad name", segments=[("N", 5.0)])

"""ECG data layer: WFDB round trips through the loaders, bad input, splits, cache, annotated records."""

from pathlib import Path

import numpy as np
import pytest
import wfdb

from conftest import spiky_ecg, write_record
from ecgnet import dataset as ecg_dataset
from pipelines.config import DataConfig, PreprocessConfig, SplitConfig, TaskConfig
from ecgnet.dataset import load_ecg_samples
from pipelines.errors import DataError, RecordError
from ecgnet.preprocess import make_windows, preprocess_record, record_windows
from pipelines.splits import assign_splits, membership_table, split_samples

RAW = PreprocessConfig(fs=100, bandpass=None, normalize="none", window_s=10, stride_s=None, crop="start",
                       min_length_s=5)


def cinc_config(folder: Path, **changes) -> DataConfig:
    base = dict(source="cinc2017", path=str(folder), workers=1,
                task=TaskConfig(classes=["N", "A"], positive="A"), preprocess=RAW)
    base.update(changes)
    return DataConfig(**base)


def test_round_trip_values_shapes_labels(tiny_cinc):
    samples = load_ecg_samples(cinc_config(tiny_cinc))
    assert samples.x.shape == (24, 1000) and samples.x.dtype == np.float32
    raw = wfdb.rdrecord(str(tiny_cinc / "T0003")).p_signal[:1000, 0]
    row = np.flatnonzero(samples.record == "T0003")[0]
    np.testing.assert_allclose(samples.x[row], raw, atol=1e-6)
    labels = dict(zip(samples.record, samples.y))
    assert labels["T0000"] == 0 and labels["T0001"] == 1
    assert samples.classes == ["N", "A"] and samples.fs == 100


def test_sliding_windows_and_resampling(tiny_cinc):
    pre = PreprocessConfig(fs=50, bandpass=[0.5, 20], window_s=4, stride_s=2, min_length_s=5)
    samples = load_ecg_samples(cinc_config(tiny_cinc, preprocess=pre))
    assert samples.x.shape[1] == 200
    # a 12 s record at 50 Hz = 600 samples -> windows start at 0, 100, ..., 400 -> 5 windows
    assert (samples.record == "T0000").sum() == 5
    assert list(samples.window[samples.record == "T0000"]) == [0, 1, 2, 3, 4]
    first = samples.x[samples.record == "T0000"]
    assert abs(float(first.mean())) < 0.3  # z-scored per record


def test_record_windows_hold_each_sample_once_and_copy_out_the_windows():
    pre = PreprocessConfig(fs=50, bandpass=None, normalize="none", window_s=4, stride_s=1)
    x = np.sin(np.arange(1000) / 7.0)
    held = record_windows(x, 50, pre)
    windows = held.array()
    assert windows.dtype == np.float32 and windows.shape == (len(held), 200) == (17, 200)
    np.testing.assert_array_equal(windows, make_windows(x.astype(np.float32), 200, 50))
    np.testing.assert_array_equal(windows, preprocess_record(x, 50, pre))
    assert held.signal.nbytes * 3 < windows.nbytes   # what a worker process sends back


def test_make_windows_pad_and_drop():
    assert make_windows(np.ones(5), 8, None, pad="zero").tolist() == [[1, 1, 1, 1, 1, 0, 0, 0]]
    assert make_windows(np.arange(10.0), 4, 3).tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert make_windows(np.arange(10.0), 4, None, crop="center").tolist() == [[3, 4, 5, 6]]
    with pytest.raises(Exception, match="shorter than the 8-sample window"):
        make_windows(np.ones(5), 8, None, pad="drop")


def test_label_map_excludes_and_unknown_labels_are_skipped(tiny_cinc):
    ref = (tiny_cinc / "REFERENCE.csv").read_text().splitlines()
    ref[2] = "T0002,O"
    ref[4] = "T0004,Z"
    (tiny_cinc / "REFERENCE.csv").write_text("\n".join(ref) + "\n")
    samples = load_ecg_samples(cinc_config(tiny_cinc))
    assert samples.excluded == {"O": 1}
    assert {"record": "T0004", "reason": "unknown label 'Z' (task knows ['A', 'N'])"} in samples.skipped
    assert "T0002" not in samples.record and "T0004" not in samples.record


def break_records(folder: Path) -> dict[str, str]:
    """Damage records in every way the loaders must survive; returns record -> expected reason part."""
    rng = np.random.default_rng(1)
    write_record(folder, "NAN1", np.where(np.arange(1200) == 7, np.nan, spiky_ecg(12, 100, 0.8, rng)))
    write_record(folder, "FLAT", np.zeros(1200))
    write_record(folder, "SHRT", spiky_ecg(3, 100, 0.8, rng))
    write_record(folder, "TRNC", spiky_ecg(12, 100, 0.8, rng))
    data = folder / "TRNC.dat"
    data.write_bytes(data.read_bytes()[:1001])
    write_record(folder, "MISS", spiky_ecg(12, 100, 0.8, rng))
    (folder / "MISS.dat").unlink()
    write_record(folder, "LONG", spiky_ecg(12, 100, 0.8, rng))
    header = (folder / "LONG.hea").read_text().replace(" 100 1200", " 100 1500", 1)
    (folder / "LONG.hea").write_text(header)
    rows = ["NAN1,N", "FLAT,N", "SHRT,A", "TRNC,N", "MISS,A", "LONG,N", "NOHEA,N", "T0000,N"]
    with open(folder / "REFERENCE.csv", "a") as handle:
        handle.write("\n".join(rows) + "\n")
    return {"NAN1": "NaN", "FLAT": "flat line", "SHRT": "shorter than min_length_s", "TRNC": "",
            "MISS": "unreadable signal file", "LONG": "", "NOHEA": "missing header file",
            "T0000": "duplicate record id"}


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_records_are_skipped_with_reasons(tiny_cinc, workers):
    expected = break_records(tiny_cinc)
    samples = load_ecg_samples(cinc_config(tiny_cinc, workers=workers), use_cache=False)
    reasons = {s["record"]: s["reason"] for s in samples.skipped}
    assert set(reasons) == set(expected)
    for record, part in expected.items():
        assert part in reasons[record], (record, reasons[record])
    assert len(np.unique(samples.record)) == 24  # every good record kept, the duplicate only once


def test_parallel_preprocessing_equals_one_process(tiny_cinc, monkeypatch):
    monkeypatch.setattr(ecg_dataset, "CHUNK", 3)   # 8 chunks: the pool and this process share them
    progress: list[tuple[int, int]] = []
    one = load_ecg_samples(cinc_config(tiny_cinc, workers=1), use_cache=False)
    two = load_ecg_samples(cinc_config(tiny_cinc, workers=2), use_cache=False,
                           progress=lambda done, total: progress.append((done, total)))
    np.testing.assert_array_equal(two.x, one.x)
    np.testing.assert_array_equal(two.record, one.record)
    np.testing.assert_array_equal(two.y, one.y)
    done = [d for d, _ in progress]
    assert done == sorted(set(done)) and progress[-1] == (24, 24)


def test_no_usable_records_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "REFERENCE.csv").write_text("X1,N\n")
    with pytest.raises(DataError, match="no usable records"):
        load_ecg_samples(cinc_config(tmp_path / "empty"))


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        load_ecg_samples(cinc_config(tmp_path / "nowhere"))


def test_cache_hit_skips_listing_and_decoding(tiny_cinc, monkeypatch):
    config = cinc_config(tiny_cinc)
    first = load_ecg_samples(config)
    monkeypatch.setattr(ecg_dataset, "_build_samples", lambda *a: pytest.fail("decoded again"))
    monkeypatch.setattr(ecg_dataset, "list_records", lambda *a: pytest.fail("listed again"))
    second = load_ecg_samples(config)
    np.testing.assert_array_equal(first.x, second.x)
    assert list(first.record) == list(second.record)
    changed = cinc_config(tiny_cinc, preprocess=PreprocessConfig(fs=100, window_s=5))
    monkeypatch.undo()
    assert load_ecg_samples(changed).x.shape[1] == 500  # a new config is a cache miss


def test_generic_wfdb_labels_with_patients_keep_groups_together(tiny_cinc):
    rows = ["record,label,patient"] + [f"T{i:04d},{'N' if i % 2 == 0 else 'A'},P{i // 4}" for i in range(24)]
    (tiny_cinc / "labels.csv").write_text("\n".join(rows) + "\n")
    pre = PreprocessConfig(fs=100, window_s=4, stride_s=4)
    split = SplitConfig(val=0.2, test=0.2, seed=3, group_by="patient")
    config = cinc_config(tiny_cinc, source="wfdb", labels=str(tiny_cinc / "labels.csv"), preprocess=pre, split=split)
    samples = load_ecg_samples(config)
    assert set(np.unique(samples.group)) == {f"P{i}" for i in range(6)}
    assignment = assign_splits(samples, split)
    seen = [set(v) for v in assignment.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    table = membership_table(samples, assignment)
    assert table.groupby("group")["split"].nunique().max() == 1


def test_splits_are_grouped_stratified_and_seeded(tiny_cinc):
    pre = PreprocessConfig(fs=100, window_s=4, stride_s=2)
    samples = load_ecg_samples(cinc_config(tiny_cinc, preprocess=pre))
    cfg = SplitConfig(val=0.25, test=0.25, seed=7)
    parts = split_samples(samples, assign_splits(samples, cfg))
    records = [set(p.record) for p in parts.values()]
    assert sum(len(r) for r in records) == 24 and len(set.union(*records)) == 24
    for part in parts.values():
        assert set(part.class_counts("record").values()) == {len(set(part.record)) // 2}
    again = assign_splits(samples, cfg)
    assert all((again[k] == v).all() for k, v in assign_splits(samples, cfg).items())
    other = assign_splits(samples, SplitConfig(val=0.25, test=0.25, seed=8))
    assert any(set(other[k]) != set(again[k]) for k in again)


def test_kfold_test_folds_partition_the_groups(tiny_cinc):
    samples = load_ecg_samples(cinc_config(tiny_cinc))
    tests = [set(assign_splits(samples, SplitConfig(kfold=4, fold=f, val=0.2))["test"]) for f in range(4)]
    assert sum(len(t) for t in tests) == 24 and len(set.union(*tests)) == 24


def test_annotated_record_windows_take_rhythm_labels(tmp_path):
    fs, rng = 100, np.random.default_rng(2)
    sig = np.concatenate([spiky_ecg(40, fs, 0.8, rng), spiky_ecg(40, fs, 0.5, rng, jitter=0.3)])
    folder = tmp_path / "mit"
    folder.mkdir()
    wfdb.wrsamp("R1", fs=fs, units=["mV", "mV"], sig_name=["MLII", "V1"],
                p_signal=np.stack([sig, sig * 0.5], 1), fmt=["16", "16"], adc_gain=[200, 200],
                baseline=[0, 0], write_dir=str(folder))
    wfdb.wrann("R1", "atr", np.array([0, 4000]), symbol=["+", "+"], aux_note=["(N", "(AFIB"],
               write_dir=str(folder))
    data = DataConfig(source="annotated", path=str(folder), workers=1,
                      task=TaskConfig(classes=["N", "A"]),
                      preprocess=PreprocessConfig(fs=fs, window_s=10, stride_s=5, min_length_s=5))
    samples = load_ecg_samples(data)
    # windows start every 5 s: 0..30 s pure N (7), 35 s mixed (dropped), 40..70 s pure AF (7)
    assert list(samples.y) == [0] * 7 + [1] * 7
    assert samples.excluded == {"mixed rhythm window": 1}
    assert set(samples.record) == {"R1"}


def test_preprocess_rejects_nan_and_flat():
    with pytest.raises(Exception, match="NaN"):
        preprocess_record(np.array([0.0, np.nan] * 500), 100, RAW)
    with pytest.raises(Exception, match="flat line"):
        preprocess_record(np.zeros(1000), 100, RAW)


def test_physionet_download_offline_says_what_to_fetch(tmp_path, monkeypatch):
    from ecgnet import sources as ecg_sources

    def offline(*args, **kwargs):
        raise ConnectionError("Max retries exceeded (simulated: no network in tests)")

    monkeypatch.setattr(ecg_sources.wfdb, "dl_database", offline)
    with pytest.raises(DataError, match=r"could not download PhysioNet database 'mitdb'.*"
                                        r"physionet.org/content/mitdb/.*unpack.*" + str(tmp_path / "mit")):
        ecg_sources.download_physionet("mitdb", tmp_path / "mit")


def _write_cinc_mat(folder: Path, name: str, digital: np.ndarray, mat_cols: int | None = None) -> None:
    """A record in CinC 2017's layout: MATLAB v4 int16 matrix ``val`` (1 × n) behind a ``16+24`` header."""
    import struct

    n = len(digital)
    head = struct.pack("<5i", 30, 1, mat_cols or n, 0, 4) + b"val\x00"
    (folder / f"{name}.mat").write_bytes(head + digital.astype("<i2").tobytes())
    (folder / f"{name}.hea").write_text(f"{name} 1 300 {n} 05:05:15 1/05/2000 \n"
                                        f"{name}.mat 16+24 1000/mV 16 0 -127 0 0 ECG \n")


def _assert_same_as_wfdb(path: Path, channel: int = 0, fast: bool = True) -> None:
    from ecgnet.sources import RecordRef, read_header, read_signal

    assert (read_header(str(path)).int16_file is not None) == fast
    signal, fs = read_signal(RecordRef(path.name, str(path), None, path.name), channel)
    record = wfdb.rdrecord(str(path), channels=[channel])
    assert signal.dtype == np.float64 and fs == record.fs
    np.testing.assert_array_equal(signal, record.p_signal[:, 0])   # NaN where wfdb has NaN


def test_fast_int16_decoding_equals_wfdb(tmp_path):
    from ecgnet.synthetic import synthesize_records

    synthesize_records(tmp_path / "synth", n_records=4, fs=300, seed=3)
    for header in sorted((tmp_path / "synth").glob("*.hea")):
        _assert_same_as_wfdb(header.with_suffix(""))
    rng = np.random.default_rng(0)
    digital = rng.integers(-2000, 2000, (3000, 2))
    digital[[5, 77], 1] = -32768                                      # format 16's "no sample": NaN
    wfdb.wrsamp("two", fs=250, units=["mV", "mV"], sig_name=["I", "II"], d_signal=digital, fmt=["16", "16"],
                adc_gain=[200.0, 1000.0], baseline=[7, -3], write_dir=str(tmp_path))
    _assert_same_as_wfdb(tmp_path / "two", channel=1)
    _write_cinc_mat(tmp_path, "M0001", rng.integers(-3000, 3000, 9000))
    _assert_same_as_wfdb(tmp_path / "M0001")


def test_other_layouts_fall_back_to_wfdb(tmp_path):
    from ecgnet.sources import RecordRef, read_signal

    write_record(tmp_path, "f212", np.sin(np.arange(1000) / 7.0), fmt="212")
    _assert_same_as_wfdb(tmp_path / "f212", fast=False)
    digital = np.random.default_rng(1).integers(-3000, 3000, 900)
    _write_cinc_mat(tmp_path, "M0002", digital, mat_cols=901)         # MAT header disagrees: wfdb decides
    _assert_same_as_wfdb(tmp_path / "M0002")
    with open(tmp_path / "M0002.mat", "r+b") as handle:               # truncated payload: wfdb's error
        handle.truncate(24 + 2 * 800)
    with pytest.raises(RecordError):
        read_signal(RecordRef("M0002", str(tmp_path / "M0002"), None, "M0002"))


@pytest.mark.slow
def test_fast_decoding_equals_wfdb_on_real_cinc_records():
    from conftest import SHARED_DATA

    folder = SHARED_DATA / "ecg" / "cinc2017"
    if not (folder / "A00001.hea").is_file():
        pytest.skip(f"CinC 2017 records not found in {folder}")
    for header in sorted(folder.glob("A0*.hea"))[:200]:
        _assert_same_as_wfdb(header.with_suffix(""))


@pytest.mark.parametrize("n", [2, 7, 40, 3001])
@pytest.mark.parametrize("low", [0.5, 0.0])
def test_bandpass_equals_scipy_sosfiltfilt(n, low):
    from scipy import signal as sps

    from ecgnet.preprocess import bandpass

    x = np.random.default_rng(n).standard_normal(n)
    sos = (sps.butter(3, [low, 40], btype="bandpass", fs=300, output="sos") if low
           else sps.butter(3, 40, btype="lowpass", fs=300, output="sos"))
    expected = sps.sosfiltfilt(sos, x, padlen=min(n - 1, 3 * (2 * len(sos) + 1)))
    np.testing.assert_allclose(bandpass(x, 300, low, 40), expected, rtol=0, atol=1e-12)  # same float64 ops


def test_bandpass_filters_the_rows_of_a_matrix_as_each_row_alone():
    from ecgnet.preprocess import bandpass

    rows = np.random.default_rng(3).standard_normal((5, 700))
    together = bandpass(rows, 300, 0.5, 40)
    assert together.shape == rows.shape
    alone = np.stack([bandpass(row, 300, 0.5, 40) for row in rows])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12)   # the same float64 recursion per row

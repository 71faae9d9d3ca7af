"""Hostile and careless inputs (issue #12): each ends in one `biomed: error:` line naming the file, key or
record (exit 2), or in a skip listed with its reason, and good output survives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import spiky_ecg, write_record
from pipelines.cli import main

TINY_DATA = {"source": "synthetic", "workers": 1,
             "synthetic": {"n_records": 16, "fs": 100, "duration_s": [10, 12], "seed": 3},
             "task": {"classes": ["N", "A"], "label_map": {"O": None, "~": None}},
             "preprocess": {"fs": 50, "bandpass": [0.5, 20], "window_s": 5},
             "split": {"val": 0.25, "test": 0.25}}


def cli(capsys, *argv: str) -> tuple[int, str]:
    """Run ``biomed ARGV``; return the exit code and stderr (which must be at most one line)."""
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return code, err


def user_error(capsys, *argv: str) -> str:
    """Run ``biomed ARGV``, assert exit 2 with one ``biomed: error:`` line, return that line."""
    code, err = cli(capsys, *argv)
    assert code == 2 and err.startswith("biomed: error: "), (code, err)
    return err


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "data": TINY_DATA, "models": ["cnn"],
                                    "train": {"epochs": 1, "tensorboard": False, "verbose": 0}}))
    return path


# --- configs and run folders ------------------------------------------------------------------------

@pytest.mark.parametrize("override, key", [
    ("loader.batch_size=0", "loader.batch_size"), ("train.epochs=-3", "train.epochs"),
    ("train.learning_rate=0", "train.learning_rate"), ("train.epochs=[1", "train.epochs=[1")])
def test_bad_numbers_and_unparsable_overrides_are_refused(config_file, tmp_path, capsys, override, key):
    err = user_error(capsys, "run", str(config_file), "--out", str(tmp_path / "run"), "--set", override)
    assert key in err
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_unparsable_config_in_the_run_folder(config_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: [unclosed\n")
    err = user_error(capsys, "run", str(config_file), "--out", str(run), "--data-only")
    assert str(run / "config.yaml") in err and "not valid YAML" in err
    assert (run / "config.yaml").read_text() == "name: [unclosed\n"


def test_out_is_a_file_or_a_foreign_folder(config_file, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    err = user_error(capsys, "run", str(config_file), "--out", str(target), "--data-only")
    assert str(target) in err and "is a file" in err and target.read_text() == "mine"
    folder = tmp_path / "documents"
    folder.mkdir()
    for name in ("metrics.csv", "report.html", "splits.csv"):
        (folder / name).write_text(f"user's {name}")
    err = user_error(capsys, "run", str(config_file), "--out", str(folder), "--data-only")
    assert str(folder) in err and "not a biomed run folder" in err
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.csv", "report.html", "splits.csv"]
    assert all(p.read_text() == f"user's {p.name}" for p in folder.iterdir())


def test_run_lock_names_the_live_holder_and_replaces_a_stale_one(config_file, tmp_path, capsys):
    import socket

    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".biomed.lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                      "started": "now"}))
        err = user_error(capsys, "run", str(config_file), "--out", str(run), "--data-only")
        assert f"in use by biomed process {sleeper.pid}" in err and str(run) in err
        assert not (run / "config.yaml").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone: its lock is stale and the run goes ahead, releasing the lock at the end
    assert cli(capsys, "run", str(config_file), "--out", str(run), "--data-only")[0] == 0
    assert (run / "config.yaml").is_file() and (run / "data_summary.json").is_file()
    assert not (run / ".biomed.lock").exists()


# --- ECG data: names, labels, groups, windows --------------------------------------------------------

def cinc_run_config(tmp_path: Path, folder: Path, **data) -> Path:
    """A data-only config over a WFDB folder (100 Hz records of 12–20 s)."""
    path = tmp_path / "cinc.yaml"
    path.write_text(yaml.safe_dump({"name": "cinc", "data": {
        "source": "cinc2017", "path": str(folder), "workers": 1, "task": {"classes": ["N", "A"]},
        "preprocess": {"fs": 50, "bandpass": [0.5, 20], "window_s": 4}, **data}}))
    return path


def test_non_utf8_file_name_in_the_data_folder_does_not_lose_the_run(tiny_cinc, tmp_path, capsys):
    (tiny_cinc / os.fsdecode(b"notes-\xff.txt")).write_bytes(b"x")
    (tiny_cinc / os.fsdecode(b"R\xe9sum\xe9.hea")).write_bytes(b"junk")
    config = cinc_run_config(tmp_path, tiny_cinc)
    assert cli(capsys, "run", str(config), "--out", str(tmp_path / "run"), "--data-only")[0] == 0
    assert len(pd.read_csv(tmp_path / "run" / "splits.csv")) == 24


def test_non_utf8_labels_file_names_the_line(tiny_cinc, tmp_path, capsys):
    labels = tiny_cinc / "REFERENCE.csv"
    labels.write_bytes(labels.read_bytes().replace(b"T0003,A", b"T0003,A\xe9"))
    err = user_error(capsys, "run", str(cinc_run_config(tmp_path, tiny_cinc)), "--out", str(tmp_path / "run"))
    assert str(labels) in err and "line 4" in err and "UTF-8" in err


def test_patient_column_is_read_only_when_grouping_by_patient(tiny_cinc, tmp_path, capsys):
    labels = tiny_cinc / "labels.csv"
    rows = (tiny_cinc / "REFERENCE.csv").read_text().split()
    labels.write_text("\n".join(f"{row},same,extra" for row in rows) + "\n")  # constant third column
    config = cinc_run_config(tmp_path, tiny_cinc, labels=str(labels), source="wfdb")
    assert cli(capsys, "run", str(config), "--out", str(tmp_path / "by_record"), "--data-only")[0] == 0
    splits = pd.read_csv(tmp_path / "by_record" / "splits.csv")
    assert (splits["group"] == splits["record"]).all()  # the third column is not a patient here
    err = user_error(capsys, "run", str(config), "--out", str(tmp_path / "by_patient"), "--data-only",
                     "--set", "data.split.group_by=patient")
    assert "group_by 'patient'" in err and "only 1 distinct group" in err
    labels.write_text("\n".join(rows) + "\n")
    err = user_error(capsys, "run", str(config), "--out", str(tmp_path / "no_patients"), "--data-only",
                     "--set", "data.split.group_by=patient")
    assert str(labels) in err and "no patient" in err
    labels.write_text("record,label,site,patient\n" + "\n".join(
        f"{row},s1,P{i // 4}" for i, row in enumerate(rows)) + "\n")
    assert cli(capsys, "run", str(config), "--out", str(tmp_path / "named"), "--data-only",
               "--set", "data.split.group_by=patient")[0] == 0
    splits = pd.read_csv(tmp_path / "named" / "splits.csv")
    assert set(splits["group"]) == {f"P{i}" for i in range(6)}
    assert splits.groupby("group")["split"].nunique().max() == 1


@pytest.mark.parametrize("window_s", ["30", "100000"])
def test_window_longer_than_every_record_is_refused_before_decoding(tiny_cinc, tmp_path, capsys, window_s):
    config = cinc_run_config(tmp_path, tiny_cinc)
    err = user_error(capsys, "run", str(config), "--out", str(tmp_path / "run"),
                     "--set", f"data.preprocess.window_s={window_s}")
    assert "data.preprocess.window_s" in err and "longest record (T0002, 20.0 s)" in err


def test_windows_that_would_not_fit_in_memory_are_refused(tiny_cinc):
    from pipelines.config import PreprocessConfig
    from ecgnet.dataset import check_window_fits, list_records
    from pipelines.config import DataConfig
    from pipelines.errors import DataError

    listing, _, _ = list_records(DataConfig(source="cinc2017", path=str(tiny_cinc)))
    check_window_fits(listing.refs, PreprocessConfig(fs=100, window_s=10, stride_s=1))
    with pytest.raises(DataError, match="GB, more than half"):
        check_window_fits(listing.refs, PreprocessConfig(fs=2e7, window_s=10, stride_s=1e-7, bandpass=None))


# --- the cache -----------------------------------------------------------------------------------------

def test_corrupt_cache_entries_are_detected_and_rebuilt(tiny_cinc, capfd):
    from pipelines.config import DataConfig, PreprocessConfig
    from ecgnet.dataset import load_ecg_samples

    data = DataConfig(source="cinc2017", path=str(tiny_cinc), workers=1,
                      preprocess=PreprocessConfig(fs=50, bandpass=[0.5, 20], window_s=4))
    good = load_ecg_samples(data)
    (entry,) = (Path(os.environ["BIOMED_CACHE"]) / "ecg").iterdir()
    meta = (entry / "meta.npz").read_bytes()
    (entry / "meta.npz").write_bytes(meta[: len(meta) // 2])
    capfd.readouterr()
    again = load_ecg_samples(data)
    assert "checksum mismatch of meta.npz; rebuilding it" in capfd.readouterr().err
    np.testing.assert_array_equal(again.x, good.x)
    x = np.load(entry / "x.npy")
    np.save(entry / "x.npy", np.full_like(x, np.nan))  # same size, same header
    stale = entry / ".x.abc123.npy"
    stale.write_bytes(b"half written")
    os.utime(stale, (0, 0))
    rebuilt = load_ecg_samples(data)
    assert "checksum mismatch of x.npy" in capfd.readouterr().err
    assert np.isfinite(rebuilt.x).all() and not stale.exists()
    load_ecg_samples(data)
    assert capfd.readouterr().err == ""  # a sound entry is read silently


def test_cache_checksums_cover_every_chunk_and_older_formats_rebuild(tiny_cinc, capfd, monkeypatch):
    from pipelines import cache
    from pipelines.config import DataConfig, PreprocessConfig
    from ecgnet.dataset import load_ecg_samples

    monkeypatch.setattr(cache, "CHUNK_BYTES", 4096)        # many chunks even for the tiny fixture
    data = DataConfig(source="cinc2017", path=str(tiny_cinc), workers=1,
                      preprocess=PreprocessConfig(fs=50, bandpass=[0.5, 20], window_s=4))
    good = load_ecg_samples(data)
    (entry,) = (Path(os.environ["BIOMED_CACHE"]) / "ecg").iterdir()
    digests = json.loads((entry / "checksums.json").read_text())["sha256"]["x.npy"]
    assert len(digests) == -(-(entry / "x.npy").stat().st_size // 4096) > 2
    raw = bytearray((entry / "x.npy").read_bytes())
    raw[len(raw) // 2] ^= 0xFF                              # one flipped byte in a middle chunk
    (entry / "x.npy").write_bytes(bytes(raw))
    capfd.readouterr()
    again = load_ecg_samples(data)
    assert "checksum mismatch of x.npy" in capfd.readouterr().err
    np.testing.assert_array_equal(again.x, good.x)
    assert again.x.flags.writeable                          # the cached array is the caller's to change
    (entry / "checksums.json").write_text(json.dumps({"x.npy": "0" * 64, "meta.npz": "0" * 64}))
    load_ecg_samples(data)                                  # an older release's single-digest format
    assert "checksums.json of another format; rebuilding it" in capfd.readouterr().err


# --- predict: model cards, untrusted models, exit codes --------------------------------------------------

@pytest.fixture(scope="module")
def ecg_export(tmp_path_factory) -> Path:
    """An export folder: an untrained 2-class cnn on 5 s windows at 50 Hz, its card, and 3 good records."""
    from pipelines.config import DataConfig, ExperimentConfig, PreprocessConfig, TaskConfig
    from pipelines.model_card import build_card, write_card
    from pipelines.modeling import get_model

    folder = tmp_path_factory.mktemp("export")
    get_model("cnn").build((250, 1), 2, fs=50.0, filters=4, depth=2).save(folder / "model.keras")
    config = ExperimentConfig(name="t", data=DataConfig(
        task=TaskConfig(classes=["N", "A"], positive="A"),
        preprocess=PreprocessConfig(fs=50, bandpass=[0.5, 20], window_s=5)))
    write_card(folder, build_card(model_format="keras", model_file="model.keras", input_name="ecg",
                                  input_shape=[None, 250, 1], output_name="probs", n_outputs=2, config=config,
                                  source_file=folder / "model.keras", threshold=0.5))
    rng = np.random.default_rng(1)
    for i in range(3):
        write_record(folder.parent / "records", f"G{i}", spiky_ecg(12, 100, 0.8, rng))
    return folder


def edited_export(ecg_export: Path, tmp_path: Path, **changes) -> Path:
    """A copy of the export whose card has ``changes`` applied (dotted keys reach into sections)."""
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(ecg_export, folder)
    card = json.loads((folder / "model_card.json").read_text())
    for key, value in changes.items():
        node, *path = key.split("__")
        target = card
        for part in [node, *path][:-1]:
            target = target[part]
        target[[node, *path][-1]] = value
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("changes, expected", [
    ({"preprocess__fs": -1}, "fs and window_s must be positive"),
    ({"preprocess__window_s": 1e9}, "preprocess.window_s: expected a window of at most"),
    ({"preprocess__window_s": 4}, "the model's input length"),
    ({"classes": ["N", "A", "O"]}, "classes: expected 2 distinct class names"),
    ({"threshold": "0.5"}, "threshold: expected null or a number in [0, 1]"),
    ({"positive_class": "X"}, "positive_class: expected null or one of"),
    ({"class_weights": [1.0, 0.0]}, "class_weights: expected null or 2 positive numbers"),
    ({"class_weights": [1.0]}, "class_weights: expected null or 2 positive numbers"),
    ({"modality": "image"}, "modality: expected the model's modality"),
    ({"model_file": "../../model.keras"}, "leads outside the export folder"),
    ({"model_file": "/etc/passwd"}, "leads outside the export folder"),
])
def test_a_bad_model_card_fails_once_before_scoring(ecg_export, tmp_path, capsys, changes, expected):
    folder = edited_export(ecg_export, tmp_path, **changes)
    out = tmp_path / "p.csv"
    err = user_error(capsys, "predict", str(folder), str(ecg_export.parent / "records"), "--out", str(out))
    assert expected in err and str(folder / "model_card.json") in err
    assert not out.exists()


def test_card_class_weights_decide_without_a_threshold(ecg_export, tmp_path):
    folder = edited_export(ecg_export, tmp_path, threshold=None, positive_class=None, class_weights=[1.0, 1e6])
    out = tmp_path / "p.csv"
    assert main(["predict", str(folder), str(ecg_export.parent / "records"), "--out", str(out)]) == 0
    scored = pd.read_csv(out)
    assert len(scored) == 3 and (scored["predicted"] == "A").all()   # A's weight outvotes any probability


def test_nothing_scored_is_an_error_and_every_input_is_listed(ecg_export, tmp_path, capsys):
    empty, junk = tmp_path / "empty", tmp_path / "junk"
    empty.mkdir()
    junk.mkdir()
    for i in range(50):
        (junk / f"file{i}.bin").write_bytes(os.urandom(64))
    out = tmp_path / "p.csv"
    err = user_error(capsys, "predict", str(ecg_export), str(empty), str(junk), str(tmp_path / "nope"),
                     "--out", str(out))
    assert "no input scored: 3 skipped" in err
    skipped = pd.read_csv(tmp_path / "p_skipped.csv").set_index("record")
    assert set(skipped.index) == {"empty", "junk", "nope"}
    assert "no WFDB records (.hea) among its 50 entries" in skipped.loc["junk", "reason"]


def test_a_non_utf8_record_name_loses_no_good_result(ecg_export, tmp_path, capsys):
    import shutil

    records = tmp_path / "records"
    shutil.copytree(ecg_export.parent / "records", records)
    os.rename(records / "G2.hea", records / os.fsdecode(b"G\xff.hea"))
    out = tmp_path / "p.csv"
    assert cli(capsys, "predict", str(ecg_export), str(records), "--out", str(out))[0] == 0
    scored = pd.read_csv(out)
    assert sorted(scored["record"]) == ["G0", "G1"] and scored["prob_A"].between(0, 1).all()
    skipped = pd.read_csv(tmp_path / "p_skipped.csv")
    assert list(skipped["record"]) == ["G\ufffd"] and "not valid UTF-8" in skipped["reason"][0]


def test_savedmodel_needs_an_explicit_flag(ecg_export, tmp_path, capsys):
    assert cli(capsys, "export", str(ecg_export / "model.keras"), "--format", "savedmodel",
               "--out", str(tmp_path / "sm"))[0] == 0
    card = json.loads((tmp_path / "sm" / "model_card.json").read_text())
    card.update(json.loads((ecg_export / "model_card.json").read_text())
                | {"format": card["format"], "model_file": card["model_file"], "serving": card.get("serving")})
    (tmp_path / "sm" / "model_card.json").write_text(json.dumps(card))
    records = str(ecg_export.parent / "records")
    err = user_error(capsys, "predict", str(tmp_path / "sm"), records, "--out", str(tmp_path / "p.csv"))
    assert "is a SavedModel" in err and "--allow-savedmodel" in err and not (tmp_path / "p.csv").exists()
    assert cli(capsys, "predict", str(tmp_path / "sm"), records, "--out", str(tmp_path / "p.csv"),
               "--allow-savedmodel")[0] == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3


# --- images: a decompression bomb is refused from its header --------------------------------------------

def png_bomb(width: int, height: int) -> bytes:
    """A valid black greyscale PNG of ``width`` × ``height``: tiny on disk, huge once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(bytes(height * (width + 1)), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def test_oversized_images_are_skipped_before_decoding(tmp_path, capsys):
    import keras

    from imaging.data import _decode_files
    from pipelines.modeling import get_model

    folder = tmp_path / "images"
    folder.mkdir()
    keras.utils.save_img(folder / "good.png", np.zeros((40, 40, 3), np.uint8))
    (folder / "bomb.png").write_bytes(png_bomb(8000, 8000))
    assert (folder / "bomb.png").stat().st_size < 100_000
    x, failed = _decode_files([str(folder / "good.png"), str(folder / "bomb.png")], (16, 16), 3, None)
    assert list(failed) == [1] and "8000x8000 = 64,000,000 pixels" in failed[1] and x.shape == (2, 16, 16, 3)
    _, failed = _decode_files([str(folder / "good.png")], (16, 16), 3, None, max_pixels=1000)
    assert "data.image.max_pixels" in failed[0]

    get_model("cnn2d").build((16, 16, 3), 2, filters=4, depth=2).save(tmp_path / "img.keras")
    assert cli(capsys, "export", str(tmp_path / "img.keras"), "--out", str(tmp_path / "exp"))[0] == 0
    assert cli(capsys, "predict", str(tmp_path / "exp"), str(folder), "--out", str(tmp_path / "p.csv"))[0] == 0
    assert list(pd.read_csv(tmp_path / "p.csv")["record"]) == ["good"]
    skipped = pd.read_csv(tmp_path / "p_skipped.csv")
    assert list(skipped["record"]) == ["bomb"] and "over the limit" in skipped["reason"][0]

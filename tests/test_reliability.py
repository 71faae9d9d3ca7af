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

"""Shared fixtures: tiny WFDB datasets written with wfdb.wrsamp, and the slow-test switch."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import wfdb
import yaml

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow (real data, long)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("BIOMED_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: use --runslow or BIOMED_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder so no test reads another's cache."""
    monkeypatch.setenv("BIOMED_CACHE", str(tmp_path / "cache"))


def write_tiny_experiment(base: Path, models: list, *, duration_s: tuple[float, float] = (12, 30),
                          seed: int = 0) -> Path:
    """30 synthetic records (100 Hz) in ``base/data`` and an N-vs-A config of 5 s windows at 50 Hz.

    Returns the config file ``base/tiny.yaml`` (one seed, one epoch, no cache).
    """
    from ecgnet.synthetic import synthesize_records

    synthesize_records(base / "data", n_records=30, fs=100, duration_s=duration_s, seed=seed)
    config_file = base / "tiny.yaml"
    config_file.write_text(yaml.safe_dump({
        "name": "tiny", "seeds": [0],
        "data": {"source": "cinc2017", "path": str(base / "data"), "workers": 1, "cache": {"enabled": False},
                 "task": {"classes": ["N", "A"], "positive": "A", "label_map": {"O": None, "~": None}},
                 "preprocess": {"fs": 50, "bandpass": [0.5, 20], "window_s": 5, "stride_s": 5},
                 "split": {"val": 0.25, "test": 0.25}},
        "loader": {"batch_size": 16}, "train": {"epochs": 1, "tensorboard": False, "verbose": 0},
        "models": models}))
    return config_file


def write_record(folder: Path, name: str, signal: np.ndarray, fs: float = 100.0, fmt: str = "16") -> None:
    """Write a single-lead WFDB record (physical units, mV)."""
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"], sig_name=["ECG"], p_signal=signal.reshape(-1, 1),
                fmt=[fmt], adc_gain=[1000.0], baseline=[0], write_dir=str(folder))


def spiky_ecg(seconds: float, fs: float, rr: float, rng: np.random.Generator, jitter: float = 0.0) -> np.ndarray:
    """A crude ECG: Gaussian R spikes every ``rr`` seconds (± jitter) plus a little noise."""
    t = np.arange(int(seconds * fs)) / fs
    beats = np.cumsum(rr * (1 + jitter * rng.standard_normal(int(seconds / rr) + 2)))
    x = sum(np.exp(-((t - b) ** 2) / (2 * 0.012 ** 2)) for b in beats)
    return x + 0.02 * rng.standard_normal(len(t))


@pytest.fixture
def tiny_cinc(tmp_path) -> Path:
    """A CinC-2017-layout folder: 24 records (12 N regular, 12 A irregular), REFERENCE.csv without header."""
    folder = tmp_path / "cinc"
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        label = "N" if i % 2 == 0 else "A"
        seconds = 12 + (i % 3) * 4
        sig = spiky_ecg(seconds, 100, 0.8 if label == "N" else 0.6, rng, jitter=0.0 if label == "N" else 0.25)
        write_record(folder, f"T{i:04d}", sig)
        rows.append(f"T{i:04d},{label}")
    (folder / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
    return folder

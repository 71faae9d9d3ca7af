"""Shared fixtures: tiny WFDB datasets written with wfdb.wrsamp, and the slow-test switch."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import wfdb

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

"""Distributed ``biomed tune``: one chief and two workers as separate processes on 127.0.0.1."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from pipelines.config import load_config
from pipelines.datasets import prepare_data
from test_tuning import TINY

TIMEOUT_S = 300
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chief_and_two_workers_run_every_trial_once(tmp_path):
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    raw["tuning"].update(max_trials=4, max_epochs=1)
    config_path = tmp_path / "tiny_tune.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    prepare_data(load_config(config_path))               # fill the cache once, not in three processes
    out, port = tmp_path / "tune", str(free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    base = [sys.executable, "-m", "pipelines.cli", "tune", str(config_path), "--out", str(out),
            "--chief-address", "127.0.0.1", "--chief-port", port]
    roles = {"chief": ["--role", "chief"], "tuner1": ["--role", "worker", "--worker-id", "tuner1"],
             "tuner2": ["--role", "worker", "--worker-id", "tuner2"]}
    logs = {name: tmp_path / f"{name}.log" for name in roles}
    processes = {}
    try:
        for name, flags in roles.items():
            with open(logs[name], "w") as log:
                processes[name] = subprocess.Popen(base + flags, cwd=REPO, env=env, stdout=log,
                                                   stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT_S
        for name, process in processes.items():
            assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, logs[name].read_text()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    trials = pd.read_csv(out / "trials.csv", dtype={"trial": str})
    assert len(trials) == 4 and set(trials["status"]) == {"COMPLETED"}
    ran = [trial for name in ("tuner1", "tuner2")
           for trial in re.findall(r"^trial (\d+) COMPLETED", logs[name].read_text(), re.MULTILINE)]
    assert sorted(ran) == sorted(trials["trial"])       # every trial ran exactly once, on a worker
    assert (out / "best_config.yaml").is_file() and (out / "metrics.csv").is_file()

"""Local multi-worker clusters for tests and benchmarks: N processes on 127.0.0.1, each with its TF_CONFIG."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence


def local_tf_configs(n_workers: int, host: str = "127.0.0.1") -> list[str]:
    """``TF_CONFIG`` values for ``n_workers`` workers on free ports of ``host`` (worker 0 is the chief)."""
    workers = [f"{host}:{_free_port(host)}" for _ in range(n_workers)]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
            for i in range(n_workers)]


@dataclass
class WorkerRun:
    """What one local worker process did: its exit code and its output (stdout and stderr)."""

    returncode: int
    output: str


def run_local_workers(command: Sequence[str], n_workers: int, *, timeout_s: float,
                      env: dict[str, str] | None = None) -> list[WorkerRun]:
    """Run ``command`` as ``n_workers`` processes of one local cluster, each with its ``TF_CONFIG``.

    For tests and benchmarks on one machine; real clusters start one process
    per host with TF_CONFIG naming the hosts. Every process is killed when the
    timeout passes or on any error, so a stuck collective can never hang the caller.

    Args:
        command: The program and its arguments (run once per worker).
        n_workers: Number of workers (ports are picked on 127.0.0.1).
        timeout_s: Wall-clock limit for all workers together.
        env: Extra environment variables for the workers.

    Returns:
        One :class:`WorkerRun` per worker, in task order.

    Raises:
        TimeoutError: If the workers have not all finished in time (their output is in the message).
    """
    procs, logs = [], []
    try:
        for config in local_tf_configs(n_workers):
            output = tempfile.TemporaryFile(mode="w+")
            logs.append(output)
            procs.append(subprocess.Popen(list(command), stdout=output, stderr=subprocess.STDOUT,
                                          env={**os.environ, **(env or {}), "TF_CONFIG": config}))
        deadline = time.monotonic() + timeout_s
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        timed_out = any(p.poll() is None for p in procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outputs = []
    for output in logs:
        output.seek(0)
        outputs.append(output.read())
        output.close()
    if timed_out:
        tails = "\n".join(f"--- worker {i} ---\n{out[-3000:]}" for i, out in enumerate(outputs))
        raise TimeoutError(f"local workers did not finish within {timeout_s:g} s\n{tails}")
    return [WorkerRun(proc.returncode, out) for proc, out in zip(procs, outputs)]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]

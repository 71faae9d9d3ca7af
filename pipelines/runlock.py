"""Run folders: refuse folders that are not biomed run folders, and one writer at a time (a lock file).

The lock is ``RUN_DIR/.biomed.lock``, JSON with the holder's PID, host and start time. It is
created atomically (written beside, then hard-linked into place, which fails when a lock
exists). A lock left by a process that no longer exists on this host is stale and replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from pipelines.errors import BiomedError

LOCK_NAME = ".biomed.lock"
RUN_MARKER = "config.yaml"


def check_run_folder(run_dir: Path, owned: tuple[str, ...] = ()) -> None:
    """Refuse ``run_dir`` when it is a file, or a non-empty folder without a biomed ``config.yaml``.

    ``owned`` names entries biomed itself may create before ``config.yaml`` (e.g. the search
    folder that distributed tuning workers open while the chief is starting).

    Raises:
        BiomedError: naming the folder and what was expected.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise BiomedError(f"--out {run_dir}: is a file, expected a run folder (new or from an earlier biomed run)")
    if not run_dir.is_dir() or (run_dir / RUN_MARKER).is_file():
        return
    others = [p.name for p in run_dir.iterdir() if not p.name.startswith(LOCK_NAME) and p.name not in owned]
    if others:
        raise BiomedError(f"--out {run_dir}: not empty and not a biomed run folder (no {RUN_MARKER}; holds "
                          f"{len(others)} item(s), e.g. {sorted(others)[0]!r}); choose a new or empty folder")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[Path]:
    """Hold ``run_dir``'s lock file for the duration of the block.

    Raises:
        BiomedError: another live process holds the lock (its PID and host are named).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_NAME
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    fd, tmp = tempfile.mkstemp(prefix=".biomed.lock.", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(mine, handle)
        for _ in range(2):
            try:
                os.link(tmp, lock)
                break
            except FileExistsError:
                holder = _holder(lock)
                if holder is not None and not _is_stale(holder):
                    raise BiomedError(
                        f"{run_dir} is in use by biomed process {holder.get('pid')} on host "
                        f"{holder.get('host')} (since {holder.get('started')}); wait for it to finish, or delete "
                        f"{lock} if that process is gone") from None
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
        else:
            raise BiomedError(f"{run_dir}: could not take the run lock {lock}; another run started at the same time")
    finally:
        os.unlink(tmp)
    try:
        yield lock
    finally:
        if _holder(lock) == mine:
            lock.unlink()


def _holder(lock: Path) -> dict | None:
    """The lock's content, or None when it is gone or unreadable (a crash while it was written)."""
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _is_stale(holder: dict) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

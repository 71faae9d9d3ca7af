"""On-disk cache of preprocessed sample sets, keyed by a hash of (files, config), verified by checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from pipelines.artifacts import atomic_path, write_json, write_npz
from pipelines.samples import SampleSet


def cache_root(configured: str | None = None) -> Path:
    """The cache folder: the config's ``data.cache.dir``, else $BIOMED_CACHE, else ~/.cache/biomed."""
    return Path(configured or os.environ.get("BIOMED_CACHE") or Path.home() / ".cache" / "biomed")


def fingerprint(files: Iterable[str | Path], *extra: str) -> str:
    """Hash of file names, sizes and modification times plus ``extra`` strings."""
    digest = hashlib.sha256()
    for path in sorted(str(f) for f in files):
        try:
            stat = os.stat(path)
            digest.update(os.fsencode(path) + f"|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(os.fsencode(path) + b"|missing\n")
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:24]


CHECKSUMS = "checksums.json"
STALE_TMP_S = 3600


def load_cached(folder: Path, report: Callable[[str], None] | None = None) -> SampleSet | None:
    """Return the sample set cached in ``folder``, or None when absent, incomplete or corrupt.

    The files are checked against the SHA-256 checksums written with them; a corrupt entry is
    reported (one line, default: stderr) and removed, so the caller rebuilds it.
    """
    remove_stale_temporaries(folder)
    if not (folder / CHECKSUMS).is_file():
        return None
    problem = _verify(folder)
    if problem is None:
        try:
            with np.load(folder / "meta.npz", allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                x = np.load(folder / "x.npy", allow_pickle=False)  # one plain read: no zip, no CRC
                return SampleSet(x, npz["y"], npz["record"], npz["group"], npz["window"],
                                 meta["classes"], meta["fs"], meta["skipped"], meta["excluded"],
                                 npz["train_only"] if "train_only" in npz.files else None)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
            problem = f"unreadable ({type(err).__name__})"
    (report or _to_stderr)(f"cache entry {folder} is corrupt: {problem}; rebuilding it")
    for name in (CHECKSUMS, "meta.npz", "x.npy"):
        (folder / name).unlink(missing_ok=True)
    return None


def save_cached(folder: Path, samples: SampleSet) -> None:
    """Write a sample set into the cache folder ``folder``; ``checksums.json`` is written last.

    Each file is written atomically and a reader needs the checksums, so a
    half-written cache entry is never read.
    """
    (folder / CHECKSUMS).unlink(missing_ok=True)
    meta = {"classes": samples.classes, "fs": samples.fs, "skipped": samples.skipped,
            "excluded": samples.excluded}
    with atomic_path(folder / "x.npy") as tmp:
        np.save(tmp, samples.x)
    write_npz(folder / "meta.npz", y=samples.y, record=samples.record.astype(str),
              group=samples.group.astype(str), window=samples.window, meta=np.array(json.dumps(meta)),
              **({} if samples.train_only is None else {"train_only": samples.train_only}))
    write_json(folder / CHECKSUMS, {name: _sha256(folder / name) for name in ("x.npy", "meta.npz")})


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files of interrupted writes (``.x.*.npy``, ...) older than an hour."""
    if not folder.is_dir():
        return
    now = time.time()
    for path in folder.glob(".*"):
        with contextlib.suppress(OSError):
            if path.is_file() and now - path.stat().st_mtime > STALE_TMP_S:
                path.unlink()


def _verify(folder: Path) -> str | None:
    """None when every file matches its stored checksum, else what is wrong."""
    try:
        expected = json.loads((folder / CHECKSUMS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"unreadable {CHECKSUMS}"
    for name in ("x.npy", "meta.npz"):
        if not isinstance(expected, dict) or not isinstance(expected.get(name), str):
            return f"no checksum of {name} in {CHECKSUMS}"
        if not (folder / name).is_file():
            return f"{name} is missing"
        if _sha256(folder / name) != expected[name]:
            return f"checksum mismatch of {name}"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _to_stderr(line: str) -> None:
    print(f"biomed: {line}", file=sys.stderr)

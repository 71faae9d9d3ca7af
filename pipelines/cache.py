"""On-disk cache of preprocessed sample sets, keyed by a hash of (files, config)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from pipelines.artifacts import atomic_path, write_npz
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


def load_cached(folder: Path) -> SampleSet | None:
    """Return the sample set cached in ``folder`` or None when absent or unreadable."""
    if not (folder / "meta.npz").is_file():
        return None
    try:
        with np.load(folder / "meta.npz", allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            x = np.load(folder / "x.npy", allow_pickle=False)  # one plain read: no zip, no CRC
            return SampleSet(x, npz["y"], npz["record"], npz["group"], npz["window"],
                             meta["classes"], meta["fs"], meta["skipped"], meta["excluded"])
    except (OSError, KeyError, ValueError):
        return None


def save_cached(folder: Path, samples: SampleSet) -> None:
    """Write a sample set into the cache folder ``folder``; ``meta.npz`` is written last.

    Each file is written atomically and a reader needs ``meta.npz``, so a
    half-written cache entry is never read.
    """
    meta = {"classes": samples.classes, "fs": samples.fs, "skipped": samples.skipped,
            "excluded": samples.excluded}
    with atomic_path(folder / "x.npy") as tmp:
        np.save(tmp, samples.x)
    write_npz(folder / "meta.npz", y=samples.y, record=samples.record.astype(str),
              group=samples.group.astype(str), window=samples.window, meta=np.array(json.dumps(meta)))

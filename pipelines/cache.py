"""On-disk cache of preprocessed sample sets, keyed by a hash of (files, config)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from pipelines.artifacts import write_npz
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
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{path}|missing\n".encode())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:24]


def load_cached(path: Path) -> SampleSet | None:
    """Return the cached sample set at ``path`` or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            return SampleSet(npz["x"], npz["y"], npz["record"], npz["group"], npz["window"],
                             meta["classes"], meta["fs"], meta["skipped"], meta["excluded"])
    except (OSError, KeyError, ValueError):
        return None


def save_cached(path: Path, samples: SampleSet) -> None:
    """Write a sample set to the cache atomically."""
    meta = {"classes": samples.classes, "fs": samples.fs, "skipped": samples.skipped,
            "excluded": samples.excluded}
    write_npz(path, x=samples.x, y=samples.y, record=samples.record.astype(str),
              group=samples.group.astype(str), window=samples.window, meta=np.array(json.dumps(meta)))

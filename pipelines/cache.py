"""On-disk cache of preprocessed sample sets, keyed by a hash of (files, config), verified by checksums.

Each cached file is memory-mapped (copy-on-write) and hashed in 32 MiB chunks by a few
threads (SHA-256 per chunk; ``hashlib`` releases the GIL); the returned arrays are views
of the mapping: a reload costs one hash pass over the page cache, not a read, a copy and
a hash pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import mmap
import os
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
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
FILES = ("x.npy", "meta.npz")
CHUNK_BYTES = 1 << 25      # SHA-256 per 32 MiB chunk, so a few threads hash one file
NPY_HEADER_MAX = 1 << 16   # an .npy header is shorter than this
STALE_TMP_S = 3600


def load_cached(folder: Path, report: Callable[[str], None] | None = None) -> SampleSet | None:
    """Return the sample set cached in ``folder``, or None when absent, incomplete or corrupt.

    The files are checked against the SHA-256 checksums written with them while they are read;
    a corrupt entry is reported (one line, default: stderr) and removed, so the caller rebuilds it.
    """
    remove_stale_temporaries(folder)
    if not (folder / CHECKSUMS).is_file():
        return None
    try:
        expected = _expected_digests(folder)
        meta_bytes = _read_verified(folder / "meta.npz", expected["meta.npz"])
        x_bytes = _read_verified(folder / "x.npy", expected["x.npy"])
        with np.load(io.BytesIO(meta_bytes.tobytes()), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            return SampleSet(_npy_from_buffer(x_bytes), npz["y"], npz["record"], npz["group"], npz["window"],
                             meta["classes"], meta["fs"], meta["skipped"], meta["excluded"],
                             npz["train_only"] if "train_only" in npz.files else None)
    except _CorruptEntry as err:
        problem = str(err)
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
    write_json(folder / CHECKSUMS, {"chunk_bytes": CHUNK_BYTES,
                                    "sha256": {name: _read_hashed(folder / name)[1] for name in FILES}})


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files of interrupted writes (``.x.*.npy``, ...) older than an hour."""
    if not folder.is_dir():
        return
    now = time.time()
    for path in folder.glob(".*"):
        with contextlib.suppress(OSError):
            if path.is_file() and now - path.stat().st_mtime > STALE_TMP_S:
                path.unlink()


class _CorruptEntry(Exception):
    """A cache file is missing or does not match its checksum."""


def _expected_digests(folder: Path) -> dict[str, list[str]]:
    """The chunk digests per file stored in ``checksums.json``."""
    try:
        stored = json.loads((folder / CHECKSUMS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise _CorruptEntry(f"unreadable {CHECKSUMS}") from None
    if not isinstance(stored, dict) or stored.get("chunk_bytes") != CHUNK_BYTES:
        raise _CorruptEntry(f"{CHECKSUMS} of another format")
    digests = stored.get("sha256")
    for name in FILES:
        if not isinstance(digests, dict) or not isinstance(digests.get(name), list):
            raise _CorruptEntry(f"no checksum of {name} in {CHECKSUMS}")
    return digests


def _read_verified(path: Path, expected: list[str]) -> np.ndarray:
    """The bytes of ``path`` as a uint8 array; raises :class:`_CorruptEntry` unless they match ``expected``."""
    buffer, digests = _read_hashed(path)
    if digests != expected:
        raise _CorruptEntry(f"checksum mismatch of {path.name}")
    return buffer


def _read_hashed(path: Path) -> tuple[np.ndarray, list[str]]:
    """The bytes of ``path`` as a uint8 array and the SHA-256 of each chunk, hashed by a few threads.

    The file is memory-mapped copy-on-write: its pages come straight from the page cache (no
    copy), writes to the returned array stay private to this process and never reach the file.
    """
    if not path.is_file():
        raise _CorruptEntry(f"{path.name} is missing")
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return np.empty(0, np.uint8), []
        mapped = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY)
    buffer = np.frombuffer(mapped, np.uint8)
    view = memoryview(buffer)

    def hash_chunk(start: int) -> str:
        return hashlib.sha256(view[start:start + CHUNK_BYTES]).hexdigest()

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return buffer, list(pool.map(hash_chunk, range(0, size, CHUNK_BYTES)))


def _npy_from_buffer(buffer: np.ndarray) -> np.ndarray:
    """The array of an ``.npy`` file's bytes, as a view of them (no copy)."""
    header = io.BytesIO(buffer[:NPY_HEADER_MAX].tobytes())
    version = np.lib.format.read_magic(header)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(header)
    if dtype.hasobject:
        raise ValueError("object arrays are not loaded from the cache")
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.frombuffer(buffer, dtype, count=count, offset=header.tell())
    return flat.reshape(shape, order="F" if fortran_order else "C")


def _to_stderr(line: str) -> None:
    print(f"biomed: {line}", file=sys.stderr)

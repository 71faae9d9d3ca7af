"""Turn an ECG data config into a :class:`SampleSet` of labelled windows.

Listing is cheap and serial; decoding and preprocessing run in a process pool
over all cores; the result is cached on disk keyed by the files and the config,
so a second run with the same config skips decoding. One bad record never stops
a batch: it is skipped and reported with its reason.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines import cache
from pipelines.config import AnnotatedConfig, DataConfig, PreprocessConfig, TaskConfig, config_hash
from ecgnet.sources import (Listing, RecordRef, cinc2017_labels_file, list_annotated_records,
                                   list_labelled_records, read_header, read_rhythm_intervals, read_signal,
                                   require_folder)
from pipelines.errors import DataError, RecordError
from ecgnet.preprocess import RecordWindows, clean_signal, pad_to_window, record_windows, window_starts
from ecgnet.synthetic import synthesize_records
from pipelines.samples import SampleSet

CINC_LABELS = ["N", "A", "O", "~"]
CHUNK = 48
Progress = Callable[[int, int], None]


def synthetic_folder(data: DataConfig) -> Path:
    """The folder of the built-in synthetic dataset, generated on first use."""
    folder = Path(data.path) if data.path else (
        cache.cache_root(data.cache.dir) / "synthetic" / config_hash(data.synthetic))
    if not (folder / "REFERENCE.csv").is_file():
        s = data.synthetic
        synthesize_records(folder, n_records=s.n_records, fs=s.fs, duration_s=tuple(s.duration_s),
                           class_fractions=s.class_fractions, seed=s.seed)
    return folder


def resolve_source(data: DataConfig) -> tuple[Path, Path | None]:
    """Return (data folder, labels file or None for annotated sources)."""
    if data.source == "synthetic":
        folder = synthetic_folder(data)
        return folder, Path(data.labels) if data.labels else folder / "REFERENCE.csv"
    folder = Path(data.path)
    if data.source == "cinc2017":
        return folder, Path(data.labels) if data.labels else cinc2017_labels_file(folder)
    if data.source == "wfdb":
        if not data.labels:
            raise DataError("data.labels: a labels CSV (record,label[,patient]) is required for source 'wfdb'")
        return folder, Path(data.labels)
    return folder, None


def list_records(data: DataConfig) -> tuple[Listing, Path, Path | None]:
    """List the records of the configured source (no decoding)."""
    folder, labels = resolve_source(data)
    if labels is None and data.split.group_by == "patient":
        raise DataError(f"data.split.group_by: 'patient' needs a labels file with a patient column; "
                        f"source {data.source!r} has none (use group_by: record)")
    if labels is None:
        listing = list_annotated_records(folder, data.records, data.annotated.annotator)
    else:
        listing = list_labelled_records(folder, labels, patients=data.split.group_by == "patient")
        if data.records is not None:
            wanted = set(data.records)
            listing.refs = [r for r in listing.refs if r.record in wanted]
    return listing, folder, labels


def load_ecg_samples(data: DataConfig, *, progress: Progress | None = None,
                     use_cache: bool | None = None) -> SampleSet:
    """Load, label, preprocess and window every record of ``data``; cached on disk.

    Args:
        data: the validated data config.
        progress: optional callback ``(done_records, total_records)``.
        use_cache: override ``data.cache.enabled``.

    Returns:
        The SampleSet of windows with skipped/excluded bookkeeping.
    """
    folder, labels = resolve_source(data)
    require_folder(folder)
    task = _task_with_defaults(data)
    key = cache.fingerprint(
        [e.path for e in os.scandir(folder) if e.is_file()] + ([str(labels)] if labels else []),
        config_hash({k: getattr(data, k) for k in ("source", "records", "channel", "annotated",
                                                    "preprocess")}),
        config_hash(task), data.split.group_by)
    cache_file = cache.cache_root(data.cache.dir) / "ecg" / key
    enabled = data.cache.enabled if use_cache is None else use_cache
    if enabled:
        cached = cache.load_cached(cache_file)
        if cached is not None:
            return cached
    samples = _build_samples(list_records(data)[0], data, task, progress)   # listed only when not cached
    if enabled:
        cache.save_cached(cache_file, samples)
    return samples


def _task_with_defaults(data: DataConfig) -> TaskConfig:
    task = data.task
    if task.known_labels is None and data.source in ("cinc2017", "synthetic"):
        return TaskConfig(task.classes, task.label_map, task.positive, CINC_LABELS)
    return task


def _build_samples(listing: Listing, data: DataConfig, task: TaskConfig,
                   progress: Progress | None) -> SampleSet:
    skipped = list(listing.problems)
    excluded: Counter = Counter()
    jobs: list[tuple[RecordRef, int | None]] = []
    for ref in listing.refs:
        if ref.label is None:
            jobs.append((ref, None))
            continue
        status, index = task.map_label(ref.label)
        if status == "class":
            jobs.append((ref, index))
        elif status == "excluded":
            excluded[ref.label] += 1
        else:
            skipped.append({"record": ref.record, "reason": f"unknown label {ref.label!r} (task knows "
                            f"{sorted(set(task.classes) | set(task.label_map))})"})
    check_window_fits([ref for ref, _ in jobs], data.preprocess, annotated=data.source == "annotated")
    results = _run_jobs(jobs, data, task, progress)
    kept, ys, recs, groups, wins = [], [], [], [], []
    for (ref, _), (windows, labels, reason, dropped) in zip(jobs, results):
        excluded.update(dropped)
        if reason is not None:
            skipped.append({"record": ref.record, "reason": reason})
            continue
        if len(windows) == 0:
            continue
        kept.append(windows)
        ys.append(labels)
        recs.append(np.full(len(windows), ref.record))
        groups.append(np.full(len(windows), ref.group))
        wins.append(np.arange(len(windows)))
    if not kept:
        raise DataError(f"no usable windows: {len(skipped)} records skipped "
                        f"(first: {skipped[:1]}), {dict(excluded)} excluded by the task")
    window_index = np.concatenate(wins).astype(np.int32)
    every = data.preprocess.windows_per_stride
    return SampleSet(_gather_windows(kept, data.preprocess.window_samples),
                     np.concatenate(ys).astype(np.int32), np.concatenate(recs),
                     np.concatenate(groups), window_index, list(task.classes),
                     data.preprocess.fs, skipped, dict(excluded),
                     train_only=(window_index % every != 0) if every > 1 else None)


def _gather_windows(records: list[RecordWindows], window: int) -> np.ndarray:
    """Every record's windows copied once into one float32 array ``(n, window)``."""
    out = np.empty((sum(len(r) for r in records), window), dtype=np.float32)
    start = 0
    for record in records:
        record.copy_to(out[start:start + len(record)])
        start += len(record)
    return out


def check_window_fits(refs: list[RecordRef], pre: PreprocessConfig, *, annotated: bool = False) -> None:
    """Refuse a window longer than every record, or windows that would not fit in memory.

    Record lengths come from the WFDB headers (nothing is decoded); unreadable headers are
    left to the decoding step, which skips them with their reason.

    Raises:
        DataError: naming ``data.preprocess``, the longest record and what would fit.
    """
    seconds = {}
    for ref in refs:
        try:
            header = read_header(ref.path)
        except RecordError:  # reported per record when it is decoded
            continue
        if header.sig_len and header.fs:
            seconds[ref.record] = header.sig_len / header.fs
    if not seconds:
        return
    longest = max(seconds, key=seconds.get)
    if seconds[longest] < pre.window_s:
        raise DataError(f"data.preprocess.window_s: {pre.window_s:g} s is longer than the longest record "
                        f"({longest}, {seconds[longest]:.1f} s), so every window would be padding; "
                        f"choose window_s <= {seconds[longest]:.1f}")
    window = pre.window_samples
    stride_s = pre.train_stride_s or pre.stride_s
    stride_s = stride_s if stride_s is not None else (pre.window_s if annotated else None)
    windows = 0
    for length in seconds.values():
        n = int(length * pre.fs)
        if n < window or stride_s is None:
            windows += 0 if n < window and (annotated or pre.pad == "drop") else 1
        else:
            windows += min((n - window) // max(1, int(round(stride_s * pre.fs))) + 1,
                           pre.max_windows_per_record or n)
    need, have = windows * window * 4, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have / 2:
        raise DataError(f"data.preprocess: {windows:,} windows of {window:,} samples need about {need / 1e9:.1f} GB, "
                        f"more than half of this machine's {have / 1e9:.1f} GB; use a shorter window_s, a longer "
                        f"stride_s or max_windows_per_record")


def _run_jobs(jobs: list[tuple[RecordRef, int | None]], data: DataConfig, task: TaskConfig,
              progress: Progress | None) -> list[tuple]:
    chunks = [jobs[i:i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    args = (data.channel, data.preprocess, data.annotated, task)
    workers = data.workers or os.cpu_count() or 1
    results: list[tuple] = []
    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            results.extend(_process_chunk(chunk, *args))
            if progress:
                progress(len(results), len(jobs))
        return results
    done = 0
    # This process is one of the ``workers``: it works too, so the pool has one process fewer.
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=get_context("forkserver")) as pool:
        futures = [pool.submit(_process_chunk, chunk, *args) for chunk in chunks]
        try:
            # While the workers start (each imports the package first), this process takes chunks from
            # the end of the queue: those a worker has not started yet can still be cancelled.
            own: dict[int, list[tuple]] = {}
            for i in reversed(range(len(chunks))):
                if not futures[i].cancel():
                    break
                own[i] = _process_chunk(chunks[i], *args)
                done += len(chunks[i])
                if progress:
                    progress(done, len(jobs))
            for i, future in enumerate(futures):
                results.extend(own[i] if i in own else future.result())
                if i not in own:
                    done += len(chunks[i])
                    if progress:
                        progress(done, len(jobs))
        finally:
            pool.shutdown(cancel_futures=True)  # an interrupt does not wait for the rest of the queue
    return results


def _process_chunk(chunk: list[tuple[RecordRef, int | None]], channel: int, pre: PreprocessConfig,
                   annotated: AnnotatedConfig, task: TaskConfig) -> list[tuple]:
    """Decode and preprocess records; returns (RecordWindows, labels, reason or None, excluded counts)."""
    out = []
    for ref, label in chunk:
        try:
            signal, fs = read_signal(ref, channel)
            if label is None:
                out.append(_annotated_windows(ref, signal, fs, pre, annotated, task))
            else:
                windows = record_windows(signal, fs, pre)
                out.append((windows, np.full(len(windows), label, np.int32), None, {}))
        except RecordError as err:
            out.append((None, None, str(err), {}))
        except Exception as err:  # a batch never dies on one record
            out.append((None, None, f"unexpected {type(err).__name__}: {err}", {}))
    return out


def _annotated_windows(ref: RecordRef, signal: np.ndarray, fs: float, pre: PreprocessConfig,
                       annotated: AnnotatedConfig, task: TaskConfig) -> tuple:
    """Windows of a long record labelled by the rhythm that covers them (``purity`` fraction)."""
    intervals = read_rhythm_intervals(ref, annotated.annotator, len(signal))
    window = pre.window_samples
    clean = pad_to_window(clean_signal(signal, fs, pre), window, "drop")
    scale = pre.fs / fs
    rhythm = np.full(len(clean), -1, np.int32)
    names: list[str] = []
    for start, end, aux in intervals:
        if aux not in names:
            names.append(aux)
        rhythm[int(start * scale):int(end * scale)] = names.index(aux)
    stride = window if pre.stride_s is None else max(1, int(round(pre.stride_s * pre.fs)))
    starts = window_starts(len(clean), window, stride)
    counts = np.stack([(np.lib.stride_tricks.sliding_window_view(rhythm, window)[starts] == i).sum(1)
                       for i in range(len(names))], axis=1)
    dominant, share = counts.argmax(1), counts.max(1) / window
    labels = np.full(len(starts), -1, np.int32)
    dropped: Counter = Counter()
    for i, (d, s) in enumerate(zip(dominant, share)):
        mapped = annotated.rhythm_map.get(names[d])
        status, index = task.map_label(mapped) if mapped else ("excluded", None)
        if s + 1e-9 < annotated.purity:
            dropped["mixed rhythm window"] += 1
        elif status != "class":
            dropped[f"rhythm {names[d]}"] += 1
        else:
            labels[i] = index
    keep = labels >= 0
    return RecordWindows(clean.astype(np.float32), starts[keep], window), labels[keep], None, dict(dropped)

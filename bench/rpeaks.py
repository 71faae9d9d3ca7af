"""Benchmark R-peak detectors against the MIT-BIH Arrhythmia Database beat annotations.

Every detector of ``ecgnet.rpeaks.METHODS`` (through ``detect_r_peaks``) and, for
comparison, wfdb's ``gqrs_detect`` and, when the packages are installed (they are
not dependencies of the suite), sleepecg's ``detect_heartbeats`` and neurokit2's
default detector (``ecg_clean`` + ``ecg_findpeaks``) run on lead 0 (MLII) of each
record in three settings:

- ``record_360``: the whole 30 min record at its native 360 Hz;
- ``record_300``: the whole record resampled to 300 Hz, the rate the suite uses;
- ``windows_300``: the 300 Hz record cut into consecutive 10 s windows, one
  detector call per window (how ``ecgnet.features`` uses the detector).

Reference beats are the ``.atr`` annotations with a beat symbol. A detection
matches a reference beat within ±150 ms, one to one, nearest pairs first.
References and detections in the first and last second of a record (and, for
windows, within 0.1 s of a window edge, where a QRS complex may be cut) are not
counted. Reported: sensitivity Se = TP/(TP+FN), positive predictivity
+P = TP/(TP+FP), F1, the median |detection − reference| of matched beats, and
the time of the detector calls only: wall clock (records/s) and process CPU
time (ms per record or per 10 s window), which other processes disturb less.

    python -m bench.rpeaks --data ../shared/data/ecg/mitdb --out bench/results/rpeaks.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import wfdb
from wfdb import processing

from ecgnet.rpeaks import METHODS, detect_r_peaks
from ecgnet.preprocess import resample

Detector = Callable[[np.ndarray, float], np.ndarray]

BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
TOLERANCE_S = 0.15
RECORD_EDGE_S = 1.0
WINDOW_EDGE_S = 0.1
SUITE_FS = 300.0
WINDOW_S = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ecg/mitdb"),
                        help="folder with the MIT-BIH records (.dat/.hea/.atr) and RECORDS")
    parser.add_argument("--detectors", nargs="+", default=None,
                        help="detectors to run (default: all available)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/rpeaks.json"))
    return parser.parse_args(argv)


def _gqrs(x: np.ndarray, fs: float) -> np.ndarray:
    """wfdb's GQRS detector (a Python port of PhysioNet's gqrs)."""
    return processing.gqrs_detect(x, fs=fs)


def _sleepecg(x: np.ndarray, fs: float) -> np.ndarray:
    """sleepecg's Pan–Tompkins variant (C backend)."""
    import sleepecg

    return sleepecg.detect_heartbeats(x, fs)


def _neurokit2(x: np.ndarray, fs: float) -> np.ndarray:
    """neurokit2's default cleaning and R-peak detector."""
    import neurokit2 as nk

    rate = int(round(fs))
    return nk.ecg_findpeaks(nk.ecg_clean(x, sampling_rate=rate), sampling_rate=rate)["ECG_R_Peaks"]


def available_detectors() -> dict[str, Detector]:
    """Name → detector for every detector that can run here (optional packages when installed)."""
    detectors: dict[str, Detector] = {m: partial(detect_r_peaks, method=m) for m in METHODS}
    detectors["gqrs"] = _gqrs
    for package, detector in (("sleepecg", _sleepecg), ("neurokit2", _neurokit2)):
        if importlib.util.find_spec(package) is not None:
            detectors[package] = detector
    return detectors


def load_record(path: Path) -> tuple[np.ndarray, float, np.ndarray]:
    """Lead 0 of a WFDB record, its sampling rate and the sample indices of its annotated beats."""
    record = wfdb.rdrecord(str(path), channels=[0])
    annotation = wfdb.rdann(str(path), "atr")
    beats = np.array([s for s, sym in zip(annotation.sample, annotation.symbol)
                      if sym in BEAT_SYMBOLS], dtype=np.int64)
    return record.p_signal[:, 0], float(record.fs), beats


def match_beats(found: np.ndarray, reference: np.ndarray,
                tolerance: int) -> tuple[int, int, int, np.ndarray]:
    """One-to-one matching within ``tolerance`` samples, closest pairs first.

    Returns:
        ``(tp, fp, fn, errors)`` with the absolute offsets (samples) of the matched pairs.
    """
    found, reference = np.sort(found), np.sort(reference)
    lo = np.searchsorted(reference, found - tolerance, side="left")
    hi = np.searchsorted(reference, found + tolerance, side="right")
    pairs = [(abs(int(f) - int(reference[j])), i, j)
             for i, f in enumerate(found) for j in range(lo[i], hi[i])]
    used_found, used_ref, errors = set(), set(), []
    for distance, i, j in sorted(pairs):
        if i not in used_found and j not in used_ref:
            used_found.add(i)
            used_ref.add(j)
            errors.append(distance)
    tp = len(errors)
    return tp, found.size - tp, reference.size - tp, np.asarray(errors, dtype=float)


def _inside(peaks: np.ndarray, start: float, stop: float) -> np.ndarray:
    """The peaks in ``[start, stop)``."""
    return peaks[(peaks >= start) & (peaks < stop)]


def evaluate_record(detector: Detector, x: np.ndarray, fs: float, beats: np.ndarray,
                    window_s: float | None) -> dict[str, Any]:
    """Counts, matching errors and detector time on one record (whole, or in windows)."""
    tolerance = int(round(TOLERANCE_S * fs))
    span = x.size if window_s is None else int(round(window_s * fs))
    edge = RECORD_EDGE_S * fs
    window_edge = 0.0 if window_s is None else WINDOW_EDGE_S * fs
    found, reference, seconds, cpu_seconds, calls = [], [], 0.0, 0.0, 0
    for start in range(0, x.size - span + 1, span):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        peaks = np.asarray(detector(x[start:start + span], fs), dtype=np.int64) + start
        seconds += time.perf_counter() - begin
        cpu_seconds += time.process_time() - begin_cpu
        calls += 1
        low = max(start + window_edge, edge)
        high = min(start + span - window_edge, x.size - edge)
        found.append(_inside(peaks, low, high))
        reference.append(_inside(beats, low, high))
    tp, fp, fn, errors = match_beats(np.concatenate(found), np.concatenate(reference), tolerance)
    return {"tp": tp, "fp": fp, "fn": fn, "abs_errors_ms": 1000.0 * errors / fs,
            "seconds": seconds, "cpu_seconds": cpu_seconds, "calls": calls}


def scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Sensitivity, positive predictivity and F1 from beat counts."""
    return {"se": tp / max(tp + fn, 1), "ppv": tp / max(tp + fp, 1),
            "f1": 2 * tp / max(2 * tp + fp + fn, 1)}


def run(folder: Path, detectors: dict[str, Detector]) -> list[dict[str, Any]]:
    """Per-record and pooled rows for every detector and setting."""
    names = (folder / "RECORDS").read_text().split()
    records = {name: load_record(folder / name) for name in names}
    settings = {"record_360": (None, None), "record_300": (SUITE_FS, None),
                "windows_300": (SUITE_FS, WINDOW_S)}
    rows = []
    for setting, (rate, window_s) in settings.items():
        for detector_name, detector in detectors.items():
            parts = []
            for name, (x, fs, beats) in records.items():
                if rate is not None:
                    x, beats = resample(x, fs, rate), np.round(beats * rate / fs).astype(np.int64)
                result = evaluate_record(detector, x, rate or fs, beats, window_s)
                parts.append(result)
                rows.append(_row(detector_name, setting, name, [result]))
            rows.append(_row(detector_name, setting, "pooled", parts))
            print(f"{setting:<12} {detector_name:<12} F1 {rows[-1]['f1']:.4f}", file=sys.stderr)
    return rows


def _row(detector: str, setting: str, record: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One results row from one or more record results."""
    tp, fp, fn = (sum(p[k] for p in parts) for k in ("tp", "fp", "fn"))
    seconds, calls = sum(p["seconds"] for p in parts), sum(p["calls"] for p in parts)
    cpu_seconds = sum(p["cpu_seconds"] for p in parts)
    errors = np.concatenate([p["abs_errors_ms"] for p in parts])
    row = {"detector": detector, "setting": setting, "record": record, "tp": tp, "fp": fp, "fn": fn}
    row.update({k: round(v, 5) for k, v in scores(tp, fp, fn).items()})
    row["median_abs_error_ms"] = round(float(np.median(errors)), 1) if errors.size else None
    row["detector_seconds"] = round(seconds, 3)
    row["records_per_s"] = round(len(parts) / seconds, 2)
    row["cpu_ms_per_call"] = round(1000.0 * cpu_seconds / calls, 3)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """Pooled scores and speed per detector and setting, then per-record F1, as markdown tables."""
    pooled = [r for r in rows if r["record"] == "pooled"]
    lines = ["| detector | setting | Se | +P | F1 | FN | FP | median error (ms) | records/s "
             "| CPU ms per call |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(pooled, key=lambda r: (r["setting"], -r["f1"])):
        lines.append(f"| {r['detector']} | {r['setting']} | {r['se']:.4f} | {r['ppv']:.4f} "
                     f"| {r['f1']:.4f} | {r['fn']} | {r['fp']} | {r['median_abs_error_ms']} "
                     f"| {r['records_per_s']:.2f} | {r['cpu_ms_per_call']:.2f} |")
    records = sorted({r["record"] for r in rows} - {"pooled"})
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    lines += ["", "F1 per record (windows_300):", "",
              "| detector | " + " | ".join(records) + " |",
              "| --- |" + " --- |" * len(records)]
    f1 = {(r["detector"], r["record"]): r["f1"] for r in rows if r["setting"] == "windows_300"}
    for d in detectors:
        lines.append(f"| {d} | " + " | ".join(f"{f1[d, rec]:.4f}" for rec in records) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print markdown tables and write the JSON results."""
    args = parse_args(argv)
    if not (args.data / "RECORDS").is_file():
        print(f"skipped: MIT-BIH records not found at {args.data} (pass --data)")
        return []
    detectors = available_detectors()
    if args.detectors:
        unknown = set(args.detectors) - set(detectors)
        if unknown:
            raise SystemExit(f"unknown or unavailable detectors {sorted(unknown)}; "
                             f"available: {sorted(detectors)}")
        detectors = {name: detectors[name] for name in args.detectors}
    rows = run(args.data, detectors)
    print(markdown(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"data": str(args.data), "records": sorted({r["record"] for r in rows} - {"pooled"}),
                "lead": 0, "tolerance_s": TOLERANCE_S, "record_edge_s": RECORD_EDGE_S,
                "window_s": WINDOW_S, "window_edge_s": WINDOW_EDGE_S, "suite_fs": SUITE_FS}
    args.out.write_text(json.dumps({"settings": settings, "results": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()

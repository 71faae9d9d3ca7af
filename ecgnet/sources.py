"""ECG record sources built on ``wfdb``: CinC 2017, generic WFDB + labels CSV, annotated long records.

A source lists :class:`RecordRef` entries (cheap: no signal is decoded) plus the
problems found while listing (duplicate ids, missing files); ``read_signal``
decodes one record and raises :class:`RecordError` with a readable reason when
the record is unusable.

Decoding has a fast path for the common layout (CinC 2017's ``.mat`` files, the
synthetic ``.dat`` files): a single-segment header whose signals are all format
16 in one file. The header is parsed here and the int16 payload read with numpy,
then converted to physical units exactly as ``wfdb`` does; any other layout, or
a file that does not match its header, goes through ``wfdb.rdrecord``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from pipelines.errors import DataError, RecordError


@dataclass(frozen=True)
class RecordRef:
    """One record on disk: id, WFDB base path (no extension), raw label and group (patient)."""

    record: str
    path: str
    label: str | None
    group: str


@dataclass
class Listing:
    """Records found in a folder, and the ones rejected while listing, with reasons."""

    refs: list[RecordRef]
    problems: list[dict[str, str]]


def read_labels_csv(path: str | Path, patients: bool = False) -> list[tuple[str, str, str | None]]:
    """Read ``record,label[,patient]`` rows; a header row (``record,label,...``) is detected and skipped.

    Args:
        path: the CSV file (UTF-8).
        patients: read the patient column: the column named ``patient`` in the header row, else the
            third column. Otherwise any further columns are ignored.

    Returns:
        (record, label, patient or None) tuples in file order.

    Raises:
        DataError: the file is missing or not UTF-8, a row is incomplete, or ``patients`` is set and
            a row has no patient.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels file {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte {raw[err.start]:#04x} at offset "
                        f"{err.start}); save the labels file as UTF-8") from None
    rows = [[c.strip() for c in row] for row in csv.reader(io.StringIO(text, newline="")) if row and any(row)]
    column = 2
    if rows and [c.lower() for c in rows[0][:2]] == ["record", "label"]:
        header = [c.lower() for c in rows[0]]
        column = header.index("patient") if "patient" in header else 2
        rows = rows[1:]
    out = []
    for line, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[0]:
            raise DataError(f"{path}, row {line}: expected 'record,label[,patient]', got {row}")
        patient = row[column] if patients and len(row) > column and row[column] else None
        if patients and patient is None:
            raise DataError(f"{path}, row {line} (record {row[0]}): no patient (split.group_by is 'patient'; "
                            f"expected a 'patient' column or a third column record,label,patient)")
        out.append((row[0], row[1], patient))
    return out


def require_folder(folder: str | Path) -> Path:
    """``folder`` as a Path; DataError naming it when it is not an existing directory."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    return folder


def list_labelled_records(folder: str | Path, labels_file: str | Path, patients: bool = False) -> Listing:
    """Pair a labels CSV with the WFDB headers in ``folder`` (generic and CinC 2017 layouts).

    With ``patients`` the records are grouped by the labels file's patient column, else each
    record is its own group.
    """
    folder = require_folder(folder)
    refs, problems, seen = [], [], set()
    headers = {entry.name for entry in os.scandir(folder) if entry.name.endswith(".hea") and entry.is_file()}
    for record, label, patient in read_labels_csv(labels_file, patients):
        if record in seen:
            problems.append({"record": record, "reason": f"duplicate record id in {Path(labels_file).name}"})
            continue
        seen.add(record)
        header = f"{record}.hea"
        if header not in headers and ("/" not in record or not (folder / header).is_file()):
            problems.append({"record": record, "reason": f"missing header file {record}.hea"})
            continue
        refs.append(RecordRef(record, os.path.join(folder, record), label, patient or record))
    if not refs:
        raise DataError(f"no usable records in {folder} (labels from {labels_file}); "
                        f"{len(problems)} rejected, e.g. {problems[:1]}")
    return Listing(refs, problems)


def cinc2017_labels_file(folder: str | Path) -> Path:
    """The labels file of a CinC 2017 folder: REFERENCE-v3.csv when present, else REFERENCE.csv."""
    folder = Path(folder)
    for name in ("REFERENCE-v3.csv", "REFERENCE.csv"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no REFERENCE-v3.csv or REFERENCE.csv (CinC 2017 layout expected)")


def list_annotated_records(folder: str | Path, records: list[str] | None, annotator: str) -> Listing:
    """List long records that have a ``.<annotator>`` annotation file (MIT-BIH style)."""
    folder = require_folder(folder)
    names = records or sorted(p.stem for p in folder.glob("*.hea"))
    refs, problems = [], []
    for name in names:
        if name != os.fsencode(name).decode("utf-8", "replace"):
            problems.append({"record": os.fsencode(name).decode("utf-8", "replace"),
                             "reason": "file name is not valid UTF-8 (rename the record's files)"})
        elif not (folder / f"{name}.hea").is_file():
            problems.append({"record": name, "reason": f"missing header file {name}.hea"})
        elif not (folder / f"{name}.{annotator}").is_file():
            problems.append({"record": name, "reason": f"missing annotation file {name}.{annotator}"})
        else:
            refs.append(RecordRef(name, str(folder / name), None, name))
    if not refs:
        raise DataError(f"no annotated records in {folder} (need .hea with .{annotator})")
    return Listing(refs, problems)


@dataclass(frozen=True)
class RecordHeader:
    """What decoding needs from a WFDB header.

    Attributes:
        n_sig: number of signals.
        fs: sampling rate in Hz.
        sig_len: samples per signal (None when the header omits it).
        int16_file: the one signal file when every signal is format 16 in it (the fast path), else None.
        byte_offset: where the samples start in ``int16_file``.
        gains: ADC gain per signal (digital units per physical unit).
        baselines: digital value of physical zero per signal.
    """

    n_sig: int
    fs: float
    sig_len: int | None
    int16_file: str | None = None
    byte_offset: int = 0
    gains: tuple[float, ...] = ()
    baselines: tuple[int, ...] = ()


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RECORD_LINE = re.compile(rf"^[^\s/]+ (\d+) ({_NUMBER}) (\d+)(?: .*)?$")
_SIGNAL_LINE = re.compile(rf"^(\S+) 16(?:\+(\d+))? ({_NUMBER})(?:\((-?\d+)\))?(?:/\S*)?(?: \d+ (-?\d+))?(?: .*)?$")
_MAT_INT16 = 30          # MATLAB v4 type code: little-endian, int16, numeric full matrix
_WFDB_INT16_NAN = -32768  # format 16's "no sample" value, NaN in physical units


def read_header(path: str) -> RecordHeader:
    """Parse the WFDB header ``path.hea``; plain single-segment format-16 headers are parsed here.

    Other headers (other formats, several files, samples per frame, skew, multi-segment, a missing
    gain) are read with ``wfdb.rdheader`` and have no fast path.

    Raises:
        RecordError: the header cannot be read.
    """
    try:
        with open(f"{path}.hea", encoding="ascii") as handle:
            lines = [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
        header = _parse_plain_header(lines)
    except (OSError, UnicodeDecodeError):
        header = None
    if header is not None:
        return header
    try:
        wfdb_header = wfdb.rdheader(path)
    except Exception as err:  # wfdb raises many types for broken headers
        raise RecordError(f"unreadable header: {_short(err)}") from None
    return RecordHeader(wfdb_header.n_sig, float(wfdb_header.fs), wfdb_header.sig_len)


def _parse_plain_header(lines: list[str]) -> RecordHeader | None:
    """A header whose signals are all format 16 in one file, with explicit gains; None otherwise."""
    record = _RECORD_LINE.match(" ".join(lines[0].split())) if lines else None
    if record is None:
        return None
    n_sig, fs, sig_len = int(record[1]), float(record[2]), int(record[3])
    signals = [_SIGNAL_LINE.match(" ".join(line.split())) for line in lines[1:1 + n_sig]]
    if n_sig < 1 or len(signals) != n_sig or not all(signals) or fs <= 0 or sig_len < 1:
        return None
    if len({m[1] for m in signals}) != 1 or len({m[2] for m in signals}) != 1:
        return None
    gains = tuple(float(m[3]) or 200.0 for m in signals)   # wfdb: a gain of 0 means 200
    baselines = tuple(int(m[4] if m[4] is not None else m[5] or 0) for m in signals)  # default: ADC zero
    return RecordHeader(n_sig, fs, sig_len, signals[0][1], int(signals[0][2] or 0), gains, baselines)


def _read_int16(path: str, header: RecordHeader, channel: int) -> np.ndarray | None:
    """The fast path: one channel in physical units as ``wfdb.rdrecord`` computes it, or None when
    the signal file does not match its header exactly (then wfdb decides)."""
    file = Path(path).parent / header.int16_file
    n_values = header.n_sig * header.sig_len
    try:
        with open(file, "rb") as handle:
            head = handle.read(header.byte_offset)
            data = np.fromfile(handle, dtype="<i2")
    except OSError:
        return None
    if len(data) != n_values or (file.suffix == ".mat" and not _is_mat_int16(head, header)):
        return None
    digital = data.reshape(header.sig_len, header.n_sig)[:, channel]
    signal = digital.astype(np.float64)
    np.subtract(signal, header.baselines[channel], signal)
    np.divide(signal, header.gains[channel], signal)
    signal[digital == _WFDB_INT16_NAN] = np.nan
    return signal


def _is_mat_int16(head: bytes, header: RecordHeader) -> bool:
    """Whether ``head`` is the MATLAB v4 header of an int16 matrix of n_sig rows × sig_len columns
    ending exactly where the WFDB header says the samples start."""
    if len(head) < 20:
        return False
    kind, rows, cols, imaginary, name_length = np.frombuffer(head[:20], "<i4")
    return (kind == _MAT_INT16 and rows == header.n_sig and cols == header.sig_len and imaginary == 0
            and 20 + name_length == header.byte_offset)


def read_signal(ref: RecordRef, channel: int = 0) -> tuple[np.ndarray, float]:
    """Decode one channel of a record in physical units; returns (signal, fs).

    Raises:
        RecordError: unreadable or truncated files, header/data length mismatch, missing channel.
    """
    header = read_header(ref.path)
    if channel >= header.n_sig:
        raise RecordError(f"channel {channel} requested but the record has {header.n_sig} signal(s)")
    if header.int16_file is not None:
        signal = _read_int16(ref.path, header, channel)
        if signal is not None:
            return signal, header.fs
    try:
        rec = wfdb.rdrecord(ref.path, channels=[channel])
    except Exception as err:
        raise RecordError(f"unreadable signal file: {_short(err)}") from None
    signal = rec.p_signal[:, 0] if rec.p_signal is not None else None
    if signal is None:
        raise RecordError("no physical signal in record")
    if header.sig_len and len(signal) != header.sig_len:
        raise RecordError(f"header says {header.sig_len} samples, data file has {len(signal)} (truncated?)")
    return signal, float(rec.fs)


def read_rhythm_intervals(ref: RecordRef, annotator: str, n_samples: int) -> list[tuple[int, int, str]]:
    """Rhythm intervals ``(start, end, aux)`` from rhythm-change annotations (e.g. '(AFIB')."""
    try:
        ann = wfdb.rdann(ref.path, annotator)
    except Exception as err:
        raise RecordError(f"unreadable annotation file .{annotator}: {_short(err)}") from None
    changes = [(int(s), (a or "").strip("\x00").strip()) for s, a in zip(ann.sample, ann.aux_note)
               if a and a.strip("\x00").startswith("(")]
    if not changes:
        raise RecordError(f"no rhythm annotations ('(N', '(AFIB', ...) in .{annotator}")
    bounds = [s for s, _ in changes[1:]] + [n_samples]
    return [(start, end, aux) for (start, aux), end in zip(changes, bounds) if end > start]


def download_physionet(database: str, out_dir: str | Path, records: list[str] | None = None) -> Path:
    """Download a PhysioNet database with ``wfdb.dl_database`` into ``out_dir``.

    Raises:
        DataError: when offline or the database is unknown, saying what to fetch by hand.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        wfdb.dl_database(database, dl_dir=str(out), records=records or "all", annotators="all")
    except Exception as err:
        raise DataError(
            f"could not download PhysioNet database {database!r} ({_short(err)}). Offline? Download "
            f"https://physionet.org/content/{database}/ by hand (e.g. the ZIP of the whole database) and "
            f"unpack its .hea/.dat/.mat/.atr files and label CSV into {out.resolve()}") from None
    return out


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:160]}" if text else type(err).__name__

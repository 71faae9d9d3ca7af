"""WFDB records as inputs of ``biomed predict``: found in folders, preprocessed as in training.

Records of any length are cleaned with the model card's preprocessing config by
the same ``clean_signal``/``make_windows`` code as training, but cut with
sliding windows (the card's stride, or half a window) plus one window aligned
to the end, so the whole record is scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ecgnet.preprocess import clean_signal, make_windows
from ecgnet.sources import RecordRef, read_signal
from pipelines.errors import RecordError
from pipelines.model_card import card_preprocess
from pipelines.plugins import InputReader

WFDB_SUFFIXES = (".hea", ".dat", ".mat")


def prediction_windows(signal: np.ndarray, fs: float, card: dict[str, Any]) -> np.ndarray:
    """Preprocess one record as in training and cut it into windows covering the whole record.

    The stride is the card's ``stride_s`` (half a window when training took one
    window per record); when the strides leave a tail, a last window aligned to
    the record's end is added.
    """
    pre = card_preprocess(card)
    window = pre.window_samples
    stride = max(1, int(round(pre.stride_s * pre.fs))) if pre.stride_s else max(1, window // 2)
    clean = clean_signal(signal, fs, pre)
    windows = make_windows(clean, window, stride, pad=pre.pad)
    if len(clean) > window and (len(clean) - window) % stride:
        windows = np.concatenate([windows, clean[None, -window:]])
    return windows.astype(np.float32)


def expand_records(path: Path) -> Iterator[Path]:
    """A folder expands (sorted) to its WFDB records; record paths are returned without extension.

    A folder without records is returned as given, so it is skipped with its reason.
    """
    if path.is_dir():
        yield from [p.with_suffix("") for p in sorted(path.glob("*.hea"))] or [path]
    elif path.suffix.lower() in WFDB_SUFFIXES:
        yield path.with_suffix("")
    else:
        yield path


def record_windows(path: Path, card: dict[str, Any]) -> np.ndarray:
    """The model-ready windows ``(n, T, 1)`` of the WFDB record at ``path`` (without extension).

    Raises:
        RecordError: the record cannot be read or preprocessed.
    """
    if path.is_dir():
        raise RecordError(f"folder with no WFDB records (.hea) among its {sum(1 for _ in path.iterdir())} entries")
    if not path.with_suffix(".hea").is_file():
        raise RecordError("no WFDB header (.hea) at this path")
    signal, fs = read_signal(RecordRef(path.name, str(path), None, path.name), card.get("channel", 0))
    return prediction_windows(signal, fs, card)[..., None]


ECG_INPUTS = InputReader(expand=expand_records, read=record_windows, name=lambda path: path.name)

"""The ECG data tools of the ``biomed data`` command: synthetic records, PhysioNet download, folder summaries."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ecgnet.dataset import CINC_LABELS, load_ecg_samples
from ecgnet.sources import download_physionet
from ecgnet.synthetic import synthesize_records
from pipelines.config import DataConfig, TaskConfig
from pipelines.summary import data_summary

log = logging.getLogger("biomed")


def add_synth_command(data_commands: argparse._SubParsersAction) -> None:
    """Add ``biomed data synth-ecg``."""
    synth = data_commands.add_parser("synth-ecg", help="write a synthetic ECG dataset (WFDB, CinC 2017 layout)",
                                     description="Write synthetic single-lead ECG records (N, A, O, ~) as WFDB "
                                                 "files with a REFERENCE.csv, readable like CinC 2017 data.")
    synth.add_argument("out_dir")
    synth.add_argument("--n-records", type=int, default=200)
    synth.add_argument("--fs", type=float, default=300.0, help="sampling rate in Hz")
    synth.add_argument("--min-seconds", type=float, default=10.0)
    synth.add_argument("--max-seconds", type=float, default=30.0)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_synth)


def add_download_command(data_commands: argparse._SubParsersAction) -> None:
    """Add ``biomed data download``."""
    download = data_commands.add_parser("download", help="download a PhysioNet database with wfdb",
                                        description="Download a PhysioNet database (e.g. mitdb, "
                                                    "challenge-2017/1.0.0/training) into OUT_DIR.")
    download.add_argument("database")
    download.add_argument("out_dir")
    download.set_defaults(func=_download)


def folder_summary(folder: Path, labels: str | None) -> dict[str, Any] | None:
    """The data summary of a WFDB folder (CinC 2017 layout, a labels CSV, or rhythm annotations).

    Returns:
        The summary, or None when ``folder`` holds no WFDB headers.
    """
    if not any(folder.glob("*.hea")):
        return None
    has_labels = any((folder / n).is_file() for n in ("REFERENCE-v3.csv", "REFERENCE.csv"))
    source = "cinc2017" if has_labels or labels else "annotated"
    data = DataConfig(source="wfdb" if labels else source, path=str(folder), labels=labels,
                      task=TaskConfig(classes=CINC_LABELS) if source != "annotated" else TaskConfig(
                          classes=["N", "A", "O"]))
    samples = load_ecg_samples(data)
    return data_summary(folder.name, "ecg", samples, {"all": samples})


def _synth(args: argparse.Namespace) -> None:
    table = synthesize_records(args.out_dir, n_records=args.n_records, fs=args.fs,
                               duration_s=(args.min_seconds, args.max_seconds), seed=args.seed)
    counts = table["label"].value_counts().to_dict()
    log.info(f"wrote {len(table)} WFDB records to {args.out_dir} (REFERENCE.csv): {counts}")


def _download(args: argparse.Namespace) -> None:
    log.info(f"downloaded {args.database} into {download_physionet(args.database, args.out_dir)}")

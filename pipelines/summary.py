"""The data summary of a run: counts per class and split, skipped records and reasons."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipelines.samples import SampleSet


def data_summary(name: str, modality: str, samples: SampleSet, splits: dict[str, SampleSet], *,
                 positive: str | None = None, input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Summarise a loaded and split dataset (the ``data_summary.json`` of a run)."""
    window_samples = int(samples.x.shape[1]) if samples.x.ndim == 2 else None
    return {
        "name": name,
        "modality": modality,
        "classes": list(samples.classes),
        "positive": positive,
        "fs": samples.fs,
        "window_samples": window_samples,
        "input_shape": list(input_shape or samples.x.shape[1:]),
        "records": {k: s.class_counts("record") for k, s in splits.items()},
        "windows": {k: s.class_counts("sample") for k, s in splits.items()},
        "skipped": samples.skipped,
        "skipped_reasons": dict(Counter(_reason_kind(s["reason"]) for s in samples.skipped)),
        "excluded": samples.excluded,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A short plain-text rendering of a data summary for the terminal."""
    classes = summary["classes"]
    lines = [f"data: {summary['name']} ({summary['modality']}), classes {classes}"]
    header = f"{'split':<6} " + " ".join(f"{c:>12}" for c in classes) + f" {'total':>12}"
    lines.append(header + "   (records / windows)")
    for split, counts in summary["records"].items():
        windows = summary["windows"][split]
        cells = " ".join(f"{counts[c]:>5}/{windows[c]:<6}" for c in classes)
        lines.append(f"{split:<6} {cells} {sum(counts.values()):>5}/{sum(windows.values()):<6}")
    if summary["excluded"]:
        lines.append(f"excluded by the task: {summary['excluded']}")
    if summary["skipped"]:
        lines.append(f"skipped {len(summary['skipped'])} record(s): {summary['skipped_reasons']}")
        lines.extend(f"  {s['record']}: {s['reason']}" for s in summary["skipped"][:10])
        if len(summary["skipped"]) > 10:
            lines.append(f"  ... {len(summary['skipped']) - 10} more in data_summary.json")
    return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """Group similar reasons (numbers stripped) for the counts line."""
    return "".join(ch for ch in reason.split(":")[0] if not ch.isdigit()).strip()

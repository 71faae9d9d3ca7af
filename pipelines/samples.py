"""The in-memory sample set every model trains on, for ECG windows and images alike."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SampleSet:
    """Labelled samples with their provenance.

    Attributes:
        x: inputs, ``(n, T)`` ECG windows or ``(n, H, W, C)`` images.
        y: class index per sample.
        record: id of the record (or image) each sample comes from.
        group: id of the unit that must stay within one split (record or patient).
        window: index of the window inside its record (0 for images).
        classes: class names, indexed by ``y``.
        fs: sampling rate in Hz for signals, None for images.
        skipped: unusable records, each ``{"record", "reason"}``.
        excluded: count of records per raw label dropped by the task's label map.
        train_only: per sample, True for extra training windows (denser training stride) that
            validation and test leave out; None when every sample is evaluated.
        side: named per-sample side inputs of models that take more than ``x`` (e.g. expert
            features), filled by :func:`pipelines.side_inputs.with_side_inputs`.
    """

    x: np.ndarray
    y: np.ndarray
    record: np.ndarray
    group: np.ndarray
    window: np.ndarray
    classes: list[str]
    fs: float | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    train_only: np.ndarray | None = None
    side: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> "SampleSet":
        """The samples selected by a boolean mask or index array (bookkeeping kept)."""
        return SampleSet(self.x[mask], self.y[mask], self.record[mask], self.group[mask],
                         self.window[mask], self.classes, self.fs, self.skipped, self.excluded,
                         None if self.train_only is None else self.train_only[mask],
                         {name: values[mask] for name, values in self.side.items()})

    def class_counts(self, per: str = "sample") -> dict[str, int]:
        """Count per class of samples (``per='sample'``) or of distinct records (``per='record'``)."""
        if per == "record":
            _, first = np.unique(self.record, return_index=True)
            labels = self.y[first]
        else:
            labels = self.y
        return {c: int((labels == i).sum()) for i, c in enumerate(self.classes)}

"""Load the samples of an experiment and split them: the data half of every run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np

from pipelines import plugins
from pipelines.config import DataConfig, ExperimentConfig
from pipelines.samples import SampleSet
from pipelines.splits import assign_splits, membership_table, split_samples
from pipelines.summary import data_summary


@dataclass
class PreparedData:
    """An experiment's data: all samples, their split assignment and the splits themselves."""

    samples: SampleSet
    assignment: dict[str, np.ndarray]
    splits: dict[str, SampleSet]
    modality: str

    def summary(self, name: str, positive: str | None) -> dict[str, Any]:
        """The data summary (counts per class and split, skipped and excluded records)."""
        return data_summary(name, self.modality, self.samples, self.splits, positive=positive)

    @cached_property
    def refit_splits(self) -> dict[str, SampleSet]:
        """The splits of a refit (``train.refit``): the train and val records together as training data
        (with val's training-only windows), val and test as they are. Built once per run."""
        union = np.isin(self.samples.group, np.concatenate([self.assignment["train"], self.assignment["val"]]))
        return {"train": self.samples.subset(union), "val": self.splits["val"], "test": self.splits["test"]}

    def membership(self):
        """Split membership table (record, group, label, split)."""
        return membership_table(self.samples, self.assignment)


def load_samples(data: DataConfig, progress: Callable[[int, int], None] | None = None
                 ) -> tuple[SampleSet, dict[str, np.ndarray] | None]:
    """Load the configured source with the loader its plugin registered under ``data.source``.

    Returns:
        ``(samples, official split or None)``: ECG sources give windows and no
        official split; image sources may carry one (e.g. MedMNIST's
        train/val/test arrays), used when ``data.image.official_split`` is true.
    """
    return plugins.SOURCES.get(data.source)(data, progress)


def prepare_data(config: ExperimentConfig, progress: Callable[[int, int], None] | None = None
                 ) -> PreparedData:
    """Load and split the experiment's data (grouped, stratified, seeded)."""
    samples, official = load_samples(config.data, progress)
    assignment = official if official is not None else assign_splits(samples, config.data.split)
    return PreparedData(samples, assignment, split_samples(samples, assignment), config.data.modality)

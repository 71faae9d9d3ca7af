"""The ECG plugin: what ``ecgnet`` registers with the engine (see :mod:`pipelines.plugins`).

Importing this module registers the ECG models and expert-feature baselines;
:func:`register` adds the ECG data sources, the training augmentation, the
``expert_features`` side input (the expert features of each window) with its record
context ``record_expert_features``, the inputs of ``biomed predict`` (WFDB records)
and the ``biomed data`` tools.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

import ecgnet.models  # noqa: F401  (registers the ECG models and baselines)
from ecgnet.augment import training_augmenter
from ecgnet.baselines import BASELINE_TYPES
from ecgnet.commands import add_download_command, add_synth_command, folder_summary
from ecgnet.context import RECORD_FEATURES_INPUT, record_expert_features
from ecgnet.dataset import load_ecg_samples
from ecgnet.features import expert_feature_matrix
from ecgnet.inputs import ECG_INPUTS
from ecgnet.rhythm import RR_INPUT, rr_interval_matrix
from pipelines import plugins
from pipelines.config import ECG_SOURCES, DataConfig
from pipelines.samples import SampleSet


def load_source(data: DataConfig, progress: Callable[[int, int], None] | None = None
                ) -> tuple[SampleSet, dict[str, np.ndarray] | None]:
    """The windows of an ECG source; ECG sources have no official split."""
    return load_ecg_samples(data, progress=progress), None


def register() -> None:
    """Register the ECG sources, augmentation, predict inputs, folder summaries, data commands and the
    classes of the expert baselines (trusted in their ``.skops`` exports)."""
    for source in ECG_SOURCES:
        plugins.SOURCES.add(source, load_source)
    plugins.AUGMENTERS.add("ecg", training_augmenter)
    plugins.SIDE_INPUTS.add("expert_features", expert_feature_matrix)
    plugins.SIDE_INPUTS.add(RECORD_FEATURES_INPUT, record_expert_features)
    plugins.SIDE_INPUTS.add(RR_INPUT, rr_interval_matrix)
    plugins.PREDICT_INPUTS.add("ecg", ECG_INPUTS)
    plugins.FOLDER_SUMMARIES.add("ecg", folder_summary)
    plugins.DATA_COMMANDS.add("synth-ecg", add_synth_command)
    plugins.DATA_COMMANDS.add("download", add_download_command)
    for cls in BASELINE_TYPES:
        plugins.SKOPS_TYPES.add(plugins.type_name(cls), cls)

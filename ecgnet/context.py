"""Record context: what a window's whole record looks like, as the ``record_expert_features`` side input.

A 10 s window of a 30 s CinC record sees a third of the rhythm; the four-class task
(normal, AF, other rhythm, noisy) is decided per record. Giving every window the
mean expert features of all windows of its record lets a classifier read the window
against its record (on CinC 2017 validation, four classes, the forest's challenge
score rose from 0.789 to 0.815: RESULTS.md). Training computes it over each
record's windows in the split, ``biomed predict`` over the windows it cuts from each
record.
"""

from __future__ import annotations

import numpy as np

from ecgnet.features import expert_feature_matrix

RECORD_FEATURES_INPUT = "record_expert_features"


def record_means(values: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Each row of ``values`` ``(n, d)`` replaced by the mean of the rows sharing its record id."""
    ids, index = np.unique(np.asarray(records), return_inverse=True)
    index = index.ravel()
    sums = np.zeros((len(ids), values.shape[1]), np.float64)
    np.add.at(sums, index, values)
    return (sums / np.bincount(index)[:, None])[index].astype(np.float32)


def record_expert_features(windows: np.ndarray, fs: float | None, records: np.ndarray) -> np.ndarray:
    """The mean expert features of each window's record: float32 ``(n, 41)``, rows of one record equal."""
    return record_means(expert_feature_matrix(windows, fs), records)

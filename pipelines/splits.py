"""Grouped, stratified, seeded splits: all samples of one record (or patient) stay in one split."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from pipelines.config import SplitConfig
from pipelines.errors import DataError
from pipelines.samples import SampleSet

SPLITS = ("train", "val", "test")

#: Added to the split seed to draw the training records ``train.monitor_split`` holds out (the test and
#: validation splits use the seed and the seed + 1).
MONITOR_SEED_OFFSET = 2


def group_labels(groups: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique groups and the majority label of each (ties: the rarer, higher class index)."""
    frame = pd.DataFrame({"g": groups, "y": labels})
    majority = frame.groupby("g")["y"].agg(lambda s: s.value_counts().sort_index().idxmax())
    return majority.index.to_numpy(), majority.to_numpy()


def _split_off(items: np.ndarray, labels: np.ndarray, fraction: float, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split of ``items`` into (rest, part); unstratified when a class is too small."""
    try:
        return tuple(train_test_split(items, labels, test_size=fraction, random_state=seed,
                                      stratify=labels))
    except ValueError:
        warnings.warn("too few groups per class to stratify: split not stratified", stacklevel=2)
        return tuple(train_test_split(items, labels, test_size=fraction, random_state=seed))


def assign_splits(samples: SampleSet, cfg: SplitConfig) -> dict[str, np.ndarray]:
    """Assign every group to train/val/test; returns ``{split: array of group ids}``.

    With ``cfg.kfold`` set, fold ``cfg.fold`` of a stratified k-fold over groups is
    the test split and ``cfg.val`` of the remaining groups is validation.
    """
    groups, labels = group_labels(samples.group, samples.y)
    needed = max(3, cfg.kfold or 0)
    if len(groups) < needed:
        raise DataError(f"split.group_by {cfg.group_by!r}: only {len(groups)} distinct group(s) in the data "
                        f"(e.g. {groups[0]!r}); a train/val/test split needs at least {needed}"
                        + (" (check the labels file's patient column)" if cfg.group_by == "patient" else ""))
    if cfg.kfold:
        folds = StratifiedKFold(n_splits=cfg.kfold, shuffle=True, random_state=cfg.seed)
        train_idx, test_idx = list(folds.split(groups, labels))[cfg.fold]
        rest, test, y_rest = groups[train_idx], groups[test_idx], labels[train_idx]
        val_fraction = cfg.val
    else:
        rest, test, y_rest, _ = _split_off(groups, labels, cfg.test, cfg.seed)
        val_fraction = cfg.val / (1 - cfg.test)
    train, val, _, _ = _split_off(rest, y_rest, val_fraction, cfg.seed + 1)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def split_samples(samples: SampleSet, assignment: dict[str, np.ndarray]) -> dict[str, SampleSet]:
    """Cut a sample set into its splits by group membership; only ``train`` keeps training-only windows."""
    extra = np.zeros(len(samples), bool) if samples.train_only is None else samples.train_only
    return {name: samples.subset(np.isin(samples.group, members) & ((name == "train") | ~extra))
            for name, members in assignment.items()}


def monitored_splits(splits: dict[str, SampleSet], fraction: float, split_seed: int) -> dict[str, SampleSet]:
    """The ``train`` and ``val`` sets a Keras fit uses: early stopping and LR plateaus watch ``val``.

    With ``fraction`` > 0, that share of the training records (whole groups,
    stratified, drawn with ``split_seed``) is held out of fitting and watched instead, so the
    validation split stays unseen by training and is left for choices
    (thresholds, class weights, ensembles). Held-out records keep only their
    evaluation windows (no denser training-only windows).
    """
    if not fraction:
        return {"train": splits["train"], "val": splits["val"]}
    train = splits["train"]
    groups, labels = group_labels(train.group, train.y)
    if len(groups) < 2:
        raise DataError(f"train.monitor_split {fraction}: the training split has {len(groups)} group(s); "
                        f"holding some out for monitoring needs at least 2")
    fitted, held_out, _, _ = _split_off(groups, labels, fraction, split_seed + MONITOR_SEED_OFFSET)
    extra = np.zeros(len(train), bool) if train.train_only is None else train.train_only
    return {"train": train.subset(np.isin(train.group, fitted)),
            "val": train.subset(np.isin(train.group, held_out) & ~extra)}


def membership_table(samples: SampleSet, assignment: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per record: record, group, label (class name), split — written as splits.csv."""
    split_of = {g: name for name, members in assignment.items() for g in members}
    _, first = np.unique(samples.record, return_index=True)
    first = np.sort(first)
    return pd.DataFrame({
        "record": samples.record[first],
        "group": samples.group[first],
        "label": [samples.classes[i] for i in samples.y[first]],
        "split": [split_of[g] for g in samples.group[first]],
    })

"""Typed predictions: the task (classes, positive class) and class probabilities of windows or records.

The runner builds :class:`Predictions` from a fit, writes them as
``predictions.csv`` (columns ``split, record, window, y_true, prob_<class>...``)
and metrics, report and predict read them back with :meth:`Predictions.from_frame`;
no other module knows the column names.

Example:
    >>> task = Task.of(["N", "A"], "A")
    >>> task.positive, task.binary
    (1, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PROB_PREFIX = "prob_"


def weighted_argmax(probs: np.ndarray, class_weights: np.ndarray | list[float] | None = None) -> np.ndarray:
    """The class index of each row: the argmax of ``probs`` (times ``class_weights`` when given)."""
    probs = np.asarray(probs)
    return (probs if class_weights is None else probs * np.asarray(class_weights)).argmax(axis=1)


@dataclass(frozen=True)
class Task:
    """Class names in index order and the index of the positive class (binary tasks; None otherwise)."""

    classes: tuple[str, ...]
    positive: int | None

    @classmethod
    def of(cls, classes: list[str] | tuple[str, ...], positive: str | None = None) -> Task:
        """The task of ``classes``; a binary task's positive class is ``positive`` (default: the second)."""
        classes = tuple(classes)
        if len(classes) != 2:
            return cls(classes, None)
        return cls(classes, classes.index(positive) if positive is not None else 1)

    @property
    def binary(self) -> bool:
        """Whether the task has two classes."""
        return self.positive is not None

    @property
    def prob_columns(self) -> list[str]:
        """The probability columns of a predictions table, in class order."""
        return [f"{PROB_PREFIX}{name}" for name in self.classes]


@dataclass(frozen=True)
class Predictions:
    """Class probabilities of rows (windows, or records after :meth:`by_record`).

    Attributes:
        task: the classification task.
        split: split name per row ("val", "test"), or None for new inputs.
        record: record name per row.
        window: window index per row (the number of windows after :meth:`by_record`).
        probs: probabilities, shape ``(rows, classes)``.
        y_true: true class index per row, or None for new inputs.
    """

    task: Task
    split: np.ndarray | None
    record: np.ndarray
    window: np.ndarray
    probs: np.ndarray
    y_true: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.record)

    def subset(self, split: str) -> Predictions:
        """The rows of one split."""
        keep = self.split == split
        return Predictions(self.task, self.split[keep], self.record[keep], self.window[keep], self.probs[keep],
                           None if self.y_true is None else self.y_true[keep])

    def by_record(self) -> Predictions:
        """One row per (split, record) in first-seen order: the mean of its window probabilities.

        ``window`` then holds the number of windows of each record.
        """
        frame = pd.DataFrame(self.probs, columns=self.task.prob_columns)
        frame.insert(0, "record", self.record)
        frame.insert(0, "split", self.split if self.split is not None else "")
        grouped = frame.groupby(["split", "record"], sort=False)
        first = grouped.head(1).index.to_numpy()
        return Predictions(self.task, None if self.split is None else self.split[first], self.record[first],
                           grouped.size().to_numpy(), grouped[self.task.prob_columns].mean().to_numpy(),
                           None if self.y_true is None else self.y_true[first])

    @property
    def scores(self) -> np.ndarray:
        """The positive-class probability per row (binary tasks)."""
        return self.probs[:, self.task.positive]

    @property
    def is_positive(self) -> np.ndarray:
        """1 where the true class is the positive class, else 0 (binary tasks with labels)."""
        return (self.y_true == self.task.positive).astype(int)

    def decide(self, threshold: float | None = None, class_weights: list[float] | None = None) -> np.ndarray:
        """Predicted class indices: binary tasks threshold the positive score, others take the argmax
        (of the probabilities scaled by ``class_weights`` when given)."""
        if self.task.binary and threshold is not None:
            positive = self.task.positive
            return np.where(self.scores >= threshold, positive, 1 - positive)
        return weighted_argmax(self.probs, class_weights)

    def to_frame(self) -> pd.DataFrame:
        """The ``predictions.csv`` table: split, record, window, y_true, prob_<class>..."""
        frame = pd.DataFrame({"split": self.split, "record": self.record, "window": self.window,
                              "y_true": self.y_true})
        frame[self.task.prob_columns] = self.probs
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, task: Task) -> Predictions:
        """Read a ``predictions.csv`` table back."""
        return cls(task, frame["split"].to_numpy(dtype=str), frame["record"].to_numpy(dtype=str),
                   frame["window"].to_numpy(dtype=int), frame[task.prob_columns].to_numpy(dtype=float),
                   frame["y_true"].to_numpy(dtype=int))


def read_predictions(path: str, task: Task) -> Predictions:
    """Read a ``predictions.csv`` file (record names stay strings)."""
    return Predictions.from_frame(pd.read_csv(path, dtype={"record": str}), task)

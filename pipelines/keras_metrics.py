"""Keras metrics on class labels and softmax outputs (ROC-AUC / PR-AUC for monitoring and tuning)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="biomed")
class SparseAUC(keras.metrics.AUC):
    """AUC from class labels (integers, or one-hot/soft rows) and class probabilities.

    Label rows of shape ``(batch, num_classes)`` count as their argmax class: one-hot
    labels exactly, mixed (mixup/CutMix) training labels as their dominant class.
    Binary tasks score the ``positive`` column; multi-class tasks average the
    one-vs-rest AUCs over classes (macro). ``curve='PR'`` gives PR-AUC.
    """

    def __init__(self, num_classes: int, positive: int | None = None, name: str = "auc",
                 curve: str = "ROC", **kwargs):
        self.num_classes = int(num_classes)
        self.positive = positive
        multi = positive is None and self.num_classes > 2
        super().__init__(name=name, curve=curve, multi_label=multi,
                         num_labels=self.num_classes if multi else None, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_true.shape) == 2 and y_true.shape[-1] == self.num_classes and self.num_classes > 1:
            y_true = ops.argmax(y_true, axis=-1)
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        if self.multi_label:
            return super().update_state(ops.one_hot(labels, self.num_classes), y_pred, sample_weight)
        positive = 1 if self.positive is None else self.positive
        return super().update_state(ops.cast(ops.equal(labels, positive), "float32"),
                                    y_pred[:, positive], sample_weight)

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("multi_label", "num_labels", "label_weights"):
            config.pop(key, None)
        return {**config, "num_classes": self.num_classes, "positive": self.positive}

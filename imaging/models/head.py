"""The classifier head shared by the image models: global pooling, dropout, optional dense, softmax."""

from __future__ import annotations

from keras import layers

from pipelines.errors import ConfigError
from pipelines.modeling import l1_l2

POOLINGS = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}


def classifier_head(features, n_classes: int, *, pooling: str = "avg", dropout: float = 0.2,
                    dense_units: int = 0, l1: float = 0.0, l2: float = 0.0, seed: int = 0):
    """Pool a ``(B, h, w, c)`` feature map into float32 class probabilities.

    The pooling layer is named ``pool``: Grad-CAM reads the feature map at its input.

    Raises:
        ConfigError: unknown pooling or a dropout rate outside [0, 1).
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling: expected one of {list(POOLINGS)}, got {pooling!r}")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout: expected a rate in [0, 1), got {dropout}")
    x = POOLINGS[pooling](name="pool")(features)
    if dense_units:
        x = layers.Dense(int(dense_units), activation="relu", kernel_regularizer=l1_l2(l1, l2),
                         name="dense")(x)
    if dropout:
        x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", dtype="float32", kernel_regularizer=l1_l2(l1, l2),
                        name="probabilities")(x)

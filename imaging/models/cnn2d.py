"""``cnn2d``: a small conv-BN-ReLU-pool stack trained from scratch (the deep baseline for images)."""

from __future__ import annotations

import keras
from keras import layers

from imaging.models.head import classifier_head
from pipelines.errors import ConfigError
from pipelines.modeling import l1_l2, register_model


@register_model("cnn2d", family="keras", modality="image")
def build_cnn2d(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None, seed: int = 0,
                filters: int = 16, depth: int = 3, kernel_size: int = 3, pooling: str = "avg",
                dropout: float = 0.2, l1: float = 0.0, l2: float = 0.0, dense_units: int = 0) -> keras.Model:
    """``depth`` Conv2D-BatchNorm-ReLU blocks (max-pooled between blocks, filters doubling) and a softmax head.

    Args:
        input_shape: ``(H, W, C)`` images in [0, 255] (rescaled to [0, 1] inside the model).
        n_classes: number of classes.
        fs: unused (images have no sampling rate).
        seed: seed of the head's dropout.
        filters: filters of the first block.
        depth: number of blocks (``depth - 1`` halvings of the resolution).
        kernel_size: convolution kernel size.
        pooling: ``avg`` or ``max`` global pooling.
        dropout: dropout rate before the output layer.
        l1: L1 penalty on every kernel.
        l2: L2 penalty on every kernel.
        dense_units: width of an extra ReLU layer in the head (0: none).

    Returns:
        The uncompiled model.
    """
    if depth < 1 or min(input_shape[:2]) < 2 ** (depth - 1):
        raise ConfigError(f"cnn2d: depth {depth} needs images of at least {2 ** (depth - 1)} pixels, "
                          f"got {input_shape[:2]}")
    inputs = keras.Input(tuple(input_shape), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    for block in range(depth):
        x = layers.Conv2D(filters * 2 ** block, kernel_size, padding="same", use_bias=False,
                          kernel_regularizer=l1_l2(l1, l2), name=f"conv{block}")(x)
        x = layers.BatchNormalization(name=f"bn{block}")(x)
        x = layers.ReLU(name=f"relu{block}")(x)
        if block < depth - 1:
            x = layers.MaxPooling2D(name=f"maxpool{block}")(x)
    outputs = classifier_head(x, n_classes, pooling=pooling, dropout=dropout, dense_units=dense_units,
                              l1=l1, l2=l2, seed=seed)
    return keras.Model(inputs, outputs, name="cnn2d")

"""1D convolutional baseline: Conv-BN-ReLU-MaxPool stacks, global average pooling, dense softmax."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from ecgnet.layers import conv_front_end_model
from pipelines.modeling import register_model


@register_model("cnn", family="keras", modality="ecg")
def build_cnn(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
              seed: int = 0, l1: float = 0.0, l2: float = 1e-4, dropout: float = 0.2,
              filters: int = 16, kernel_size: int = 7, depth: int = 4,
              pool_size: int = 4) -> keras.Model:
    """Build the 1D CNN baseline for a raw ``(T, 1)`` ECG window.

    Args:
        input_shape: ``(T, 1)``.
        n_classes: Number of output classes.
        fs: Sampling rate in Hz (unused: the CNN works on samples).
        seed: Random seed of the weight initialisation.
        l1: L1 strength on conv and dense kernels.
        l2: L2 strength on conv and dense kernels.
        dropout: Dropout rate before the output layer.
        filters: Filters of the first block; doubled in every further block.
        kernel_size: Convolution kernel length (samples).
        depth: Number of Conv-BN-ReLU-MaxPool blocks.
        pool_size: Downsampling factor of every block.

    Returns:
        An uncompiled functional model with output ``probs`` ``(B, n_classes)``.
    """

    def summarize(x: Any, reg: Any) -> Any:
        return layers.GlobalAveragePooling1D(name="global_pool")(x)

    return conv_front_end_model(input_shape, n_classes, name="cnn", seed=seed, l1=l1, l2=l2,
                                dropout=dropout, filters=filters, kernel_size=kernel_size,
                                depth=depth, pool_size=pool_size, summarize=summarize)

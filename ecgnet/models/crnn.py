"""CRNN: a downsampling 1D CNN front end followed by an LSTM over the remaining time steps."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from ecgnet.layers import conv_front_end_model
from pipelines.modeling import register_model


@register_model("crnn", family="keras", modality="ecg")
def build_crnn(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
               seed: int = 0, l1: float = 0.0, l2: float = 1e-4, dropout: float = 0.2,
               filters: int = 16, kernel_size: int = 7, depth: int = 3, pool_size: int = 4,
               units: int = 64) -> keras.Model:
    """Build the CRNN for a raw ``(T, 1)`` ECG window.

    Args:
        input_shape: ``(T, 1)``.
        n_classes: Number of output classes.
        fs: Sampling rate in Hz (unused).
        seed: Random seed of the weight initialisation.
        l1: L1 strength on conv, LSTM and dense kernels.
        l2: L2 strength on conv, LSTM and dense kernels.
        dropout: Dropout rate before the output layer.
        filters: Filters of the first conv block; doubled in every further block.
        kernel_size: Convolution kernel length (samples).
        depth: Number of conv blocks (the LSTM sees T / pool_size**depth steps).
        pool_size: Downsampling factor of every conv block.
        units: LSTM units.

    Returns:
        An uncompiled functional model with output ``probs`` ``(B, n_classes)``.
    """

    def summarize(x: Any, reg: Any) -> Any:
        return layers.LSTM(units, kernel_regularizer=reg, name="lstm")(x)

    return conv_front_end_model(input_shape, n_classes, name="crnn", seed=seed, l1=l1, l2=l2,
                                dropout=dropout, filters=filters, kernel_size=kernel_size,
                                depth=depth, pool_size=pool_size, summarize=summarize)

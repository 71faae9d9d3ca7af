"""Attention CRNN: 1D CNN front end, Bidirectional LSTM and attention pooling over time."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from ecgnet.layers import AttentionPooling, conv_front_end_model
from pipelines.modeling import register_model


@register_model("acrnn", family="keras", modality="ecg")
def build_acrnn(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
                seed: int = 0, l1: float = 0.0, l2: float = 1e-4, dropout: float = 0.2,
                filters: int = 16, kernel_size: int = 7, depth: int = 3, pool_size: int = 4,
                units: int = 32, attention_units: int = 32) -> keras.Model:
    """Build the attention CRNN for a raw ``(T, 1)`` ECG window.

    The attention weights over time (layer ``time_attention``, shape
    ``(B, T / pool_size**depth)``) sum to 1; read them with
    :func:`ecgnet.attention.attention_weights`.

    Args:
        input_shape: ``(T, 1)``.
        n_classes: Number of output classes.
        fs: Sampling rate in Hz (unused).
        seed: Random seed of the weight initialisation.
        l1: L1 strength on conv, LSTM, attention and dense kernels.
        l2: L2 strength on the same kernels.
        dropout: Dropout rate before the output layer.
        filters: Filters of the first conv block; doubled in every further block.
        kernel_size: Convolution kernel length (samples).
        depth: Number of conv blocks.
        pool_size: Downsampling factor of every conv block.
        units: LSTM units per direction.
        attention_units: Hidden width of the attention score.

    Returns:
        An uncompiled functional model with output ``probs`` ``(B, n_classes)``.
    """

    def summarize(x: Any, reg: Any) -> Any:
        x = layers.Bidirectional(layers.LSTM(units, return_sequences=True, kernel_regularizer=reg),
                                 name="bilstm")(x)
        return AttentionPooling(attention_units, kernel_regularizer=reg, name="time_attention")(x)[0]

    return conv_front_end_model(input_shape, n_classes, name="acrnn", seed=seed, l1=l1, l2=l2,
                                dropout=dropout, filters=filters, kernel_size=kernel_size,
                                depth=depth, pool_size=pool_size, summarize=summarize)

"""CRNN: a downsampling 1D CNN front end followed by an LSTM over the remaining time steps."""

from __future__ import annotations

import keras
from keras import layers

from ecgnet.layers import classifier_head, conv_stack
from pipelines.modeling import l1_l2, register_model


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
    keras.utils.set_random_seed(seed)
    reg = l1_l2(l1, l2)
    ecg = keras.Input(shape=input_shape, name="ecg")
    x = conv_stack(ecg, filters=filters, kernel_size=kernel_size, depth=depth,
                   pool_size=pool_size, regularizer=reg)
    x = layers.LSTM(units, kernel_regularizer=reg, name="lstm")(x)
    return keras.Model(ecg, classifier_head(x, n_classes, dropout=dropout, regularizer=reg),
                       name="crnn")

"""Deep 1D residual network in the style of Hannun et al. (Nature Medicine, 2019).

A Conv-BN-ReLU stem, then ``depth`` residual blocks of [BN-ReLU-Dropout-Conv] x 2
(the first block skips its leading BN-ReLU-Dropout, as the stem has just applied
them). Every other block, starting with the first, subsamples by 2 (strided
conv, max-pool shortcut); filters double every ``double_every`` blocks. The
network ends with BN-ReLU, global average pooling, dropout and a dense softmax.

Deviations from the paper (16 blocks, kernel 16, 32 * 2**k filters, one output
per 256 samples): the defaults are 8 blocks of 16 initial filters so it trains
on a CPU, the first block already subsamples, the output is one label per
window, and a shortcut whose channel count changes uses a 1x1 convolution
instead of zero-padding the channels.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from ecgnet.layers import classifier_head
from pipelines.modeling import l1_l2, register_model


def residual_block(x: Any, filters: int, *, kernel_size: int, stride: int, dropout: float,
                   regularizer: Any, preactivate: bool, name: str) -> Any:
    """One pre-activation residual block; ``stride`` 2 halves the time axis.

    Args:
        x: Input ``(B, T, C)``.
        filters: Output channels.
        kernel_size: Convolution kernel length.
        stride: Subsampling factor (1 or 2).
        dropout: Dropout rate inside the block.
        regularizer: Kernel regularizer of the convolutions.
        preactivate: Whether to start with BN-ReLU-Dropout.
        name: Prefix of the layer names.

    Returns:
        ``(B, T / stride, filters)``.
    """
    shortcut = x
    if stride > 1:
        shortcut = layers.MaxPooling1D(stride, padding="same", name=f"{name}_pool")(shortcut)
    if x.shape[-1] != filters:
        shortcut = layers.Conv1D(filters, 1, kernel_regularizer=regularizer,
                                 name=f"{name}_project")(shortcut)
    if preactivate:
        x = layers.BatchNormalization(name=f"{name}_bn0")(x)
        x = layers.ReLU(name=f"{name}_relu0")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout0")(x)
    x = layers.Conv1D(filters, kernel_size, strides=stride, padding="same",
                      kernel_regularizer=regularizer, name=f"{name}_conv0")(x)
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout1")(x)
    x = layers.Conv1D(filters, kernel_size, padding="same", kernel_regularizer=regularizer,
                      name=f"{name}_conv1")(x)
    return layers.Add(name=f"{name}_add")([shortcut, x])


@register_model("resnet1d", family="keras", modality="ecg")
def build_resnet1d(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
                   seed: int = 0, l1: float = 0.0, l2: float = 1e-4, dropout: float = 0.2,
                   filters: int = 16, kernel_size: int = 16, depth: int = 8,
                   double_every: int = 4) -> keras.Model:
    """Build the residual network for a raw ``(T, 1)`` ECG window.

    Args:
        input_shape: ``(T, 1)``.
        n_classes: Number of output classes.
        fs: Sampling rate in Hz (unused).
        seed: Random seed of the weight initialisation.
        l1: L1 strength on conv and dense kernels.
        l2: L2 strength on conv and dense kernels.
        dropout: Dropout rate inside the blocks and before the output layer.
        filters: Filters of the stem and the first blocks.
        kernel_size: Convolution kernel length (samples).
        depth: Number of residual blocks (the paper uses 16).
        double_every: Filters double after this many blocks.

    Returns:
        An uncompiled functional model with output ``probs`` ``(B, n_classes)``.
    """
    keras.utils.set_random_seed(seed)
    reg = l1_l2(l1, l2)
    ecg = keras.Input(shape=input_shape, name="ecg")
    x = layers.Conv1D(filters, kernel_size, padding="same", kernel_regularizer=reg,
                      name="stem_conv")(ecg)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i in range(depth):
        x = residual_block(x, filters * 2 ** (i // double_every), kernel_size=kernel_size,
                           stride=2 if i % 2 == 0 else 1, dropout=dropout, regularizer=reg,
                           preactivate=i > 0, name=f"block{i}")
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    x = layers.GlobalAveragePooling1D(name="global_pool")(x)
    return keras.Model(ecg, classifier_head(x, n_classes, dropout=dropout, regularizer=reg),
                       name="resnet1d")

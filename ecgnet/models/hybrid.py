"""Deep + knowledge: a conv network on the raw window fused with the window's expert features.

On CinC 2017 the expert random forest beats the waveform-only networks through its
RR-irregularity features, while the networks see morphology the features summarise
coarsely. ``hybrid_cnn`` gives one network both: the conv front end of ``cnn`` reads
the raw window, a dense branch reads the 41 expert features of the same window
(:mod:`ecgnet.features`, fed as the ``expert_features`` side input, computed by the
engine in training and by ``biomed predict`` from the raw record), and a dense head
decides from the concatenation. ``hybrid_cnn_record`` also reads the window's record
context (the ``record_expert_features`` side input, :mod:`ecgnet.context`) in its
feature branch.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from ecgnet.context import RECORD_FEATURES_INPUT
from ecgnet.features import FEATURE_NAMES
from ecgnet.layers import classifier_head, conv_stack, fuse_expert_features
from pipelines.modeling import l1_l2, register_model

FEATURES_INPUT = "expert_features"


@register_model("hybrid_cnn", family="keras", modality="ecg", side_inputs=(FEATURES_INPUT,))
def build_hybrid_cnn(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
                     seed: int = 0, l1: float = 0.0, l2: float = 1e-4, dropout: float = 0.3,
                     filters: int = 16, kernel_size: int = 7, depth: int = 4, pool_size: int = 4,
                     feature_units: int = 64, feature_dropout: float = 0.2) -> keras.Model:
    """Build the conv + expert-feature network.

    Args:
        input_shape: ``(T, 1)``.
        n_classes: Number of output classes.
        fs: Sampling rate in Hz (unused by the layers: the features were computed at it).
        seed: Random seed of the weight initialisation.
        l1: L1 strength on conv and dense kernels.
        l2: L2 strength on conv and dense kernels.
        dropout: Dropout rate before the output layer.
        filters: Filters of the first conv block; doubled in every further block.
        kernel_size: Convolution kernel length (samples).
        depth: Number of conv blocks.
        pool_size: Downsampling factor of every conv block.
        feature_units: Width of the dense layers of the feature branch and of the fused head.
        feature_dropout: Dropout after the feature branch.

    Returns:
        An uncompiled functional model with inputs ``ecg`` ``(B, T, 1)`` and
        ``expert_features`` ``(B, 41)`` and output ``probs`` ``(B, n_classes)``.
    """
    return _hybrid(input_shape, n_classes, (FEATURES_INPUT,), name="hybrid_cnn", seed=seed, l1=l1, l2=l2,
                   dropout=dropout, filters=filters, kernel_size=kernel_size, depth=depth, pool_size=pool_size,
                   feature_units=feature_units, feature_dropout=feature_dropout)


@register_model("hybrid_cnn_record", family="keras", modality="ecg",
                side_inputs=(FEATURES_INPUT, RECORD_FEATURES_INPUT))
def build_hybrid_cnn_record(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None,
                            seed: int = 0, l1: float = 0.0, l2: float = 1e-4, dropout: float = 0.3,
                            filters: int = 16, kernel_size: int = 7, depth: int = 4, pool_size: int = 4,
                            feature_units: int = 64, feature_dropout: float = 0.2) -> keras.Model:
    """``hybrid_cnn`` whose feature branch reads the window's 41 expert features and its record's mean
    features side by side (inputs ``ecg``, ``expert_features``, ``record_expert_features``).

    Same arguments as :func:`build_hybrid_cnn`.
    """
    return _hybrid(input_shape, n_classes, (FEATURES_INPUT, RECORD_FEATURES_INPUT), name="hybrid_cnn_record",
                   seed=seed, l1=l1, l2=l2, dropout=dropout, filters=filters, kernel_size=kernel_size,
                   depth=depth, pool_size=pool_size, feature_units=feature_units, feature_dropout=feature_dropout)


def _hybrid(input_shape: tuple[int, ...], n_classes: int, feature_inputs: tuple[str, ...], *, name: str,
            seed: int, l1: float, l2: float, dropout: float, filters: int, kernel_size: int, depth: int,
            pool_size: int, feature_units: int, feature_dropout: float) -> keras.Model:
    """The conv front end on ``ecg`` fused with the concatenated 41-column ``feature_inputs``."""
    keras.utils.set_random_seed(seed)
    reg = l1_l2(l1, l2)
    ecg = keras.Input(shape=input_shape, name="ecg")
    inputs, features = expert_feature_inputs(feature_inputs)
    wave = conv_stack(ecg, filters=filters, kernel_size=kernel_size, depth=depth, pool_size=pool_size,
                      regularizer=reg)
    wave = layers.GlobalAveragePooling1D(name="global_pool")(wave)
    fused = fuse_expert_features(wave, features, units=feature_units, dropout=feature_dropout, regularizer=reg)
    return keras.Model({"ecg": ecg, **inputs},
                       classifier_head(fused, n_classes, dropout=dropout, regularizer=reg), name=name)


def expert_feature_inputs(names: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
    """One Keras input of ``len(FEATURE_NAMES)`` columns per side input in ``names``, and their concatenation
    (the input itself when there is one)."""
    inputs = {name: keras.Input(shape=(len(FEATURE_NAMES),), name=name) for name in names}
    joined = layers.Concatenate(name="features")(list(inputs.values())) if len(inputs) > 1 else inputs[names[0]]
    return inputs, joined

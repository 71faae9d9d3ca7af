"""Custom Keras layers and small functional blocks shared by the deep ECG models.

Every custom layer is registered under the ``biomed`` package with a full
``get_config``, so models that use them save to ``.keras`` and reload in safe
mode (no ``Lambda`` layers).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import keras
from keras import layers, ops

from pipelines.modeling import l1_l2


@keras.saving.register_keras_serializable(package="biomed")
class AttentionPooling(layers.Layer):
    """Additive attention pooling over the second-to-last axis, optionally knowledge-guided.

    Scores follow Bahdanau-style attention, ``v^T tanh(W h_s + U k_s + b)``, where
    ``h_s`` are the features at step ``s`` and ``k_s`` optional knowledge features
    at the same step (concatenating knowledge into the score, as in MINA); with
    ``units=0`` the score is linear, ``w^T h_s + u^T k_s + b`` (cheaper on long
    inputs). The weights are a softmax over the steps, so they sum to 1.

    Call with ``features`` of shape ``(..., S, D)`` or ``[features, knowledge]``
    with knowledge of shape ``(..., S, Dk)``. Returns ``(pooled, weights)`` of
    shapes ``(..., D)`` and ``(..., S)``.

    Args:
        units: Width of the hidden scoring layer; 0 for a linear score.
        kernel_regularizer: Regularizer for ``W`` and ``U``.
    """

    def __init__(self, units: int = 32, kernel_regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape: Any) -> None:
        guided = isinstance(input_shape[0], (list, tuple))        # [features, knowledge] shapes
        feature_shape = input_shape[0] if guided else input_shape
        width = self.units or 1
        self.w = self.add_weight(name="w", shape=(feature_shape[-1], width),
                                 initializer="glorot_uniform", regularizer=self.kernel_regularizer)
        self.u = (self.add_weight(name="u", shape=(input_shape[1][-1], width),
                                  initializer="glorot_uniform", regularizer=self.kernel_regularizer)
                  if guided else None)
        self.b = self.add_weight(name="b", shape=(width,), initializer="zeros")
        self.v = (self.add_weight(name="v", shape=(self.units, 1), initializer="glorot_uniform")
                  if self.units else None)

    def call(self, inputs: Any) -> tuple[Any, Any]:
        features = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        scores = _project(features, self.w) + self.b
        if self.u is not None:
            scores = scores + _project(inputs[1], self.u)
        if self.v is not None:
            scores = _project(ops.tanh(scores), self.v)
        weights = ops.softmax(ops.squeeze(scores, axis=-1), axis=-1)
        pooled = ops.sum(features * ops.expand_dims(weights, -1), axis=-2)
        return pooled, weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


def _project(x: Any, kernel: Any) -> Any:
    """``x @ kernel`` over the last axis of a tensor of any rank, as one 2-D matmul."""
    flat = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), kernel)
    return ops.reshape(flat, (-1, *x.shape[1:-1], kernel.shape[-1]))


@keras.saving.register_keras_serializable(package="biomed")
class SignedLog(layers.Layer):
    """``sign(x) * log(1 + |x|)`` with non-finite values set to 0: tames heavy-tailed features.

    Expert features span orders of magnitude (heart rate ~10^2, entropies ~10^0,
    band powers ~10^-3); the signed logarithm keeps their order and sign while
    bringing them to a range where batch normalisation and a dense layer work.
    """

    def call(self, x: Any) -> Any:
        x = ops.where(ops.isfinite(x), x, ops.zeros_like(x))
        return ops.sign(x) * ops.log1p(ops.abs(x))


@keras.saving.register_keras_serializable(package="biomed")
class FoldBatch(layers.Layer):
    """Merge the batch axis with the next ``axes`` axes: ``(B, a1..an, ...) -> (B*a1*..*an, ...)``.

    Lets one shared computation (a Conv1D, an LSTM) run over every channel or
    segment at once instead of one copy of the layers per channel.

    Args:
        axes: How many axes after the batch axis to fold into it.
    """

    def __init__(self, axes: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axes = int(axes)

    def call(self, inputs: Any) -> Any:
        return ops.reshape(inputs, (-1, *inputs.shape[self.axes + 1:]))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": self.axes}


@keras.saving.register_keras_serializable(package="biomed")
class UnfoldBatch(layers.Layer):
    """Inverse of :class:`FoldBatch`: ``(B*a1*..*an, ...) -> (B, a1..an, ...)``.

    Args:
        shape: The axes ``(a1, .., an)`` to split off the batch axis.
    """

    def __init__(self, shape: tuple[int, ...] | list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shape = tuple(int(a) for a in shape)

    def call(self, inputs: Any) -> Any:
        return ops.reshape(inputs, (-1, *self.shape, *inputs.shape[1:]))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": list(self.shape)}


@keras.saving.register_keras_serializable(package="biomed")
class Segment(layers.Layer):
    """Cut ``(B, T, C)`` into ``M = ceil(T / L)`` segments: ``(B, M, L, C)``.

    When ``T`` is not a multiple of ``L`` the window is zero-padded at the end.

    Args:
        segment_length: Samples per segment ``L``.
    """

    def __init__(self, segment_length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.segment_length = int(segment_length)

    def call(self, inputs: Any) -> Any:
        length = inputs.shape[1]
        segments = n_segments(length, self.segment_length)
        padded = ops.pad(inputs, [[0, 0], [0, segments * self.segment_length - length], [0, 0]])
        return ops.reshape(padded, (-1, segments, self.segment_length, inputs.shape[-1]))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "segment_length": self.segment_length}


@keras.saving.register_keras_serializable(package="biomed")
class ChannelEmbedding(layers.Layer):
    """Add a learned vector per channel to ``(B, K, D)``.

    Lets layers whose weights are shared across channels tell the channels apart.
    """

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.embedding = self.add_weight(name="embedding", shape=tuple(input_shape[1:]),
                                         initializer="zeros")

    def call(self, inputs: Any) -> Any:
        return inputs + self.embedding


def n_segments(length: int, segment_length: int) -> int:
    """Number of segments :class:`Segment` cuts a window of ``length`` samples into."""
    return math.ceil(length / segment_length)


def conv_stack(x: Any, *, filters: int, kernel_size: int, depth: int, pool_size: int,
               regularizer: Any, name: str = "conv") -> Any:
    """``depth`` blocks of Conv1D-BN-ReLU-MaxPool; block ``i`` has ``filters * 2**i`` filters.

    Args:
        x: Input tensor ``(B, T, C)``.
        filters: Filters of the first block.
        kernel_size: Convolution kernel length.
        depth: Number of blocks.
        pool_size: Max-pool size and stride of every block (downsampling factor).
        regularizer: Kernel regularizer of the convolutions.
        name: Prefix of the layer names.

    Returns:
        The tensor ``(B, T / pool_size**depth, filters * 2**(depth-1))``.
    """
    for i in range(depth):
        x = layers.Conv1D(filters * 2**i, kernel_size, padding="same", use_bias=False,
                          kernel_regularizer=regularizer, name=f"{name}{i}")(x)
        x = layers.BatchNormalization(name=f"{name}{i}_bn")(x)
        x = layers.ReLU(name=f"{name}{i}_relu")(x)
        x = layers.MaxPooling1D(pool_size, padding="same", name=f"{name}{i}_pool")(x)
    return x


def fuse_expert_features(deep: Any, features: Any, *, units: int, dropout: float, regularizer: Any) -> Any:
    """Fuse a deep representation ``(B, D)`` with expert features ``(B, F)`` (deep + knowledge).

    The features pass :class:`SignedLog`, batch normalisation, a ReLU dense layer of
    ``units`` and dropout; the concatenation with ``deep`` passes a second ReLU dense
    layer of ``units``. Returns ``(B, units)``, ready for :func:`classifier_head`.
    """
    knowledge = layers.BatchNormalization(name="feature_norm")(SignedLog(name="feature_log")(features))
    knowledge = layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                             name="feature_dense")(knowledge)
    knowledge = layers.Dropout(dropout, name="feature_dropout")(knowledge)
    fused = layers.Concatenate(name="fuse")([deep, knowledge])
    return layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name="fused_dense")(fused)


def classifier_head(x: Any, n_classes: int, *, dropout: float, regularizer: Any) -> Any:
    """Dropout then the float32 softmax output layer ``probs`` shared by all ECG models."""
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(n_classes, activation="softmax", dtype="float32",
                        kernel_regularizer=regularizer, name="probs")(x)


def conv_front_end_model(input_shape: tuple[int, ...], n_classes: int, *, name: str, seed: int,
                         l1: float, l2: float, dropout: float, filters: int, kernel_size: int,
                         depth: int, pool_size: int,
                         summarize: Callable[[Any, Any], Any]) -> keras.Model:
    """Input ``ecg`` → :func:`conv_stack` → ``summarize(x, regularizer)`` → :func:`classifier_head`.

    The cnn, crnn and acrnn models differ only in how they summarise the conv
    features over time (pooling, LSTM, BiLSTM + attention): ``summarize`` is that part.
    """
    keras.utils.set_random_seed(seed)
    reg = l1_l2(l1, l2)
    ecg = keras.Input(shape=input_shape, name="ecg")
    x = conv_stack(ecg, filters=filters, kernel_size=kernel_size, depth=depth, pool_size=pool_size,
                   regularizer=reg)
    head = classifier_head(summarize(x, reg), n_classes, dropout=dropout, regularizer=reg)
    return keras.Model(ecg, head, name=name)

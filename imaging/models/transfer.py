"""``transfer``: an ImageNet backbone with a new classifier head, fine-tuned in phases."""

from __future__ import annotations

import keras
from keras import layers

from imaging.backbones import build_backbone, is_pretrained, preprocessing_layer
from imaging.finetune import STRATEGIES, first_unfrozen, set_trainable, transfer_phases
from imaging.models.head import classifier_head
from pipelines.errors import ConfigError
from pipelines.modeling import register_model


@register_model("transfer", family="keras", modality="image", phases=transfer_phases)
def build_transfer(input_shape: tuple[int, ...], n_classes: int, *, fs: float | None = None, seed: int = 0,
                   backbone: str = "mobilenet_v2", alpha: float = 1.0, weights: str = "none",
                   pooling: str = "avg", dropout: float = 0.2, l1: float = 0.0, l2: float = 0.0,
                   dense_units: int = 0, fine_tune: str = "head", unfreeze_layers: int = 20,
                   unfreeze_from: str | None = None, head_epochs: int = 5,
                   fine_tune_lr_scale: float = 0.1) -> keras.Model:
    """A ``keras.applications`` backbone and a softmax head, for fine-tuning in phases.

    The backbone is frozen for the head phase; a pretrained one keeps its BatchNorm
    layers in inference mode throughout (see :mod:`imaging.finetune`).

    Args:
        input_shape: ``(H, W, C)`` images in [0, 255]; one channel is repeated to three.
        n_classes: number of classes.
        fs: unused (images have no sampling rate).
        seed: seed of the head's dropout.
        backbone: name in :data:`imaging.backbones.BACKBONES` (e.g. ``mobilenet_v2``).
        alpha: width multiplier of the MobileNets (1.0 for other backbones).
        weights: ``none``, ``imagenet`` (from the Keras cache only) or a weights file path.
        pooling: ``avg`` or ``max`` global pooling of the backbone's feature map.
        dropout: dropout rate before the output layer.
        l1: L1 penalty on the head's kernels.
        l2: L2 penalty on the head's kernels.
        dense_units: width of an extra ReLU layer in the head (0: none).
        fine_tune: ``head``, ``partial`` or ``full`` (see :mod:`imaging.finetune`).
        unfreeze_layers: ``partial``: how many top backbone layers to unfreeze.
        unfreeze_from: ``partial``: unfreeze from this backbone layer on (overrides the count).
        head_epochs: epochs of the head phase before fine-tuning (``partial``/``full``).
        fine_tune_lr_scale: learning-rate factor of the fine-tuning phase.

    Returns:
        The uncompiled model; the backbone is its nested model, frozen for the head phase.
    """
    if fine_tune not in STRATEGIES:
        raise ConfigError(f"fine_tune: expected one of {STRATEGIES}, got {fine_tune!r}")
    if head_epochs < 0 or fine_tune_lr_scale <= 0:
        raise ConfigError("head_epochs must be >= 0 and fine_tune_lr_scale > 0")
    height, width, channels = input_shape
    base = build_backbone(backbone, (height, width, 3), alpha=alpha, weights=weights)
    first_unfrozen(base, fine_tune, unfreeze_layers, unfreeze_from)  # fail on a bad layer before training
    set_trainable(base, len(base.layers))
    inputs = keras.Input(tuple(input_shape), name="image")
    x = layers.Concatenate(name="gray_to_rgb")([inputs] * 3) if channels == 1 else inputs
    preprocess = preprocessing_layer(backbone)
    if preprocess is not None:
        x = preprocess(x)
    features = base(x, training=False) if is_pretrained(weights) else base(x)
    outputs = classifier_head(features, n_classes, pooling=pooling, dropout=dropout,
                              dense_units=dense_units, l1=l1, l2=l2, seed=seed)
    return keras.Model(inputs, outputs, name=f"transfer_{backbone}")

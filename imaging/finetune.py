"""Fine-tuning strategies for transfer models, as :class:`~pipelines.modeling.TrainingPhase` lists.

The backbone is the one nested ``keras.Model`` of a transfer model; it is built
frozen. A pretrained backbone is called with ``training=False``, so its BatchNorm
layers always run in inference mode (as in the Keras transfer-learning guide),
and they are never unfrozen: their statistics stay those of the weights. A
randomly initialised backbone (``weights: none``) has nothing to preserve: its
BatchNorm layers train normally. Strategies:

* ``head``: one phase, the backbone stays frozen.
* ``partial``: ``head_epochs`` on the head, then the top ``unfreeze_layers`` layers
  of the backbone (or every layer from ``unfreeze_from`` on) are unfrozen and
  training continues at ``fine_tune_lr_scale`` x the learning rate.
* ``full``: the same, with every backbone layer unfrozen.
"""

from __future__ import annotations

from typing import Any

import keras

from imaging.backbones import is_pretrained
from pipelines.errors import ConfigError, suggest
from pipelines.modeling import TrainingPhase

STRATEGIES = ("head", "partial", "full")


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone: the nested ``keras.Model`` layer of a transfer model."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(f"expected one nested backbone model in {model.name!r}, found {len(nested)}")
    return nested[0]


def first_unfrozen(backbone: keras.Model, strategy: str, unfreeze_layers: int = 20,
                   unfreeze_from: str | None = None) -> int:
    """Index of the first backbone layer the strategy trains (``len(layers)`` for ``head``).

    Raises:
        ConfigError: unknown strategy, negative layer count or unknown ``unfreeze_from`` layer.
    """
    layers = backbone.layers
    if strategy not in STRATEGIES:
        raise ConfigError(f"fine_tune: expected one of {STRATEGIES}, got {strategy!r}")
    if strategy == "head":
        return len(layers)
    if strategy == "full":
        return 0
    if unfreeze_from is not None:
        names = [layer.name for layer in layers]
        if unfreeze_from not in names:
            raise ConfigError(f"unfreeze_from: backbone {backbone.name!r} has no layer {unfreeze_from!r}"
                              f"{suggest(unfreeze_from, names)}")
        return names.index(unfreeze_from)
    if unfreeze_layers < 0:
        raise ConfigError(f"unfreeze_layers: expected a count >= 0, got {unfreeze_layers}")
    return max(0, len(layers) - int(unfreeze_layers))


def set_trainable(backbone: keras.Model, first: int, freeze_batchnorm: bool = True) -> None:
    """Freeze the backbone except layers ``first`` onwards (BatchNorm layers too if ``freeze_batchnorm``)."""
    backbone.trainable = first < len(backbone.layers)
    for index, layer in enumerate(backbone.layers):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = index >= first and not (freeze_batchnorm and is_bn)


def transfer_phases(model: keras.Model, hyperparameters: dict[str, Any]) -> list[TrainingPhase]:
    """The training phases of a transfer model (registered as the ``transfer`` model's ``phases``)."""
    strategy = hyperparameters["fine_tune"]
    backbone = backbone_of(model)
    first = first_unfrozen(backbone, strategy, hyperparameters["unfreeze_layers"],
                           hyperparameters["unfreeze_from"])
    if strategy == "head":
        return [TrainingPhase("head")]

    freeze_batchnorm = is_pretrained(hyperparameters["weights"])

    def unfreeze(target: keras.Model) -> None:
        set_trainable(backbone_of(target), first, freeze_batchnorm)

    head_epochs = int(hyperparameters["head_epochs"])
    head = [TrainingPhase("head", epochs=head_epochs)] if head_epochs > 0 else []
    return head + [TrainingPhase("fine_tune", learning_rate_scale=float(hyperparameters["fine_tune_lr_scale"]),
                                 prepare=unfreeze)]

"""Averaged models: test-time augmentation and ensembles as one functional Keras model.

Both are a mean of softmax outputs: over views of the input (TTA: the identity
plus the views a modality registers in :data:`pipelines.plugins.TTA_VIEWS`)
and over member models (an ensemble of seeds or architectures). The result is
a plain functional model with one input and one float32 softmax output, so it
is evaluated, exported and loaded (in safe mode) like any other model.
"""

from __future__ import annotations

from typing import Any

from pipelines import plugins
from pipelines.errors import ConfigError


def tta_views(modality: str, names: list[str], input_shape: tuple[int, ...]) -> list[Any]:
    """The view layers of the named TTA views of ``modality`` (empty list: no TTA)."""
    if not names:
        return []
    factory = dict(plugins.TTA_VIEWS.items()).get(modality)
    if factory is None:
        raise ConfigError(f"evaluation.tta: the {modality} modality has no test-time augmentation views")
    return factory(list(names), input_shape)


def averaged_model(members: list[Any], views: list[Any] | None = None, name: str = "averaged") -> Any:
    """One model averaging the softmax of every member over the identity and every view.

    Args:
        members: Keras models with the same single input shape and number of classes.
        views: layers mapping an input batch to a view of it (see :func:`tta_views`).
        name: the model name.

    Returns:
        A functional ``keras.Model``; a single member without views is returned unchanged.
        Members whose names repeat are renamed (nested model names must be unique).

    Example:
        >>> both = averaged_model([model_a, model_b], tta_views("image", ["hflip"], (64, 64, 3)))  # doctest: +SKIP
    """
    import keras

    views = list(views or [])
    if len(members) == 1 and not views:
        return members[0]
    shapes = {tuple(m.inputs[0].shape[1:]) for m in members}
    if len(shapes) != 1 or len({m.outputs[0].shape[-1] for m in members}) != 1:
        raise ConfigError(f"averaged models need one input shape and one number of classes, got {shapes}")
    inputs = keras.Input(shapes.pop(), name=members[0].inputs[0].name)
    seen: set[str] = set()
    for number, member in enumerate(members):
        if member.name in seen:
            member.name = f"{member.name}_{number}"
        seen.add(member.name)
    batches = [inputs] + [view(inputs) for view in views]
    outputs = [member(batch) for member in members for batch in batches]
    mean = keras.layers.Average(dtype="float32", name="mean_softmax")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, mean, name=name)

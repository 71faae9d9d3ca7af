"""Read the attention weights of a trained (or reloaded) ECG model."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

#: Layers whose name ends with this output attention weights (alone or as the last of a tuple).
ATTENTION_SUFFIX = "_attention"


def attention_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model`` named ``*_attention``, in graph order."""
    return [layer for layer in model.layers if layer.name.endswith(ATTENTION_SUFFIX)]


def attention_weights(model: keras.Model, x: np.ndarray, batch_size: int = 128
                      ) -> dict[str, np.ndarray]:
    """Every attention weight tensor of ``model`` for the windows ``x``, by layer name.

    An attention layer outputs its weights, or a ``(pooled, weights)`` pair such
    as :class:`ecgnet.layers.AttentionPooling`; the weights are taken from the
    last output. Works on a model reloaded from ``.keras``.

    Args:
        model: A functional Keras model with ``*_attention`` layers.
        x: Input windows ``(N, T, 1)``.
        batch_size: Prediction batch size.

    Returns:
        ``{layer name: weights}``, each with ``N`` as its first axis (e.g. MINA:
        ``beat_attention`` ``(N, K, M, P)``, ``rhythm_attention`` ``(N, K, M)``,
        ``frequency_attention`` ``(N, K)``).

    Raises:
        ValueError: If the model has no attention layer.
    """
    found = attention_layers(model)
    if not found:
        raise ValueError(f"model {model.name!r} has no '*{ATTENTION_SUFFIX}' layer")
    outputs = {layer.name: _last(layer.output) for layer in found}
    probe = keras.Model(model.inputs, outputs, name=f"{model.name}_attention_probe")
    weights = probe.predict(x, batch_size=batch_size, verbose=0)
    return {name: np.asarray(value) for name, value in weights.items()}


def _last(output: Any) -> Any:
    """The last tensor of a layer's output (the output itself when it is a single tensor)."""
    return output[-1] if isinstance(output, (list, tuple)) else output

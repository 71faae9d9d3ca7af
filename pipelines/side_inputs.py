"""Side inputs: per-sample arrays a model takes beside its main input, derived from the samples.

A model registered with ``side_inputs=("expert_features",)`` gets, in training,
evaluation and ``biomed predict``, a dict of inputs: its main input plus each
side input computed from the same samples by the function a plugin registered
in :data:`pipelines.plugins.SIDE_INPUTS`. The engine does not know what a side
input means; computing it once per split serves every model and seed of a run.

Side inputs see each sample's record id, so one may describe the whole record
(e.g. the mean of its windows' features): training passes ``SampleSet.record``
and ``biomed predict`` the record each window was cut from, always computing
them over all windows of a record at once.

A Keras model takes them as named input layers; a scikit-learn model takes one
dict, :data:`MAIN_INPUT` for the samples plus the side inputs by name
(:func:`sklearn_inputs`).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from pipelines import plugins
from pipelines.errors import BiomedError
from pipelines.samples import SampleSet

#: The key of the samples themselves in the dict a scikit-learn model with side inputs takes.
MAIN_INPUT = "x"


def compute_side_input(name: str, x: np.ndarray, fs: float | None, records: np.ndarray | None = None
                       ) -> np.ndarray:
    """The side input ``name`` of samples ``x`` as float32 ``(n, ...)``; checks its length.

    ``records`` is each sample's record id (default: every sample its own record).
    """
    records = np.arange(len(x)) if records is None else np.asarray(records)
    if len(records) != len(x):
        raise BiomedError(f"side input {name!r}: {len(records)} record ids for {len(x)} samples")
    values = np.asarray(plugins.SIDE_INPUTS.get(name)(x, fs, records), dtype=np.float32)
    if len(values) != len(x):
        raise BiomedError(f"side input {name!r} gave {len(values)} rows for {len(x)} samples")
    return values


def with_side_inputs(splits: dict[str, SampleSet], names: Iterable[str]) -> None:
    """Compute the side inputs ``names`` of every split that lacks them (in place, once per split)."""
    for samples in splits.values():
        for name in names:
            if name not in samples.side:
                samples.side[name] = compute_side_input(name, samples.x, samples.fs, samples.record)


def sklearn_inputs(x: np.ndarray, side: dict[str, np.ndarray], names: Iterable[str]) -> Any:
    """What a scikit-learn model taking the side inputs ``names`` is fitted on or predicts from:
    ``x`` itself without side inputs, else ``{MAIN_INPUT: x, name: side[name], ...}``."""
    names = list(names)
    return {MAIN_INPUT: x, **{name: side[name] for name in names}} if names else x


def input_names(model: Any) -> list[str]:
    """Names of a Keras model's input layers, in the model's order."""
    return [tensor.name for tensor in model.inputs]


def dataset_inputs(model: Any, samples: SampleSet) -> dict[str, Any]:
    """``make_dataset`` keyword arguments feeding ``model``: none for one input, else main + side inputs.

    Raises:
        BiomedError: the model takes a side input the samples do not carry.
    """
    names = input_names(model)
    if len(names) == 1:
        return {}
    missing = [n for n in names if n not in samples.side]
    if len(missing) != 1:
        raise BiomedError(f"model {model.name!r} takes inputs {names}; the samples carry side inputs "
                          f"{sorted(samples.side)}, so its main input is not the single other one")
    return {"input_name": missing[0], "side_inputs": {n: samples.side[n] for n in names if n != missing[0]}}

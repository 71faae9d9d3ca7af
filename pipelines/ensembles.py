"""Ensembles across the models of a run: per seed, the weighted mean of the members' probabilities.

An ensemble (config section ``ensembles``) trains nothing: once its members have
predicted the validation and test splits of a seed, their window probabilities are
averaged into the ensemble's own ``models/<name>/seed_<k>/predictions.csv``, which the
runner evaluates like any model's (metrics, threshold on validation, report, paired
bootstrap). ``ensemble.json`` beside it names the members, so ``biomed export
--format ensemble`` can export each member in its own safe format and ``biomed
predict`` can average them again on new records.

Example:
    >>> EnsembleEntry("rf_hybrid", ["expert_rf", "hybrid_cnn"]).member_weights
    [0.5, 0.5]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipelines.artifacts import write_csv, write_json
from pipelines.config import EnsembleEntry
from pipelines.errors import BiomedError
from pipelines.predictions import Predictions, Task, read_predictions

ENSEMBLE_FILE = "ensemble.json"
ROLE = "ensemble"


def seed_folder(run_dir: Path, label: str, seed: int) -> Path:
    """The folder of one model (or ensemble) × seed of a run."""
    return Path(run_dir) / "models" / label / f"seed_{seed}"


def average_members(run_dir: Path, ensemble: EnsembleEntry, seed: int, task: Task) -> Predictions:
    """The weighted mean of the members' window probabilities of ``seed``.

    Raises:
        BiomedError: a member has no predictions for this seed, or its rows differ from the others'.
    """
    members = [(member, seed, weight) for member, weight in zip(ensemble.members, ensemble.member_weights)]
    return average_predictions(run_dir, members, task, f"ensemble {ensemble.name!r}")


def average_predictions(run_dir: Path, members: list[tuple[str, int, float]], task: Task,
                        what: str = "ensemble") -> Predictions:
    """The weighted mean of the window probabilities of ``(model, seed, weight)`` members of a run.

    The weights are normalised to sum to 1; members may be different seeds of one model
    (a seed ensemble) or different models.

    Raises:
        BiomedError: a member has no predictions, or its rows differ from the first member's.
    """
    parts = []
    for model, seed, _ in members:
        path = seed_folder(run_dir, model, seed) / "predictions.csv"
        if not path.is_file():
            raise BiomedError(f"{what}: member {model!r} has no predictions for seed {seed} ({path} is missing)")
        parts.append(read_predictions(str(path), task))
    first = parts[0]
    for (model, seed, _), part in zip(members[1:], parts[1:]):
        if not (np.array_equal(part.split, first.split) and np.array_equal(part.record, first.record)
                and np.array_equal(part.window, first.window)):
            raise BiomedError(f"{what}: member {model!r} seed {seed} scored other windows than "
                              f"{members[0][0]!r} seed {members[0][1]}")
    weights = np.asarray([weight for _, _, weight in members], dtype=float)
    probs = sum(w * p.probs for w, p in zip(weights / weights.sum(), parts))
    return Predictions(task, first.split, first.record, first.window, probs, first.y_true)


def write_ensemble(run_dir: Path, ensemble: EnsembleEntry, seed: int, task: Task) -> Predictions:
    """Average the members of ``seed`` and write the ensemble's predictions, ``ensemble.json`` and ``info.json``."""
    predictions = average_members(run_dir, ensemble, seed, task)
    out = seed_folder(run_dir, ensemble.name, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "predictions.csv", predictions.to_frame())
    write_json(out / ENSEMBLE_FILE, {"members": ensemble.members, "weights": ensemble.member_weights,
                                     "seed": seed})
    write_json(out / "info.json", {"model": ensemble.name, "type": "ensemble", "seed": seed, "role": ROLE,
                                   "family": "ensemble", "params": {"members": ensemble.members,
                                                                    "weights": ensemble.member_weights}})
    return predictions


def read_members(folder: Path) -> list[tuple[str, float]]:
    """``(member, weight)`` pairs of an ensemble's model folder (its ``ensemble.json``).

    Raises:
        BiomedError: the file is missing or malformed.
    """
    path = Path(folder) / ENSEMBLE_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        members, weights = stored["members"], stored["weights"]
        if len(members) != len(weights) or not all(isinstance(m, str) for m in members):
            raise ValueError("members and weights differ")
        return [(str(m), float(w)) for m, w in zip(members, weights)]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BiomedError(f"{path}: not an ensemble description ({type(err).__name__}: {err})") from None

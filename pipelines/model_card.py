"""``model_card.json``: what an exported model expects, predicts and was measured at.

The card sits beside every export. It holds everything ``biomed predict`` needs
to redo the training preprocessing exactly (the full preprocessing config, the
image size), the class names, the positive class and the validation-chosen
decision threshold, plus provenance (run folder, config hash, package version)
and the test metrics of the run. Cards are plain JSON; building one needs no
TensorFlow.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines import __version__
from pipelines.artifacts import write_json
from pipelines.config import ExperimentConfig, PreprocessConfig, config_hash
from pipelines.errors import BiomedError
from pipelines.schema import from_dict, to_dict

CARD_NAME = "model_card.json"
SCHEMA = "biomed-model-card/1"
#: The formats ``biomed export`` writes (a card's ``format``).
FORMATS = ("keras", "savedmodel", "tflite", "onnx", "skops", "ensemble")
SELECTION_NOTE = ("best record-level validation ROC-AUC (macro for multi-class tasks) among the run's "
                  "models of the export format's family; the test split played no part in the choice")


def describe_input(modality: str, shape: list[int | None], config: ExperimentConfig | None) -> str:
    """A one-line human description of the model input (units, rate, preprocessing)."""
    if config is None:
        return f"{modality} input of shape {shape} (no run config: preprocessing unknown)"
    if modality == "image":
        image = config.data.image
        return (f"{image.image_size[0]}x{image.image_size[1]} images with {image.channels} channel(s), "
                f"float32 pixel values in [0, 255] (any rescaling happens inside the model)")
    pre = config.data.preprocess
    band = f"band-pass {pre.bandpass[0]}-{pre.bandpass[1]} Hz (Butterworth order {pre.filter_order}, " \
           f"zero-phase)" if pre.bandpass else "no band-pass"
    return (f"single-lead ECG window of {pre.window_samples} samples ({pre.window_s} s) at {pre.fs} Hz, "
            f"resampled from the record's rate, {band}, per-record {pre.normalize} normalisation "
            f"(unitless), channel axis last")


def trained_on(config: ExperimentConfig | None, model: str | None) -> str | None:
    """The records a run's model was trained on: ``"train"``, or ``"train + val"`` when ``train.refit``
    fitted it again on both after validation's choices (None: not a model entry of a run)."""
    entry = next((e for e in config.models if e.label == model), None) if config and model else None
    if entry is None:
        return None
    return "train + val (refit after the choices made on val)" if config.train_config(entry).refit else "train"


def build_card(*, model_format: str, model_file: str, input_name: str, input_shape: list[int | None],
               output_name: str, n_outputs: int, config: ExperimentConfig | None = None,
               run_dir: Path | None = None, source_file: Path, model: str | None = None,
               seed: int | None = None, threshold: float | None = None,
               class_weights: list[float] | None = None,
               test_metrics: dict[str, dict[str, Any]] | None = None,
               data_summary: dict[str, Any] | None = None, selection: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble the card of one export.

    Args:
        model_format: "keras", "savedmodel", "tflite", "onnx" or "skops".
        model_file: the artefact's path relative to the export folder.
        input_name: name of the model input (the serving signature's input key).
        input_shape: input shape with ``None`` for the batch axis.
        output_name: name of the output (softmax probabilities).
        n_outputs: number of classes the model scores.
        config: the run's resolved config (None for a bare ``.keras`` file).
        run_dir: the run folder the model comes from, if any.
        source_file: the model file exported (``.keras`` or ``.skops``).
        model: model label inside the run.
        seed: training seed inside the run.
        threshold: record-level decision threshold chosen on validation (binary tasks).
        class_weights: record-level per-class decision weights chosen on validation (multi-class
            tasks with ``evaluation.class_weights: validation``; None: the argmax).
        test_metrics: test metrics per level ("window", "record") from metrics.csv.
        data_summary: the run's data_summary.json.
        selection: how the model × seed was chosen.
        extra: format-specific fields (serving signature, TFLite or ONNX details).

    Returns:
        The card as a JSON-serialisable dict.
    """
    modality = ("image" if len(input_shape) == 4 else "ecg") if config is None else config.data.modality
    classes = list(config.data.task.classes) if config else [f"class_{i}" for i in range(n_outputs)]
    positive = None
    if len(classes) == 2:
        positive = config.data.task.positive if config and config.data.task.positive else classes[1]
    return {
        "schema": SCHEMA,
        "format": model_format,
        "model_file": model_file,
        "model": model,
        "seed": seed,
        "modality": modality,
        "input": {"name": input_name, "shape": input_shape, "dtype": "float32",
                  "description": describe_input(modality, input_shape, config)},
        "output": {"name": output_name, "shape": [None, n_outputs], "dtype": "float32",
                   "description": f"softmax probabilities over classes in order {classes}"},
        "preprocess": to_dict(config.data.preprocess) if config and modality == "ecg" else None,
        "image": to_dict(config.data.image) if config and modality == "image" else None,
        "channel": config.data.channel if config else 0,
        "classes": classes,
        "positive_class": positive,
        "threshold": threshold,
        "threshold_note": ("record-level threshold maximising F1 on the validation split; predict "
                           "applies it to the mean window probability of a record" if threshold is not None
                           else "none: the predicted class is the argmax"
                           + (" of the probabilities times class_weights (chosen on the validation split)"
                              if class_weights is not None else "")),
        "class_weights": class_weights,
        "selection": selection,
        "trained_on": trained_on(config, model),
        "test_metrics": test_metrics or {},
        "data_summary": data_summary,
        "config_hash": config_hash(config) if config else None,
        "data_config_hash": config_hash(config.data) if config else None,
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {"run_dir": str(run_dir) if run_dir else None, "model_file": str(source_file)},
        **(extra or {}),
    }


def write_card(folder: Path, card: dict[str, Any]) -> Path:
    """Write ``card`` as ``folder/model_card.json`` (atomically) and return its path."""
    return write_json(Path(folder) / CARD_NAME, card)


def read_card(path: Path) -> dict[str, Any]:
    """Read a card from a file or from ``CARD_NAME`` inside a folder.

    Raises:
        BiomedError: no card there, or not a biomed model card.
    """
    path = Path(path)
    file = path / CARD_NAME if path.is_dir() else path
    if not file.is_file():
        raise BiomedError(f"no {CARD_NAME} at {path}: export the model with `biomed export` first")
    try:
        card = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BiomedError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(card, dict) or card.get("schema") != SCHEMA:
        raise BiomedError(f"{file}: not a biomed model card (expected schema {SCHEMA!r})")
    return card


def card_preprocess(card: dict[str, Any]) -> PreprocessConfig:
    """The ECG preprocessing config recorded in ``card``.

    Raises:
        BiomedError: the card has none (exported from a bare ``.keras`` file).
    """
    if not card.get("preprocess"):
        raise BiomedError("the model card has no preprocessing config (exported from a bare .keras "
                          "file?); export from the run folder so predict can redo the preprocessing")
    return from_dict(PreprocessConfig, card["preprocess"], "model_card.preprocess")


MAX_WINDOW_SAMPLES = 10_000_000  # ~9 h at 300 Hz: far beyond any trained window, far below a memory blow-up


def card_model_file(folder: Path, card: dict[str, Any], card_file: Path) -> Path:
    """The artefact named by the card's ``model_file``, which must lie inside the export ``folder``.

    Raises:
        BiomedError: ``model_file`` is missing, absolute or leads outside the folder.
    """
    name = card.get("model_file")
    if not isinstance(name, str) or not name:
        raise BiomedError(f"{card_file}: model_file: expected the model's path inside the export folder, got {name!r}")
    artefact = (folder / name).resolve()
    if Path(name).is_absolute() or not artefact.is_relative_to(folder.resolve()):
        raise BiomedError(f"{card_file}: model_file {name!r} leads outside the export folder {folder}; "
                          f"expected a path inside it, e.g. 'model.keras'")
    return artefact


def check_card(card: dict[str, Any], card_file: Path, input_shape: tuple[int | None, ...], n_outputs: int) -> None:
    """Check a card against the model it describes, once, before any input is scored.

    Args:
        card: the card read by :func:`read_card`.
        card_file: where it was read from (named in errors).
        input_shape: the loaded model's input shape (None for the batch and free axes).
        n_outputs: the number of classes the model scores.

    Raises:
        BiomedError: the first key that is wrong, what was expected and what the card holds.
    """
    def fail(key: str, expected: str, got: Any) -> BiomedError:
        return BiomedError(f"{card_file}: {key}: expected {expected}, got {got!r}")

    modality, rank = card.get("modality"), len(input_shape)
    if modality not in ("ecg", "image"):
        raise fail("modality", "'ecg' or 'image'", modality)
    if (modality == "ecg") != (rank == 3):
        kind = "an ECG model (batch, samples, 1)" if rank == 3 else f"a rank-{rank} input"
        raise fail("modality", f"the model's modality ({kind}, input shape {list(input_shape)})", modality)
    classes = card.get("classes")
    if (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) != len(classes) or len(classes) != n_outputs):
        raise fail("classes", f"{n_outputs} distinct class names (the model scores {n_outputs} classes)", classes)
    positive, threshold = card.get("positive_class"), card.get("threshold")
    if positive is not None and positive not in classes:
        raise fail("positive_class", f"null or one of {classes}", positive)
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0 <= threshold <= 1):
        raise fail("threshold", "null or a number in [0, 1]", threshold)
    weights = card.get("class_weights")
    if weights is not None and (not isinstance(weights, list) or len(weights) != n_outputs or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w < float("inf") for w in weights)):
        raise fail("class_weights", f"null or {n_outputs} positive numbers (one per class)", weights)
    channel = card.get("channel", 0)
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
        raise fail("channel", "a signal index >= 0", channel)
    if modality == "ecg":
        try:
            pre = card_preprocess(card)
        except BiomedError as err:
            raise BiomedError(f"{card_file}: {err}") from None
        if pre.window_samples > MAX_WINDOW_SAMPLES:
            raise fail("preprocess.window_s", f"a window of at most {MAX_WINDOW_SAMPLES:,} samples at "
                                              f"{pre.fs} Hz", pre.window_s)
        if input_shape[1] is not None and pre.window_samples != input_shape[1]:
            raise fail("preprocess", f"window_s × fs = {input_shape[1]} samples, the model's input length",
                       f"window_s {pre.window_s} × fs {pre.fs} = {pre.window_samples} samples")
    else:
        image = card.get("image") or {}
        size = image.get("image_size") or list(input_shape[1:3])
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(v, int) and 0 < v <= 16384 for v in size)):
            raise fail("image.image_size", "[height, width] of 1 to 16384 pixels", size)

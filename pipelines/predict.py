"""``biomed predict``: score new ECG records or images with an exported model.

The modality's plugin finds and reads the inputs (:class:`pipelines.plugins.InputReader`):
ECG records of any length become sliding windows preprocessed as in training
(:mod:`ecgnet.inputs`), images are decoded and resized (:mod:`imaging.inputs`).
Window probabilities are averaged per record (as in evaluation) and the card's
validation threshold decides binary tasks (argmax otherwise).

Inputs are processed in chunks and the CSVs are written as they go; a bad
input is skipped and listed in ``<out>_skipped.csv`` with its reason. Four
backends (``.keras``, SavedModel, ``.tflite`` and the scikit-learn baselines'
``.skops``) share the :class:`Predictor` interface.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from pipelines import plugins
from pipelines.artifacts import atomic_path
from pipelines.console import progress
from pipelines.errors import BiomedError, RecordError
from pipelines.export import load_keras_model, load_skops_model
from pipelines.model_card import CARD_NAME, card_model_file, check_card, read_card
from pipelines.modeling import sklearn_proba
from pipelines.predictions import Predictions, Task
from pipelines.side_inputs import compute_side_input, input_names, sklearn_inputs

log = logging.getLogger("biomed")

CHUNK_RECORDS = 64
PROGRESS_EVERY = 100


class Predictor(Protocol):
    """A loaded model: model-ready float32 inputs in, class probabilities ``(n, n_classes)`` out.

    ``input_shape`` is the model's input shape (None for the batch and any free axis),
    ``n_outputs`` the number of classes it scores and ``side_inputs`` the side inputs it takes
    beside ``x`` (:mod:`pipelines.side_inputs`), which the caller computes over whole records
    (:func:`record_side_inputs`) and passes to ``predict`` row-aligned with ``x``.
    """

    input_shape: tuple[int | None, ...]
    n_outputs: int
    side_inputs: list[str]

    def predict(self, x: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Probabilities for a batch of model-ready inputs and their side inputs."""


def record_side_inputs(names: Iterable[str], x: np.ndarray, records: np.ndarray, fs: float | None
                       ) -> dict[str, np.ndarray]:
    """The side inputs ``names`` of the windows ``x`` (all windows of each record), by name."""
    return {name: compute_side_input(name, x, fs, records) for name in names}


def _side_of(side: dict[str, np.ndarray] | None, names: list[str], x: np.ndarray, fs: float | None
             ) -> dict[str, np.ndarray]:
    """The side inputs ``names`` from ``side``; missing ones computed with each window its own record."""
    side = dict(side or {})
    side.update({name: compute_side_input(name, x, fs) for name in names if name not in side})
    return side


class KerasPredictor:
    """A ``.keras`` model, loaded in safe mode; ``jit_compile`` runs inference through XLA.

    A model with side inputs (the card's ``side_inputs``) takes them from ``predict``'s
    ``side``; missing ones are computed from ``x`` at the card's ``fs`` (each window its own record).
    """

    def __init__(self, path: Path, jit_compile: bool = False, side_inputs: Sequence[str] = (),
                 fs: float | None = None) -> None:
        self.model = load_keras_model(path)
        names = input_names(self.model)
        main = [n for n in names if n not in side_inputs]
        if len(main) != 1 or len(names) != len(side_inputs) + 1:
            raise BiomedError(f"{path}: the model's inputs {names} do not match the card's side inputs "
                              f"{list(side_inputs)} (expected them plus one main input)")
        self.main, self.side_inputs, self.fs, self.path = main[0], list(side_inputs), fs, path
        self.input_shape = tuple(self.model.inputs[names.index(self.main)].shape)
        self.side_shapes = {name: tuple(self.model.inputs[names.index(name)].shape[1:]) for name in side_inputs}
        self.n_outputs = int(self.model.outputs[0].shape[-1])
        if jit_compile:
            self.model.compile(jit_compile=True)

    def predict(self, x: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        if not self.side_inputs:
            return np.asarray(self.model.predict_on_batch(x), np.float32)
        side = _side_of(side, self.side_inputs, x, self.fs)
        for name, expected in self.side_shapes.items():
            check_sample_shape(self.path, name, np.shape(side[name])[1:], expected)
        inputs = {self.main: x, **{name: side[name] for name in self.side_inputs}}
        return np.asarray(self.model.predict_on_batch(inputs), np.float32)


def check_sample_shape(path: Path, what: str, computed: tuple, expected: tuple) -> None:
    """Refuse inputs whose per-sample shape differs from the one the model was trained on.

    Such a model was exported by a biomed version that computed ``what`` (e.g. the expert
    features) differently: it has to be retrained and exported with this version.

    Raises:
        BiomedError: the shapes differ (a ``None`` in ``expected`` matches any size).
    """
    if len(computed) != len(expected) or any(e is not None and c != e for c, e in zip(computed, expected)):
        raise BiomedError(f"{path}: the model was trained on {what} of shape {list(expected)} per sample, "
                          f"this biomed computes {list(computed)}: it was exported by a version that computed "
                          f"them differently; retrain and export it with this version")


class SavedModelPredictor:
    """A SavedModel folder, called through its serving signature."""

    def __init__(self, path: Path, signature: str = "serving_default") -> None:
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))  # keep a reference: it owns the variables
        self.fn = self._loaded.signatures[signature]
        self.input_name = next(iter(self.fn.structured_input_signature[1]))
        self.input_shape = tuple(self.fn.structured_input_signature[1][self.input_name].shape)
        self.n_outputs = int(next(iter(self.fn.structured_outputs.values())).shape[-1])
        self.side_inputs: list[str] = []

    def predict(self, x: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        outputs = self.fn(**{self.input_name: self._tf.constant(x, self._tf.float32)})
        return next(iter(outputs.values())).numpy().astype(np.float32)


class TFLitePredictor:
    """A ``.tflite`` model: resizes a dynamic batch axis (or loops at a static one), (de)quantises int8 I/O."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        try:
            self.interpreter = tf.lite.Interpreter(model_path=str(path))
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as err:
            raise BiomedError(f"cannot run {path} with this TFLite runtime ({str(err)[:200]}); a model "
                              f"converted with Select TF ops needs the Flex delegate") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.dynamic = int(self.input["shape_signature"][0]) == -1
        self.input_shape = tuple(None if d < 0 else int(d) for d in self.input["shape_signature"])
        self.n_outputs = int(self.output["shape"][-1])
        self.batch = int(self.input["shape"][0])
        self.side_inputs: list[str] = []

    def predict(self, x: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        if self.dynamic:
            return self._invoke(x)
        return np.concatenate([self._invoke(x[i:i + self.batch]) for i in range(0, len(x), self.batch)])

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if self.dynamic and tuple(self.input["shape"]) != x.shape:
            self.interpreter.resize_tensor_input(self.input["index"], x.shape)
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(self.input["index"], _quantize(x, self.input))
        self.interpreter.invoke()
        return _dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)


class SklearnPredictor:
    """A scikit-learn baseline from a ``.skops`` file (allow-listed types only), fed the same
    preprocessed windows or images as the Keras models: its pipeline computes its own features.

    Args:
        path: the ``.skops`` file.
        input_shape: the card's input shape (None for the batch axis); the model must take that many values.
        n_classes: the card's class count; probabilities get a column per class, as in training.
        side_inputs: the card's side inputs, fed as in training (:func:`pipelines.side_inputs.sklearn_inputs`).
        fs: the card's sampling rate, for side inputs computed here.
    """

    def __init__(self, path: Path, input_shape: list[int | None], n_classes: int,
                 side_inputs: Sequence[str] = (), fs: float | None = None) -> None:
        self.model, self.path = load_skops_model(path), path
        self.input_shape, self.n_outputs = tuple(input_shape), n_classes
        self.side_inputs, self.fs = list(side_inputs), fs
        classes = np.asarray(getattr(self.model, "classes_", []))
        if not classes.size or classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= n_classes:
            raise BiomedError(f"{path}: the model's classes {classes.tolist()} are not class indices of the "
                              f"card's {n_classes} classes")
        declared = [list(value) for key, value in self.model.get_params(deep=True).items()
                    if key.rsplit("__", 1)[-1] == "side_inputs"]   # a step taking side inputs names them so
        if declared and declared[0] != self.side_inputs:
            raise BiomedError(f"{path}: the model reads the side inputs {declared[0]}, its card lists "
                              f"{self.side_inputs}; re-export it with biomed export")
        expected = int(np.prod(input_shape[1:]))
        if getattr(self.model, "n_features_in_", expected) != expected:
            raise BiomedError(f"{path}: the model takes {self.model.n_features_in_} values per input, the "
                              f"card's input shape {list(input_shape)} has {expected}")

    def predict(self, x: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        side = _side_of(side, self.side_inputs, x, self.fs)
        inputs = sklearn_inputs(x, side, self.side_inputs)
        if isinstance(self.model, Pipeline) and len(self.model) > 1 and hasattr(self.model[1], "n_features_in_"):
            features = self.model[:1].transform(inputs)   # e.g. the expert features: check what the model expects
            check_sample_shape(self.path, f"features of its first step ({self.model.steps[0][0]!r})",
                               np.shape(features)[1:], (int(self.model[1].n_features_in_),))
            return sklearn_proba(self.model[1:], features, self.n_outputs)
        return sklearn_proba(self.model, inputs, self.n_outputs)


class EnsemblePredictor:
    """An exported ensemble: each member (``members/<model>``, with its own card) loaded by
    :func:`load_predictor` and their probabilities averaged with the card's weights. Members
    share the side inputs of a batch (computed once)."""

    def __init__(self, folder: Path, card: dict[str, Any], card_file: Path, jit_compile: bool = False,
                 allow_savedmodel: bool = False) -> None:
        entries = card.get("members")
        if not isinstance(entries, list) or len(entries) < 2 or not all(
                isinstance(e, dict) and isinstance(e.get("folder"), str)
                and isinstance(e.get("weight"), (int, float)) and e["weight"] > 0 for e in entries):
            raise BiomedError(f"{card_file}: members: expected at least two {{folder, weight}} entries, "
                              f"got {entries!r}")
        self.members, weights = [], []
        for entry in entries:
            member_folder = card_model_file(folder, {"model_file": entry["folder"]}, card_file)
            predictor, member_card = load_predictor(member_folder, jit_compile, allow_savedmodel)
            for key in ("classes", "preprocess", "image"):
                if member_card.get(key) != card.get(key):
                    raise BiomedError(f"{member_folder}: the member's {key} {member_card.get(key)!r} differs "
                                      f"from the ensemble's {card.get(key)!r}")
            self.members.append(predictor)
            weights.append(float(entry["weight"]))
        self.weights = np.asarray(weights) / sum(weights)
        self.input_shape = self.members[0].input_shape
        self.n_outputs = self.members[0].n_outputs
        self.side_inputs = sorted({name for member in self.members for name in member.side_inputs})
        self.fs = (card.get("preprocess") or {}).get("fs")

    def predict(self, x: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        side = _side_of(side, self.side_inputs, x, self.fs)   # computed once for every member
        probs = [m.predict(x, side) for m in self.members]
        return sum(w * p for w, p in zip(self.weights, probs)).astype(np.float32)


def _quantize(x: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    scale, zero = details["quantization"]
    if details["dtype"] == np.float32 or not scale:
        return x.astype(details["dtype"])
    info = np.iinfo(details["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(details["dtype"])


def _dequantize(y: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    scale, zero = details["quantization"]
    if details["dtype"] == np.float32 or not scale:
        return y.astype(np.float32)
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def load_predictor(model: Path, jit_compile: bool = False, allow_savedmodel: bool = False
                   ) -> tuple[Predictor, dict[str, Any]]:
    """Load an export folder (card + artefact) or a model file with a card beside it.

    ``jit_compile`` compiles a ``.keras`` model with XLA for inference (faster for some models).
    A SavedModel is a TensorFlow program that can read and write files when it runs, so it is
    loaded only with ``allow_savedmodel``. The card is checked against the loaded model.

    Returns:
        The predictor of the artefact's format and the model card.
    """
    model = Path(model)
    if not model.exists():
        raise BiomedError(f"model {model} does not exist")
    card_file = model / CARD_NAME if model.is_dir() else model.parent / CARD_NAME
    card = read_card(card_file)
    artefact = card_model_file(model, card, card_file) if model.is_dir() else model
    if card.get("format") == "ensemble":
        predictor = EnsemblePredictor(model if model.is_dir() else model.parent, card, card_file, jit_compile,
                                      allow_savedmodel)
    elif artefact.suffix == ".keras":
        predictor = KerasPredictor(artefact, jit_compile, card.get("side_inputs") or (),
                                   (card.get("preprocess") or {}).get("fs"))
    elif artefact.suffix == ".tflite":
        predictor = TFLitePredictor(artefact)
    elif artefact.suffix == ".skops":
        predictor = SklearnPredictor(artefact, card.get("input", {}).get("shape") or [None],
                                     len(card.get("classes") or []), card.get("side_inputs") or (),
                                     (card.get("preprocess") or {}).get("fs"))
    elif (artefact / "saved_model.pb").is_file():
        if not allow_savedmodel:
            raise BiomedError(f"{artefact} is a SavedModel: loading one runs the TensorFlow program inside it, "
                              f"which can read and write files; pass --allow-savedmodel only for a model you "
                              f"trust, or predict with a .keras (safe mode) or .tflite export")
        predictor = SavedModelPredictor(artefact, card.get("serving", {}).get("signature", "serving_default"))
    else:
        raise BiomedError(f"{artefact}: not a .keras, .tflite or .skops file or a SavedModel folder")
    check_card(card, card_file, predictor.input_shape, predictor.n_outputs)
    return predictor, card


def expand_inputs(inputs: Iterable[str], modality: str) -> Iterator[Path]:
    """Input paths one by one, as the modality's plugin expands them (folders to their records or images).

    Paths that do not exist are returned as given (and skipped later with a reason).
    """
    reader = plugins.PREDICT_INPUTS.get(modality)
    seen: set[Path] = set()
    for path in (p for item in inputs for p in reader.expand(Path(item))):
        if path not in seen:
            seen.add(path)
            yield path


@dataclasses.dataclass
class PredictionSummary:
    """What one prediction pass did: records scored and skipped, and the files written."""

    scored: int
    skipped: int
    files: dict[str, Path]


def predict_inputs(predictor: Predictor, card: dict[str, Any], inputs: Iterable[str], out: Path, *,
                   per_window: bool = False, batch_size: int = 256, chunk_records: int = CHUNK_RECORDS,
                   progress_every: int = PROGRESS_EVERY) -> PredictionSummary:
    """Score every input and write ``out`` (per record), ``<out>_skipped.csv`` and optionally ``<out>_windows.csv``.

    Args:
        predictor: the loaded model.
        card: its model card.
        inputs: record paths/folders (ECG) or image files/folders.
        out: the per-record CSV: ``record, path, n_windows, prob_<class>..., predicted``.
        per_window: also write one row per window.
        batch_size: windows per model call.
        chunk_records: records preprocessed and scored together (bounds memory).
        progress_every: log a progress line (debug level, ``--verbose``) every this many records;
            at the default verbosity a progress bar counts the inputs.

    Returns:
        Counts of scored and skipped records and the paths written.
    """
    out = Path(out)
    files = {"records": out, "skipped": out.with_name(f"{out.stem}_skipped.csv")}
    if per_window:
        files["windows"] = out.with_name(f"{out.stem}_windows.csv")
    scored = skipped = 0
    with contextlib.ExitStack() as stack:
        handles = {k: stack.enter_context(_csv_stream(path)) for k, path in files.items()}
        bar = stack.enter_context(progress(None, "predicting", "input"))
        paths = expand_inputs(inputs, card["modality"])
        while chunk := [p for _, p in zip(range(chunk_records), paths)]:
            windows, names, problems = _score_chunk(predictor, card, chunk, batch_size)
            records = _record_rows(windows, names, card)
            handles["records"].write(records)
            handles["skipped"].write(pd.DataFrame(problems, columns=["record", "path", "reason"]))
            if per_window:
                handles["windows"].write(_window_rows(windows, names))
            before = scored + skipped
            scored, skipped = scored + len(records), skipped + len(problems)
            bar.update(len(records) + len(problems))
            if (scored + skipped) // progress_every > before // progress_every:
                log.debug(f"  {scored + skipped} inputs: {scored} scored, {skipped} skipped")
    log.info(f"scored {scored} input(s), skipped {skipped}: {out}")
    return PredictionSummary(scored, skipped, files)


def _score_chunk(predictor: Predictor, card: dict[str, Any], chunk: list[Path], batch_size: int
                 ) -> tuple[Predictions, dict[str, str], list[dict[str, str]]]:
    """Preprocess and score the inputs of one chunk.

    Returns:
        The window predictions (``record`` is the input path), the record name of each
        path, and the skipped inputs with their reasons.
    """
    reader = plugins.PREDICT_INPUTS.get(card["modality"])
    arrays, names, problems = [], {}, []
    for path in chunk:
        if not _is_utf8(str(path)):
            shown = os.fsencode(path).decode("utf-8", "replace")
            problems.append({"record": Path(shown).stem, "path": shown,
                             "reason": "file name is not valid UTF-8 (rename the file)"})
            continue
        try:
            arrays.append(reader.read(path, card))
            names[str(path)] = reader.name(path)
        except RecordError as err:
            problems.append({"record": path.stem, "path": str(path), "reason": str(err)})
        except Exception as err:  # one bad input never stops the batch
            problems.append({"record": path.stem, "path": str(path),
                             "reason": f"unexpected {type(err).__name__}: {err}"})
    task = Task.of(card["classes"], _positive_class(card))
    counts = [len(a) for a in arrays]
    x = np.concatenate(arrays) if arrays else np.zeros((0, 1), np.float32)
    side = record_side_inputs(predictor.side_inputs, x, np.repeat(np.arange(len(counts)), counts),
                              (card.get("preprocess") or {}).get("fs")) if len(x) else {}
    probs = [predictor.predict(x[i:i + batch_size], {name: v[i:i + batch_size] for name, v in side.items()})
             for i in range(0, len(x), batch_size)]
    windows = Predictions(task, None, np.repeat(list(names), counts).astype(str),
                          np.concatenate([np.arange(n) for n in counts]) if counts else np.zeros(0, int),
                          np.concatenate(probs) if probs else np.zeros((0, len(task.classes)), np.float32))
    return windows, names, problems


def _is_utf8(text: str) -> bool:
    """False for names holding undecodable bytes (``surrogateescape``), which UTF-8 CSVs cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _record_rows(windows: Predictions, names: dict[str, str], card: dict[str, Any]) -> pd.DataFrame:
    """Per-record mean probabilities (the evaluation's aggregation), window counts and the decision.

    Binary tasks apply the card's validation threshold to the positive class; others take the argmax
    (of the probabilities times the card's ``class_weights``, when it has them).
    """
    records = windows.by_record()
    frame = pd.DataFrame({"record": [names[path] for path in records.record], "path": records.record,
                          "n_windows": records.window})
    frame[records.task.prob_columns] = records.probs
    threshold = card.get("threshold") if _positive_class(card) is not None else None
    decided = records.decide(threshold, card.get("class_weights"))
    frame["predicted"] = np.asarray(records.task.classes, dtype=object)[decided]
    return frame


def _window_rows(windows: Predictions, names: dict[str, str]) -> pd.DataFrame:
    """One row per window: record, path, window, prob_<class>..."""
    frame = pd.DataFrame({"record": [names[path] for path in windows.record], "path": windows.record,
                          "window": windows.window})
    frame[windows.task.prob_columns] = windows.probs
    return frame


def _positive_class(card: dict[str, Any]) -> str | None:
    """The card's positive class of a binary task, or None."""
    positive = card.get("positive_class")
    return positive if len(card["classes"]) == 2 and positive in card["classes"] else None


class _CsvStream:
    """Append DataFrames to one CSV, writing the header once."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.header = handle, True

    def write(self, frame: pd.DataFrame) -> None:
        if self.header or len(frame):
            frame.to_csv(self.handle, header=self.header, index=False)
            self.header = False


@contextlib.contextmanager
def _csv_stream(path: Path) -> Iterator[_CsvStream]:
    """A CSV written chunk by chunk into a temporary file, renamed onto ``path`` when complete."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        yield _CsvStream(handle)


def predict_command(args: argparse.Namespace) -> None:
    """``biomed predict``: load the model and its card, score the inputs, write the CSVs."""
    if args.batch_size < 1:
        raise BiomedError("--batch-size must be at least 1")
    predictor, card = load_predictor(Path(args.model), jit_compile=args.jit_compile,
                                     allow_savedmodel=args.allow_savedmodel)
    summary = predict_inputs(predictor, card, args.inputs, Path(args.out), per_window=args.per_window,
                             batch_size=args.batch_size)
    if not summary.scored:
        raise BiomedError(f"no input scored: {summary.skipped} skipped, reasons in {summary.files['skipped']}")
    if summary.skipped:
        log.info(f"skipped inputs and reasons: {summary.files['skipped']}")

"""``biomed export``: a trained model with its model card: Keras models as ``.keras``, SavedModel,
TFLite or ONNX, scikit-learn baselines as ``.skops``, a run's ensembles as their members in those formats.

Sources are a run folder (the model × seed of the format's family with the best
record-level validation ROC-AUC unless ``--model``/``--seed`` are given), a
model folder ``models/<model>/seed_<k>`` or a bare ``.keras`` file (its card
then lacks the run's preprocessing, classes and metrics). Nothing loaded runs
code: ``.keras`` files load with ``safe_mode=True`` (``Lambda`` layers are
refused) and ``.skops`` files only when every type they hold is on an explicit
allow-list (:func:`load_skops_model`); pickle and joblib files are never loaded.
``--ensemble`` exports every seed of the named models of a run as one seed ensemble: one Keras
model averaging their softmax, or with ``--format ensemble`` members of any family (config
ensembles expanded); its card's threshold and metrics come from the members' averaged
predictions. A model of a run is exported with the run's test-time augmentation
(``evaluation.tta``) built in (:mod:`pipelines.averaging`); the card records members and views.

Layout of ``--out DIR``::

    keras:      DIR/model.keras            DIR/model_card.json
    savedmodel: DIR/1/saved_model.pb ...   DIR/model_card.json   (TF Serving version folder)
    tflite:     DIR/model.tflite           DIR/model_card.json
    onnx:       DIR/model.onnx             DIR/model_card.json   (tf2onnx; run with onnxruntime)
    skops:      DIR/model.skops            DIR/model_card.json   (scikit-learn Pipeline)
    ensemble:   DIR/members/<model>/...    DIR/model_card.json   (each member exported as keras or skops,
                                                                   with its own card; predict averages them;
                                                                   seed ensembles: members/<model>/seed_<k>)

TFLite is converted from a SavedModel exported for the purpose. The converter
runs in a child process because it can crash the interpreter (seen: int8
calibration of LSTM layers); a crash becomes a readable error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from pipelines import plugins
from pipelines.artifacts import atomic_path
from pipelines.config import ExperimentConfig, load_config
from pipelines.ensembles import ENSEMBLE_FILE, average_predictions, read_members, seed_folder
from pipelines.errors import BiomedError
from pipelines.metrics import evaluate_predictions, parse_class_weights, validation_roc_auc
from pipelines.model_card import FORMATS, SELECTION_NOTE, build_card, write_card
from pipelines.modeling import get_model
from pipelines.predictions import Task, read_predictions
from pipelines.side_inputs import input_names

log = logging.getLogger("biomed")

#: The model family each format exports, and the artefact of that family in a model folder.
FORMAT_FAMILY = {"keras": "keras", "savedmodel": "keras", "tflite": "keras", "onnx": "keras", "skops": "sklearn",
                 "ensemble": "ensemble"}
ARTEFACTS = {"keras": "model.keras", "sklearn": "model.skops", "ensemble": ENSEMBLE_FILE}
#: The format each member of an exported ensemble takes, by family.
MEMBER_FORMAT = {"keras": "keras", "sklearn": "skops"}
#: Types a ``.skops`` file may hold besides those the plugins register (``plugins.SKOPS_TYPES``):
#: plain containers, numpy arrays and their scalar types.
SKOPS_BASE_TYPES = tuple(plugins.type_name(t) for t in (
    dict, list, tuple, str, int, float, bool, type(None), np.ndarray, np.dtype, np.bool_, np.int8, np.int16,
    np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64))
QUANTIZATIONS = ("dynamic", "float16", "int8")
SERVING_VERSION = "1"
SIGNATURE = "serving_default"
ENDPOINT = "serve"
REPRESENTATIVE_WINDOWS = 200
ONNX_OPSET = 17
# (ops, batch) tried in order: a dynamic batch axis first; recurrent layers convert to
# TFLite builtins only with a static batch; Select TF ops need the Flex delegate at runtime.
TFLITE_ATTEMPTS = (("builtins", None), ("builtins", 1), ("builtins+select_tf_ops", None))


@dataclass
class ExportSource:
    """The model to export and where it comes from.

    Attributes:
        model_file: the ``model.keras`` or ``model.skops`` file.
        run_dir: the run folder, or None for a bare ``.keras`` file.
        model: model label inside the run.
        seed: training seed inside the run.
        selection: how the model × seed was chosen (for the card).
        members: the model × seed members of a seed ensemble (empty: the one ``model_file``).
    """

    model_file: Path
    run_dir: Path | None = None
    model: str | None = None
    seed: int | None = None
    selection: str | None = None
    members: list[EnsembleMember] = field(default_factory=list)


@dataclass(frozen=True)
class EnsembleMember:
    """One model × seed of an exported seed ensemble and its weight in the average."""

    model: str
    seed: int
    model_file: Path
    weight: float


def resolve_source(source: Path, model: str | None = None, seed: int | None = None,
                   model_format: str = "keras") -> ExportSource:
    """Find the model file of a run folder, model folder or ``.keras`` file to export in ``model_format``.

    Raises:
        BiomedError: nothing exportable in that format there.
    """
    source, family = Path(source), _family(model_format)
    if source.is_file():
        if (source.parent / "info.json").is_file():
            return _model_folder_source(source.parent, family)
        if source.suffix != ".keras" or family != "keras":
            raise BiomedError(f"{source}: a bare file exports only as a Keras model (.keras); export a "
                              f"scikit-learn baseline from its run or model folder (its card needs the run's "
                              f"preprocessing)")
        return ExportSource(source, selection="a bare .keras file")
    if (source / "config.yaml").is_file() and (source / "metrics.csv").is_file():
        label, best_seed, selection = select_model(source, model, seed, family)
        return _model_folder_source(source / "models" / label / f"seed_{best_seed}", family, selection)
    if (source / "info.json").is_file():
        return _model_folder_source(source, family)
    raise BiomedError(f"{source}: not a run folder (config.yaml + metrics.csv), a model folder "
                      f"(models/<model>/seed_<k>) or a .keras file")


def _family(model_format: str) -> str:
    if model_format not in FORMATS:
        raise BiomedError(f"unknown export format {model_format!r}; choose one of {', '.join(FORMATS)}")
    return FORMAT_FAMILY[model_format]


def _model_folder_source(folder: Path, family: str, selection: str = "given model folder") -> ExportSource:
    model_file = folder / ARTEFACTS[family]
    if not model_file.is_file():
        other = next((f for f in ARTEFACTS.values() if (folder / f).is_file()), None)
        if other:
            formats = [f for f, fam in FORMAT_FAMILY.items() if ARTEFACTS[fam] == other]
            hint = f"it holds {other}: export it with --format {' or '.join(formats)}"
        elif (folder / "model.joblib").is_file():
            hint = ("it holds model.joblib, which biomed never loads (joblib runs code on load); retrain the "
                    "baseline with this version to get model.skops")
        else:
            hint = "it holds no trained model"
        raise BiomedError(f"{folder}: no {ARTEFACTS[family]} to export; {hint}")
    run_dir = folder.parents[2] if (folder.parents[2] / "config.yaml").is_file() else None
    seed = int(folder.name.removeprefix("seed_")) if folder.name.startswith("seed_") else None
    return ExportSource(model_file, run_dir, folder.parent.name, seed, selection)


def ensemble_source(run_dir: Path, models: list[str], model_format: str = "keras") -> ExportSource:
    """Every trained seed of ``models`` of a run folder as one seed ensemble to export in ``model_format``.

    Keras formats average Keras models only (``models`` empty: all of the run's). The
    ``ensemble`` format also takes scikit-learn baselines and config ensembles (each
    seed expanded into its members; ``models`` empty: the run's config ensembles).
    Keras formats average their members equally (one Keras model); the ``ensemble``
    format weighs every named model the same, shared equally by its seeds.

    Raises:
        BiomedError: not a run folder, or a name matches nothing exportable in that format.
    """
    run_dir, family = Path(run_dir), _family(model_format)
    if not (run_dir / "config.yaml").is_file():
        raise BiomedError(f"{run_dir}: --ensemble needs a run folder (with config.yaml)")
    if family == "sklearn":
        raise BiomedError("--ensemble exports as keras, savedmodel, tflite, onnx or ensemble, not skops")
    kinds = ("keras",) if family == "keras" else ("keras", "sklearn", "ensemble")
    found = _trained_models(run_dir, kinds)
    if not models and family == "ensemble":
        models = [label for label, seeds in found.items() if seeds[0][1] == "ensemble"]
        if not models:
            raise BiomedError(f"{run_dir}: the run has no ensembles; name the models to ensemble after --ensemble "
                              f"(trained: {', '.join(sorted(found)) or 'none'})")
    labels = list(dict.fromkeys(models)) or sorted(found)
    missing = [label for label in labels if label not in found]
    if missing or not labels:
        what = "Keras model" if family == "keras" else "model or ensemble"
        raise BiomedError(f"{run_dir}: no trained {what} {', '.join(missing)} to ensemble (trained: "
                          f"{', '.join(sorted(found)) or 'none'}; scikit-learn baselines and config ensembles "
                          f"ensemble with --format ensemble)")
    weights: dict[tuple[str, int], float] = {}
    for label in labels:
        for folder, kind in found[label]:
            seed = int(folder.name.removeprefix("seed_"))
            parts = read_members(folder) if kind == "ensemble" else [(label, 1.0)]
            total = sum(w for _, w in parts) * len(found[label]) * len(labels)
            for member, weight in parts:
                share = 1.0 if family == "keras" else weight / total
                weights[member, seed] = weights.get((member, seed), 0.0) + share
    members = [EnsembleMember(model, seed, _member_file(run_dir, model, seed), weight)
               for (model, seed), weight in sorted(weights.items())]
    if family == "ensemble" and len(members) < 2:
        raise BiomedError(f"{run_dir}: {', '.join(labels)} has one trained model x seed; an ensemble needs at least "
                          f"two (train more seeds, or export the model itself with --model {labels[0]})")
    return ExportSource(members[0].model_file, run_dir, "ensemble(" + "+".join(labels) + ")", None,
                        f"seed ensemble: weighted mean of {len(members)} model x seed members", members)


def _trained_models(run_dir: Path, kinds: tuple[str, ...]) -> dict[str, list[tuple[Path, str]]]:
    """``{model: [(seed folder, family)...]}`` of a run's trained models and ensembles of ``kinds``."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for folder in sorted((run_dir / "models").glob("*/seed_*")):
        kind = _artefact_family(folder, kinds)
        if kind is not None:
            found.setdefault(folder.parent.name, []).append((folder, kind))
    return found


def _artefact_family(folder: Path, families: Iterable[str]) -> str | None:
    """The first of ``families`` whose artefact a model folder holds, or None."""
    return next((family for family in families if (folder / ARTEFACTS[family]).is_file()), None)


def _member_file(run_dir: Path, model: str, seed: int) -> Path:
    """The trained model file of one member model × seed (``.keras`` before ``.skops``)."""
    folder = seed_folder(run_dir, model, seed)
    family = _artefact_family(folder, MEMBER_FORMAT)
    if family is None:
        raise BiomedError(f"{folder}: an ensemble member holds no trained model")
    return folder / ARTEFACTS[family]


def select_model(run_dir: Path, model: str | None, seed: int | None, family: str = "keras"
                 ) -> tuple[str, int, str]:
    """The (model label, seed) to export from a run folder, and how it was chosen.

    Among the models of ``family`` (those with a ``model.keras``, or a ``model.skops``)
    matching ``model``/``seed``, the best record-level **validation** ROC-AUC (macro
    ROC-AUC for multi-class tasks) computed from each ``predictions.csv``; the test
    split plays no part in the choice.
    """
    metrics = pd.read_csv(run_dir / "metrics.csv")
    rows = metrics[metrics["level"] == "record"]
    rows = rows[[(run_dir / "models" / m / f"seed_{s}" / ARTEFACTS[family]).is_file()
                 for m, s in zip(rows["model"], rows["seed"])]]
    if model is not None:
        rows = rows[rows["model"] == model]
    if seed is not None:
        rows = rows[rows["seed"] == seed]
    if rows.empty:
        available = sorted(set(metrics["model"]))
        kind = {"keras": "Keras model", "sklearn": "scikit-learn baseline (--format skops)",
                "ensemble": "ensemble (--format ensemble)"}[family]
        raise BiomedError(f"{run_dir}: no trained {kind} matches model={model!r} seed={seed!r} "
                          f"(models in metrics.csv: {', '.join(available)}; Keras models export with --format "
                          f"keras, savedmodel, tflite or onnx, scikit-learn baselines with --format skops, ensembles "
                          f"with --format ensemble)")
    if model is not None and seed is not None:
        return model, seed, "given --model/--seed"
    config = load_config(run_dir / "config.yaml", check_data=False)
    scores = [validation_roc_auc(read_predictions(
        str(run_dir / "models" / m / f"seed_{s}" / "predictions.csv"),
        Task.of(config.data.task.classes, config.data.task.positive)))
        for m, s in zip(rows["model"], rows["seed"])]
    best = rows.iloc[int(np.argmax(np.nan_to_num(scores, nan=-np.inf)))]
    return str(best["model"]), int(best["seed"]), SELECTION_NOTE


def load_skops_model(path: Path) -> Any:
    """Load a ``.skops`` file only if every type in it is on the allow-list; nothing else is trusted.

    The allow-list is :data:`SKOPS_BASE_TYPES` plus the classes the plugins register
    (``plugins.SKOPS_TYPES``: the expert baselines' pipelines). The file's schema is read as
    JSON (no code runs) and skops' own check of untrusted types must agree.

    Raises:
        BiomedError: the file is missing, not a skops file, or holds a type off the allow-list.
    """
    import skops.io

    path = Path(path)
    if not path.is_file():
        raise BiomedError(f"model file {path} does not exist")
    allowed = set(SKOPS_BASE_TYPES) | {name for name, _ in plugins.SKOPS_TYPES.items()}
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
        untrusted = skops.io.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BiomedError(f"{path}: not a skops file ({type(err).__name__}: {str(err)[:120]})") from None
    refused = sorted((_schema_types(schema) | set(untrusted)) - allowed)
    if refused:
        raise BiomedError(f"{path}: refused to load: it holds type(s) outside biomed's allow-list: "
                          f"{', '.join(refused[:5])}{' ...' if len(refused) > 5 else ''}; only the "
                          f"scikit-learn pipelines biomed trains are loaded")
    try:
        return skops.io.load(path, trusted=untrusted)
    except Exception as err:  # skops raises many types for damaged files
        raise BiomedError(f"cannot load {path}: {type(err).__name__}: {str(err)[:200]}") from None


def _schema_types(node: Any) -> set[str]:
    """Every ``module.Class`` named in a skops schema (objects, functions, types, dtypes)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__class__" in item or "__module__" in item:
                found.add(f"{item.get('__module__')}.{item.get('__class__')}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def load_keras_model(path: Path) -> Any:
    """Load a ``.keras`` file for inference with ``safe_mode=True`` (no arbitrary code).

    Raises:
        BiomedError: the file is missing, unreadable, or needs unsafe deserialisation (``Lambda``).
    """
    import keras

    plugins.load_plugins()  # the modality plugins register their custom layers
    if not Path(path).is_file():
        raise BiomedError(f"model file {path} does not exist")
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as err:  # Keras raises ValueError/TypeError/OSError for refused or broken files
        text = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        hint = (" Lambda layers and other arbitrary code are refused: the model was loaded in safe mode"
                if "safe_mode" in str(err) or "lambda" in str(err).lower() else "")
        raise BiomedError(f"cannot load {path} in safe mode: {text}.{hint}") from None


def input_spec(model: Any) -> tuple[str, list[int | None], list[str]]:
    """The main input's name and shape (batch axis None) of a Keras model, and its side inputs.

    Side inputs are the inputs named after a registered side input (``plugins.SIDE_INPUTS``);
    every other model takes exactly one input.
    """
    registered = {name for name, _ in plugins.SIDE_INPUTS.items()}
    names = input_names(model)
    side = [n for n in names if n in registered]
    main = [tensor for tensor in model.inputs if tensor.name not in side]
    if len(main) != 1:
        raise BiomedError(f"model {model.name!r} has inputs {names}: expected one main input "
                          f"plus registered side inputs ({', '.join(sorted(registered)) or 'none'})")
    return main[0].name, [None, *main[0].shape[1:]], side


def export_savedmodel(model: Any, folder: Path, batch: int | None = None) -> dict[str, Any]:
    """Export ``model`` to ``folder/1`` (a TF Serving version folder) with a named serving signature.

    Args:
        model: the Keras model.
        folder: the model's base folder (TF Serving's ``--model_base_path``).
        batch: a static batch size for the signature (None: any batch size).

    Returns:
        The serving description for the card: signature, endpoint and input name.
    """
    import tensorflow as tf

    name, shape, _ = input_spec(model)
    spec = tf.TensorSpec((batch, *shape[1:]), tf.float32, name=name)
    target = Path(folder) / SERVING_VERSION
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".savedmodel-", dir=target.parent))
    try:
        model.export(str(tmp / "model"), format="tf_saved_model", input_signature=[spec], verbose=False)
        if target.exists():
            shutil.rmtree(target)
        (tmp / "model").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"signature": SIGNATURE, "endpoint": ENDPOINT, "version_folder": SERVING_VERSION,
            "input_name": name}


def convert_tflite(keras_file: Path, out_file: Path, quantize: str | None = None,
                   representative: np.ndarray | None = None) -> dict[str, Any]:
    """Convert a ``.keras`` model to TFLite through an exported SavedModel (in this process).

    Tries a dynamic batch axis with builtin ops, then a static batch of 1, then
    Select TF ops (which need the Flex delegate at runtime). ``int8`` tries
    int8 input/output first, then float32 input/output around integer ops.

    Args:
        keras_file: the model to convert.
        out_file: where to write the ``.tflite`` flatbuffer.
        quantize: None (float32), "dynamic", "float16" or "int8".
        representative: model-ready input samples for int8 calibration.

    Returns:
        TFLite details for the card: quantization, ops, batch, input/output dtypes.
    """
    import tensorflow as tf

    if quantize == "int8" and representative is None:
        raise BiomedError("int8 quantisation needs a representative dataset: export from a run folder")
    model = load_keras_model(keras_file)
    prefer_builtin_ops(model)
    io_types = (tf.int8, tf.float32) if quantize == "int8" else (tf.float32,)
    errors = []
    for ops, batch in TFLITE_ATTEMPTS:
        with tempfile.TemporaryDirectory() as tmp:
            export_savedmodel(model, Path(tmp), batch)
            for io_type in io_types:
                converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / SERVING_VERSION),
                                                                     signature_keys=[SIGNATURE])
                _configure_converter(converter, quantize, representative, ops, io_type)
                try:
                    flat = converter.convert()
                except Exception as err:  # the converter raises ConverterError with an MLIR dump
                    errors.append(f"{ops}, batch {batch or 'dynamic'}: {_first_error(err)}")
                    continue
                with atomic_path(out_file) as part:
                    part.write_bytes(flat)
                return {"quantization": quantize or "none", "ops": ops, "batch": batch,
                        "io_dtype": io_type.name, "attempts_failed": errors}
    raise BiomedError("TFLite conversion failed: " + " | ".join(errors))


def prefer_builtin_ops(model: Any) -> None:
    """Switch layers that offer a TFLite-builtin formulation to it (``layer.use_builtin_ops()``).

    MINA's filter bank, for instance, runs as an FFT in training and as the
    equivalent convolution for TFLite (same output within float round-off).
    """
    for layer in model.layers:
        if hasattr(layer, "use_builtin_ops"):
            layer.use_builtin_ops()
        if hasattr(layer, "layers"):
            prefer_builtin_ops(layer)


def _configure_converter(converter: Any, quantize: str | None, representative: np.ndarray | None,
                         ops: str, io_type: Any) -> None:
    import tensorflow as tf

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if ops == "builtins+select_tf_ops":
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        converter._experimental_lower_tensor_list_ops = False  # keep LSTM loops as TF ops
    if quantize is None:
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
        if io_type == tf.int8:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8


def _first_error(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if "error" in line.lower()]
    return (lines[0] if lines else str(err).strip().splitlines()[0] if str(err).strip() else
            type(err).__name__)[:300]


def _tflite_worker(keras_file: Path, out_file: Path, quantize: str | None,
                   representative: np.ndarray | None, conn: Any) -> None:
    try:
        conn.send(("ok", convert_tflite(keras_file, out_file, quantize, representative)))
    except Exception as err:  # reported to the parent as one line
        conn.send(("error", str(err) if isinstance(err, BiomedError) else f"{type(err).__name__}: {err}"))


def convert_tflite_isolated(keras_file: Path, out_file: Path, quantize: str | None = None,
                            representative: np.ndarray | None = None) -> dict[str, Any]:
    """:func:`convert_tflite` in a child process, so a converter crash cannot kill the caller.

    Raises:
        BiomedError: conversion failed, or the converter crashed (e.g. int8 of LSTM layers).
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_tflite_worker,
                            args=(keras_file, out_file, quantize, representative, send), daemon=True)
    child.start()
    send.close()
    try:
        status, payload = receive.recv()
    except EOFError:
        status, payload = "crash", None
    child.join()
    if status == "ok":
        return payload
    if status == "crash":
        raise BiomedError(f"the TFLite converter crashed (exit code {child.exitcode}) converting "
                          f"{keras_file} with quantize={quantize or 'none'}; recurrent (LSTM) models are "
                          f"known to crash int8 calibration: try --quantize dynamic or float16")
    raise BiomedError(payload)


def convert_onnx(model: Any, out_file: Path) -> dict[str, Any]:
    """Convert a Keras model to ONNX with tf2onnx (the ``onnx`` extra), builtin-op layers preferred.

    Returns:
        ONNX details for the card: opset, converter version and the graph's output name.

    Raises:
        BiomedError: tf2onnx is not installed, or the conversion failed.
    """
    import tensorflow as tf

    try:
        import tf2onnx
    except ImportError:
        raise BiomedError("--format onnx needs tf2onnx and onnxruntime: pip install 'biomed[onnx]'") from None
    name, shape, _ = input_spec(model)
    prefer_builtin_ops(model)
    spec = (tf.TensorSpec(shape, tf.float32, name=name),)
    with atomic_path(out_file) as part:
        try:
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET,
                                                  output_path=str(part))
        except Exception as err:  # tf2onnx raises ValueError/RuntimeError for unsupported ops
            raise BiomedError(f"ONNX conversion failed: {_first_error(err)}") from None
    return {"opset": ONNX_OPSET, "converter": f"tf2onnx {tf2onnx.__version__}",
            "output_name": proto.graph.output[0].name}


def representative_windows(run_dir: Path, n: int = REPRESENTATIVE_WINDOWS) -> np.ndarray:
    """Up to ``n`` model-ready training inputs of a run (evenly spaced, deterministic)."""
    from pipelines.datasets import prepare_data
    from pipelines.tfdata import model_inputs

    train = prepare_data(load_config(run_dir / "config.yaml")).splits["train"]
    take = np.linspace(0, len(train) - 1, min(n, len(train))).round().astype(int)
    return model_inputs(train.x[take]).astype(np.float32)


def export_model(source: ExportSource, model_format: str, out: Path, quantize: str | None = None, *,
                 isolated: bool = True) -> Path:
    """Export ``source`` into ``out`` in ``model_format`` and write its model card.

    Args:
        source: what to export (see :func:`resolve_source`).
        model_format: "keras", "savedmodel", "tflite", "onnx" (Keras models) or "skops" (scikit-learn baselines).
        out: the export folder.
        quantize: TFLite quantisation (None, "dynamic", "float16", "int8").
        isolated: convert TFLite in a child process (protects against converter crashes).

    Returns:
        The path of the written ``model_card.json``.
    """
    seed_ensemble = model_format == "ensemble" and bool(source.members)
    if _family(model_format) != _file_family(source.model_file) and not seed_ensemble:
        raise BiomedError(f"{source.model_file} cannot be exported as {model_format}")
    if quantize is not None and model_format != "tflite":
        raise BiomedError("--quantize applies to --format tflite only")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise BiomedError(f"unknown quantisation {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}")
    out = Path(out)
    _refuse_source_folder(source, out)
    if model_format == "skops":
        return _export_skops(source, out)
    if model_format == "ensemble":
        return _export_ensemble(source, out)
    with tempfile.TemporaryDirectory() as tmp:
        model, keras_file, extra = _deployed_model(source, Path(tmp))
        return _export(source, model, keras_file, extra, model_format, out, quantize, isolated)


def _refuse_source_folder(source: ExportSource, out: Path) -> None:
    """Refuse an export folder that is the run folder or holds a model being exported: the export's
    files (``model.keras``, ``model_card.json``, ...) would overwrite or mix with the source's."""
    sources = [source.run_dir, source.model_file.parent, *(member.model_file.parent for member in source.members)]
    if out.resolve() in {folder.resolve() for folder in sources if folder is not None}:
        raise BiomedError(f"--out {out} is the run folder or the folder of a model being exported; "
                          f"export into a folder of its own (e.g. {out / 'export'})")


def _deployed_model(source: ExportSource, tmp: Path) -> tuple[Any, Path, dict[str, Any]]:
    """The model to deploy (members and TTA views averaged), its ``.keras`` file and its card fields."""
    from pipelines.averaging import averaged_model, tta_views

    files = [member.model_file for member in source.members] or [source.model_file]
    members = [load_keras_model(path) for path in files]
    several_inputs = sorted({name for member in members if len(member.inputs) > 1 for name in input_names(member)})
    if len(members) > 1 and several_inputs:
        raise BiomedError(f"{source.model}: its members take the inputs {several_inputs} (side inputs), which one "
                          f"averaged Keras model cannot carry; export the seed ensemble with --format ensemble "
                          f"(each seed a member, averaged by biomed predict)")
    config = load_config(source.run_dir / "config.yaml", check_data=False) if source.run_dir else None
    names = config.evaluation.tta if config is not None else []
    views = tta_views(config.data.modality, names, tuple(members[0].inputs[0].shape[1:])) if config else []
    extra: dict[str, Any] = {"tta": list(names)}
    if source.members:
        extra["ensemble"] = [{"model": member.model, "seed": member.seed} for member in source.members]
    model = averaged_model(members, views, name="deployed")
    if model is members[0]:
        return model, source.model_file, extra
    keras_file = tmp / "model.keras"
    model.save(keras_file)
    return model, keras_file, extra


def _export(source: ExportSource, model: Any, keras_file: Path, extra: dict[str, Any], model_format: str,
            out: Path, quantize: str | None, isolated: bool) -> Path:
    input_name, input_shape, side_inputs = input_spec(model)
    if side_inputs and model_format != "keras":
        raise BiomedError(f"model {source.model or model.name!r} takes the side inputs {side_inputs}, which "
                          f"biomed predict computes from the record; export it with --format keras "
                          f"(the other formats take the main input only)")
    if side_inputs:
        extra["side_inputs"] = side_inputs
    output_name = "output_0"
    if model_format == "keras":
        model_file = "model.keras"
        with atomic_path(out / model_file) as tmp:
            model.save(tmp)
    elif model_format == "savedmodel":
        import tensorflow as tf

        extra["serving"] = export_savedmodel(model, out)
        model_file = SERVING_VERSION
        signature = tf.saved_model.load(str(out / model_file)).signatures[SIGNATURE]
        output_name = extra["serving"]["output_name"] = next(iter(signature.structured_outputs))
    elif model_format == "onnx":
        model_file = "model.onnx"
        extra["onnx"] = convert_onnx(model, out / model_file)
        output_name = extra["onnx"]["output_name"]
    else:
        model_file = "model.tflite"
        representative = (representative_windows(source.run_dir)
                          if quantize == "int8" and source.run_dir is not None else None)
        convert = convert_tflite_isolated if isolated else convert_tflite
        extra["tflite"] = convert(keras_file, out / model_file, quantize, representative)
    return write_card(out, build_card(
        model_format=model_format, model_file=model_file, input_name=input_name, input_shape=input_shape,
        output_name=output_name, n_outputs=int(model.outputs[0].shape[-1]), source_file=source.model_file,
        model=source.model, seed=source.seed, selection=source.selection, extra=extra,
        **_run_fields(source)))


def _export_skops(source: ExportSource, out: Path) -> Path:
    """Copy a run's ``model.skops`` (checked by loading it as predict will) and write its card.

    The card's input is the run's preprocessed window (ECG) or image: the pipeline
    computes its features itself, so predict feeds it exactly what training did.
    """
    if source.run_dir is None:
        raise BiomedError(f"{source.model_file}: a scikit-learn baseline exports from its run folder only")
    load_skops_model(source.model_file)
    fields = _run_fields(source)
    data = fields["config"].data
    shape = _run_input_shape(fields["config"])
    side_inputs = get_model(fields["config"].model_entry(source.model).type).side_inputs
    with atomic_path(out / ARTEFACTS["sklearn"]) as tmp:
        shutil.copyfile(source.model_file, tmp)
    return write_card(out, build_card(
        model_format="skops", model_file=ARTEFACTS["sklearn"], input_name=data.modality, input_shape=shape,
        output_name="predict_proba", n_outputs=len(data.task.classes), source_file=source.model_file,
        model=source.model, seed=source.seed, selection=source.selection,
        extra={"side_inputs": list(side_inputs)} if side_inputs else None, **fields))


def _export_ensemble(source: ExportSource, out: Path) -> Path:
    """Export each member of an ensemble in its family's safe format (``keras`` or ``skops``, each with its
    card) and write the ensemble's card, which ``predict`` averages by.

    A run's config ensemble of one seed puts its members under ``members/<model>``; a seed
    ensemble (:func:`ensemble_source`) under ``members/<model>/seed_<k>``.
    """
    if source.run_dir is None or (source.seed is None and not source.members):
        raise BiomedError(f"{source.model_file}: an ensemble exports from its run folder only")
    members = source.members or [EnsembleMember(label, source.seed, _member_file(source.run_dir, label, source.seed),
                                                weight) for label, weight in read_members(source.model_file.parent)]
    entries = []
    for member in members:
        family = _file_family(member.model_file)
        folder = f"members/{member.model}" + (f"/seed_{member.seed}" if source.members else "")
        member_source = _model_folder_source(member.model_file.parent, family, f"member of ensemble {source.model}")
        export_model(member_source, MEMBER_FORMAT[family], out / folder)
        entries.append({"model": member.model, **({"seed": member.seed} if source.members else {}),
                        "folder": folder, "format": MEMBER_FORMAT[family], "weight": member.weight})
    fields = _run_fields(source)
    data = fields["config"].data
    return write_card(out, build_card(
        model_format="ensemble", model_file="members", input_name=data.modality,
        input_shape=_run_input_shape(fields["config"]), output_name="mean_proba",
        n_outputs=len(data.task.classes), source_file=source.model_file, model=source.model, seed=source.seed,
        selection=source.selection, extra={"members": entries}, **fields))


def _file_family(model_file: Path) -> str:
    """The family of a model folder's artefact, by its suffix."""
    return {".skops": "sklearn", ".json": "ensemble"}.get(model_file.suffix, "keras")


def _run_input_shape(config: ExperimentConfig) -> list[int | None]:
    """The model-ready input of a run: its preprocessed window (ECG) or image, with a free batch axis."""
    data = config.data
    return ([None, data.preprocess.window_samples, 1] if data.modality == "ecg"
            else [None, *data.image.image_size, data.image.channels])


def _run_fields(source: ExportSource) -> dict[str, Any]:
    """Card fields that come from the run folder: config, threshold, test metrics, data summary.

    A model × seed reads its row of ``metrics.csv``; a seed ensemble is evaluated here from
    its members' stored predictions (threshold and class weights chosen on validation).
    """
    if source.run_dir is None:
        return {}
    run_dir = source.run_dir
    config: ExperimentConfig = load_config(run_dir / "config.yaml", check_data=False)
    if source.members:
        task = Task.of(config.data.task.classes, config.data.task.positive)
        predictions = average_predictions(run_dir, [(m.model, m.seed, m.weight) for m in source.members], task,
                                          f"ensemble {source.model!r}")
        rows = pd.DataFrame(evaluate_predictions(predictions, config.evaluation.class_weights))
    else:
        metrics = pd.read_csv(run_dir / "metrics.csv")
        rows = metrics[(metrics["model"] == source.model) & (metrics["seed"] == source.seed)]
    test_metrics = {row["level"]: {k: _json_value(v) for k, v in row.items() if k not in
                                   ("model", "role", "seed", "level")} for _, row in rows.iterrows()}
    threshold = test_metrics.get("record", {}).get("threshold")
    class_weights = parse_class_weights(test_metrics.get("record", {}).pop("class_weights", None))
    summary_file = run_dir / "data_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    return {"config": config, "run_dir": run_dir, "threshold": threshold, "class_weights": class_weights,
            "test_metrics": test_metrics,
            "data_summary": summary}


def _json_value(value: Any) -> Any:
    """A metrics.csv cell as JSON: numpy scalars to Python, NaN to None."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


def export_command(args: argparse.Namespace) -> None:
    """``biomed export``: resolve the source, export it and print where it went."""
    source = (ensemble_source(Path(args.source), args.ensemble, args.format) if args.ensemble is not None
              else resolve_source(Path(args.source), args.model, args.seed, args.format))
    card = export_model(source, args.format, Path(args.out), args.quantize)
    what = (source.model if source.seed is None else f"{source.model} seed {source.seed}") if source.model \
        else str(source.model_file)
    log.info(f"exported {what} as {args.format}{f' ({args.quantize})' if args.quantize else ''} "
             f"into {args.out} (card: {card})")
    if source.selection == SELECTION_NOTE:
        log.info(f"note: chosen as the {SELECTION_NOTE}")

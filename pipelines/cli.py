"""The ``biomed`` command line: one front door with subcommands.

User errors (bad config, missing data) print one line on stderr and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from pipelines import __version__, plugins
from pipelines.config import load_config, shipped_configs
from pipelines.config_docs import config_command
from pipelines.console import LOG_LEVELS, TqdmHandler, Verbosity, quiet_tensorflow_start, set_verbosity
from pipelines.errors import BiomedError
from pipelines.model_card import FORMATS
from pipelines.modeling import get_model, model_names
from pipelines.summary import format_summary

EXIT_USER_ERROR, EXIT_INTERNAL = 2, 1
log = logging.getLogger("biomed")


# The commands import their engine modules (scikit-learn, Keras, matplotlib) when they run, so that
# help and usage errors answer at once.
def _cmd_run(args: argparse.Namespace) -> None:
    from pipelines.runner import default_run_dir, run_experiment

    config = load_config(args.config, args.set)
    if args.data_only:
        config.models = []
    run_experiment(config, Path(args.out) if args.out else default_run_dir(config))


def _cmd_summary(args: argparse.Namespace) -> None:
    target = Path(args.target)
    if target.is_dir():
        summary = next((found for _, summarise in plugins.FOLDER_SUMMARIES.items()
                        if (found := summarise(target, args.labels)) is not None), None)
        if summary is None:
            raise BiomedError(f"{target}: no plugin reads this folder (e.g. WFDB records need .hea files)")
        log.info(format_summary(summary))
        return
    if not target.exists() and target.suffix not in (".yaml", ".yml") and args.target not in shipped_configs():
        raise BiomedError(f"{target}: no such data folder or config (give a WFDB folder, an experiment YAML "
                          f"file or a shipped config name)")
    from pipelines.datasets import prepare_data

    config = load_config(target, args.set)
    data = prepare_data(config)
    log.info(format_summary(data.summary(config.name, config.data.task.positive)))


def _cmd_report(args: argparse.Namespace) -> None:
    from pipelines.report import write_report

    paths = write_report([Path(p) for p in args.run_dirs], Path(args.out) if args.out else None)
    log.info(f"wrote {paths['md']} and {paths['html']}")


def _cmd_tune(args: argparse.Namespace) -> None:
    from pipelines.tuning import tune_command

    tune_command(args)


def _cmd_export(args: argparse.Namespace) -> None:
    from pipelines.export import export_command

    export_command(args)


def _cmd_predict(args: argparse.Namespace) -> None:
    from pipelines.predict import predict_command

    predict_command(args)


def _cmd_models(args: argparse.Namespace) -> None:
    names = model_names(args.modality)
    width = max(map(len, names), default=0)
    for name in names:
        spec = get_model(name)
        params = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items())
        side = f"; side inputs: {', '.join(spec.side_inputs)}" if spec.side_inputs else ""
        log.info(f"{name:<{width}} {spec.modality:<6} {spec.role:<9} {params}{side}")


def build_parser(plugin_commands: bool = True) -> argparse.ArgumentParser:
    """The argument parser of ``biomed`` and its subcommands.

    ``plugin_commands`` adds the ``biomed data`` subcommands of the plugins, which loads them
    (and TensorFlow with the models they register); other commands' help does not need them.
    """
    parser = argparse.ArgumentParser(
        prog="biomed", description="Biomedical signal and image classification with TensorFlow/Keras.")
    parser.add_argument("--version", action="version", version=f"biomed {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    _add_verbosity_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment config: data, training, evaluation, report",
                         description="Load and split the data of CONFIG, train every model over every seed, "
                                     "evaluate once on the test split and write the comparison report.")
    run.add_argument("config", help="experiment YAML file (see configs/)")
    run.add_argument("--out", help="run folder (default: runs/<config name>-<timestamp>); "
                                   "an existing run folder of the same config is resumed")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set data.preprocess.fs=250 (repeatable)")
    run.add_argument("--data-only", action="store_true", help="prepare and summarise the data, train nothing")
    run.set_defaults(func=_cmd_run)

    data = sub.add_parser("data", help="data tools: synthetic ECG, summaries, PhysioNet download")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    summary = data_sub.add_parser("summary", help="summarise a data folder or the data of a config",
                                  description="Decode and preprocess the records and print counts per "
                                              "class (and split, for a config) and skipped records.")
    summary.add_argument("target", help="a WFDB data folder or an experiment YAML file")
    summary.add_argument("--labels", help="labels CSV (record,label[,patient]) for a generic WFDB folder")
    summary.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    summary.set_defaults(func=_cmd_summary)
    for _, add_command in plugins.DATA_COMMANDS.items() if plugin_commands else ():
        add_command(data_sub)

    report = sub.add_parser("report", help="write report.md/report.html for run folders",
                            description="Write the comparison report (tables, curves, statistics) of "
                                        "one or more run folders.")
    report.add_argument("run_dirs", nargs="+")
    report.add_argument("--out", help="report folder (required for several runs)")
    report.set_defaults(func=_cmd_report)

    tune = sub.add_parser("tune", help="KerasTuner hyperparameter search for one model of a config",
                          description="Run the KerasTuner search declared in the config's `tuning:` section; "
                                      "rerunning the same command resumes it. Distributed: start one "
                                      "--role chief and several --role worker processes (or set the "
                                      "KERASTUNER_* environment variables).")
    tune.add_argument("config")
    tune.add_argument("--out", help="tuning folder (default: runs/<config name>-tune)")
    tune.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    tune.add_argument("--overwrite", action="store_true", help="start the search afresh")
    tune.add_argument("--role", choices=["chief", "worker"], help="distributed KerasTuner role")
    tune.add_argument("--chief-address", default="127.0.0.1", help="chief host (distributed mode)")
    tune.add_argument("--chief-port", type=int, default=8000, help="chief port (distributed mode)")
    tune.add_argument("--worker-id", help="this worker's id, e.g. tuner1 (distributed mode)")
    tune.set_defaults(func=_cmd_tune)

    export = sub.add_parser("export", help="export a trained model (.keras, SavedModel, TFLite, ONNX, .skops)",
                            description="Export a model of a run folder (or a .keras file) for deployment, "
                                        "with a model_card.json describing inputs, classes and threshold.")
    export.add_argument("source", help="run folder, model folder (models/<model>/seed_<k>) or .keras file")
    export.add_argument("--model", help="model name inside a run folder (default: best validation ROC-AUC)")
    export.add_argument("--seed", type=int, help="seed inside a run folder (default: best)")
    export.add_argument("--ensemble", nargs="*", metavar="MODEL",
                        help="export every seed of these models of a run folder as one seed ensemble (none "
                             "named: every Keras model, or with --format ensemble the run's ensembles)")
    export.add_argument("--format", choices=list(FORMATS), default="keras",
                        help="keras, savedmodel, tflite, onnx (Keras models), skops (scikit-learn baselines) or "
                             "ensemble (a run's ensembles: each member as keras or skops)")
    export.add_argument("--quantize", choices=["dynamic", "float16", "int8"],
                        help="TFLite quantisation (int8 uses a representative set from the training split)")
    export.add_argument("--out", required=True, help="output folder")
    export.set_defaults(func=_cmd_export)

    predict = sub.add_parser("predict", help="predict new ECG records or images with an exported model",
                             description="Score WFDB records (any length; sliding windows aggregated per "
                                         "record) or images (files or folders) and write a CSV.")
    predict.add_argument("model", help="exported model folder (with model_card.json) or .keras/.tflite/.skops file")
    predict.add_argument("inputs", nargs="+", help="WFDB record paths/folders or image files/folders")
    predict.add_argument("--out", default="predictions.csv")
    predict.add_argument("--per-window", action="store_true", help="also write per-window scores")
    predict.add_argument("--batch-size", type=int, default=256)
    predict.add_argument("--jit-compile", action="store_true",
                         help="run a .keras model through XLA (can speed up inference; measure per model)")
    predict.add_argument("--allow-savedmodel", action="store_true",
                         help="load a SavedModel export: it is a TensorFlow program that can read and write "
                              "files, so only for models you trust (.keras and .tflite need no flag)")
    predict.set_defaults(func=_cmd_predict)

    models = sub.add_parser("models", help="list registered models and their hyperparameters")
    models.add_argument("--modality", choices=["ecg", "image"])
    models.set_defaults(func=_cmd_models)

    config = sub.add_parser("config", help="shipped configs, an annotated starter config, the JSON Schema")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="CONFIG_COMMAND")
    show = config_sub.add_parser("show", help="print a shipped config (or a config file)")
    show.add_argument("name", help=f"one of: {', '.join(shipped_configs())}")
    new = config_sub.add_parser("new", help="write an annotated starter config",
                                description="Write NAME.yaml: every section and key with a comment (type, "
                                            "choices, default), starting from a shipped config's values.")
    new.add_argument("name", help="the experiment name (and file name, unless --out)")
    new.add_argument("--out", help="file to write (default: NAME.yaml)")
    new.add_argument("--from", dest="base", default="quickstart", metavar="CONFIG",
                     help="shipped config or file to start from, or 'defaults' (default: quickstart)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    schema = config_sub.add_parser("schema", help="write the JSON Schema of config files (for editors)")
    schema.add_argument("--out", help="file to write (default: print it)")
    config.set_defaults(func=config_command)
    return parser


def _add_verbosity_flags(parser: argparse.ArgumentParser, exclusive: bool = True) -> None:
    quietness = parser.add_mutually_exclusive_group() if exclusive else parser
    quietness.add_argument("-v", "--verbose", action="store_true",
                           help="also show Keras' per-epoch lines (train.verbose), TensorFlow's start-up "
                                "lines and details; no progress bars")
    quietness.add_argument("-q", "--quiet", action="store_true", help="print errors only")


def _verbosity(argv: list[str]) -> Verbosity:
    """The verbosity flags, read before the parser is built (building it imports TensorFlow)."""
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_verbosity_flags(early, exclusive=False)  # the full parser reports both flags given
    flags, _ = early.parse_known_args(argv)
    return "verbose" if flags.verbose else "quiet" if flags.quiet else "normal"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``biomed`` console script; returns the exit code.

    Results go to stdout through the ``biomed`` logger, progress bars to stderr;
    errors are one line on stderr. ``--quiet`` keeps errors only, ``--verbose``
    adds Keras' per-epoch lines and TensorFlow's own start-up output.
    """
    argv = sys.argv[1:] if argv is None else argv
    verbosity = _verbosity(argv)
    quiet = verbosity != "verbose"
    plugin_commands = next((arg for arg in argv if not arg.startswith("-")), None) == "data"
    if quiet and plugin_commands:
        quiet_tensorflow_start()  # before the plugins that add these commands import TensorFlow
    args = build_parser(plugin_commands).parse_args(argv)  # help and usage errors end here, fast
    if quiet and not plugin_commands:
        quiet_tensorflow_start()
    handler = TqdmHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    propagate, log.propagate = log.propagate, False   # a root handler set by a dependency would repeat lines
    log.setLevel(LOG_LEVELS[verbosity])
    set_verbosity(verbosity)
    try:
        with warnings.catch_warnings():
            if verbosity == "quiet":
                warnings.simplefilter("ignore")
            args.func(args)
    except BiomedError as err:
        if args.debug:
            raise
        print(f"biomed: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("biomed: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - last line of defence, shown as one line
        if args.debug:
            raise
        print(f"biomed: internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
        set_verbosity(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

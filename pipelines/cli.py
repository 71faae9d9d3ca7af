"""The ``biomed`` command line: one front door with subcommands.

User errors (bad config, missing data) print one line on stderr and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines import __version__
from pipelines.errors import BiomedError

EXIT_USER_ERROR, EXIT_INTERNAL = 2, 1


def _cmd_run(args: argparse.Namespace) -> None:
    from pipelines.config import load_config
    from pipelines.runner import default_run_dir, run_experiment

    config = load_config(args.config, args.set)
    if args.data_only:
        config.models = []
    run_experiment(config, Path(args.out) if args.out else default_run_dir(config))


def _cmd_synth(args: argparse.Namespace) -> None:
    from ecgnet.synthetic import synthesize_records

    table = synthesize_records(args.out_dir, n_records=args.n_records, fs=args.fs,
                               duration_s=(args.min_seconds, args.max_seconds), seed=args.seed)
    counts = table["label"].value_counts().to_dict()
    print(f"wrote {len(table)} WFDB records to {args.out_dir} (REFERENCE.csv): {counts}")


def _cmd_summary(args: argparse.Namespace) -> None:
    from pipelines.config import DataConfig, TaskConfig, load_config
    from pipelines.datasets import prepare_data
    from pipelines.summary import format_summary

    target = Path(args.target)
    if target.is_dir():
        from ecgnet.dataset import CINC_LABELS, load_ecg_samples
        from pipelines.summary import data_summary

        has_labels = any((target / n).is_file() for n in ("REFERENCE-v3.csv", "REFERENCE.csv"))
        source = "cinc2017" if has_labels or args.labels else "annotated"
        data = DataConfig(source="wfdb" if args.labels else source, path=str(target), labels=args.labels,
                          task=TaskConfig(classes=CINC_LABELS) if source != "annotated" else TaskConfig(
                              classes=["N", "A", "O"]))
        samples = load_ecg_samples(data)
        print(format_summary(data_summary(target.name, "ecg", samples, {"all": samples})))
        return
    config = load_config(target, args.set)
    data = prepare_data(config)
    print(format_summary(data.summary(config.name, config.data.task.positive)))


def _cmd_download(args: argparse.Namespace) -> None:
    from ecgnet.sources import download_physionet

    print(f"downloaded {args.database} into {download_physionet(args.database, args.out_dir)}")


def _cmd_report(args: argparse.Namespace) -> None:
    from pipelines.report import write_report

    paths = write_report([Path(p) for p in args.run_dirs], Path(args.out) if args.out else None)
    print(f"wrote {paths['md']} and {paths['html']}")


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
    from pipelines.modeling import get_model, model_names

    for name in model_names(args.modality):
        spec = get_model(name)
        params = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items())
        print(f"{name:<14} {spec.modality:<6} {spec.role:<9} {params}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``biomed`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="biomed", description="Biomedical signal and image classification with TensorFlow/Keras.")
    parser.add_argument("--version", action="version", version=f"biomed {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
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
    synth = data_sub.add_parser("synth-ecg", help="write a synthetic ECG dataset (WFDB, CinC 2017 layout)",
                                description="Write synthetic single-lead ECG records (N, A, O, ~) as WFDB "
                                            "files with a REFERENCE.csv, readable like CinC 2017 data.")
    synth.add_argument("out_dir")
    synth.add_argument("--n-records", type=int, default=200)
    synth.add_argument("--fs", type=float, default=300.0, help="sampling rate in Hz")
    synth.add_argument("--min-seconds", type=float, default=10.0)
    synth.add_argument("--max-seconds", type=float, default=30.0)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_cmd_synth)
    summary = data_sub.add_parser("summary", help="summarise a data folder or the data of a config",
                                  description="Decode and preprocess the records and print counts per "
                                              "class (and split, for a config) and skipped records.")
    summary.add_argument("target", help="a WFDB data folder or an experiment YAML file")
    summary.add_argument("--labels", help="labels CSV (record,label[,patient]) for a generic WFDB folder")
    summary.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    summary.set_defaults(func=_cmd_summary)
    download = data_sub.add_parser("download", help="download a PhysioNet database with wfdb",
                                   description="Download a PhysioNet database (e.g. mitdb, "
                                               "challenge-2017/1.0.0/training) into OUT_DIR.")
    download.add_argument("database")
    download.add_argument("out_dir")
    download.set_defaults(func=_cmd_download)

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

    export = sub.add_parser("export", help="export a trained model (.keras, SavedModel, TFLite)",
                            description="Export a model of a run folder (or a .keras file) for deployment, "
                                        "with a model_card.json describing inputs, classes and threshold.")
    export.add_argument("source", help="run folder, model folder (models/<model>/seed_<k>) or .keras file")
    export.add_argument("--model", help="model name inside a run folder (default: best by ROC-AUC)")
    export.add_argument("--seed", type=int, help="seed inside a run folder (default: best)")
    export.add_argument("--format", choices=["keras", "savedmodel", "tflite"], default="keras")
    export.add_argument("--quantize", choices=["dynamic", "float16", "int8"],
                        help="TFLite quantisation (int8 uses a representative set from the training split)")
    export.add_argument("--out", required=True, help="output folder")
    export.set_defaults(func=_cmd_export)

    predict = sub.add_parser("predict", help="predict new ECG records or images with an exported model",
                             description="Score WFDB records (any length; sliding windows aggregated per "
                                         "record) or images (files or folders) and write a CSV.")
    predict.add_argument("model", help="exported model folder (with model_card.json) or .keras/.tflite file")
    predict.add_argument("inputs", nargs="+", help="WFDB record paths/folders or image files/folders")
    predict.add_argument("--out", default="predictions.csv")
    predict.add_argument("--per-window", action="store_true", help="also write per-window scores")
    predict.add_argument("--batch-size", type=int, default=256)
    predict.add_argument("--jit-compile", action="store_true",
                         help="run a .keras model through XLA (can speed up inference; measure per model)")
    predict.set_defaults(func=_cmd_predict)

    models = sub.add_parser("models", help="list registered models and their hyperparameters")
    models.add_argument("--modality", choices=["ecg", "image"])
    models.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``biomed`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())

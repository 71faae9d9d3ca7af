"""The biomed CLI: help texts, exit codes, one-line errors, data commands and a data-only run."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from pipelines.cli import build_parser, main
from pipelines.errors import ConfigError

SUBCOMMANDS = ["run", "data", "report", "tune", "export", "predict", "models", "config"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = re.findall(r"^    (\S+)\s", capsys.readouterr().out, flags=re.M)
    assert listed == SUBCOMMANDS


def test_help_does_not_start_tensorflow_scikit_learn_or_pandas():
    script = ("import sys\nfrom pipelines.cli import main\ntry:\n    main(['export', '--help'])\n"
              "except SystemExit:\n    pass\nprint([m for m in ('tensorflow', 'sklearn', 'pandas') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("argv", [[s] for s in SUBCOMMANDS] + [["data", "synth-ecg"], ["data", "summary"],
                                                               ["data", "download"], ["config", "new"]])
def test_each_subcommand_explains_itself(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: biomed {' '.join(argv)} ")  # this subcommand's own help, not the top level
    assert "-h, --help" in out


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {preprocess: {window_sec: 3}}\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "window_sec" in err and "did you mean 'window_s'" in err


def test_missing_config_and_missing_data_folder(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    config = tmp_path / "c.yaml"
    config.write_text("name: x\ndata: {source: cinc2017, path: missing}\n")
    assert main(["run", str(config)]) == 2
    assert "data folder" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="data folder"):  # --debug lets the exception through
        main(["--debug", "run", str(config)])
    assert main(["data", "summary", str(tmp_path / "no_records")]) == 2
    assert "no such data folder or config" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["pipelines", "pipelines.cli"])
def test_console_script_exit_code(tmp_path, module):
    result = subprocess.run([sys.executable, "-m", module, "run", str(tmp_path / "none.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("biomed: error:")


def test_run_a_shipped_config_by_name(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "quickstart", "--out", str(out), "--data-only", "--set", "data.synthetic.n_records=12",
                 "--set", "data.synthetic.duration_s=[10, 12]"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["name"] == "quickstart"
    assert f"run folder: {out}" in capsys.readouterr().out
    assert main(["run", "quickstrat"]) == 2
    assert "did you mean 'quickstart'" in capsys.readouterr().err


def test_synth_then_summary_then_data_only_run(tmp_path, capsys):
    data = tmp_path / "synth"
    assert main(["data", "synth-ecg", str(data), "--n-records", "16", "--max-seconds", "12"]) == 0
    assert (data / "REFERENCE.csv").is_file() and len(list(data.glob("*.hea"))) == 16
    assert main(["data", "summary", str(data)]) == 0
    assert "classes ['N', 'A', 'O', '~']" in capsys.readouterr().out
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({"name": "tiny", "data": {
        "source": "cinc2017", "path": str(data), "task": {"classes": ["N", "A", "O", "~"]},
        "preprocess": {"fs": 50, "bandpass": [0.5, 20], "window_s": 5, "stride_s": 5}, "split": {"val": 0.25, "test": 0.25}}}))
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--set", "data.preprocess.window_s=4"]) == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["data"]["preprocess"]["window_s"] == 4.0 and resolved["data"]["path"] == str(data)
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["window_samples"] == 200
    splits = pd.read_csv(out / "splits.csv")
    assert set(splits["split"]) == {"train", "val", "test"} and len(splits) == 16
    assert splits.groupby("record")["split"].nunique().max() == 1


def test_parser_has_run_overrides():
    args = build_parser().parse_args(["run", "c.yaml", "--set", "a=1", "--set", "b=2"])
    assert args.set == ["a=1", "b=2"] and args.out is None


def test_models_lists_aligned_rows_with_side_inputs(capsys):
    assert main(["models", "--modality", "ecg"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["hybrid_cnn_record"].endswith("side inputs: expert_features, record_expert_features")
    assert "side inputs" not in rows["cnn"]
    assert len({line.index(" ecg ") for line in rows.values()}) == 1   # one column for the modality

"""Terminal output: --quiet/--verbose, Keras' verbosity, progress bars, TensorFlow's start-up lines."""

import io
import subprocess
import sys

import pytest

from pipelines import console
from pipelines.cli import main

TINY_RUN = ["--set", "data.synthetic.n_records=24", "--set", "data.synthetic.duration_s=[10, 12]",
            "--set", "models=[{type: cnn, params: {filters: 4, depth: 2}}]", "--set", "seeds=[0]",
            "--set", "train.epochs=1"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("verbosity, expected", [(None, 2), ("verbose", 2), ("normal", 0), ("quiet", 0)])
def test_keras_verbosity_follows_the_flags(verbosity, expected):
    console.set_verbosity(verbosity)
    try:
        assert console.keras_verbose(2) == expected
    finally:
        console.set_verbosity(None)


@pytest.mark.parametrize("verbosity, terminal, drawn", [
    ("normal", True, True), ("normal", False, False), ("quiet", True, False), ("verbose", True, False),
    (None, True, False)])
def test_progress_bar_only_at_default_verbosity_on_a_terminal(monkeypatch, verbosity, terminal, drawn):
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    console.set_verbosity(verbosity)
    try:
        with console.progress(3, "training", "model") as bar:
            bar.update(3)
    finally:
        console.set_verbosity(None)
    assert ("training:" in stderr.getvalue() and "/3 [" in stderr.getvalue()) == drawn


def test_quiet_prints_nothing_and_flags_exclude_each_other(capsys):
    assert main(["models"]) == 0
    assert "cnn" in capsys.readouterr().out
    assert main(["--quiet", "models"]) == 0
    assert capsys.readouterr().out == ""
    assert console.keras_verbose(2) == 2  # main restores library behaviour
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "--verbose", "models"])
    assert exit_info.value.code == 2


def test_lines_are_not_repeated_by_a_root_handler_another_library_installed(capsys):
    import logging

    root_lines = io.StringIO()
    root_handler = logging.StreamHandler(root_lines)
    logging.getLogger().addHandler(root_handler)   # what logging.basicConfig() in a dependency does
    try:
        assert main(["models"]) == 0
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert capsys.readouterr().out.count("mina_hybrid ") == 1
    assert root_lines.getvalue() == ""
    assert logging.getLogger("biomed").propagate   # restored for library use


def test_tensorflow_start_up_lines_are_held_back(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines", "run", str(tmp_path / "none.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("biomed: error:") and result.stderr.count("\n") == 1


def test_default_run_shows_results_verbose_adds_keras_epoch_lines(tmp_path, capsys):
    assert main(["run", "quickstart", "--out", str(tmp_path / "a"), *TINY_RUN]) == 0
    out = capsys.readouterr().out
    assert "[1/1] cnn seed 0: roc_auc" in out and "val_loss" not in out and "training" not in out
    assert main(["--verbose", "run", "quickstart", "--out", str(tmp_path / "b"), *TINY_RUN]) == 0
    out = capsys.readouterr().out
    assert " - val_loss: " in out and "[1/1] cnn seed 0: training" in out and "[1/1] cnn seed 0: roc_auc" in out

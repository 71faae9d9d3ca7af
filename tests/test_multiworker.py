"""Two local workers with TF_CONFIG train one model in sync; only the chief writes artefacts."""

import sys
from pathlib import Path

import numpy as np
import pytest

from workers import run_local_workers

WORKER = Path(__file__).with_name("mw_worker.py")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mw")
    (root / "tmp").mkdir()
    runs = run_local_workers([sys.executable, str(WORKER), str(root)], 2, timeout_s=240,
                             env={"CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(root / "tmp")})
    for index, run in enumerate(runs):
        assert run.returncode == 0, f"worker {index} failed:\n{run.output[-4000:]}"
    return root


def results(root: Path) -> list[dict[str, np.ndarray]]:
    return [dict(np.load(root / f"result{i}.npz")) for i in range(2)]


def test_workers_end_with_identical_weights(two_workers):
    chief, other = results(two_workers)
    assert int(chief["replicas"]) == int(other["replicas"]) == 2
    weights = sorted(k for k in chief if k.startswith("w"))
    assert weights and weights == sorted(k for k in other if k.startswith("w"))
    for key in weights:
        np.testing.assert_array_equal(chief[key], other[key])


def test_distributed_predictions_are_complete_and_in_order(two_workers):
    for result in results(two_workers):
        for split, n in (("val", 21), ("test", 13)):
            assert result[f"probs_{split}"].shape == (n, 2)
            np.testing.assert_allclose(result[f"probs_{split}"], result[f"local_{split}"], atol=1e-5)


def test_only_the_chief_writes_artefacts(two_workers):
    chief = {p.name for p in (two_workers / "worker0").iterdir()}
    assert {"model.keras", "checkpoint.keras", "history.csv"} <= chief
    other = two_workers / "worker1"
    assert not other.exists() or not any(other.iterdir())
    assert not any((two_workers / "tmp").glob("biomed-*"))  # the non-chief's scratch folder is gone

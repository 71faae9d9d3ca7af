"""Runtime: strategy choice, chief-only artefacts, local clusters, mixed precision and XLA in training."""

import json
import sys

import keras
import numpy as np
import pytest

from pipelines.config import ExperimentConfig, LoaderConfig, ModelEntry, RuntimeConfig, TrainConfig
from pipelines.modeling import get_model
from pipelines.runtime import artefact_dir, global_batch_size, is_chief, set_precision, strategy_kind
from pipelines.samples import SampleSet
from pipelines.training import compile_model, fit_model
from workers import local_tf_configs, run_local_workers

ECG_MODELS = {"cnn": {"filters": 4, "depth": 2}, "crnn": {"filters": 4, "depth": 2, "units": 4},
              "acrnn": {"filters": 4, "depth": 2, "units": 4}, "mina": {"filters": 4, "units": 4},
              "resnet1d": {"filters": 4, "depth": 2}}


def cluster(task_type: str = "worker", index: int = 0, chief: bool = False) -> str:
    spec = {"worker": ["127.0.0.1:1", "127.0.0.1:2"], **({"chief": ["127.0.0.1:3"]} if chief else {})}
    return json.dumps({"cluster": spec, "task": {"type": task_type, "index": index}})


def test_auto_strategy_prefers_tf_config_then_several_gpus(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    auto = RuntimeConfig(strategy="auto")
    assert strategy_kind(auto, n_gpus=0) == strategy_kind(auto, n_gpus=1) == "default"
    assert strategy_kind(auto, n_gpus=2) == "mirrored"
    assert strategy_kind(RuntimeConfig(strategy="one_device"), n_gpus=0) == "one_device"
    monkeypatch.setenv("TF_CONFIG", cluster())
    assert strategy_kind(auto, n_gpus=4) == "multi_worker"
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert strategy_kind(auto, n_gpus=2) == "mirrored"  # a one-task cluster needs no collectives


def test_chief_is_worker_zero_or_the_named_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", cluster("worker", 0))
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", cluster("worker", 1))
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", cluster("worker", 0, chief=True))
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", cluster("chief", 0, chief=True))
    assert is_chief()


def test_global_batch_is_per_replica_batch_times_replicas():
    assert global_batch_size(32, 4, RuntimeConfig()) == 128
    assert global_batch_size(32, 4, RuntimeConfig(scale_batch_size=False)) == 32


def test_only_the_chief_writes_into_the_artefact_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    monkeypatch.setenv("TF_CONFIG", cluster("worker", 0))
    with artefact_dir(tmp_path / "chief") as folder:
        assert folder == tmp_path / "chief" and folder.is_dir()
    monkeypatch.setenv("TF_CONFIG", cluster("worker", 1))
    with artefact_dir(tmp_path / "other") as folder:
        (folder / "model.keras").write_text("x")
        assert folder.parent == tmp_path / "scratch"
    assert not folder.exists() and not (tmp_path / "other").exists()
    with pytest.raises(RuntimeError), artefact_dir(tmp_path / "other") as kept:
        (kept / "backup").mkdir()
        raise RuntimeError("preempted")
    assert (kept / "backup").is_dir()  # kept so that a restarted worker resumes from it


def test_local_workers_get_their_own_tf_config_and_never_hang():
    configs = [json.loads(c) for c in local_tf_configs(2)]
    assert configs[0]["cluster"] == configs[1]["cluster"] and len(set(configs[0]["cluster"]["worker"])) == 2
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]
    runs = run_local_workers([sys.executable, "-c", "import os; print(os.environ['TF_CONFIG'])"], 2,
                             timeout_s=60)
    assert [json.loads(r.output)["task"]["index"] for r in runs] == [0, 1]
    with pytest.raises(TimeoutError, match="did not finish"):
        run_local_workers([sys.executable, "-c", "import time; time.sleep(60)"], 2, timeout_s=1)


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", list(ECG_MODELS))
def test_ecg_models_run_under_mixed_precision(name, precision, restore_policy):
    x = np.random.default_rng(0).standard_normal((3, 200, 1)).astype(np.float32)
    spec, params = get_model(name), ECG_MODELS[name]
    set_precision(RuntimeConfig(mixed_precision="off"))
    reference = np.asarray(spec.build((200, 1), 3, fs=100.0, **params)(x))
    set_precision(RuntimeConfig(mixed_precision=precision))
    model = spec.build((200, 1), 3, fs=100.0, **params)
    probs = model(x)
    assert probs.dtype == "float32"
    probs = np.asarray(probs)
    assert np.all(np.isfinite(probs)) and np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, reference, atol=precision_tolerance(precision, model))


def precision_tolerance(precision: str, model: keras.Model) -> float:
    """Bound on |Δp| against float32 that the format guarantees, whatever the CPU's kernels do.

    Each weighted layer rounds its inputs, weights, accumulations and outputs to the format's
    unit roundoff u (bfloat16: 8-bit significand, u = 2^-8; float16: u = 2^-11), so the logits
    carry a relative error of at most about 4·u per layer, adding up over the depth; softmax
    does not amplify it (its Jacobian has norm <= 1/2).
    """
    import ml_dtypes

    dtype = ml_dtypes.bfloat16 if precision == "bfloat16" else np.float16
    unit_roundoff = float(ml_dtypes.finfo(dtype).eps) / 2
    depth = sum(1 for layer in model.layers if layer.trainable_weights)
    return 4 * depth * unit_roundoff


def test_float16_training_scales_the_loss(restore_policy):
    set_precision(RuntimeConfig(mixed_precision="float16"))
    model = get_model("acrnn").build((200, 1), 2, fs=100.0, **ECG_MODELS["acrnn"])
    compile_model(model, ExperimentConfig(name="t"), ["N", "A"], 1e-3)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    rng = np.random.default_rng(0)
    logs = model.train_on_batch(rng.standard_normal((4, 200, 1)), np.eye(2)[[0, 1, 0, 1]], return_dict=True)
    assert np.isfinite(logs["loss"])


def split(n: int, seed: int) -> SampleSet:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int32)
    ids = np.array([f"r{i}" for i in range(n)])
    return SampleSet((rng.standard_normal((n, 64)) + y[:, None]).astype(np.float32), y, ids, ids,
                     np.zeros(n, np.int32), ["N", "A"], fs=32.0)


def test_fit_under_mirrored_strategy_with_xla_and_steps_per_execution(tmp_path):
    entry = ModelEntry("cnn", params=ECG_MODELS["cnn"])
    config = ExperimentConfig(name="t", models=[entry], loader=LoaderConfig(batch_size=8),
                              train=TrainConfig(epochs=1, tensorboard=False, verbose=0),
                              runtime=RuntimeConfig(strategy="mirrored", jit_compile=True, steps_per_execution=2))
    splits = {"train": split(24, 0), "val": split(10, 1), "test": split(6, 2)}
    result = fit_model(get_model("cnn"), entry, config, splits, seed=0, out_dir=tmp_path)
    assert result.epochs == 1 and result.probs["test"].shape == (6, 2)
    assert type(result.model.distribute_strategy).__name__ == "MirroredStrategy"
    assert result.model.jit_compile and result.model.steps_per_execution == 2
    assert {"model.keras", "history.csv"} <= {p.name for p in tmp_path.iterdir()}


def fitted_weights(tmp_path, ema_momentum: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The cnn's trainable weights as built and after one 8-step epoch (Adam, large steps)."""
    from pipelines.runtime import get_strategy
    from pipelines.training import build_keras

    entry = ModelEntry("cnn", params=ECG_MODELS["cnn"])
    config = ExperimentConfig(name="t", models=[entry], loader=LoaderConfig(batch_size=4),
                              train=TrainConfig(epochs=1, learning_rate=0.05, ema_momentum=ema_momentum,
                                                tensorboard=False, verbose=0))
    splits = {"train": split(32, 0), "val": split(8, 1), "test": split(4, 2)}
    built = build_keras(get_model("cnn"), entry.params, splits["train"], 0, get_strategy(config.runtime), config)
    result = fit_model(get_model("cnn"), entry, config, splits, seed=0, out_dir=tmp_path / f"ema{ema_momentum}")
    return [w.numpy() for w in built.trainable_weights], [w.numpy() for w in result.model.trainable_weights]


def test_weight_averaging_keeps_the_moving_average_of_the_weights(tmp_path):
    # With a momentum of ~1 the average stays at the weights of the first step, while plain training walks on
    # for all 8 steps: the averaged model must sit far closer to where training began.
    initial, plain = fitted_weights(tmp_path, 0.0)
    initial_again, averaged = fitted_weights(tmp_path, 0.999999)
    assert all(np.array_equal(a, b) for a, b in zip(initial, initial_again))    # same start, same seed

    def moved(weights):
        return float(np.sqrt(sum(np.sum((w - w0) ** 2) for w, w0 in zip(weights, initial))))

    assert moved(plain) > 0 and moved(averaged) < 0.5 * moved(plain)
    saved = keras.models.load_model(tmp_path / "ema0.999999" / "model.keras", safe_mode=True, compile=False)
    assert all(np.allclose(a, b.numpy()) for a, b in zip(averaged, saved.trainable_weights))


def test_weight_averaging_momentum_must_be_a_fraction():
    with pytest.raises(Exception, match="ema_momentum"):
        TrainConfig(ema_momentum=1.0).validate("train")

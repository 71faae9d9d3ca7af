"""Config loading: validation errors name the key and suggest fixes; overrides; resolved paths."""

from pathlib import Path

import pytest
import yaml

from pipelines.config import apply_override, config_to_yaml, load_config
from pipelines.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_quickstart_config_loads_with_defaults():
    config = load_config(CONFIGS / "quickstart.yaml")
    assert config.name == "quickstart"
    assert config.data.task.classes == ["rest", "A"]
    assert config.data.preprocess.window_samples == 1000
    assert [m.label for m in config.models][:2] == ["expert_lr", "expert_rf"]


def test_unknown_key_suggests_closest(tmp_path):
    path = write(tmp_path, {"name": "x", "data": {"preprocess": {"window_sec": 10}}})
    with pytest.raises(ConfigError, match=r"data\.preprocess\.window_sec.*did you mean 'window_s'"):
        load_config(path)


def test_wrong_type_names_key_and_expected_type(tmp_path):
    path = write(tmp_path, {"name": "x", "loader": {"batch_size": "big"}})
    with pytest.raises(ConfigError, match=r"loader\.batch_size: expected an integer, got str"):
        load_config(path)


def test_literal_choice_is_checked(tmp_path):
    path = write(tmp_path, {"name": "x", "data": {"preprocess": {"normalize": "zscor"}}})
    with pytest.raises(ConfigError, match=r"normalize.*one of.*did you mean 'zscore'"):
        load_config(path)


def test_missing_data_path_fails_before_work(tmp_path):
    path = write(tmp_path, {"name": "x", "data": {"source": "cinc2017", "path": "nowhere"}})
    with pytest.raises(ConfigError, match=r"data\.path: data folder .*nowhere does not exist"):
        load_config(path)


def test_unknown_model_and_hyperparameter(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown model 'minna'.*did you mean 'mina'"):
        load_config(write(tmp_path, {"name": "x", "models": ["minna"]}))
    with pytest.raises(ConfigError, match=r"no hyperparameter 'dropuot'.*did you mean 'dropout'"):
        load_config(write(tmp_path, {"name": "x", "models": [{"type": "cnn", "params": {"dropuot": 0.1}}]}))


@pytest.mark.parametrize("model, params, message", [
    ("cnn", {"filters": "x"}, r"'filters' expects int, got str 'x'"),
    ("cnn", {"filters": 8.5}, r"'filters' expects int, got float 8\.5"),
    ("mina", {"l2": "small"}, r"'l2' expects float, got str 'small'"),
    ("mina", {"unroll": 1}, r"'unroll' expects bool, got int 1"),
    ("mina_rr", {"channels": "raw"}, r"'channels' expects Sequence\[str\], got str 'raw'"),   # signature taken from mina
    ("mina_hybrid", {"channels": ["raw", 3]}, r"'channels' expects Sequence\[str\]"),
    ("expert_rf", {"max_features": [0.5]}, r"'max_features' expects str \| float"),
])
def test_hyperparameter_of_the_wrong_type_fails_at_load(tmp_path, model, params, message):
    with pytest.raises(ConfigError, match=rf"models\[0\]\.params: model '{model}': hyperparameter " + message):
        load_config(write(tmp_path, {"name": "x", "models": [{"type": model, "params": params}]}))


def test_hyperparameters_of_the_annotated_types_load(tmp_path):
    models = [{"type": "cnn", "params": {"filters": 8, "dropout": 0}},          # an int is a valid float
              {"type": "mina_hybrid", "params": {"channels": ["raw", "ecg"], "l2": 1.0e-4}},
              {"type": "expert_rf", "params": {"max_features": 0.5}},
              {"type": "expert_rf", "name": "rf_sqrt", "params": {"max_features": "sqrt"}}]
    config = load_config(write(tmp_path, {"name": "x", "models": models}))
    assert [entry.params for entry in config.models] == [m["params"] for m in models]


def test_exponent_without_dot_reads_as_a_number(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: exp\nmodels: [{type: mina, params: {l2: 1e-4}}]\n")
    from_file = load_config(path)
    from_override = load_config(path, ["models=[{type: cnn, params: {dropout: 5E-1}}]"])
    assert from_file.models[0].params == {"l2": 1e-4} and isinstance(from_file.models[0].params["l2"], float)
    assert from_override.models[0].params == {"dropout": 0.5}


def test_augmentation_is_refused_for_models_with_side_inputs(tmp_path):
    augment = {"loader": {"augment": {"enabled": True}}}
    with pytest.raises(ConfigError, match=r"models\[1\]: 'mina_rr' takes side inputs \['rr_intervals'\].*"
                                          r"loader\.augment\.enabled: false"):
        load_config(write(tmp_path, {"name": "x", "models": ["cnn", "mina_rr"], **augment}))
    assert load_config(write(tmp_path, {"name": "x", "models": ["cnn"], **augment})).loader.augment.enabled
    # scikit-learn models never see augmented windows: their side inputs always match
    assert load_config(write(tmp_path, {"name": "x", "models": ["cnn", "expert_rf_record"], **augment}))


def test_label_map_target_must_be_a_class(tmp_path):
    path = write(tmp_path, {"name": "x", "data": {"task": {"classes": ["N", "A"], "label_map": {"O": "X"}}}})
    with pytest.raises(ConfigError, match=r"label_map\.O: maps to 'X'"):
        load_config(path)


def test_overrides_are_parsed_and_validated(tmp_path):
    path = write(tmp_path, {"name": "x", "models": ["cnn"]})
    config = load_config(path, ["data.preprocess.fs=250", "seeds=[1, 2]", "models.0.params.dropout=0.5"])
    assert config.data.preprocess.fs == 250.0 and config.seeds == [1, 2]
    assert config.models[0].params == {"dropout": 0.5}
    assert [m.type for m in load_config(path, ["models=[cnn, mina]"]).models] == ["cnn", "mina"]
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, ["data.preprocess.fs"])
    with pytest.raises(ConfigError, match="unknown key 'data.preproces'"):
        load_config(path, ["data.preproces.fs=250"])


def test_relative_paths_resolve_against_config_folder(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "labels.csv").write_text("a,N\n")
    config = load_config(write(tmp_path, {"name": "x", "data": {
        "source": "wfdb", "path": "records", "labels": "labels.csv"}}))
    assert config.data.path == str(tmp_path / "records")
    assert config.data.labels == str(tmp_path / "records" / "labels.csv")


def test_resolved_config_round_trips(tmp_path):
    config = load_config(CONFIGS / "quickstart.yaml")
    again = write(tmp_path, yaml.safe_load(config_to_yaml(config)))
    assert load_config(again) == config


def test_override_into_list_index_errors():
    raw = {"models": [{"type": "cnn"}]}
    with pytest.raises(ConfigError, match="not a valid index"):
        apply_override(raw, "models.3.params.l2=0.1")


def test_run_folder_configs_of_earlier_versions_still_load(tmp_path):
    """``loader.image_augment.mixup_alpha`` (before mixup applied to every modality) reads as ``loader.mixup_alpha``."""
    from pipelines.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text("name: old\ndata: {source: synthetic}\nloader: {image_augment: {mixup_alpha: 0.2}}\n")
    config = load_config(path, check_data=False)
    assert config.loader.mixup_alpha == 0.2

"""``biomed config``: shipped configs by name, the annotated starter config and the JSON Schema."""

import json

import pytest
import yaml

from pipelines.cli import main
from pipelines.config import find_config, load_config, shipped_configs
from pipelines.config_docs import config_schema, starter_config

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def schema():
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_validates_against_the_schema(schema, name):
    raw = yaml.safe_load(find_config(name).read_text(encoding="utf-8"))
    jsonschema.validate(raw, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("change, path", [
    ({"data": {"preprocess": {"window_sec": 10}}}, ["data", "preprocess"]),   # unknown key
    ({"data": {"preprocess": {"normalize": "l2"}}}, ["data", "preprocess", "normalize"]),  # not in the Literal
    ({"train": {"epochs": "many"}}, ["train", "epochs"]),
    ({"models": ["no_such_model"]}, ["models", 0]),
])
def test_schema_refuses_what_the_loader_refuses(schema, change, path):
    with pytest.raises(jsonschema.ValidationError) as info:
        jsonschema.validate(change, schema, cls=jsonschema.Draft202012Validator)
    assert list(info.value.absolute_path) == path


def test_schema_carries_types_enums_and_defaults(schema):
    preprocess = schema["$defs"]["PreprocessConfig"]
    assert preprocess["properties"]["normalize"]["enum"] == ["zscore", "robust", "minmax", "none"]
    assert preprocess["properties"]["fs"]["default"] == 300.0
    assert preprocess["additionalProperties"] is False
    assert schema["required"] == [] and "cnn" in schema["$defs"]["ModelEntry"]["properties"]["type"]["enum"]


@pytest.mark.parametrize("base", ["quickstart", "quickstart_images", None])
def test_starter_config_round_trips_through_load_config(tmp_path, base):
    text = starter_config("mine", base)
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    loaded = load_config(path)
    expected = load_config(base, check_data=False) if base else None
    assert loaded.name == "mine"
    if expected is not None:
        assert loaded.data == expected.data and loaded.models == expected.models and loaded.train == expected.train
    assert "# Signal preprocessing applied to every record before windowing." in text
    assert "normalize: zscore  # one of zscore|robust|minmax|none" in text


def test_config_commands(tmp_path, capsys):
    assert main(["config", "show", "quickstart"]) == 0
    assert capsys.readouterr().out == find_config("quickstart").read_text()
    out = tmp_path / "exp.yaml"
    assert main(["config", "new", "exp", "--out", str(out)]) == 0
    assert load_config(out).name == "exp"
    assert main(["config", "new", "exp", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("biomed: error: ") and "--force" in err and err.count("\n") == 1
    assert main(["config", "schema", "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["title"] == "biomed experiment config"
    assert main(["config", "show", "no_such_config"]) == 2

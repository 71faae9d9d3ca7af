"""``biomed config``: shipped configs, an annotated starter config and a JSON Schema, all from the dataclasses.

The schema and the starter's comments are generated from the fields, types
(``Literal`` choices become enums) and defaults of :mod:`pipelines.config`,
so they cannot drift from what :func:`pipelines.config.load_config` accepts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from pipelines.artifacts import write_text
from pipelines.config import ExperimentConfig, find_config, load_config, shipped_configs
from pipelines.errors import BiomedError
from pipelines.modeling import model_names
from pipelines.schema import to_dict

log = logging.getLogger("biomed")

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Numbers may also be written as strings: YAML 1.1 (PyYAML) reads ``1e-5`` as one.
NUMBER_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an experiment config file.

    Unknown keys are refused (``additionalProperties: false``) as by the loader;
    ``name`` may be left out (it defaults to the file name) and a model may be
    given by its registry name alone.
    """
    defs: dict[str, Any] = {}
    root = _dataclass_schema(ExperimentConfig, defs)
    root["required"].remove("name")
    entry = {"$ref": "#/$defs/ModelEntry"}
    root["properties"]["models"]["items"] = {"anyOf": [_model_type(), entry]}
    defs["ModelEntry"]["properties"]["type"] = _model_type()
    return {"$schema": JSON_SCHEMA_DIALECT, "title": "biomed experiment config", **root, "$defs": defs}


def _model_type() -> dict[str, Any]:
    return {"type": "string", "enum": model_names(), "description": "a registered model (biomed models)"}


def _dataclass_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = get_type_hints(cls)
    instance = _default_instance(cls)
    properties = {}
    for field in dataclasses.fields(cls):
        prop = _type_schema(hints[field.name], defs)
        if instance is not None:
            prop = {**prop, "default": to_dict(getattr(instance, field.name))}
        properties[field.name] = prop
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return {"type": "object", "description": _summary(cls), "properties": properties,
            "required": required, "additionalProperties": False}


def _type_schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return {"anyOf": [_type_schema(option, defs) for option in get_args(hint)]}
    if origin is Literal:
        return {"enum": list(get_args(hint))}
    if origin in (list, tuple):
        return {"type": "array", "items": _type_schema(get_args(hint)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(get_args(hint)[1], defs)}
    if dataclasses.is_dataclass(hint):
        if hint.__name__ not in defs:
            defs[hint.__name__] = {}  # placeholder against recursion
            defs[hint.__name__] = _dataclass_schema(hint, defs)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    simple = {bool: {"type": "boolean"}, int: {"type": "integer"}, type(None): {"type": "null"},
              float: {"type": ["number", "string"], "pattern": NUMBER_TEXT},
              str: {"type": ["string", "number"]}}
    return simple.get(hint, {})


def _default_instance(cls: type) -> Any:
    """``cls()`` when every field has a default, else None (no defaults to show)."""
    try:
        return cls()
    except TypeError:
        return None


def _summary(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0]


def starter_config(name: str, base: str | None = "quickstart") -> str:
    """An annotated config file: every section and key with a comment, loadable by ``load_config``.

    Args:
        name: the experiment name written into the file.
        base: a config (shipped name or file) whose values to start from; None for the defaults.

    Returns:
        YAML text with a comment on every section (its purpose) and key (its type or
        choices, and its default where the value differs).
    """
    if base is None:
        values = to_dict(ExperimentConfig(name=name))
    else:
        values = to_dict(load_config(base, check_data=False))
        values["name"] = name
    header = [f"# yaml-language-server: $schema=biomed.schema.json   (write it with `biomed config schema`)",
              f"# biomed experiment config{f' (started from {base})' if base else ''}; run it with "
              f"`biomed run THIS_FILE`.",
              "# Every key is optional except where noted; see README.md (Configs) for what each one does."]
    return "\n".join(header + _annotated(ExperimentConfig, values, 0)) + "\n"


def _annotated(cls: type, values: dict[str, Any], depth: int) -> list[str]:
    hints, indent, lines = get_type_hints(cls), "  " * depth, []
    defaults = _default_instance(cls)
    for field in dataclasses.fields(cls):
        hint, value = hints[field.name], values[field.name]
        section = _section_class(hint)
        if section is not None and value is not None:
            lines += ["", f"{indent}# {_summary(section)}"] if depth == 0 else [f"{indent}# {_summary(section)}"]
            lines.append(f"{indent}{field.name}:")
            lines += _annotated(section, value, depth + 1)
            continue
        if field.name == "models":
            lines += ["", f"{indent}# The models to compare: registry names or {{type, name, params}} "
                          f"(`biomed models` lists them): {', '.join(model_names())}", f"{indent}models:"]
            lines += [f"{indent}  - {_flow(_short_entry(entry))}" for entry in value] or [f"{indent}  []"]
            continue
        note = _type_note(hint)
        default = to_dict(getattr(defaults, field.name)) if defaults is not None else dataclasses.MISSING
        if default is not dataclasses.MISSING and default != value:
            note += f"; default {_flow(default)}"
        if section is not None:
            note += f"; {_summary(section)}"
        lines.append(f"{indent}{field.name}: {_flow(value)}  # {note}")
    return lines


def _section_class(hint: Any) -> type | None:
    """The dataclass of a section-typed field (``X`` or ``X | None``), else None."""
    options = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    return next((o for o in options if dataclasses.is_dataclass(o)), None)


def _short_entry(entry: dict[str, Any]) -> Any:
    kept = {k: v for k, v in entry.items() if v not in (None, {})}
    return kept["type"] if list(kept) == ["type"] else kept


def _type_note(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_note(option) for option in get_args(hint))
    if origin is Literal:
        return "one of " + "|".join(str(choice) for choice in get_args(hint))
    if origin in (list, tuple):
        return f"list of {_type_note(get_args(hint)[0])}"
    if origin is dict or dataclasses.is_dataclass(hint):
        return "mapping"
    names = {bool: "true/false", int: "integer", float: "number", str: "text", type(None): "null"}
    return names.get(hint, "any")


def _flow(value: Any) -> str:
    """``value`` as one line of YAML."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).removesuffix(
        "\n...\n").strip()


def config_command(args: argparse.Namespace) -> None:
    """``biomed config show|new|schema``."""
    if args.config_command == "show":
        path = find_config(args.name)
        if not path.is_file():
            raise BiomedError(f"no shipped config or file {args.name!r}; shipped: {', '.join(shipped_configs())}")
        sys.stdout.write(path.read_text(encoding="utf-8"))
    elif args.config_command == "new":
        out = Path(args.out or f"{args.name}.yaml")
        if out.exists() and not args.force:
            raise BiomedError(f"{out} exists; choose another --out or add --force")
        write_text(out, starter_config(args.name, None if args.base == "defaults" else args.base))
        log.info(f"wrote {out}: edit it, then `biomed run {out}`")
    else:
        text = json.dumps(config_schema(), indent=2) + "\n"
        if args.out:
            write_text(Path(args.out), text)
            log.info(f"wrote {args.out}")
        else:
            sys.stdout.write(text)

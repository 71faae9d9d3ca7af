"""Dependencies point one way: the engine (pipelines) never imports a modality package at module level."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from pipelines import plugins

ROOT = Path(__file__).parents[1]
PACKAGES = ("pipelines", "ecgnet", "imaging")


def module_imports(path: Path) -> set[str]:
    """Top-level package names imported at module level (not inside functions or classes)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def package_graph() -> dict[str, set[str]]:
    """Package -> the other packages of the suite its modules import at module level."""
    graph = {name: set() for name in PACKAGES}
    for name in PACKAGES:
        for path in (ROOT / name).rglob("*.py"):
            graph[name] |= (module_imports(path) & set(PACKAGES)) - {name}
    return graph


def test_the_engine_imports_no_modality_package():
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "pipelines").rglob("*.py")
                 if module_imports(path) & {"ecgnet", "imaging"}]
    assert offenders == []


def test_no_import_cycle_between_the_packages():
    graph = package_graph()
    assert graph["pipelines"] == set()
    assert "imaging" not in graph["ecgnet"] and "ecgnet" not in graph["imaging"]


def test_engine_functions_do_not_reach_into_modalities():
    """Imports inside engine functions may defer TensorFlow, but never name a modality package."""
    offenders = []
    for path in (ROOT / "pipelines").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("ecgnet", "imaging") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_plugins_register_every_configurable_source():
    from pipelines.config import ECG_SOURCES, IMAGE_SOURCES

    registered = {name for name, _ in plugins.SOURCES.items()}
    assert set(ECG_SOURCES) | set(IMAGE_SOURCES) <= registered
    assert {name for name, _ in plugins.AUGMENTERS.items()} == {"ecg", "image"}
    assert {name for name, _ in plugins.PREDICT_INPUTS.items()} == {"ecg", "image"}


def test_a_broken_plugin_is_an_import_error_not_an_unknown_model(monkeypatch, tmp_path):
    (tmp_path / "broken_plugin.py").write_text("import no_such_package_for_biomed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", plugins.BUILTIN_PLUGINS + ("broken_plugin",))
    monkeypatch.setattr(plugins, "_LOADED", [])
    with pytest.raises(ImportError, match="no_such_package_for_biomed"):
        plugins.load_plugins()
    sys.modules.pop("broken_plugin", None)

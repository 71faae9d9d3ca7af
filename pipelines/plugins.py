"""How modalities plug into the engine: registries and the one place that loads plugins.

The engine (``pipelines``) never imports a modality package at module level.
A modality (``ecgnet`` for ECG, ``imaging`` for images) is a plugin module
with a ``register()`` function that fills the registries below; its models
register themselves in :mod:`pipelines.modeling` when the plugin imports them.

:func:`load_plugins` imports the built-in plugins and any module named by an
entry point of the ``biomed.plugins`` group (``name = package.module``), once.
A plugin that fails to import raises its ImportError: a broken package is an
error, never an "unknown model".

Example (a plugin module of another package)::

    from pipelines import plugins

    def register() -> None:
        plugins.SOURCES.add("eeg_edf", load_eeg_samples)
        plugins.AUGMENTERS.add("eeg", eeg_augmenter)
        plugins.SKOPS_TYPES.add(plugins.type_name(EEGFeatures), EEGFeatures)
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

import numpy as np

from pipelines.errors import ConfigError, suggest

BUILTIN_PLUGINS = ("ecgnet.plugin", "imaging.plugin")
ENTRY_POINT_GROUP = "biomed.plugins"
T = TypeVar("T")

#: ``loader(data_config, progress) -> (samples, official split or None)``.
SourceLoader = Callable[..., tuple[Any, dict[str, np.ndarray] | None]]
#: ``factory(loader_config, fs) -> augment(x, seed) or None``.
AugmenterFactory = Callable[[Any, float | None], Callable[[Any, Any], Any] | None]
#: ``factory(loader_config) -> (mix(x, y, seed) or None, probability per batch)`` (see pipelines.mixing).
BatchMixerFactory = Callable[[Any], tuple[Callable[[Any, Any, Any], tuple[Any, Any]] | None, float]]
#: ``views(names) -> Keras layers``, one test-time augmentation view of a batch each (see pipelines.averaging).
TTAViews = Callable[[list[str]], list[Any]]
#: ``section(runs, figure_dir) -> report blocks`` (no blocks: the section is left out).
ReportSection = Callable[[list, Path], list]
#: ``summarise(folder, labels) -> data summary``, or None when the folder is not of this modality.
FolderSummary = Callable[[Path, str | None], dict[str, Any] | None]
#: ``add(data_subparsers)``: adds one ``biomed data`` subcommand (its ``func`` default runs it).
DataCommand = Callable[[argparse._SubParsersAction], None]
#: ``compute(x, fs, records) -> (n, ...) float32``: a side input derived from the samples ``x`` (e.g.
#: expert features of ECG windows), fed to models that registered it beside their main input.
#: ``records`` holds each sample's record id: a side input may describe a sample's whole record
#: from the samples sharing its id (record context); one describing each sample alone ignores it.
SideInput = Callable[[np.ndarray, float | None, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class InputReader:
    """How ``biomed predict`` finds and reads the inputs of one modality.

    Attributes:
        expand: a command-line path -> the input paths it stands for (folders expand).
        read: ``(path, model card) -> model-ready float32 inputs`` (windows or one image);
            raises RecordError for an unreadable input.
        name: the record name written for an input path.
    """

    expand: Callable[[Path], Iterator[Path]]
    read: Callable[[Path, dict[str, Any]], np.ndarray]
    name: Callable[[Path], str]


class Registry(Generic[T]):
    """Named entries of one kind, filled by plugins; lookups load the plugins first.

    Args:
        kind: what an entry is, for error messages (e.g. "data source").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> None:
        """Register ``entry`` under ``name`` (a later registration replaces an earlier one)."""
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry ``name``; raises ConfigError naming the closest registered one."""
        load_plugins()
        if name not in self._entries:
            raise ConfigError(f"no plugin registered the {self.kind} {name!r}{suggest(name, self._entries)}; "
                              f"registered: {', '.join(sorted(self._entries)) or 'none'}")
        return self._entries[name]

    def items(self) -> list[tuple[str, T]]:
        """All entries in registration order."""
        load_plugins()
        return list(self._entries.items())


SOURCES: Registry[SourceLoader] = Registry("data source")
AUGMENTERS: Registry[AugmenterFactory] = Registry("augmenter of modality")
BATCH_MIXERS: Registry[BatchMixerFactory] = Registry("batch mixer of modality")
TTA_VIEWS: Registry[TTAViews] = Registry("test-time augmentation views of modality")
PREDICT_INPUTS: Registry[InputReader] = Registry("predict inputs of modality")
REPORT_SECTIONS: Registry[ReportSection] = Registry("report section")
FOLDER_SUMMARIES: Registry[FolderSummary] = Registry("folder summary")
DATA_COMMANDS: Registry[DataCommand] = Registry("data command")
SIDE_INPUTS: Registry[SideInput] = Registry("side input")
#: Classes a plugin's scikit-learn models contain, by :func:`type_name`: the only ones (besides plain
#: containers and numpy arrays) that ``biomed`` loads from a ``.skops`` file.
SKOPS_TYPES: Registry[type] = Registry("type trusted in .skops files")

_LOADED: list[str] = []


def type_name(cls: type) -> str:
    """The dotted name of a class as ``.skops`` files record it (``module.Class``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def load_plugins() -> list[str]:
    """Import and register every plugin once: the built-in ones, then ``biomed.plugins`` entry points.

    Returns:
        The plugin modules loaded, in order.

    Raises:
        ImportError: a plugin module (or something it imports) cannot be imported.
    """
    if _LOADED:
        return list(_LOADED)
    names = list(BUILTIN_PLUGINS)
    names += [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.value not in names]
    modules = [importlib.import_module(name) for name in names]
    _LOADED.extend(names)
    for module in modules:
        module.register()
    return list(_LOADED)

"""User-facing errors: the CLI prints these as one line, without a traceback."""

from __future__ import annotations

import difflib
from typing import Any


class BiomedError(Exception):
    """An error caused by user input (config, data, paths), reported as one line."""


class ConfigError(BiomedError):
    """The experiment config is invalid (unknown key, wrong type, missing path)."""


class DataError(BiomedError):
    """Input data cannot be used (missing folder, no usable records)."""


class RecordError(Exception):
    """One record is unusable; batch loaders skip it and report ``str(self)`` as the reason."""


def suggest(word: str, choices: Any) -> str:
    """Return ' (did you mean X?)' for the closest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

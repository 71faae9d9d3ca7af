"""Terminal output of the ``biomed`` command: verbosity, progress bars and a quiet TensorFlow start-up.

The CLI calls :func:`set_verbosity` once (``--quiet``, default, ``--verbose``).
Used as a library (no CLI), biomed draws no progress bars and Keras prints
what ``train.verbose`` asks for. Progress bars are tqdm bars on stderr, drawn
at the default verbosity only and, by tqdm's convention, only when stderr is a
terminal.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any, Literal

Verbosity = Literal["quiet", "normal", "verbose"]

#: The CLI's verbosity, or None when biomed is used as a library.
_verbosity: Verbosity | None = None
LOG_LEVELS = {"quiet": logging.ERROR, "normal": logging.INFO, "verbose": logging.DEBUG}


def set_verbosity(level: Verbosity | None) -> None:
    """Set the verbosity of the ``biomed`` command (None: library use, the default)."""
    global _verbosity
    _verbosity = level


def keras_verbose(configured: int) -> int:
    """Keras' ``verbose`` for ``fit``: ``train.verbose`` with ``--verbose`` or as a library, else 0."""
    return configured if _verbosity in (None, "verbose") else 0


def progress(total: int | None, desc: str, unit: str) -> Any:
    """A tqdm progress bar on stderr, drawn only at the CLI's default verbosity and on a terminal.

    Args:
        total: the number of steps (None: unknown, the bar counts without an ETA).
        desc: the label in front of the bar.
        unit: what one step is ("record", "model", ...).

    Returns:
        A ``tqdm`` object (a no-op when not drawn); close it, or use it as a context manager.
    """
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=True if _verbosity != "normal" else None)


class TqdmHandler(logging.StreamHandler):
    """A logging handler that writes through ``tqdm.write``, so log lines do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own convention for failing handlers
            self.handleError(record)


def quiet_tensorflow_start() -> None:
    """Import TensorFlow and find its devices with its C++ start-up lines held back.

    TensorFlow 2.17+ writes notices (oneDNN, CUDA drivers, ``failed call to
    cuInit`` on machines without a GPU) through absl before its log level is
    read, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them: file descriptor 2 is
    sent to a temporary file meanwhile and replayed if the import fails.
    TensorFlow's Python and absl loggers are set to errors only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                held.seek(0)
                sys.stderr.write(held.read().decode("utf-8", "replace"))
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)

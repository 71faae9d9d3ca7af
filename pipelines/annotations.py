"""Whether a value from a config fits the type annotation of a builder's parameter.

Hyperparameters reach model builders from YAML, so ``filters: x`` or ``dropout: [0.1]``
would otherwise fail deep inside Keras after the data is loaded. The check knows the
annotations builders use (``int``, ``float``, ``bool``, ``str``, ``None``, unions,
``Literal`` and sequences); any other annotation accepts every value.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import numbers
import types
import typing
from typing import Any, Callable

_SEQUENCES = (list, tuple, collections.abc.Sequence)


@functools.lru_cache(maxsize=None)
def parameter_annotations(builder: Callable[..., Any]) -> dict[str, Any]:
    """The builder's parameter annotations as types (``from __future__`` strings evaluated).

    A builder whose annotations cannot be evaluated (e.g. a name imported only for type
    checkers) gets no type checks.
    """
    try:
        parameters = inspect.signature(builder, eval_str=True).parameters
    except (NameError, SyntaxError, TypeError, AttributeError):
        return {}
    return {name: p.annotation for name, p in parameters.items()
            if p.annotation is not inspect.Parameter.empty and not isinstance(p.annotation, str)}


def fits_annotation(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is of the type ``annotation`` describes (ints count as floats, bools as neither)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(fits_annotation(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args and (origin is not tuple or len(args) == 2 and args[1] is Ellipsis) else Any
        return item is Any or all(fits_annotation(v, item) for v in value)
    return True


def describe(annotation: Any) -> str:
    """A short readable name of an annotation (``int``, ``str | float``, ``Sequence[str]``)."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("collections.abc.", "")

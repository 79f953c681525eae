"""Type checks of the dataclasses :mod:`format` builds from JSON (manifest.json, ``<key>.json``).

``json.loads`` gives any JSON value in any field; a dataclass does not check its annotations, so a string
where a count belongs would surface later as a TypeError deep in planning or decoding. :func:`type_problem`
walks the annotations instead (nested dataclasses, ``list[...]``, ``dict[..., ...]``, ``Any``) and names
the first field that does not hold its type. The rules are the format's: an ``int`` is a non-negative
integer (every int of the format is a count, size, index or version; ``true`` is not one), a ``float`` is a
finite number.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, get_args, get_origin, get_type_hints

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a dataclass (resolved once per class)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def type_problem(obj: Any, path: str = "") -> str | None:
    """Returns ``"field <path> should be <type>, found <value>"`` for the first mistyped field, else None."""
    for f in dataclasses.fields(obj):
        problem = _problem(getattr(obj, f.name), _hints(type(obj))[f.name], f"{path}{f.name}")
        if problem is not None:
            return problem
    return None


def _problem(value: Any, hint: Any, path: str) -> str | None:
    def wrong(expected: str) -> str:
        shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
        return f"field {path} should be {expected}, found {type(value).__name__} {shown}"

    origin = get_origin(hint)
    if hint is Any:
        return None
    if dataclasses.is_dataclass(hint):
        ok = isinstance(hint, type) and isinstance(value, hint)
        return type_problem(value, f"{path}.") if ok else wrong("an object")
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else wrong("an integer >= 0")
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else wrong("a finite number")
    if hint is str:
        return None if isinstance(value, str) else wrong("a string")
    if origin is list:
        if not isinstance(value, list):
            return wrong("a list")
        (item,) = get_args(hint)
        return next((p for i, v in enumerate(value) if (p := _problem(v, item, f"{path}[{i}]")) is not None), None)
    if origin is dict:
        if not isinstance(value, dict):
            return wrong("an object")
        key, item = get_args(hint)
        for k, v in value.items():
            problem = _problem(k, key, f"{path} key") or _problem(v, item, f"{path}[{k!r}]")
            if problem is not None:
                return problem
        return None
    raise TypeError(f"json_fields: no rule for the annotation {hint!r} of {path}")  # a new field type: add one

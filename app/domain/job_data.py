"""Job data as JSON can show it: arguments, keyword arguments and return values of any producer's jobs, with
lone surrogates escaped, non-JSON values as their repr() and what cannot be shown (too deep, a cycle) refused."""

from __future__ import annotations

import json
import math
from typing import Any

# Job data nested deeper is not shown (JSON encoders, pydantic and browsers all have depth limits of their own).
MAX_DATA_DEPTH = 64


class Unreadable(ValueError):
    """A value the API cannot show as JSON: nested deeper than MAX_DATA_DEPTH, a cycle, a failing repr()."""


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates: a non-UTF-8 file name kept with surrogateescape
        return False
    return True


def safe_text(text: str) -> str:
    """The text as is when it is UTF-8; lone surrogates (surrogateescape) shown escaped."""
    return text if text.isascii() or _utf8(text) else text.encode("utf-8", "backslashreplace").decode()


def _plain_json(value: Any, depth: int = 1) -> bool:
    """True when `value` is made only of JSON types (checked by exact type, so subclasses take the slow path),
    its strings are UTF-8, its floats finite and its nesting within MAX_DATA_DEPTH."""
    kind = type(value)
    if kind is str:
        return value.isascii() or _utf8(value)
    if kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth > MAX_DATA_DEPTH:
        return False
    if kind is list:
        return all(_plain_json(item, depth + 1) for item in value)
    if kind is dict:
        items = value.items()
        return all(type(key) is str and _plain_json(key) and _plain_json(item, depth + 1) for key, item in items)
    return False


def _repr(value: Any) -> str:
    try:
        return safe_text(repr(value))
    except Exception as exc:  # RecursionError included
        raise Unreadable(f"{type(value).__name__} has no readable repr()") from exc


def _key(key: Any) -> str:
    if isinstance(key, str):
        return safe_text(str(key))
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    return str(key) if isinstance(key, int | float) else _repr(key)


def _to_json(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return safe_text(str(value))
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, list | tuple | dict) and depth > MAX_DATA_DEPTH:
        raise Unreadable(f"nested deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, list | tuple):
        return [_to_json(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_key(key): _to_json(item, depth + 1) for key, item in value.items()}
    return _repr(value)


def json_safe(value: Any) -> Any:
    """What JSON can hold, as is; tuples as lists, lone surrogates escaped, anything else as its repr(). Most
    payloads are plain: a walk, no copy. Raises Unreadable for what cannot be shown (too deep, a cycle)."""
    if _plain_json(value):
        return value
    return _to_json(value, 1)

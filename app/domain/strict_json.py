"""JSON as the product accepts it, wherever it comes from (a request body, a worker's capabilities): nesting at
most `MAX_JSON_DEPTH` levels, no NaN/Infinity (API.md). Flask-free: config and the worker side use it too."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_DEPTH = 32


class JSONTooDeep(ValueError):
    """A document nested deeper than MAX_JSON_DEPTH (a ValueError, so `get_json(silent=True)` gives None)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: valid syntax, but Infinity once read
        raise ValueError(f"{text} is out of range")
    return value


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest deeper than `limit` (`{}` is one level); iterative, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads_checked(data: str | bytes) -> Any:
    """Strict JSON: no NaN/Infinity, at most MAX_JSON_DEPTH levels; any failure is a ValueError."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:  # deeper than the interpreter's recursion limit: far deeper than allowed
        raise JSONTooDeep(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if isinstance(value, dict | list) and nesting_exceeds(value, MAX_JSON_DEPTH):
        raise JSONTooDeep(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value

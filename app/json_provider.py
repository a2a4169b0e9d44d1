"""JSON responses through orjson: a tenth of the stdlib encoder's cost on the largest documents (metrics, pages).

Falls back to Flask's own provider for what orjson refuses (integers beyond 64 bits in a job's arguments,
non-string keys), so a response never fails for being unusual. Request bodies are read by `loads`, which refuses
what the API never accepts (API.md): nesting deeper than `MAX_JSON_DEPTH` and NaN/Infinity.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

# Dates through Flask's default (HTTP dates), as the stdlib provider wrote them.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME

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


class OrjsonProvider(DefaultJSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # a caller asking for stdlib options (indent, sort_keys...) gets the stdlib encoder
            return super().dumps(obj, **kwargs)
        try:
            return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode()
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return super().dumps(obj)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """What `request.get_json()` uses: every body of every route goes through the same checks."""
        if kwargs:
            return super().loads(s, **kwargs)
        return loads_checked(s)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=_OPTIONS)
        except TypeError:
            body = super().dumps(obj).encode()
        response_class: Any = self._app.response_class  # typed as sans-IO's, whose first argument is the status
        return response_class(body + b"\n", mimetype=self.mimetype)

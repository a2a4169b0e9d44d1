"""JSON responses through orjson: a tenth of the stdlib encoder's cost on the largest documents (metrics, pages).

Falls back to Flask's own provider for what orjson refuses (integers beyond 64 bits in a job's arguments,
non-string keys), so a response never fails for being unusual. Request bodies are read by `loads`, which refuses
what the API never accepts (app.domain.strict_json): nesting deeper than `MAX_JSON_DEPTH` and NaN/Infinity.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

from app.domain.strict_json import loads_checked

# Dates through Flask's default (HTTP dates), as the stdlib provider wrote them.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


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

"""The audit log: who did what to which object, when, from where and with what answer, in one capped stream.

Entries are appended with one pipelined round trip (XADD MAXLEN ~ cap, XTRIM MINID past the retention) and read
newest first. Filters are applied while walking the stream backwards in batches, so a rare actor costs a walk
over at most the cap, never more.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis import Redis

from app.domain import keys
from app.domain.errors import InvalidInput
from app.domain.timeutil import iso_from_timestamp

FIELDS = ("actor", "role", "action", "target", "params", "status", "address")
MAX_LIMIT = 1000
MAX_PARAMS_CHARS = 4096
_BATCH = 1000
_ENTRY_ID = re.compile(r"(\d{1,20})-(\d{1,20})")
_MAX_ID_PART = 2**64 - 1  # each part of a stream id is an unsigned 64-bit number
_NOTHING_BEFORE = "(0-0"  # no entry is older than 0-0: an empty page, without asking Redis (which refuses it)
# Fields whose values are never recorded: passwords, tokens, keys, cookies (the names are kept, the values not).
_SECRET_FIELD = re.compile(r"pass|secret|token|authorization|cookie|credential|api_?key", re.IGNORECASE)
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Query:
    limit: int = 100
    actor: str | None = None
    action: str | None = None
    before: str | None = None  # an entry id, or an ISO-8601 time


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of request parameters with the value of every secret-looking field replaced."""
    if depth > 8:
        return REDACTED
    if isinstance(value, dict):
        return {
            str(key): REDACTED if _SECRET_FIELD.search(str(key)) else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, depth + 1) for item in value]
    return value


def _params_json(params: dict[str, Any]) -> str:
    cleaned = redact(params)
    try:
        text = orjson.dumps(cleaned, default=str).decode()
    except TypeError:  # integers past 64 bits, which a refused body may hold
        text = json.dumps(cleaned, default=str)
    if len(text) > MAX_PARAMS_CHARS:
        return orjson.dumps({"truncated": True, "fields": sorted(params)[:50]}).decode()
    return text


def record(
    connection: Redis,
    *,
    actor: str | None,
    role: str | None,
    action: str,
    target: str | None,
    params: dict[str, Any],
    status: int,
    address: str | None,
    now: float | None = None,
) -> str:
    """Append one entry (params redacted and capped); returns its id, whose time (Redis's clock, the same for every
    web process) is the entry's `at`. One round trip; `now` only sets the retention cut-off."""
    now = time.time() if now is None else now
    fields = {
        "actor": actor or "",
        "role": role or "",
        "action": action,
        "target": target or "",
        "params": _params_json(params),
        "status": str(status),
        "address": address or "",
    }
    oldest_kept = int((now - keys.AUDIT_RETENTION_DAYS * 86400) * 1000)
    with connection.pipeline(transaction=False) as pipe:
        pipe.xadd(keys.AUDIT, fields, maxlen=keys.AUDIT_CAP, approximate=True)  # type: ignore[arg-type]
        pipe.xtrim(keys.AUDIT, minid=f"{oldest_kept}-0", approximate=False)  # exact: a handful at a time
        entry_id, _ = pipe.execute()
    return str(entry_id.decode())


def _end(before: str | None) -> str:
    """XREVRANGE's (exclusive) end for `before`: an entry id, or an ISO time (entries strictly before it)."""
    if not before:
        return "+"
    entry_id = _ENTRY_ID.fullmatch(before)
    if entry_id:
        milliseconds, sequence = int(entry_id[1]), int(entry_id[2])
        if milliseconds > _MAX_ID_PART or sequence > _MAX_ID_PART:
            raise InvalidInput("Invalid 'before'", {"before": "an entry id's parts are at most 2**64-1"})
        return f"({milliseconds}-{sequence}"
    try:
        moment = datetime.fromisoformat(before.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("Invalid 'before'", {"before": "an entry id (1700000000000-0) or an ISO time"}) from None
    if moment.tzinfo is None:
        raise InvalidInput("Invalid 'before'", {"before": "an ISO time needs a zone (Z)"})
    return f"({max(0, int(moment.timestamp() * 1000))}-0"


def _matches(fields: dict[bytes, bytes], query: Query) -> bool:
    if query.actor is not None and fields.get(b"actor", b"").decode() != query.actor:
        return False
    if query.action is None:
        return True
    action = fields.get(b"action", b"").decode()
    # "queue" matches every queue action; "queue.pause" only itself.
    return action == query.action or ("." not in query.action and action.startswith(f"{query.action}."))


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    text = {key.decode(): value.decode() for key, value in fields.items()}
    return {
        "id": entry_id.decode(),
        "at": iso_from_timestamp(int(entry_id.split(b"-")[0]) / 1000),
        "actor": text.get("actor") or None,
        "role": text.get("role") or None,
        "action": text.get("action", ""),
        "target": text.get("target") or None,
        "params": orjson.loads(text.get("params") or "{}"),
        "status": int(text.get("status") or 0),
        "address": text.get("address") or None,
    }


def list_entries(connection: Redis, query: Query) -> dict[str, Any]:
    """Newest first: up to `limit` entries matching the filters, and `next` (the `before` of the next page, or
    None when the walk reached the oldest entry)."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidInput("Invalid limit", {"limit": f"between 1 and {MAX_LIMIT}"})
    end = _end(query.before)
    entries: list[dict[str, Any]] = []
    if end == _NOTHING_BEFORE:
        return {"entries": entries, "next": None}
    while True:
        batch = connection.xrevrange(keys.AUDIT, max=end, min="-", count=_BATCH)
        for entry_id, fields in batch:
            if _matches(fields, query):
                entries.append(_entry(entry_id, fields))
                if len(entries) == query.limit:
                    return {"entries": entries, "next": entries[-1]["id"]}
        if len(batch) < _BATCH:
            return {"entries": entries, "next": None}
        end = f"({batch[-1][0].decode()}"

"""Time helpers: UTC ISO-8601 with a Z suffix and milliseconds, as the API shows every time."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # RQ stores naive UTC datetimes
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_from_timestamp(seconds: float) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC)) or ""


def rq_epoch(raw: str | bytes | None) -> float | None:
    """A time RQ stored (utils.utcformat: `2026-12-01T05:25:28.385444Z`; other ISO-8601 forms read too, naive ones
    as UTC) as epoch seconds; None when absent or unreadable. The one parse of RQ's times for every reader."""
    if not raw:
        return None
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def to_ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)

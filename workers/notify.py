"""The delivery job of alert notifications (queue `rqmon.notifications`): one JSON POST, raising on any failure so
that RQ retries it with the backoff it was enqueued with (app/domain/notifications.py)."""

from __future__ import annotations

from typing import Any

from app.domain.notifications import post_json


def deliver(url: str, body: dict[str, Any]) -> int:
    """POST `body` to `url` (no redirect followed); the HTTP status of a 2xx answer."""
    return post_json(url, body)

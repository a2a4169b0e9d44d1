"""Webhook notifications of alerts (ALERTS.md § Delivery): one JSON POST per URL for every firing and resolution,
queued as RQ jobs on the product's own queue with retries and exponential backoff, so that a dead endpoint is a
visible failed job and never slows a tick. The POST itself (`post_json`) runs in a worker (workers/notify.py);
redirects are never followed (a 3xx is a failed delivery), timeouts are short."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from redis import Redis
from rq import Queue, Retry

from app.domain import keys
from app.domain.states import AlertSeverity, HealthStatus

DELIVERY_FUNCTION = "workers.notify.deliver"
CONNECT_TIMEOUT_SECONDS = 5.0  # urllib has one timeout for connect and each read
DELIVERY_JOB_TIMEOUT = 30
DELIVERY_ATTEMPTS = 6  # the first and 5 retries
FAILED_DELIVERY_TTL = 7 * 86400
DONE_DELIVERY_TTL = 86400
QUEUED_DELIVERY_TTL = 86400  # a delivery no worker took within a day expires (no worker on the queue: no growth)
SLACK_HOSTS = ("hooks.slack.com",)
USER_AGENT = "rq-monitor-alerts/1"


class DeliveryFailed(Exception):
    """The endpoint did not take the notification (network error, timeout, non-2xx answer, a redirect)."""


def format_for(url: str, forced: str = "auto") -> str:
    if forced in ("generic", "slack"):
        return forced
    return "slack" if (urlsplit(url).hostname or "") in SLACK_HOSTS else "generic"


def body_for(status: str, alert: dict[str, Any], health: str, shape: str) -> dict[str, Any]:
    """The generic document {"status", "alert", "health"}, or Slack's incoming-webhook {"text"}."""
    if shape == "slack":
        mark = ":rotating_light:" if status == "firing" and alert["severity"] == AlertSeverity.CRITICAL else ":warning:"
        if status == "resolved":
            mark = ":white_check_mark:"
        subject = alert["subject"]
        text = f"{mark} [{status.upper()}] {alert['rule']} ({alert['severity']}) on {subject['kind']} "
        return {"text": text + f"{subject['name']}: {alert['message']} — health {health}"}
    return {"status": status, "alert": alert, "health": health}


def redacted(url: str) -> str:
    """A webhook URL as reports show it: its path often is the secret (Slack)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") else f"{parts.scheme}://{parts.netloc}"


def backoff(base_seconds: float, attempts: int = DELIVERY_ATTEMPTS) -> list[int]:
    """Exponential waits between attempts: base, 2 base, 4 base, ... (whole seconds, at least 1)."""
    return [max(1, round(base_seconds * 2**n)) for n in range(attempts - 1)]


def enqueue_notifications(
    connection: Redis,
    events: Iterable[tuple[str, dict[str, Any]]],
    urls: Iterable[str],
    health: str,
    forced_format: str = "auto",
    backoff_seconds: float = 10.0,
) -> list[str]:
    """Queue one delivery job per (status, alert) event and URL, in one round trip; their ids."""
    queue = Queue(keys.NOTIFICATIONS_QUEUE, connection=connection)
    urls = list(urls)
    jobs = [
        Queue.prepare_data(
            DELIVERY_FUNCTION,
            args=(url, body_for(status, alert, health, format_for(url, forced_format))),
            timeout=DELIVERY_JOB_TIMEOUT,
            ttl=QUEUED_DELIVERY_TTL,
            result_ttl=DONE_DELIVERY_TTL,
            failure_ttl=FAILED_DELIVERY_TTL,
            description=f"alert {status}: {alert['id']} -> {redacted(url)}",
            retry=Retry(max=DELIVERY_ATTEMPTS - 1, interval=backoff(backoff_seconds)),
        )
        for status, alert in events
        for url in urls
    ]
    if not jobs:
        return []
    with connection.pipeline() as pipe:
        enqueued = queue.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()
    return [job.id for job in enqueued]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx: never followed, to this host or another


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, body: dict[str, Any], timeout: float = CONNECT_TIMEOUT_SECONDS) -> int:
    """POST `body` as JSON; the HTTP status on 2xx, else DeliveryFailed (the job is retried)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryFailed(f"not an http(s) URL: {redacted(url)}")
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        where = f" to {error.headers.get('Location')}" if 300 <= error.code < 400 else ""
        raise DeliveryFailed(f"{redacted(url)} answered {error.code}{where} (redirects are not followed)"
                             if where else f"{redacted(url)} answered {error.code}") from None  # fmt: skip
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryFailed(f"{redacted(url)}: {getattr(error, 'reason', error)}") from None


def send_test(urls: Iterable[str], forced_format: str = "auto") -> list[dict[str, Any]]:
    """POST /api/v1/alerts/test: one test notification per URL, sent now; the outcome of each."""
    alert = {
        "id": "test:system:rq-monitor",
        "rule": "test",
        "severity": AlertSeverity.WARNING.value,
        "subject": {"kind": "system", "name": "rq-monitor"},
        "value": 0,
        "threshold": 0,
        "since": None,
        "message": "Test notification from RQ Monitor",
    }
    report = []
    for url in urls:
        try:
            body = body_for("firing", alert, HealthStatus.HEALTHY.value, format_for(url, forced_format))
            status = post_json(url, body)
            report.append({"url": redacted(url), "delivered": True, "status": status, "error": None})
        except DeliveryFailed as error:
            report.append({"url": redacted(url), "delivered": False, "status": None, "error": str(error)})
    return report

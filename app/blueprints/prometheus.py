"""GET /metrics (root path): the Prometheus exposition. Auth is an API token as Bearer, or none with
METRICS_PUBLIC=true; refusals and Redis being down answer in plain text, which is what a scraper logs."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Response, current_app, request
from spectree import Response as Resp

from app.domain import tokens
from app.domain.scrape import read_scrape
from app.errors import ApiError
from app.extensions import get_redis, spec
from app.prometheus import CONTENT_TYPE, exposition
from app.security import authenticate

bp = Blueprint("prometheus", __name__)


def _plain(status: int, text: str, **headers: str) -> Response:
    return Response(text + "\n", status=status, content_type="text/plain; charset=utf-8", headers=headers)


def _refusal() -> Response | None:
    """None when the scrape may go on."""
    if current_app.config["METRICS_PUBLIC"]:
        return None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not tokens.looks_like_token(value.strip()):
        return _plain(401, "401 Unauthorized: send an API token as Authorization: Bearer rqm_...")
    try:
        authenticate()
    except ApiError as error:
        retry_after = getattr(error, "retry_after", None)
        extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return _plain(error.status, f"{error.status} {error.message}", **extra)
    return None


@bp.get("/metrics")
@spec.validate(resp=Resp("HTTP_200"), tags=["prometheus"], security=[{"bearer": []}])
def metrics() -> Any:
    """Prometheus text exposition of every queue, worker, counter and firing alert (API.md § Prometheus)."""
    try:
        refused = _refusal()
        if refused is not None:
            return refused
        config = current_app.config
        scrape = read_scrape(
            get_redis(), None, float(config["WORKER_ACTIVE_SECONDS"]), float(config["WORKER_STALE_SECONDS"])
        )
    except redis.RedisError:
        return _plain(503, "503 Service Unavailable: Redis is not reachable")
    return Response(exposition(scrape), content_type=CONTENT_TYPE)

"""Liveness (no Redis) and readiness (Redis answers) for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from spectree import Response as Resp

from app.extensions import get_redis_probe, spec
from app.schemas import ErrorBody, HealthStatus

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@spec.validate(resp=Resp(HTTP_200=HealthStatus), tags=["health"], security={})
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@spec.validate(resp=Resp(HTTP_200=HealthStatus, HTTP_503=ErrorBody), tags=["health"], security={})
def readyz() -> Any:
    get_redis_probe().ping()  # a ConnectionError or TimeoutError (0.5 s) becomes 503 in app/errors.py
    return jsonify({"status": "ready"})

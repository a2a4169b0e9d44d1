"""Extensions created unbound and attached in create_app(); the Redis client lives in app.extensions."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, current_app
from flask_jwt_extended import JWTManager
from spectree import SecurityScheme, SpecTree
from spectree.models import InType, SecureType, SecuritySchemeData

jwt = JWTManager()


def _raise_validation_error(request: Any, response: Any, error: Any, instance: Any, *rest: Any) -> None:
    """Spectree hook: turn a failed validation into our one error shape instead of spectree's."""
    if error is None:
        return
    from app.errors import validation_failed  # noqa: PLC0415 - avoids an import cycle

    raise validation_failed(error)


spec = SpecTree(
    "flask",
    mode="strict",
    title="RQ Monitor API",
    version="1",
    path="apidoc",
    validation_error_status=400,
    annotations=False,
    before=_raise_validation_error,
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer", bearer_format="JWT")
        ),
        SecurityScheme(
            name="cookie",
            data=SecuritySchemeData(type=SecureType.API_KEY, field_in=InType.COOKIE, name="access_token_cookie"),
        ),
    ],
    security=[{"bearer": []}, {"cookie": []}],
)


def init_redis(app: Flask, url: str) -> redis.Redis:
    """One connection pool per process, shared by requests and the live streams."""
    pool = redis.ConnectionPool.from_url(
        url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30, retry_on_timeout=False
    )
    client = redis.Redis(connection_pool=pool)
    app.extensions["redis"] = client
    return client


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]

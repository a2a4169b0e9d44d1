"""Extensions created unbound and attached in create_app(); the Redis client lives in app.extensions."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import redis
from flask import Flask, current_app
from flask_jwt_extended import JWTManager
from spectree import SecurityScheme, SpecTree
from spectree.models import InType, SecureType, SecuritySchemeData
from spectree.plugins.flask_plugin import FlaskPlugin


class VerifiedTokenCache(JWTManager):
    """JWTManager that remembers the claims of tokens it has verified (PyJWT parses a token four times per request
    otherwise): the same encoded token, with the same CSRF value, gives the same claims until it expires. Bounded;
    revocation is not cached (the blocklist lookup runs on every request)."""

    CAPACITY = 4096

    def __init__(self, app: Flask | None = None, add_context_processor: bool = False) -> None:
        self._verified: OrderedDict[tuple[str, str | None], dict[str, Any]] = OrderedDict()
        super().__init__(app, add_context_processor)

    def _decode_jwt_from_config(self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False) -> dict:
        key = (encoded_token, csrf_value)
        claims = self._verified.get(key)
        if claims is not None and not allow_expired and time.time() < claims["exp"]:
            return dict(claims)
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        if not allow_expired and isinstance(claims.get("exp"), int | float):
            self._verified[key] = claims
            if len(self._verified) > self.CAPACITY:
                self._verified.popitem(last=False)
        return dict(claims)


jwt = VerifiedTokenCache()


def _raise_validation_error(request: Any, response: Any, error: Any, instance: Any, *rest: Any) -> None:
    """Spectree hook: turn a failed validation into our one error shape instead of spectree's."""
    if error is None:
        return
    from app.errors import validation_failed

    raise validation_failed(error)


class _DocumentedResponses(FlaskPlugin):
    """Response models document the API; they are not re-validated on every call. Re-validating meant re-parsing
    the largest documents on the hot path, and a job payload pydantic could not serialize (a lone surrogate, deep
    nesting) turned a whole page into a 500. Requests are still validated."""

    def validate_response(self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool) -> Any:
        return super().validate_response(resp, resp_model, True, force_resp_serialize)


spec = SpecTree(
    "flask",
    backend=_DocumentedResponses,
    mode="strict",
    title="RQ Monitor API",
    version="1",
    path="apidoc",
    validation_error_status=400,
    annotations=False,
    before=_raise_validation_error,
    security_schemes=[
        SecurityScheme(
            name="bearer",
            data=SecuritySchemeData(
                type=SecureType.HTTP,
                scheme="bearer",
                bearer_format="JWT",
                description="An access token from /api/v1/auth/login, or an API token (rqm_…) from "
                "/api/v1/auth/tokens, which acts with its own role.",
            ),
        ),
        SecurityScheme(
            name="cookie",
            data=SecuritySchemeData(type=SecureType.API_KEY, field_in=InType.COOKIE, name="access_token_cookie"),
        ),
    ],
    security=[{"bearer": []}, {"cookie": []}],
)


# A frozen or unreachable Redis fails a request within about this long (503) instead of holding it: no command
# of the web process blocks on the server side (the live hub polls pub/sub with its own short timeout).
REDIS_SOCKET_TIMEOUT_SECONDS = 1.5
REDIS_CONNECT_TIMEOUT_SECONDS = 1.0
# /readyz answers within a second whatever Redis does.
READINESS_TIMEOUT_SECONDS = 0.5


def init_redis(app: Flask, url: str) -> redis.Redis:
    """One connection pool per process, shared by requests and the live streams; a small one for /readyz."""
    pool = redis.ConnectionPool.from_url(
        url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        retry_on_timeout=False,
    )
    client = redis.Redis(connection_pool=pool)
    app.extensions["redis"] = client
    app.extensions["redis_probe"] = redis.Redis.from_url(
        url,
        socket_connect_timeout=READINESS_TIMEOUT_SECONDS,
        socket_timeout=READINESS_TIMEOUT_SECONDS,
        max_connections=4,
    )
    return client


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]


def get_redis_probe() -> redis.Redis:
    """The readiness probe's client: same server, shorter timeouts."""
    return current_app.extensions["redis_probe"]

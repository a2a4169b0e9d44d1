"""Roles, the one role_required() decorator, token revocation and JWT error responses."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from flask_jwt_extended import get_jwt, verify_jwt_in_request

from app.domain import keys
from app.domain.users import Role
from app.errors import ApiError, error_response
from app.extensions import get_redis, jwt

F = TypeVar("F", bound=Callable[..., Any])


def role_required(minimum: Role) -> Callable[[F], F]:
    """Require a valid access token (header or cookie) whose user currently holds `minimum` or above."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request()
            if not current_role().includes(minimum):
                raise ApiError(403, "forbidden", f"This action needs the {minimum.value} role or above")
            return view(*args, **kwargs)

        wrapper.minimum_role = minimum  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def current_role() -> Role:
    """The role stored for the user now (a role change or deletion takes effect at once), else the claim's."""
    return Role(g.get("current_user_role") or get_jwt()["role"])


def revoke_token(claims: dict[str, Any]) -> None:
    """Revoke a token (and the refresh token it was issued with) until it would have expired anyway."""
    connection = get_redis()
    now = int(time.time())
    with connection.pipeline(transaction=False) as pipe:
        pipe.set(keys.revoked_token(claims["jti"]), 1, ex=max(1, int(claims["exp"]) - now))
        refresh_jti = claims.get("rjti")
        if refresh_jti:
            # The refresh token lives longer than the access token; keep its marker for the longest life.
            pipe.set(keys.revoked_token(refresh_jti), 1, ex=max(1, int(claims.get("rexp", claims["exp"])) - now))
        pipe.execute()


@jwt.token_in_blocklist_loader
def _token_revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
    """One round trip: is the token revoked, and does its user still exist (with which role)?"""
    with get_redis().pipeline(transaction=False) as pipe:
        pipe.exists(keys.revoked_token(jwt_payload["jti"]))
        pipe.hget(keys.user(jwt_payload["sub"]), "role")
        revoked, role = pipe.execute()
    if revoked or role is None:
        return True
    g.current_user_role = role.decode()
    return False


def _jwt_error(status: int, code: str) -> Callable[..., Response]:
    def handler(*args: Any) -> Response:  # PyJWT's own reasons ("Not enough segments") are not shown
        message = {
            "missing_token": "A valid access token is required",
            "token_expired": "The token has expired",
            "token_revoked": "The token has been revoked",
        }.get(code, "The token is not valid")
        return error_response(status, code, message)

    return handler


def _unauthorized(reason: str) -> Response:
    # flask-jwt-extended reports CSRF failures through the same callback as a missing token.
    if "CSRF" in reason:
        return error_response(403, "csrf_failed", "Missing or wrong CSRF token (X-CSRF-TOKEN header)")
    return error_response(401, "missing_token", "A valid access token is required")


def init_security(app: Flask) -> None:
    jwt.unauthorized_loader(_unauthorized)
    jwt.invalid_token_loader(_jwt_error(401, "invalid_token"))
    jwt.expired_token_loader(_jwt_error(401, "token_expired"))
    jwt.revoked_token_loader(_jwt_error(401, "token_revoked"))
    jwt.needs_fresh_token_loader(_jwt_error(401, "fresh_token_required"))
    jwt.user_lookup_error_loader(_jwt_error(401, "invalid_token"))

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def login_username_key() -> str:
    """Rate-limit key for failed logins of one username (whatever address they come from)."""
    body = request.get_json(silent=True)
    name = body.get("username") if isinstance(body, dict) else None
    return f"login-user:{str(name)[:64] if name else '-'}"

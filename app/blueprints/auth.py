"""POST /api/v1/auth/login, /refresh, /logout and GET /me."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    decode_token,
    get_jwt,
    get_jwt_identity,
    get_jwt_request_location,
    set_access_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)
from spectree import Response as Resp

from app.domain import users
from app.domain.users import Role, User
from app.errors import ApiError
from app.extensions import get_redis, limiter, spec
from app.schemas import ErrorBody, LoginBody, LoginResult, Me, RefreshResult, Success
from app.security import current_role, login_username_key, revoke_token, role_required

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

BAD_CREDENTIALS = "Invalid username or password"


def _count_failure(response: Response) -> bool:
    return response.status_code == 401


def _access_lifetime() -> int:
    return int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())


def _access_token(username: str, role: str, refresh_claims: dict[str, Any]) -> str:
    # rjti/rexp tie the access token to its refresh token so that logout revokes both.
    claims = {"role": role, "rjti": refresh_claims["jti"], "rexp": refresh_claims["exp"]}
    return create_access_token(identity=username, additional_claims=claims)


def issue_tokens(user: User) -> dict[str, Any]:
    refresh_token = create_refresh_token(identity=user.username, additional_claims={"role": user.role.value})
    access_token = _access_token(user.username, user.role.value, decode_token(refresh_token))
    return {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": _access_lifetime(),
        "role": user.role.value,
    }


def authenticate_request(body: LoginBody) -> User:
    user = users.authenticate(get_redis(), body.username, body.password)
    if user is None:
        raise ApiError(401, "invalid_credentials", BAD_CREDENTIALS)
    return user


# Shared scopes: the API login and the admin pages' login count failures together.
login_throttled = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_USER"],
    scope="login-user",
    key_func=login_username_key,
    deduct_when=_count_failure,
)
login_throttled_by_address = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"], scope="login-address", deduct_when=_count_failure
)


@bp.post("/login")
@login_throttled
@login_throttled_by_address
@spec.validate(
    json=LoginBody,
    resp=Resp(HTTP_200=LoginResult, HTTP_401=ErrorBody, HTTP_429=ErrorBody),
    tags=["auth"],
    security={},
)
def login() -> Any:
    """Exchange a username and password for an access and a refresh token."""
    return jsonify(issue_tokens(authenticate_request(request.context.json)))  # type: ignore[attr-defined]


@bp.post("/refresh")
@spec.validate(resp=Resp(HTTP_200=RefreshResult, HTTP_401=ErrorBody), tags=["auth"])
def refresh() -> Any:
    """A new access token for a valid refresh token sent as Bearer (or the refresh cookie)."""
    verify_jwt_in_request(refresh=True)
    access_token = _access_token(get_jwt_identity(), current_role().value, get_jwt())
    response = jsonify({"access_token": access_token, "token_type": "Bearer", "expires_in": _access_lifetime()})
    if get_jwt_request_location() == "cookies":  # the admin pages renew their session cookie this way
        set_access_cookies(response, access_token)
    return response


@bp.post("/logout")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=Success, HTTP_401=ErrorBody), tags=["auth"])
def logout() -> Any:
    """Revoke the access token (and its refresh token) at once."""
    revoke_token(get_jwt())
    response = jsonify({"success": True})
    unset_jwt_cookies(response)
    return response


@bp.get("/me")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=Me, HTTP_401=ErrorBody), tags=["auth"])
def me() -> Any:
    """Who the token belongs to, with the role they hold now."""
    return jsonify({"username": get_jwt_identity(), "role": current_role().value})

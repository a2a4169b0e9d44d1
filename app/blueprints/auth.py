"""POST /api/v1/auth/login, /refresh, /logout and GET /me."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask_jwt_extended import (
    get_jwt,
    get_jwt_identity,
    get_jwt_request_location,
    set_access_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)
from spectree import Response as Resp

from app.domain.users import Role
from app.extensions import spec
from app.schemas import ErrorBody, LoginBody, LoginResult, Me, RefreshResult, Success
from app.security import (
    access_lifetime,
    authenticate_login,
    current_role,
    issue_tokens,
    renew_access_token,
    revoke_token,
    role_required,
)

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")


@bp.post("/login")
@spec.validate(
    json=LoginBody,
    resp=Resp(HTTP_200=LoginResult, HTTP_401=ErrorBody, HTTP_429=ErrorBody),
    tags=["auth"],
    security={},
)
def login() -> Any:
    """Exchange a username and password for an access and a refresh token."""
    body: LoginBody = request.context.json  # type: ignore[attr-defined]
    return jsonify(issue_tokens(authenticate_login(body.username, body.password)))


@bp.post("/refresh")
@spec.validate(resp=Resp(HTTP_200=RefreshResult, HTTP_401=ErrorBody), tags=["auth"])
def refresh() -> Any:
    """A new access token of the same session for a valid refresh token sent as Bearer (or the refresh cookie)."""
    verify_jwt_in_request(refresh=True)
    access_token = renew_access_token()
    response = jsonify({"access_token": access_token, "token_type": "Bearer", "expires_in": access_lifetime()})
    if get_jwt_request_location() == "cookies":  # the admin pages renew their session cookie this way
        set_access_cookies(response, access_token)
    return response


@bp.post("/logout")
@role_required(Role.MODERATOR)
@spec.validate(resp=Resp(HTTP_200=Success, HTTP_401=ErrorBody), tags=["auth"])
def logout() -> Any:
    """End the session at once: every access and refresh token of this login."""
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

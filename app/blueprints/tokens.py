"""/api/v1/auth/tokens (super_admin): create (the secret shown once), list (no secrets), revoke."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask_jwt_extended import get_jwt
from spectree import Response as Resp

from app.domain import tokens
from app.domain.users import Role
from app.extensions import get_redis, spec
from app.schemas import ErrorBody, Success
from app.schemas.tokens import CreatedToken, TokenBody, TokenList
from app.security import current_role, role_required

bp = Blueprint("tokens", __name__, url_prefix="/api/v1/auth/tokens")


@bp.post("")
@role_required(Role.SUPER_ADMIN)
@spec.validate(json=TokenBody, resp=Resp(HTTP_201=CreatedToken, HTTP_409=ErrorBody), tags=["auth"])
def create() -> Any:
    """A new API token, at most the creator's role; the secret is in this answer only."""
    body: TokenBody = request.context.json  # type: ignore[attr-defined]
    claims = get_jwt()
    # A token's maker answers for it; the maker's uid ties it to this user, not to a later one of the same name.
    made_by_token = bool(claims.get("api_token"))
    creator = claims.get("creator") if made_by_token else claims["sub"]
    creator_uid = claims.get("creator_uid" if made_by_token else "uid") or ""
    secret, token = tokens.create_token(
        get_redis(), body.name, body.role, creator or "", current_role(), body.expires_in_days, creator_uid=creator_uid
    )
    return jsonify({**token.to_dict(), "token": secret, "token_type": "Bearer"}), 201


@bp.get("")
@role_required(Role.SUPER_ADMIN)
@spec.validate(resp=Resp(HTTP_200=TokenList), tags=["auth"])
def list_all() -> Any:
    """Every API token: name, role, creator, created, expires, last used. Never a secret."""
    return jsonify({"tokens": [token.to_dict() for token in tokens.list_tokens(get_redis())]})


@bp.delete("/<name>")
@role_required(Role.SUPER_ADMIN)
@spec.validate(path_parameter_descriptions={"name": "the token's name"}, resp=Resp(HTTP_200=Success), tags=["auth"])
def revoke(name: str) -> Any:
    """Revoke at once: the token's next use is refused (401)."""
    tokens.revoke_token(get_redis(), name)
    return jsonify({"success": True})

"""GET /api/v1/audit (admin): the audit log, newest first, with filters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from spectree import Response as Resp

from app.domain import audit
from app.domain.users import Role
from app.extensions import get_redis, spec
from app.schemas.audit import AuditPage, AuditQuery
from app.security import role_required

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")


@bp.get("")
@role_required(Role.ADMIN)
@spec.validate(query=AuditQuery, resp=Resp(HTTP_200=AuditPage), tags=["audit"])
def entries() -> Any:
    """Who changed what: every state-changing call, login and failed login (kept 90 days, 100,000 at most)."""
    query: AuditQuery = request.context.query  # type: ignore[attr-defined]
    found = audit.list_entries(get_redis(), audit.Query(query.limit, query.actor, query.action, query.before))
    return jsonify({"success": True, **found})

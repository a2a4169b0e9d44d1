"""Schemas of GET /api/v1/audit."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain.audit import MAX_LIMIT


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    actor: str | None = Field(None, min_length=1, max_length=128, description="Exact actor (user or token:<name>).")
    action: str | None = Field(
        None,
        pattern=r"^[a-z_]{1,64}(\.[a-z_]{1,64})?$",
        description="An action (queue.pause), or a noun (queue) for all of its actions.",
    )
    before: str | None = Field(
        None, min_length=1, max_length=64, description="An entry id (exclusive), or an ISO time with a zone."
    )


class AuditEntry(BaseModel):
    id: str
    at: str
    actor: str | None
    role: str | None
    action: str
    target: str | None
    params: dict[str, Any] = Field(description="The request's parameters; secrets replaced by '[redacted]'.")
    status: int = Field(description="The HTTP status answered (for the command line: the equivalent one).")
    address: str | None


class AuditPage(BaseModel):
    success: bool
    entries: list[AuditEntry]
    next: str | None = Field(description="`before` for the next (older) page; null at the oldest entry.")

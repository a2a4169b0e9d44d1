"""Schemas of /api/v1/auth/tokens (snake_case, like the rest of the auth API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from app.domain.tokens import MAX_DAYS, MIN_DAYS
from app.domain.users import Role

TOKEN_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TOKEN_NAME, description="1-64 characters: letters, digits and _ . -")
    role: Role = Field(description="At most the creator's own role.")
    expires_in_days: StrictInt | None = Field(None, ge=MIN_DAYS, le=MAX_DAYS, description="Omitted: never expires.")


class TokenInfo(BaseModel):
    name: str
    role: Role
    created_by: str | None = Field(description="The user who made it; null when made from the command line.")
    created_at: str
    expires_at: str | None
    last_used_at: str | None = Field(description="Updated at most once a minute.")
    expired: bool


class CreatedToken(TokenInfo):
    token: str = Field(description="The secret, shown this once (only its sha256 is stored). Send it as Bearer.")
    token_type: Literal["Bearer"]


class TokenList(BaseModel):
    tokens: list[TokenInfo]

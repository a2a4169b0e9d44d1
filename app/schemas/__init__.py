"""Request and response schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def one_of(words: Iterable[str]) -> Any:
    """`Literal[...]` of a vocabulary of app/domain/states.py, so that validation and the OpenAPI document list its
    words without writing them again (mypy cannot read a computed Literal: it sees `str` where these are used)."""
    return Literal[tuple(str(word) for word in words)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    success: Literal[False]
    error: ErrorDetail


class Success(BaseModel):
    success: bool


# --- auth -------------------------------------------------------------------------------------------


class LoginBody(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginResult(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    role: str


class RefreshResult(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class Me(BaseModel):
    username: str
    role: str


# --- health -----------------------------------------------------------------------------------------


class HealthStatus(BaseModel):
    status: str

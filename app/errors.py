"""The one JSON error shape for every failure: domain, HTTP, JWT, validation, Redis down."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from app.domain.errors import Conflict, DomainError, InvalidInput, NotFound

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error raised by the web layer, already carrying its status and code."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    response = jsonify({"success": False, "error": error})
    response.status_code = status
    return response


def validation_failed(error: Any) -> ApiError:
    """A pydantic ValidationError as a 400 with one message per field (dotted paths)."""
    details: dict[str, str] = {}
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ())) or "body"
        message = item.get("msg", "invalid")
        if item.get("type") == "extra_forbidden":
            message = "unknown field"
        details.setdefault(field, message)
    return ApiError(400, "validation_error", "The request is not valid", details)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

_DOMAIN_STATUS = [(NotFound, 404), (Conflict, 409), (InvalidInput, 400)]


def _handle_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = exc.description or exc.name
    if status == 404:
        message = f"No route for {request.method} {request.path}"
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.path}"
    elif status == 413:
        message = "The request body is larger than 64 KiB"
    elif status == 429:
        message = "Too many attempts; try again later"
    response = error_response(status, _HTTP_CODES.get(status, "http_error"), message)
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    if status == 429:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
    return response


def _handle_domain(exc: DomainError) -> Response:
    status = next((code for cls, code in _DOMAIN_STATUS if isinstance(exc, cls)), 400)
    return error_response(status, exc.code, exc.message, exc.details)


def _handle_redis(exc: redis.RedisError) -> Response:
    log.warning("Redis unavailable: %s", exc)
    return error_response(503, "redis_unavailable", "Redis is not reachable; try again shortly")


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("Unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "An unexpected error occurred")


def check_request_body() -> Response | None:
    """Before every request: size limit, JSON only, parseable JSON. Nothing reaches a view otherwise."""
    if request.content_length is not None and request.content_length > 64 * 1024:
        return error_response(413, "payload_too_large", "The request body is larger than 64 KiB")
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    data = request.get_data(cache=True)
    if not data:
        return None
    if not request.is_json:
        return error_response(415, "unsupported_media_type", "The request body must be application/json")
    body = request.get_json(silent=True)
    if body is None:
        return error_response(400, "invalid_json", "The request body is not valid JSON")
    if not isinstance(body, dict):  # every body of this API is an object
        return error_response(400, "validation_error", "The request body must be a JSON object", {"body": "object"})
    return None


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, lambda e: error_response(e.status, e.code, e.message, e.details))
    app.register_error_handler(DomainError, _handle_domain)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(redis.ConnectionError, _handle_redis)
    app.register_error_handler(redis.TimeoutError, _handle_redis)
    app.register_error_handler(Exception, _handle_unexpected)
    app.before_request(check_request_body)

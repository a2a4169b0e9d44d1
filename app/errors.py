"""The one JSON error shape for every failure: domain, HTTP, JWT, validation, Redis down."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from app.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from app.domain.strict_json import MAX_JSON_DEPTH, JSONTooDeep, loads_checked

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
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "rate_limited",
    431: "headers_too_large",
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
    response = error_response(status, _HTTP_CODES.get(status, "http_error"), message)
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return response


def domain_status(exc: DomainError) -> int:
    """The HTTP status of a domain refusal (the command line's audit entries use it too)."""
    return next((code for cls, code in _DOMAIN_STATUS if isinstance(exc, cls)), 400)


def _handle_domain(exc: DomainError) -> Response:
    return error_response(domain_status(exc), exc.code, exc.message, exc.details)


def _handle_redis(exc: redis.RedisError) -> Response:
    """Redis down, slow, still loading its data, or a replica refusing writes (after a failover): all pass."""
    log.warning("Redis unavailable: %s", exc)
    if isinstance(exc, redis.BusyLoadingError) or _script_error(exc, "LOADING"):
        message = "Redis is loading its data; try again shortly"
    elif isinstance(exc, redis.ReadOnlyError) or _script_error(exc, "READONLY"):
        message = "Redis is read-only (a replica); try again shortly"
    else:
        message = "Redis is not reachable; try again shortly"
    return error_response(503, "redis_unavailable", message)


def _script_error(exc: redis.RedisError, code: str) -> bool:
    """A script refused for the same reason: Redis reports it as `Error running script ... -READONLY ...`."""
    return isinstance(exc, redis.ResponseError) and f"-{code} " in str(exc)


def _handle_response_error(exc: redis.ResponseError) -> Response:
    if _script_error(exc, "READONLY") or _script_error(exc, "LOADING"):
        return _handle_redis(exc)
    return _handle_unexpected(exc)


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("Unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "An unexpected error occurred")


MAX_BODY_BYTES = 64 * 1024
MAX_REQUEST_LINE_BYTES = 4 * 1024
MAX_HEADER_FIELD_BYTES = 8 * 1024


def _request_line_length(environ: dict[str, Any]) -> int:
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target is None:
        query = environ.get("QUERY_STRING", "")
        target = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
    return len(environ.get("REQUEST_METHOD", "")) + len(target) + len(environ.get("SERVER_PROTOCOL", "")) + 2


def _longest_header_field(environ: dict[str, Any]) -> int:
    """The longest `Name: value` line (the server's own limits are set above ours, so we answer first)."""
    return max(
        (
            len(key) - (5 if key.startswith("HTTP_") else 0) + 2 + len(str(value))
            for key, value in environ.items()
            if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")
        ),
        default=0,
    )


def check_request_size() -> Response | None:
    """Before every request: over-long request lines and header fields get the error shape (414/431)."""
    environ = request.environ
    if _request_line_length(environ) > MAX_REQUEST_LINE_BYTES:
        return error_response(414, "uri_too_long", "The request line is longer than 4 KiB")
    if _longest_header_field(environ) > MAX_HEADER_FIELD_BYTES:
        return error_response(431, "headers_too_large", "A request header is longer than 8 KiB")
    return None


def _read_body() -> bytes | None:
    """The body, or None when it is over the limit. A streamed (chunked) body has no Content-Length: Werkzeug
    stops reading it at the limit, so one more byte from the server's stream tells a cut body from a whole one."""
    data = request.get_data(cache=True)
    if len(data) > MAX_BODY_BYTES:
        return None
    cut = request.content_length is None and len(data) == MAX_BODY_BYTES
    if cut and request.environ["wsgi.input"].read(1):
        return None
    return data


def _json_refusal(data: bytes) -> Response:
    """Why a body that `get_json` refused is refused (the error path re-reads it to say so)."""
    try:
        loads_checked(data)
    except JSONTooDeep:
        return error_response(400, "invalid_json", f"The request body is nested deeper than {MAX_JSON_DEPTH} levels")
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "invalid_json", "The request body is not valid JSON (NaN and Infinity included)")
    return _not_an_object()


def _not_an_object() -> Response:
    return error_response(400, "validation_error", "The request body must be a JSON object", {"body": "object"})


def check_request_body() -> Response | None:
    """Before every request: size limit, JSON only, parseable JSON. Nothing reaches a view otherwise."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return error_response(413, "payload_too_large", "The request body is larger than 64 KiB")
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    data = _read_body()
    if data is None:
        return error_response(413, "payload_too_large", "The request body is larger than 64 KiB")
    if not data:
        return None
    if not request.is_json:
        view = current_app.view_functions.get(request.endpoint or "")
        if request.mimetype == "application/x-www-form-urlencoded" and getattr(view, "accepts_form", False):
            return None  # a form its view reads itself: the login page's, which works without script
        return error_response(415, "unsupported_media_type", "The request body must be application/json")
    body = request.get_json(silent=True)  # app.json.loads: depth and NaN checked; cached for the view
    if body is None:
        return _json_refusal(data)
    if not isinstance(body, dict):  # every body of this API is an object
        return _not_an_object()
    return None


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, lambda e: error_response(e.status, e.code, e.message, e.details))
    app.register_error_handler(DomainError, _handle_domain)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(redis.ConnectionError, _handle_redis)
    app.register_error_handler(redis.TimeoutError, _handle_redis)
    app.register_error_handler(redis.BusyLoadingError, _handle_redis)
    app.register_error_handler(redis.ReadOnlyError, _handle_redis)
    app.register_error_handler(redis.ResponseError, _handle_response_error)
    app.register_error_handler(Exception, _handle_unexpected)
    app.before_request(check_request_size)
    app.before_request(check_request_body)

"""Roles, the one role_required() decorator, token issuing and revocation, login throttling and JWT errors."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    decode_token,
    get_jwt,
    get_jwt_identity,
    set_access_cookies,
    set_refresh_cookies,
    verify_jwt_in_request,
)
from redis import Redis

from app.domain import keys, tokens, users
from app.domain.users import Role, User
from app.errors import ApiError, error_response
from app.extensions import get_redis, jwt

F = TypeVar("F", bound=Callable[..., Any])

BAD_CREDENTIALS = "Invalid username or password"


def role_required(minimum: Role) -> Callable[[F], F]:
    """Require a valid access token (header or cookie) whose user currently holds `minimum` or above."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticate()
            if not current_role().includes(minimum):
                raise ApiError(403, "forbidden", f"This action needs the {minimum.value} role or above")
            return view(*args, **kwargs)

        wrapper.minimum_role = minimum  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def read_with_auth(read: Callable[[Any], Callable[[list[Any]], Any]]) -> Callable[[F], F]:
    """Join a read-only view's Redis read to the auth lookup's round trip: `read(pipeline)` queues its commands and
    returns the function that builds the view's data from their results (`joined_read()` in the view). The read
    runs once the token's signature is verified, before its revocation and role are known, and is discarded when
    they refuse the request: for GET views only."""

    def decorator(view: F) -> F:
        view.read_with_auth = read  # type: ignore[attr-defined]
        return view

    return decorator


def joined_read() -> Any | None:
    """The data of the view's read joined to the auth lookup (None when the lookup did not run it, e.g. an API
    token: the view reads on its own then)."""
    return g.pop("joined_read", None)


def authenticate() -> None:
    """The request's credentials: an API token (`Authorization: Bearer rqm_…`), else a JWT (header or cookie)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and tokens.looks_like_token(value.strip()):
        _verify_api_token(value.strip())
    else:
        verify_jwt_in_request()


def _verify_api_token(secret: str) -> None:
    """One round trip (throttle, token, creator's role, last use). On success the request looks like one with an
    access token: get_jwt() gives claims whose `sub` is `token:<name>`, so every view works unchanged; its `exp`
    is at most an access token's lifetime away, so a live stream opened with it re-authenticates as often."""
    allowed, window = parse_rate(current_app.config["LOGIN_LIMIT_PER_ADDRESS"])
    failures_key = keys.token_failures(request.remote_addr or "unknown")
    now = time.time()
    check = tokens.verify_token(get_redis(), secret, failures_key, allowed, window, now)
    if check.outcome == "throttled":
        raise LoginThrottled(check.retry_after, "attempts with an API token")
    if check.outcome == "expired":
        raise ApiError(401, "token_expired", "The token has expired")
    if check.token is None or check.role is None:
        raise ApiError(401, "invalid_token", "The token is not valid")
    expires = now + access_lifetime()
    if check.token.expires_at is not None:
        expires = min(expires, check.token.expires_at)
    g._jwt_extended_jwt = {
        "sub": f"token:{check.token.name}",
        "role": check.role.value,
        "type": "access",
        "jti": f"api-token:{check.token.name}",
        "iat": int(now),
        "exp": int(expires),
        "api_token": check.token.name,
        "creator": check.token.creator,
        "creator_uid": check.token.creator_uid,
    }
    g._jwt_extended_jwt_header = {}
    g._jwt_extended_jwt_user = {"loaded_user": None}
    g._jwt_extended_jwt_location = "headers"
    g.current_user_role = check.role.value


def current_role() -> Role:
    """The role stored for the user now (a role change or deletion takes effect at once), else the claim's."""
    return Role(g.get("current_user_role") or get_jwt()["role"])


# --- Tokens: every token of one login carries the login's session id ("sid"), so logout ends them all ----------


def access_lifetime() -> int:
    return int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())


def _access_token(username: str, role: str, refresh_claims: dict[str, Any]) -> str:
    # rexp: how long the session can live, so that logout keeps its marker exactly that long.
    claims = {"role": role, "rexp": refresh_claims["exp"]}
    for name in ("sid", "uid"):  # every refresh token of a login has a sid; a uid unless its user predates uids
        if refresh_claims.get(name):
            claims[name] = refresh_claims[name]
    return create_access_token(identity=username, additional_claims=claims)


def issue_tokens(user: User) -> dict[str, Any]:
    """A new session: the login response's access and refresh tokens, bound to this user's uid (a user created
    again under the same name has another)."""
    session = {"role": user.role.value, "sid": uuid.uuid4().hex}
    if user.uid:
        session["uid"] = user.uid
    refresh_token = create_refresh_token(identity=user.username, additional_claims=session)
    return {
        "access_token": _access_token(user.username, user.role.value, decode_token(refresh_token)),
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": access_lifetime(),
        "role": user.role.value,
    }


def renew_access_token() -> str:
    """An access token of the same session, for the refresh token verified in this request."""
    return _access_token(get_jwt_identity(), current_role().value, get_jwt())


def set_session_cookies(response: Response, tokens: dict[str, Any]) -> Response:
    """The browser's session: both tokens in HttpOnly cookies, plus the readable CSRF cookies."""
    set_access_cookies(response, tokens["access_token"])
    set_refresh_cookies(response, tokens["refresh_token"])
    return response


def revoke_token(claims: dict[str, Any]) -> None:
    """End the token's session (every token of its login) until its refresh token would have expired anyway."""
    connection = get_redis()
    if claims.get("api_token"):  # logout with an API token revokes that token
        tokens.revoke_token(connection, claims["api_token"])
        return
    now = int(time.time())
    lifetime = max(1, int(claims.get("rexp", claims["exp"])) - now)
    if claims.get("sid"):
        connection.set(keys.revoked_session(claims["sid"]), 1, ex=lifetime)
    else:  # a token made outside a login (tests, scripts): only itself
        connection.set(keys.revoked_token(claims["jti"]), 1, ex=lifetime)


def _queue_revocation_check(pipe: Any, claims: dict[str, Any]) -> None:
    """Queue the two commands whose results `_revoked` judges: the revocation markers (token, session) and the
    user's role and uid."""
    markers = [keys.revoked_token(claims["jti"])]
    if claims.get("sid"):
        markers.append(keys.revoked_session(claims["sid"]))
    pipe.exists(*markers)
    pipe.hmget(keys.user(claims["sub"]), ["role", "uid"])


def _revoked(claims: dict[str, Any], markers: int, role: bytes | None, uid: bytes | None) -> bool:
    return bool(markers) or role is None or (uid or b"").decode() != claims.get("uid", "")


def still_authorized(connection: Redis, claims: dict[str, Any]) -> bool:
    """Are the claims of a request authenticated earlier still good (one round trip, no request context: a live
    stream re-checks its token with this)? A JWT: the blocklist loader's check. An API token: it still exists and
    its creator (if any) is the same user still."""
    with connection.pipeline(transaction=False) as pipe:
        if claims.get("api_token"):
            pipe.hexists(keys.API_TOKENS, claims["api_token"])
            if claims.get("creator"):
                pipe.hmget(keys.user(claims["creator"]), ["role", "uid"])
            exists, *creator = pipe.execute()
            if not exists:
                return False
            if creator:
                role, uid = creator[0]
                return role is not None and (uid or b"").decode() == (claims.get("creator_uid") or "")
            return True
        _queue_revocation_check(pipe, claims)
        markers, (role, uid) = pipe.execute()
    return not _revoked(claims, markers, role, uid)


@jwt.token_in_blocklist_loader
def _token_revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
    """One round trip: is the token or its session revoked, and does its user still exist (with which role)? A
    user deleted and created again has another uid: the old user's tokens are revoked. A token without a uid only
    matches a user without one (both made before uids existed)."""
    view = current_app.view_functions.get(request.endpoint or "")
    read = getattr(view, "read_with_auth", None) if request.method == "GET" else None
    with get_redis().pipeline(transaction=False) as pipe:
        _queue_revocation_check(pipe, jwt_payload)
        finish = read(pipe) if read is not None else None
        revoked, (role, uid), *read_results = pipe.execute()
    if _revoked(jwt_payload, revoked, role, uid):
        return True
    if finish is not None:
        g.joined_read = finish(read_results)
    g.current_user_role = role.decode()
    return False


# --- Login: failures are throttled per (username, address) and per address, never per username alone ----------


class LoginThrottled(ApiError):
    """429: too many failed logins; `retry_after` seconds until the window ends."""

    def __init__(self, retry_after: int, what: str = "sign-ins"):
        super().__init__(429, "rate_limited", f"Too many failed {what}; try again in {in_words(retry_after)}")
        self.retry_after = retry_after


_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*(second|minute|hour|day)s?\s*$")


def parse_rate(value: str) -> tuple[int, int]:
    """'5 per 5 minutes' -> (5 failures, 300 seconds)."""
    match = _RATE.match(value)
    if not match or int(match[1]) < 1:
        raise ValueError(f"not a rate like '5 per 5 minutes': {value!r}")
    return int(match[1]), int(match[2] or 1) * _UNITS[match[3]]


def in_words(seconds: int) -> str:
    """A wait as people say it: '40 seconds', '1 minute', '4 minutes' (rounded up)."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _login_limits(username: str) -> list[tuple[str, int, int]]:
    """(counter key, allowed failures, window seconds) of this request's address, with and without the name."""
    address = request.remote_addr or "unknown"
    per_user = parse_rate(current_app.config["LOGIN_LIMIT_PER_USER"])
    per_address = parse_rate(current_app.config["LOGIN_LIMIT_PER_ADDRESS"])
    return [(keys.login_failures(address, username), *per_user), (keys.login_failures(address), *per_address)]


# KEYS: the failure counters; ARGV: allowed failures and window seconds of each, in turn. Reserves one attempt on
# every counter at once (a window starts with its first attempt), or refuses when one of them is at its limit.
# Returns {1} (reserved) or {0, wait ms, first}: `first` is 1 for the first refusal of a window (a refused attempt
# bumps the full counter past its limit once, so later refusals of the window say 0).
_RESERVE = """
local wait, refused, first = 0, false, 0
for i, key in ipairs(KEYS) do
  local allowed, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= allowed then
    refused = true
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('EXPIRE', key, window)
      ttl = window * 1000
    end
    if ttl > wait then wait = ttl end
    if count == allowed then
      redis.call('INCR', key)
      first = 1
    end
  end
end
if refused then return {0, wait, first} end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
end
return {1}
"""

# KEYS: the counters of a reservation to give back (a right password is no failure); never below zero, never a
# counter whose window has ended meanwhile.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
"""


def _reserve_attempt(connection: Redis, limits: list[tuple[str, int, int]]) -> None:
    """Count this attempt as a failure before its password is checked, atomically with the limit check, so that
    parallel attempts cannot all pass the check first; 429 when a counter is at its limit."""
    args = [number for _, allowed, window in limits for number in (allowed, window)]
    reply = connection.eval(_RESERVE, len(limits), *(key for key, _, _ in limits), *args)
    if reply[0] != 1:
        g.login_throttle_first = bool(reply[2])  # audited: the first refusal of a window, not every one
        raise LoginThrottled(math.ceil(max(int(reply[1]), 1000) / 1000))


def _release_attempt(connection: Redis, limits: list[tuple[str, int, int]]) -> None:
    connection.eval(_RELEASE, len(limits), *(key for key, _, _ in limits))


def authenticate_login(username: str, password: str) -> User:
    """The user for a right password, unless this address failed too often (429); a wrong one counts (401). The
    attempt is reserved first and given back when the password is right, so a success never counts."""
    connection = get_redis()
    limits = _login_limits(username)
    _reserve_attempt(connection, limits)
    wrong = False
    try:
        user = users.authenticate(connection, username, password, current_app.config["PASSWORD_HASH_METHOD"])
        g.login_checked = True  # the attempt reached the password check: audited whatever its answer
        wrong = user is None
    finally:
        if not wrong:  # a right password, or no answer at all: not a failure
            _release_attempt(connection, limits)
    if user is None:
        raise ApiError(401, "invalid_credentials", BAD_CREDENTIALS)
    g.signed_in_user = user  # for the audit entry of this login
    return user


# --- Errors -----------------------------------------------------------------------------------------------------


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


def _throttled(error: LoginThrottled) -> Response:
    response = error_response(error.status, error.code, error.message)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def init_security(app: Flask) -> None:
    jwt.unauthorized_loader(_unauthorized)
    jwt.invalid_token_loader(_jwt_error(401, "invalid_token"))
    jwt.expired_token_loader(_jwt_error(401, "token_expired"))
    jwt.revoked_token_loader(_jwt_error(401, "token_revoked"))
    app.register_error_handler(LoginThrottled, _throttled)
    for setting in ("LOGIN_LIMIT_PER_USER", "LOGIN_LIMIT_PER_ADDRESS"):  # a wrong rate stops start-up, not a login
        parse_rate(app.config[setting])

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

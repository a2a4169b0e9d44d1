"""API tokens: long-lived, named, revocable bearer secrets for scripts and scrapers, stored as sha256 digests.

The secret is high-entropy random, so a fast hash is right (scrypt would only slow every request down). One
script checks a token in one round trip: the address's failure throttle, the token, its creator's current role,
and the last-used time (written at most once a TOUCH_INTERVAL_SECONDS). A token made by a user stores that user's
uid: once the user is deleted, a new user of the same name (another uid) does not bring the token back.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from redis import Redis

from app.domain import keys
from app.domain.errors import Conflict, InvalidInput, TokenNotFound
from app.domain.timeutil import iso_from_timestamp
from app.domain.users import Role

PREFIX = "rqm_"  # tells the auth path to look the bearer up here instead of decoding a JWT
_SECRET = re.compile(r"rqm_[A-Za-z0-9_-]{43}")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MIN_DAYS, MAX_DAYS = 1, 3650
TOUCH_INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class ApiToken:
    name: str
    role: Role
    creator: str  # the user who made it ("" when made from the command line)
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    creator_uid: str = ""  # the creator's uid ("" for the command line, or a creator made before uids existed)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The listing's view: never the secret (which is not stored) nor its digest."""
        now = time.time() if now is None else now
        return {
            "name": self.name,
            "role": self.role.value,
            "created_by": self.creator or None,
            "created_at": iso_from_timestamp(self.created_at),
            "expires_at": None if self.expires_at is None else iso_from_timestamp(self.expires_at),
            "last_used_at": None if self.last_used_at is None else iso_from_timestamp(self.last_used_at),
            "expired": self.expires_at is not None and self.expires_at <= now,
        }


@dataclass(frozen=True)
class TokenCheck:
    """What a presented secret is worth: `ok` with the token and the role it acts with, or why not."""

    outcome: Literal["ok", "invalid", "expired", "throttled"]
    token: ApiToken | None = None
    role: Role | None = None
    retry_after: int = 0


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """An API token rather than a JWT (a JWT starts with 'eyJ', never with the prefix)."""
    return value.startswith(PREFIX)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput("Invalid token name", {"name": "1-64 characters: letters, digits and _ . -"})
    return name


def create_token(
    connection: Redis,
    name: str,
    role: Role,
    creator: str,
    creator_role: Role | None,
    expires_in_days: int | None = None,
    now: float | None = None,
    creator_uid: str | None = None,
) -> tuple[str, ApiToken]:
    """A new token and its secret (returned once, never stored). `creator_role` None: the command line;
    `creator_uid`: the creator's uid, which the creator must still have for the token to work (None: the uid the
    creator has now; the web passes its session's, so a creator replaced meanwhile does not lend theirs)."""
    check_name(name)
    if creator_role is not None and not creator_role.includes(role):
        raise InvalidInput("A token cannot carry a role above its creator's", {"role": f"at most {creator_role}"})
    if expires_in_days is not None and not MIN_DAYS <= expires_in_days <= MAX_DAYS:
        raise InvalidInput("Invalid expiry", {"expires_in_days": f"between {MIN_DAYS} and {MAX_DAYS}"})
    now = time.time() if now is None else now
    secret = PREFIX + secrets.token_urlsafe(32)
    token_digest = digest(secret)
    expires_at = None if expires_in_days is None else now + expires_in_days * 86400
    _prune_gone(connection)
    if not connection.hsetnx(keys.API_TOKENS, name, token_digest):  # decides the race between two creators
        raise Conflict(f"API token '{name}' already exists")
    fields = {"name": name, "role": role.value, "creator": creator, "created_at": repr(now)}
    if expires_at is not None:
        fields["expires_at"] = repr(expires_at)
    if creator_uid is None:
        stored = connection.hget(keys.user(creator), "uid") if creator else None
        creator_uid = stored.decode() if stored else ""
    if creator_uid:
        fields["creator_uid"] = creator_uid
    with connection.pipeline() as pipe:
        pipe.hset(keys.api_token(token_digest), mapping=fields)  # type: ignore[arg-type]
        if expires_at is not None:
            pipe.expireat(keys.api_token(token_digest), int(expires_at) + keys.API_TOKEN_GRACE_SECONDS)
        pipe.execute()
    return secret, ApiToken(name, role, creator, now, expires_at, None, creator_uid)


def _prune_gone(connection: Redis) -> None:
    """Forget the names of tokens whose hash expired (past expiry + grace), so the names can be used again."""
    index = connection.hgetall(keys.API_TOKENS)
    if not index:
        return
    names = list(index)
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(keys.api_token(index[name].decode()))
        alive = pipe.execute()
    gone = [name for name, exists in zip(names, alive, strict=True) if not exists]
    if gone:
        connection.hdel(keys.API_TOKENS, *gone)


def _parse(fields: dict[bytes, bytes]) -> ApiToken:
    def number(field: bytes) -> float | None:
        value = fields.get(field)
        return float(value) if value else None

    return ApiToken(
        name=fields[b"name"].decode(),
        role=Role(fields[b"role"].decode()),
        creator=fields.get(b"creator", b"").decode(),
        created_at=number(b"created_at") or 0.0,
        expires_at=number(b"expires_at"),
        last_used_at=number(b"last_used_at"),
        creator_uid=fields.get(b"creator_uid", b"").decode(),
    )


def list_tokens(connection: Redis) -> list[ApiToken]:
    """Every token still stored (expired ones until their grace ends), by name. Two round trips."""
    index = connection.hgetall(keys.API_TOKENS)
    names = sorted(index)
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.api_token(index[name].decode()))
        rows = pipe.execute()
    return [_parse(row) for row in rows if row]


def revoke_token(connection: Redis, name: str) -> None:
    """Delete the token: its next use is refused (nothing is cached anywhere)."""
    check_name(name)
    token_digest = connection.hget(keys.API_TOKENS, name)
    if token_digest is None:
        raise TokenNotFound(name)
    with connection.pipeline() as pipe:
        pipe.delete(keys.api_token(token_digest.decode()))
        pipe.hdel(keys.API_TOKENS, name)
        pipe.execute()


# KEYS: the token's hash, the address's failure counter. ARGV: now, allowed failures, window seconds, touch
# interval, the users' key prefix. A failure (unknown, expired, creator gone) counts towards the throttle. The
# creator is gone when deleted, or replaced by another user of the same name (another uid; none on both sides: a
# token and a user made before uids existed, which match).
_VERIFY = """
local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
if failures >= tonumber(ARGV[2]) then
  return {'throttled', tostring(redis.call('PTTL', KEYS[2]))}
end
local t = redis.call('HMGET', KEYS[1], 'name', 'role', 'creator', 'created_at', 'expires_at', 'last_used_at',
  'creator_uid')
local now = tonumber(ARGV[1])
local outcome = false
local creator_role = ''
if not t[1] then
  outcome = 'invalid'
elseif t[5] and t[5] ~= '' and tonumber(t[5]) <= now then
  outcome = 'expired'
elseif t[3] and t[3] ~= '' then
  local creator = redis.call('HMGET', ARGV[5] .. t[3], 'role', 'uid')
  creator_role = creator[1]
  if not creator_role or (creator[2] or '') ~= (t[7] or '') then outcome = 'invalid' end
end
if outcome then
  redis.call('SET', KEYS[2], 0, 'EX', ARGV[3], 'NX')
  redis.call('INCR', KEYS[2])
  return {outcome}
end
if not t[6] or now - tonumber(t[6]) >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
end
return {'ok', t[1], t[2], t[3] or '', t[4] or '', t[5] or '', t[6] or '', creator_role, t[7] or ''}
"""


def verify_token(
    connection: Redis, secret: str, failures_key: str, allowed: int, window: int, now: float | None = None
) -> TokenCheck:
    """Check a presented secret in one round trip. The role is the token's, capped by its creator's current one
    (a demoted or deleted creator takes their tokens down with them)."""
    now = time.time() if now is None else now
    token_key = keys.api_token(digest(secret) if _SECRET.fullmatch(secret) else "malformed")
    script = connection.register_script(_VERIFY)
    reply = script(
        keys=[token_key, failures_key],
        args=[repr(now), allowed, window, TOUCH_INTERVAL_SECONDS, keys.user("")],
    )
    outcome = reply[0].decode()
    if outcome == "throttled":
        return TokenCheck("throttled", retry_after=max(1, -(-int(reply[1]) // 1000)))
    if outcome != "ok":
        return TokenCheck(outcome)  # type: ignore[arg-type]
    name, role, creator, created, expires, last_used, creator_role, creator_uid = (part.decode() for part in reply[1:])
    token = ApiToken(
        name,
        Role(role),
        creator,
        float(created or 0),
        float(expires) if expires else None,
        float(last_used or now),
        creator_uid,
    )
    acting = token.role
    if creator_role and not Role(creator_role).includes(acting):
        acting = Role(creator_role)
    return TokenCheck("ok", token, acting)

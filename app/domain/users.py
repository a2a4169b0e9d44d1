"""Users of the monitor: stored in Redis with hashed passwords, each with one role.

Each user gets a random `uid` when created; tokens carry it, so a user deleted and created again under the same
name does not inherit the old one's sessions or API tokens. Users created before uids existed have none: a token
without a uid matches such a user (and only such a user), the missing uid on both sides counting as equal.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache

from redis import Redis
from werkzeug.security import check_password_hash, generate_password_hash

from app.domain import keys
from app.domain.errors import Conflict, InvalidInput, UserNotFound
from app.domain.names import check_username

MIN_PASSWORD_LENGTH = 8


@cache
def _dummy_hash(hash_method: str | None) -> str:
    """Checked against when the user does not exist, so both failures cost the same time."""
    return _hash("not-a-real-password-used-for-timing", hash_method)


def _hash(password: str, hash_method: str | None) -> str:
    """werkzeug's hash with `hash_method` ("scrypt", "pbkdf2:sha256:600000", ...); None: werkzeug's default."""
    return generate_password_hash(password) if hash_method is None else generate_password_hash(password, hash_method)


class Role(StrEnum):
    MODERATOR = "moderator"
    ADMIN = "admin"
    SUPER_ADMIN = "super_admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    created_at: str
    uid: str = ""  # "" for a user created before uids existed


def create_user(connection: Redis, username: str, password: str, role: Role, hash_method: str | None = None) -> User:
    check_username(username)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("Password too short", {"password": f"at least {MIN_PASSWORD_LENGTH} characters"})
    created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    fields: dict[str | bytes, str] = {
        "password_hash": _hash(password, hash_method),
        "role": role.value,
        "created_at": created_at,
        "uid": secrets.token_hex(16),
    }
    # HSETNX on one field decides the race between two creators; the rest follows in one transaction.
    if not connection.hsetnx(keys.user(username), "role", role.value):
        raise Conflict(f"User '{username}' already exists")
    with connection.pipeline() as pipe:
        pipe.hset(keys.user(username), mapping=fields)
        pipe.sadd(keys.USERS, username)
        pipe.execute()
    return User(username, role, created_at, str(fields["uid"]))


def get_user(connection: Redis, username: str) -> User | None:
    role, created_at, uid = connection.hmget(keys.user(username), ["role", "created_at", "uid"])
    if role is None:
        return None
    return User(username, Role(role.decode()), (created_at or b"").decode(), (uid or b"").decode())


def authenticate(connection: Redis, username: str, password: str, hash_method: str | None = None) -> User | None:
    """The user when the password matches; None otherwise, in about the same time either way (`hash_method`:
    the one users are created with, for the check an unknown user costs)."""
    fields = ["role", "created_at", "password_hash", "uid"]
    role, created_at, password_hash, uid = connection.hmget(keys.user(username), fields)
    if password_hash is None or role is None:
        check_password_hash(_dummy_hash(hash_method), password)
        return None
    if not check_password_hash(password_hash.decode(), password):
        return None
    return User(username, Role(role.decode()), (created_at or b"").decode(), (uid or b"").decode())


def list_users(connection: Redis) -> list[User]:
    names = sorted(name.decode() for name in connection.smembers(keys.USERS))
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(keys.user(name), ["role", "created_at", "uid"])
        rows = pipe.execute()
    return [
        User(name, Role(role.decode()), (created or b"").decode(), (uid or b"").decode())
        for name, (role, created, uid) in zip(names, rows, strict=True)
        if role is not None
    ]


# Only an existing user's role changes: a delete between a check and the write must not leave a role-only hash.
_SET_ROLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'role', ARGV[1])
return 1
"""


def set_role(connection: Redis, username: str, role: Role) -> User:
    if not connection.eval(_SET_ROLE, 1, keys.user(username), role.value):
        raise UserNotFound(f"User '{username}' does not exist")
    user = get_user(connection, username)
    if user is None:  # deleted right after the change
        raise UserNotFound(f"User '{username}' does not exist")
    return user


def set_password(connection: Redis, username: str, password: str, hash_method: str | None = None) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("Password too short", {"password": f"at least {MIN_PASSWORD_LENGTH} characters"})
    if not connection.exists(keys.user(username)):
        raise UserNotFound(f"User '{username}' does not exist")
    connection.hset(keys.user(username), "password_hash", _hash(password, hash_method))


def delete_user(connection: Redis, username: str) -> None:
    with connection.pipeline() as pipe:
        pipe.delete(keys.user(username))
        pipe.srem(keys.USERS, username)
        deleted, _ = pipe.execute()
    if not deleted:
        raise UserNotFound(f"User '{username}' does not exist")

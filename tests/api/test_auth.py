"""POST /api/v1/auth/login, /refresh, /logout and GET /me: happy paths and every way a token can be wrong."""

from __future__ import annotations

import logging
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token

from app.domain import keys, users
from app.domain.users import Role
from tests.conftest import PASSWORD, login, make_app


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def snapshot(connection) -> dict:
    """Every key and its type: proves a failed request changed nothing (rate-limit counters aside)."""
    return {
        key: connection.type(key)
        for key in connection.keys("*")
        if not key.startswith(b"rqmon:ratelimit") and not key.startswith(b"LIMITS")
    }


def test_login_returns_tokens_and_role(client, make_user):
    make_user("alice", Role.ADMIN)
    body = login(client, "alice")
    assert body["token_type"] == "Bearer"
    assert body["role"] == "admin"
    assert body["expires_in"] == 900
    assert body["access_token"] != body["refresh_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.get_json() == {"username": "alice", "role": "admin"}


def test_unknown_user_and_bad_password_get_the_same_answer(client, make_user, connection):
    make_user("bob", Role.MODERATOR)
    before = snapshot(connection)
    unknown = client.post("/api/v1/auth/login", json={"username": "nobody", "password": PASSWORD})
    wrong = client.post("/api/v1/auth/login", json={"username": "bob", "password": "wrong password"})
    assert_error(unknown, 401, "invalid_credentials")
    assert_error(wrong, 401, "invalid_credentials")
    assert unknown.get_json() == wrong.get_json()
    assert snapshot(connection) == before


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"username": "bob"}}, 400, "validation_error"),
        ({"json": {"username": "bob", "password": "x", "admin": True}}, 400, "validation_error"),
        ({"json": {"username": "", "password": "x"}}, 400, "validation_error"),
        ({"json": {"username": 5, "password": "x"}}, 400, "validation_error"),
        ({"json": ["bob", "x"]}, 400, "validation_error"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
        (
            {"data": "username=bob&password=x", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        ({"data": "x" * (64 * 1024 + 1), "content_type": "application/json"}, 413, "payload_too_large"),
    ],
)
def test_malformed_login_bodies(client, connection, make_user, kwargs, status, code):
    make_user("bob", Role.MODERATOR)
    before = snapshot(connection)
    assert_error(client.post("/api/v1/auth/login", **kwargs), status, code)
    assert snapshot(connection) == before


def test_validation_errors_name_the_fields(client):
    body = assert_error(client.post("/api/v1/auth/login", json={"username": "", "extra": 1}), 400, "validation_error")
    assert set(body["error"]["details"]) == {"username", "password", "extra"}
    assert body["error"]["details"]["extra"] == "unknown field"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_token"),
        ("Bearer", "invalid_token"),
        ("Bearer not.a.jwt", "invalid_token"),
        ("Basic dXNlcjpwYXNz", "missing_token"),
    ],
)
def test_bad_authorization_headers(client, header, code):
    headers = {"Authorization": header} if header else {}
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401, code)


def test_forged_token_is_refused(client, make_user):
    make_user("eve", Role.MODERATOR)
    forged = pyjwt.encode(
        {
            "sub": "eve",
            "role": "super_admin",
            "type": "access",
            "jti": "x",
            "fresh": False,
            "iat": 1,
            "nbf": 1,
            "exp": 4102444800,
        },
        "some-other-secret-key-of-sufficient-length",
        algorithm="HS256",
    )
    assert_error(client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}), 401, "invalid_token")


def test_expired_token_is_refused(app, client, make_user):
    make_user("old", Role.ADMIN)
    with app.app_context():
        token = create_access_token("old", additional_claims={"role": "admin"}, expires_delta=timedelta(seconds=-5))
    assert_error(client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}), 401, "token_expired")


def test_refresh_token_is_not_an_access_token(client, make_user):
    make_user("carol", Role.ADMIN)
    tokens = login(client, "carol")
    as_access = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert_error(as_access, 401, "invalid_token")
    as_refresh = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert_error(as_refresh, 401, "invalid_token")


def test_refresh_issues_a_working_access_token(client, make_user):
    make_user("dave", Role.MODERATOR)
    tokens = login(client, "dave")
    response = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.get_json()["username"] == "dave"


def test_logout_revokes_the_access_and_refresh_tokens_at_once(client, make_user, connection):
    make_user("erin", Role.MODERATOR)
    tokens = login(client, "erin")
    access = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.post("/api/v1/auth/logout", headers=access).get_json() == {"success": True}
    assert_error(client.get("/api/v1/auth/me", headers=access), 401, "token_revoked")
    refresh = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert_error(refresh, 401, "token_revoked")
    revoked = connection.keys(f"{keys.PREFIX}:revoked:*")
    assert len(revoked) == 2 and all(0 < connection.ttl(key) <= 7 * 86400 for key in revoked)


def test_role_change_and_deletion_take_effect_at_once(client, make_user, connection):
    make_user("frank", Role.ADMIN)
    headers = {"Authorization": f"Bearer {login(client, 'frank')['access_token']}"}
    users.set_role(connection, "frank", Role.MODERATOR)
    assert client.get("/api/v1/auth/me", headers=headers).get_json()["role"] == "moderator"
    users.delete_user(connection, "frank")
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "token_revoked")


def test_repeated_failures_for_one_username_are_throttled(client, make_user, connection):
    make_user("gina", Role.ADMIN)
    user_hash = connection.hgetall(keys.user("gina"))
    for _ in range(5):
        assert client.post("/api/v1/auth/login", json={"username": "gina", "password": "nope-nope"}).status_code == 401
    blocked = client.post("/api/v1/auth/login", json={"username": "gina", "password": PASSWORD})
    assert_error(blocked, 429, "rate_limited")
    assert int(blocked.headers["Retry-After"]) > 0
    assert connection.hgetall(keys.user("gina")) == user_hash
    # Another username from the same address is not locked out by gina's failures.
    make_user("hank", Role.ADMIN)
    assert client.post("/api/v1/auth/login", json={"username": "hank", "password": PASSWORD}).status_code == 200


def test_repeated_failures_from_one_address_are_throttled(redis_url, tmp_path, make_user):
    app = make_app(redis_url, tmp_path, LOGIN_LIMIT_PER_ADDRESS="3 per minute")
    client = app.test_client()
    make_user("ivy", Role.ADMIN)
    for name in ("u1", "u2", "u3"):
        assert client.post("/api/v1/auth/login", json={"username": name, "password": "x"}).status_code == 401
    assert_error(client.post("/api/v1/auth/login", json={"username": "ivy", "password": PASSWORD}), 429, "rate_limited")
    other = app.test_client()
    other_address = {"REMOTE_ADDR": "10.9.8.7"}
    ok = other.post("/api/v1/auth/login", json={"username": "ivy", "password": PASSWORD}, environ_base=other_address)
    assert ok.status_code == 200


def test_successful_logins_are_not_throttled(client, make_user):
    make_user("jack", Role.MODERATOR)
    for _ in range(8):
        login(client, "jack")


def test_passwords_are_never_stored_or_logged_in_clear(client, connection, make_user, caplog):
    caplog.set_level(logging.DEBUG)
    make_user("kate", Role.ADMIN)
    login(client, "kate")
    client.post("/api/v1/auth/login", json={"username": "kate", "password": "a-wrong-secret"})
    stored = b"".join(k + v for k, v in connection.hgetall(keys.user("kate")).items())
    assert PASSWORD.encode() not in stored
    assert stored.count(b"scrypt:") + stored.count(b"pbkdf2:") == 1
    assert PASSWORD not in caplog.text and "a-wrong-secret" not in caplog.text


def test_cookie_sessions_need_the_csrf_token_for_state_changes(client, make_user):
    make_user("liam", Role.ADMIN)
    tokens = login(client, "liam")
    client.set_cookie("access_token_cookie", tokens["access_token"])
    assert client.get("/api/v1/auth/me").get_json()["username"] == "liam"  # GET: no CSRF needed
    assert_error(client.post("/api/v1/auth/logout"), 403, "csrf_failed")
    assert client.get("/api/v1/auth/me").status_code == 200  # the refused logout changed nothing
    from flask_jwt_extended import decode_token

    with client.application.app_context():
        csrf = decode_token(tokens["access_token"])["csrf"]
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-TOKEN": csrf}).status_code == 200


def test_users_roles_are_ordered():
    assert Role.SUPER_ADMIN.includes(Role.ADMIN) and Role.ADMIN.includes(Role.MODERATOR)
    assert not Role.MODERATOR.includes(Role.ADMIN) and not Role.ADMIN.includes(Role.SUPER_ADMIN)

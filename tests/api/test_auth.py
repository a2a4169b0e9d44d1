"""POST /api/v1/auth/login, /refresh, /logout and GET /me: happy paths and every way a token can be wrong."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token
from redis.connection import AbstractConnection

import config
from app.domain import keys, users
from app.domain.users import Role
from app.security import in_words, parse_rate
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
    """Every key and its type: proves a failed request changed nothing (rate-limit counters and the audit log of
    the attempt aside)."""
    return {
        key: connection.type(key)
        for key in connection.keys("*")
        if not key.startswith((b"rqmon:ratelimit", b"LIMITS", b"rqmon:audit"))
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
    # One marker for the session, kept as long as its refresh token could have lived (7 days), not 15 minutes.
    [marker] = connection.keys(f"{keys.PREFIX}:revoked*")
    assert 6 * 86400 < connection.ttl(marker) <= 7 * 86400


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_logout_ends_every_token_of_the_session_refreshed_ones_included(client, make_user):
    """Regression: an access token obtained by /refresh before the logout kept working for up to 15 minutes."""
    make_user("ezra", Role.MODERATOR)
    tokens = login(client, "ezra")
    other_session = login(client, "ezra")
    refreshed = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])).get_json()
    assert client.get("/api/v1/auth/me", headers=bearer(refreshed["access_token"])).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"])).status_code == 200
    assert_error(client.get("/api/v1/auth/me", headers=bearer(refreshed["access_token"])), 401, "token_revoked")
    assert_error(client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])), 401, "token_revoked")
    # Another login of the same user is another session: it goes on.
    assert client.get("/api/v1/auth/me", headers=bearer(other_session["access_token"])).status_code == 200
    renewed = client.post("/api/v1/auth/refresh", headers=bearer(other_session["refresh_token"]))
    assert renewed.status_code == 200


def test_logout_with_a_refreshed_token_ends_the_first_one_too(client, make_user):
    make_user("ezio", Role.MODERATOR)
    tokens = login(client, "ezio")
    refreshed = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])).get_json()
    assert client.post("/api/v1/auth/logout", headers=bearer(refreshed["access_token"])).status_code == 200
    assert_error(client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"])), 401, "token_revoked")
    assert_error(client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])), 401, "token_revoked")


def test_the_token_check_stays_one_round_trip(client, make_user, monkeypatch):
    """Revoked token, revoked session and the user's current role: one pipeline per authenticated request."""
    make_user("ezri", Role.MODERATOR)
    headers = bearer(login(client, "ezri")["access_token"])
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200  # warm: the connection is open
    round_trips = []
    send = AbstractConnection.send_packed_command

    def counting(connection, command, check_health=True):  # type: ignore[no-untyped-def]
        round_trips.append(command)
        return send(connection, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert len(round_trips) == 1


def test_role_change_and_deletion_take_effect_at_once(client, make_user, connection):
    make_user("frank", Role.ADMIN)
    headers = {"Authorization": f"Bearer {login(client, 'frank')['access_token']}"}
    users.set_role(connection, "frank", Role.MODERATOR)
    assert client.get("/api/v1/auth/me", headers=headers).get_json()["role"] == "moderator"
    users.delete_user(connection, "frank")
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "token_revoked")


def test_a_user_created_again_under_the_same_name_does_not_inherit_the_old_sessions(client, make_user, connection):
    """Regression: moderator bob's tokens, after bob was deleted and created again as super_admin, answered
    /me with super_admin and /refresh with 200."""
    make_user("bob", Role.MODERATOR)
    old = login(client, "bob")
    users.delete_user(connection, "bob")
    assert_error(client.get("/api/v1/auth/me", headers=bearer(old["access_token"])), 401, "token_revoked")
    make_user("bob", Role.SUPER_ADMIN)
    assert_error(client.get("/api/v1/auth/me", headers=bearer(old["access_token"])), 401, "token_revoked")
    assert_error(client.post("/api/v1/auth/refresh", headers=bearer(old["refresh_token"])), 401, "token_revoked")
    new = login(client, "bob")
    assert client.get("/api/v1/auth/me", headers=bearer(new["access_token"])).get_json()["role"] == "super_admin"
    renewed = client.post("/api/v1/auth/refresh", headers=bearer(new["refresh_token"])).get_json()["access_token"]
    assert client.get("/api/v1/auth/me", headers=bearer(renewed)).status_code == 200


def test_a_user_made_before_uids_keeps_its_sessions_and_only_it_matches_a_token_without_one(
    client, make_user, connection
):
    """Users created before uids existed have none, nor have their tokens: a missing uid on both sides matches."""
    make_user("olde", Role.ADMIN)
    connection.hdel(keys.user("olde"), "uid")
    tokens = login(client, "olde")
    assert client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"])).get_json()["role"] == "admin"
    assert client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])).status_code == 200
    users.delete_user(connection, "olde")
    make_user("olde", Role.ADMIN)  # a new user of the same name has a uid: the old tokens do not match it
    assert_error(client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"])), 401, "token_revoked")


def test_set_role_never_brings_a_deleted_user_back(connection, make_user):
    make_user("gone", Role.ADMIN)
    users.delete_user(connection, "gone")
    with pytest.raises(users.UserNotFound):
        users.set_role(connection, "gone", Role.SUPER_ADMIN)
    assert not connection.exists(keys.user("gone"))
    make_user("kept", Role.MODERATOR)
    uid = connection.hget(keys.user("kept"), "uid")
    assert users.set_role(connection, "kept", Role.ADMIN).role == Role.ADMIN
    assert connection.hget(keys.user("kept"), "uid") == uid


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


def test_parallel_wrong_passwords_cannot_pass_the_limit(app, connection):
    """Regression: the check, the password check and the count were separate steps, so 30 parallel wrong passwords
    against a limit of 5 got 30 401s and no 429. Each attempt is now reserved before its password is checked."""
    users.create_user(connection, "mob", PASSWORD, Role.ADMIN, "pbkdf2:sha256:200000")  # a check takes a while
    attempts = 20
    start = threading.Barrier(attempts)

    def attempt(_: int) -> int:
        client = app.test_client()
        start.wait()
        return client.post("/api/v1/auth/login", json={"username": "mob", "password": "wrong-guess"}).status_code

    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(attempt, range(attempts)))
    assert statuses.count(401) <= 5 and statuses.count(401) + statuses.count(429) == attempts, statuses
    # The right password is refused too until the window ends; from another address it works.
    assert post_login(app.test_client(), "mob", PASSWORD, "127.0.0.1").status_code == 429
    assert post_login(app.test_client(), "mob", PASSWORD, "198.51.100.8").status_code == 200


def test_a_right_password_gives_its_reservation_back(client, make_user, connection):
    """Four failures, then right passwords: none is throttled by its own reservation, and none counts."""
    make_user("judy", Role.MODERATOR)
    for _ in range(4):
        assert post_login(client, "judy", "wrong-guess", "203.0.113.20").status_code == 401
    for _ in range(3):
        assert post_login(client, "judy", PASSWORD, "203.0.113.20").status_code == 200
    assert connection.get(keys.login_failures("203.0.113.20", "judy")) == b"4"
    assert post_login(client, "judy", "wrong-guess", "203.0.113.20").status_code == 401
    assert post_login(client, "judy", PASSWORD, "203.0.113.20").status_code == 429


def test_successful_logins_are_not_throttled(client, make_user):
    make_user("jack", Role.MODERATOR)
    for _ in range(8):
        login(client, "jack")


def post_login(client, username: str, password: str, address: str):
    body = {"username": username, "password": password}
    return client.post("/api/v1/auth/login", json=body, environ_base={"REMOTE_ADDR": address})


def test_failures_from_one_address_never_lock_the_user_out_at_another(client, make_user):
    """Regression: five wrong passwords from anywhere locked the named user out everywhere for 5 minutes."""
    make_user("gale", Role.ADMIN)
    for _ in range(5):
        assert post_login(client, "gale", "guessing-wrong", "203.0.113.9").status_code == 401
    blocked = post_login(client, "gale", PASSWORD, "203.0.113.9")
    assert_error(blocked, 429, "rate_limited")
    assert post_login(client, "gale", PASSWORD, "198.51.100.7").status_code == 200


def test_the_429_says_how_long_to_wait_in_words_and_seconds(client, make_user):
    make_user("glen", Role.ADMIN)
    for _ in range(5):
        post_login(client, "glen", "guessing-wrong", "203.0.113.10")
    blocked = post_login(client, "glen", PASSWORD, "203.0.113.10")
    body = assert_error(blocked, 429, "rate_limited")
    wait = int(blocked.headers["Retry-After"])
    assert 240 < wait <= 300  # the window is 5 minutes from the first failure
    assert f"try again in {-(-wait // 60)} minutes" in body["error"]["message"]


def test_a_successful_login_carries_no_retry_after(client, make_user):
    """Regression: every login response, successful ones included, carried Retry-After and X-RateLimit-*."""
    make_user("gwen", Role.ADMIN)
    post_login(client, "gwen", "guessing-wrong", "203.0.113.11")
    ok = post_login(client, "gwen", PASSWORD, "203.0.113.11")
    assert ok.status_code == 200
    assert "Retry-After" not in ok.headers and not any(name.startswith("X-RateLimit") for name, _ in ok.headers.items())


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "1 second"), (40, "40 seconds"), (60, "1 minute"), (61, "2 minutes"), (240, "4 minutes"), (300, "5 minutes")],
)
def test_waits_in_words(seconds, words):
    assert in_words(seconds) == words


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("5 per 5 minutes", (5, 300)), ("3 per minute", (3, 60)), ("20/hour", (20, 3600)), ("1 per 2 days", (1, 172800))],
)
def test_login_limits_are_read_as_failures_per_window(rate, parsed):
    assert parse_rate(rate) == parsed


def test_a_wrong_login_limit_stops_start_up(redis_url, tmp_path):
    with pytest.raises(ValueError, match="5 per 5 minutes"):
        make_app(redis_url, tmp_path, LOGIN_LIMIT_PER_USER="five a minute")


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


@pytest.mark.parametrize(
    ("method", "prefix"), [(config.Config.PASSWORD_HASH_METHOD, b"scrypt:"), ("pbkdf2:sha256:1", b"pbkdf2:sha256:1$")]
)
def test_passwords_are_hashed_with_the_configured_method(redis_url, tmp_path, connection, method, prefix):
    """Strong (scrypt) by default; the tests configure a cheap one."""
    app = make_app(redis_url, tmp_path, PASSWORD_HASH_METHOD=method)
    command = ["users", "create", "hashed", "--role", "admin", "--password-stdin"]
    assert app.test_cli_runner().invoke(args=command, input=f"{PASSWORD}\n").exit_code == 0
    assert connection.hget(keys.user("hashed"), "password_hash").startswith(prefix)
    assert login(app.test_client(), "hashed")["role"] == "admin"

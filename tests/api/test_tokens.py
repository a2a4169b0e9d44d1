"""/api/v1/auth/tokens: created by a super_admin and shown once, listed without secrets, revoked at once; accepted
wherever an access token is (Bearer), with its role, in one Redis round trip; failures throttled per address."""

from __future__ import annotations

import time

import pytest
from redis.connection import AbstractConnection
from rq import Queue

from app.domain import keys, tokens, users
from app.domain.users import Role

URL = "/api/v1/auth/tokens"


def create(client, auth, name: str, role: str = "moderator", **extra) -> dict:
    response = client.post(URL, json={"name": name, "role": role, **extra}, headers=auth("super_admin"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_create_shows_the_secret_once_and_stores_only_its_digest(client, auth, connection):
    made = create(client, auth, "ci-bot", "admin", expires_in_days=30)
    secret = made["token"]
    assert secret.startswith("rqm_") and made["token_type"] == "Bearer"
    assert made["name"] == "ci-bot" and made["role"] == "admin" and made["created_by"] == "user-super_admin"
    assert made["expires_at"] and made["last_used_at"] is None and made["expired"] is False
    dump = b"".join(str(connection.hgetall(key)).encode() + key for key in connection.keys(f"{keys.PREFIX}:api-token*"))
    assert secret.encode() not in dump
    assert connection.exists(keys.api_token(tokens.digest(secret)))
    assert connection.ttl(keys.api_token(tokens.digest(secret))) > 30 * 86400
    listing = client.get(URL, headers=auth("super_admin"))
    assert listing.status_code == 200
    assert secret not in listing.get_data(as_text=True)
    assert tokens.digest(secret) not in listing.get_data(as_text=True)
    (row,) = listing.get_json()["tokens"]
    assert row["name"] == "ci-bot" and "token" not in row


def test_a_token_works_wherever_an_access_token_does_with_its_role(client, auth, connection):
    admin = create(client, auth, "admin-bot", "admin")["token"]
    moderator = create(client, auth, "viewer-bot", "moderator")["token"]
    Queue("tok-q", connection=connection).enqueue("workers.tasks.add", 1, 2)
    assert client.get("/api/v1/auth/me", headers=bearer(moderator)).get_json() == {
        "username": "token:viewer-bot",
        "role": "moderator",
    }
    assert client.get("/api/v1/admin/jobs/metrics", headers=bearer(moderator)).status_code == 200
    refused = client.patch("/api/v1/admin/jobs/queue/tok-q/pause", headers=bearer(moderator))
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/audit", headers=bearer(moderator)).status_code == 403
    assert client.patch("/api/v1/admin/jobs/queue/tok-q/pause", headers=bearer(admin)).status_code == 200
    assert client.get("/api/v1/audit", headers=bearer(admin)).status_code == 200
    assert client.get(URL, headers=bearer(admin)).status_code == 403


def test_revoked_expired_unknown_and_malformed_tokens_are_401(client, auth, connection):
    secret = create(client, auth, "short-lived")["token"]
    assert client.get("/api/v1/auth/me", headers=bearer(secret)).status_code == 200
    assert client.delete(f"{URL}/short-lived", headers=auth("super_admin")).status_code == 200
    revoked = client.get("/api/v1/auth/me", headers=bearer(secret))
    assert revoked.status_code == 401 and revoked.get_json()["error"]["code"] == "invalid_token"

    old = create(client, auth, "old", expires_in_days=1)["token"]
    connection.hset(keys.api_token(tokens.digest(old)), "expires_at", repr(time.time() - 1))
    expired = client.get("/api/v1/auth/me", headers=bearer(old))
    assert expired.status_code == 401 and expired.get_json()["error"]["code"] == "token_expired"
    listed = {row["name"]: row for row in client.get(URL, headers=auth("super_admin")).get_json()["tokens"]}
    assert listed["old"]["expired"] is True and "short-lived" not in listed

    for wrong in ("rqm_" + "A" * 43, "rqm_short", "rqm_" + "é" * 43):
        assert client.get("/api/v1/auth/me", headers=bearer(wrong)).status_code == 401
    assert client.delete(f"{URL}/short-lived", headers=auth("super_admin")).status_code == 404


def test_a_token_never_carries_a_role_above_its_makers(client, auth, connection, make_user):
    super_token = create(client, auth, "root-bot", "super_admin")["token"]
    # A super_admin token may make tokens; they answer to the same user.
    made = client.post(URL, json={"name": "child", "role": "admin"}, headers=bearer(super_token))
    assert made.status_code == 201 and made.get_json()["created_by"] == "user-super_admin"
    # The maker is demoted: their tokens act with the maker's role now, and can no longer manage tokens.
    connection.hset(keys.user("user-super_admin"), "role", "admin")
    assert client.get("/api/v1/auth/me", headers=bearer(super_token)).get_json()["role"] == "admin"
    assert client.post(URL, json={"name": "x", "role": "moderator"}, headers=bearer(super_token)).status_code == 403
    # The maker is deleted: their tokens are dead.
    connection.delete(keys.user("user-super_admin"))
    assert client.get("/api/v1/auth/me", headers=bearer(super_token)).status_code == 401
    # The domain refuses a role above the creator's whoever calls it.
    with pytest.raises(Exception, match="above its creator"):
        tokens.create_token(connection, "too-high", Role.SUPER_ADMIN, "someone", Role.ADMIN)
    assert connection.hget(keys.API_TOKENS, "too-high") is None


def test_a_users_tokens_die_with_the_user_even_when_the_name_is_used_again(client, auth, connection, make_user):
    """Regression: the creator was looked up by name only, so a new user of the same name revived the old tokens
    (made directly, and made by another of the creator's tokens)."""
    secret = create(client, auth, "orphan", "super_admin")["token"]
    child = client.post(URL, json={"name": "orphan-child", "role": "admin"}, headers=bearer(secret))
    child_secret = child.get_json()["token"]
    assert client.get("/api/v1/auth/me", headers=bearer(child_secret)).status_code == 200
    users.delete_user(connection, "user-super_admin")
    make_user("user-super_admin", Role.SUPER_ADMIN)
    for dead in (secret, child_secret):
        refused = client.get("/api/v1/auth/me", headers=bearer(dead))
        assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_token"


def test_a_token_made_by_the_domain_is_bound_to_its_creators_current_uid(client, connection, make_user):
    make_user("maker", Role.SUPER_ADMIN)
    secret, _ = tokens.create_token(connection, "domain-made", Role.ADMIN, "maker", Role.SUPER_ADMIN)
    assert client.get("/api/v1/auth/me", headers=bearer(secret)).get_json()["role"] == "admin"
    users.delete_user(connection, "maker")
    make_user("maker", Role.SUPER_ADMIN)
    assert client.get("/api/v1/auth/me", headers=bearer(secret)).status_code == 401


def test_a_token_and_a_creator_made_before_uids_still_match(client, auth, connection):
    secret = create(client, auth, "legacy", "admin")["token"]
    connection.hdel(keys.api_token(tokens.digest(secret)), "creator_uid")
    assert client.get("/api/v1/auth/me", headers=bearer(secret)).status_code == 401  # the creator has a uid
    connection.hdel(keys.user("user-super_admin"), "uid")
    assert client.get("/api/v1/auth/me", headers=bearer(secret)).get_json()["role"] == "admin"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "a b", "role": "admin"}, "name"),
        ({"name": "x" * 65, "role": "admin"}, "name"),
        ({"name": "", "role": "admin"}, "name"),
        ({"name": "ok", "role": "emperor"}, "role"),
        ({"name": "ok", "role": "admin", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ok", "role": "admin", "expires_in_days": 3651}, "expires_in_days"),
        ({"name": "ok", "role": "admin", "expires_in_days": "7"}, "expires_in_days"),
        ({"name": "ok", "role": "admin", "secret": "mine"}, "secret"),
        ({"role": "admin"}, "name"),
    ],
)
def test_bad_bodies_are_400(client, auth, connection, body, field):
    response = client.post(URL, json=body, headers=auth("super_admin"))
    assert response.status_code == 400, response.get_json()
    assert field in str(response.get_json()["error"].get("details"))
    assert not connection.hlen(keys.API_TOKENS)


def test_taken_name_is_409_and_only_super_admins_manage_tokens(client, auth):
    create(client, auth, "dup")
    again = client.post(URL, json={"name": "dup", "role": "admin"}, headers=auth("super_admin"))
    assert again.status_code == 409
    for role in ("moderator", "admin"):
        assert client.post(URL, json={"name": "n", "role": "moderator"}, headers=auth(role)).status_code == 403
        assert client.get(URL, headers=auth(role)).status_code == 403
        assert client.delete(f"{URL}/dup", headers=auth(role)).status_code == 403
    assert client.get(URL).status_code == 401
    assert client.delete(f"{URL}/a%20b", headers=auth("super_admin")).status_code == 400


def test_last_used_is_written_at_most_once_a_minute(client, auth, connection):
    secret = create(client, auth, "scraper")["token"]
    key = keys.api_token(tokens.digest(secret))
    client.get("/api/v1/auth/me", headers=bearer(secret))
    first = connection.hget(key, "last_used_at")
    assert first is not None
    client.get("/api/v1/auth/me", headers=bearer(secret))
    assert connection.hget(key, "last_used_at") == first
    connection.hset(key, "last_used_at", repr(float(first) - tokens.TOUCH_INTERVAL_SECONDS - 1))
    client.get("/api/v1/auth/me", headers=bearer(secret))
    assert float(connection.hget(key, "last_used_at")) >= float(first)
    row = client.get(URL, headers=auth("super_admin")).get_json()["tokens"][0]
    assert row["last_used_at"]


def test_authentication_is_one_round_trip(client, auth, monkeypatch):
    """Throttle, token, creator's role and last use: one script call per request authenticated by a token."""
    secret = create(client, auth, "counted", "admin")["token"]
    assert client.get("/api/v1/auth/me", headers=bearer(secret)).status_code == 200  # warm: script loaded
    round_trips = []
    send = AbstractConnection.send_packed_command

    def counting(connection, command, check_health=True):  # type: ignore[no-untyped-def]
        round_trips.append(command)
        return send(connection, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    assert client.get("/api/v1/auth/me", headers=bearer(secret)).status_code == 200
    assert len(round_trips) == 1


def test_failed_token_attempts_are_throttled_per_address(app, auth, connection):
    app.config["LOGIN_LIMIT_PER_ADDRESS"] = "3 per minute"
    client = app.test_client()
    good = create(client, auth, "good")["token"]
    wrong = bearer("rqm_" + "B" * 43)
    assert [client.get("/api/v1/auth/me", headers=wrong).status_code for _ in range(3)] == [401] * 3
    throttled = client.get("/api/v1/auth/me", headers=bearer(good))
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert "API token" in throttled.get_json()["error"]["message"]
    other = app.test_client()
    other_address = other.get("/api/v1/auth/me", headers=bearer(good), environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other_address.status_code == 200
    # Sign-ins from the throttled address are not affected by token failures.
    assert client.post("/api/v1/auth/login", json={"username": "user-admin", "password": "nope"}).status_code == 401


def test_logout_with_a_token_revokes_it(client, auth):
    secret = create(client, auth, "one-shot")["token"]
    assert client.post("/api/v1/auth/logout", headers=bearer(secret)).status_code == 200
    assert client.get("/api/v1/auth/me", headers=bearer(secret)).status_code == 401


def test_the_document_describes_the_token_routes_and_the_throttle(client, auth):
    document = client.get("/api/v1/openapi.json", headers=auth("moderator")).get_json()
    paths = document["paths"]
    assert {"post", "get"} <= set(paths[URL]) and "delete" in paths[f"{URL}/{{name}}"]
    assert {"201", "409"} <= set(paths[URL]["post"]["responses"])
    assert "token" in str(document["components"]["schemas"])
    assert {"200", "400", "403"} <= set(paths["/api/v1/audit"]["get"]["responses"])


def test_a_token_opens_a_live_stream(client, auth):
    """get_jwt() works for a token-authenticated request: the stream's end is set from the token's claims."""
    secret = create(client, auth, "streamer")["token"]
    response = client.get("/api/v1/admin/jobs/live", headers=bearer(secret), buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = (chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.response)
    assert next(chunks).startswith("retry:")
    response.close()

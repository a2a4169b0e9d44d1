"""GET /metrics costs ONE Redis round trip, the token check included (the counts join the auth lookup), and a
refused token still gets nothing."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt as pyjwt
from flask_jwt_extended import create_access_token
from rq import Queue

from app.domain import keys, users
from app.domain.metrics import get_metrics
from tests.api.test_auth import assert_error

API = "/api/v1/admin/jobs"


def test_metrics_in_one_round_trip_with_the_token_check(client, auth, connection, round_trips):
    """Regression: the auth lookup and the counts were two round trips."""
    for name in ("mc-a", "mc-b"):
        Queue(name, connection=connection).enqueue("workers.tasks.noop")
    headers = auth("moderator")
    client.get(f"{API}/metrics", headers=headers)  # warm: the pooled connection is open
    round_trips[0] = 0
    document = client.get(f"{API}/metrics", headers=headers).get_json()
    assert round_trips[0] == 1
    expected = get_metrics(connection)
    assert [(q["queueName"], q["waiting"]) for q in document["queues"]] == [("mc-a", 1), ("mc-b", 1)]
    assert document["totals"] == expected["totals"]


def test_a_revoked_or_deleted_user_gets_no_metrics(client, auth, connection, tokens):
    headers = auth("moderator")
    assert client.get(f"{API}/metrics", headers=headers).status_code == 200
    connection.delete(keys.user("user-moderator"))
    body = assert_error(client.get(f"{API}/metrics", headers=headers), 401, "token_revoked")
    assert "queues" not in body


def test_other_reads_do_not_join_the_auth_lookup(client, auth, round_trips):
    headers = auth("moderator")
    client.get("/api/v1/auth/me", headers=headers)
    round_trips[0] = 0
    assert client.get("/api/v1/auth/me", headers=headers).get_json()["role"] == "moderator"
    assert round_trips[0] == 1


def test_a_verified_token_is_parsed_once_and_still_expires(app, client, make_user, monkeypatch, connection):
    make_user("brief", "moderator")
    claims = {"role": "moderator", "uid": users.get_user(connection, "brief").uid}  # the user's tokens carry its uid
    with app.app_context():
        token = create_access_token("brief", additional_claims=claims, expires_delta=timedelta(seconds=2))
    headers = {"Authorization": f"Bearer {token}"}
    decodes = [0]
    decode = pyjwt.decode

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        decodes[0] += 1
        return decode(*args, **kwargs)

    monkeypatch.setattr(pyjwt, "decode", counting)
    assert client.get(f"{API}/metrics", headers=headers).status_code == 200
    first = decodes[0]
    assert client.get(f"{API}/metrics", headers=headers).status_code == 200
    assert first > 0 and decodes[0] == first  # the second request reused the verified claims
    time.sleep(2.2)
    assert_error(client.get(f"{API}/metrics", headers=headers), 401, "token_expired")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_error(client.get(f"{API}/metrics", headers={"Authorization": f"Bearer {forged}"}), 401, "invalid_token")

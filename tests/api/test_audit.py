"""The audit log: every state-changing request (refused ones, logins and failed logins included; not the refusals
of requests that identify nobody) is recorded before its response, without secrets; GET /api/v1/audit (admin) reads
it newest first with filters."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from flask import Blueprint, jsonify
from rq import Queue

from app.auditing import action_name
from app.domain import audit, keys, users
from app.domain.users import Role
from app.security import role_required
from tests.conftest import CHEAP_HASH_METHOD, PASSWORD, login, make_app

URL = "/api/v1/audit"


def entries(client, auth, **query) -> list[dict]:
    response = client.get(URL, query_string=query, headers=auth("admin"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["entries"]


def test_an_action_is_recorded_with_who_what_where_and_the_answer(client, auth, connection):
    Queue("audit-q", connection=connection).enqueue("workers.tasks.add", 1, 2)
    response = client.patch("/api/v1/admin/jobs/queue/audit-q/pause", headers=auth("admin"))
    assert response.status_code == 200
    (entry,) = entries(client, auth, action="queue.pause")
    assert entry["actor"] == "user-admin" and entry["role"] == "admin"
    assert entry["target"] == "audit-q" and entry["status"] == 200 and entry["address"] == "127.0.0.1"
    assert entry["at"].endswith("Z") and entry["id"]
    client.delete("/api/v1/admin/jobs/queue/audit-q/clear?type=failed", headers=auth("admin"))
    (clear,) = entries(client, auth, action="queue.clear")
    assert clear["params"] == {"type": "failed"}


def test_a_refused_change_is_recorded_with_its_status(client, auth, connection):
    Queue("audit-r", connection=connection).enqueue("workers.tasks.add", 1, 2)
    assert client.patch("/api/v1/admin/jobs/queue/audit-r/pause", headers=auth("moderator")).status_code == 403
    assert client.post("/api/v1/admin/jobs/retry/audit-r/nope", json={}, headers=auth("admin")).status_code == 404
    assert client.patch("/api/v1/admin/jobs/queue/audit-r/pause").status_code == 401  # nobody's: not recorded
    pauses = entries(client, auth, action="queue.pause")
    assert [(e["actor"], e["role"], e["status"]) for e in pauses] == [("user-moderator", "moderator", 403)]
    assert not connection.sismember(keys.PAUSED_QUEUES, "audit-r")
    (retry,) = entries(client, auth, action="job")
    assert retry["action"] == "job.retry" and retry["target"] == "audit-r/nope" and retry["status"] == 404


def test_logins_failed_logins_and_logouts_are_recorded_without_passwords(client, auth, connection, make_user):
    make_user("lena", Role.MODERATOR)
    assert client.post("/api/v1/auth/login", json={"username": "lena", "password": "wrong-one"}).status_code == 401
    good = client.post("/api/v1/auth/login", json={"username": "lena", "password": PASSWORD})
    assert good.status_code == 200
    client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {good.get_json()['access_token']}"})
    form = client.post("/admin/login", data={"username": "lena", "password": "wrong-two"})
    assert form.status_code == 401
    logins = entries(client, auth, actor="lena")
    assert [(e["action"], e["status"]) for e in logins] == [
        ("auth.login", 401),
        ("auth.logout", 200),
        ("auth.login", 200),
        ("auth.login", 401),
    ]
    assert logins[2]["role"] == "moderator" and logins[3]["role"] is None and logins[3]["target"] == "lena"
    raw = repr(connection.xrange(keys.AUDIT))
    for secret in (PASSWORD, "wrong-one", "wrong-two", good.get_json()["access_token"]):
        assert secret not in raw
    assert logins[3]["params"]["password"] == "[redacted]"


def test_token_actions_are_recorded_and_the_secret_never_is(client, auth, connection):
    made = client.post("/api/v1/auth/tokens", json={"name": "bot", "role": "admin"}, headers=auth("super_admin"))
    secret = made.get_json()["token"]
    headers = {"Authorization": f"Bearer {secret}"}
    Queue("audit-t", connection=connection).enqueue("workers.tasks.add", 1, 2)
    client.patch("/api/v1/admin/jobs/queue/audit-t/resume", headers=headers)
    client.delete("/api/v1/auth/tokens/bot", headers=auth("super_admin"))
    client.patch("/api/v1/admin/jobs/queue/audit-t/resume", headers=headers)
    found = entries(client, auth)
    summary = [(e["action"], e["actor"], e["status"]) for e in found]
    assert summary[:3] == [  # the revoked token's refused use identifies nobody: not recorded
        ("token.revoke", "user-super_admin", 200),
        ("queue.resume", "token:bot", 200),
        ("token.create", "user-super_admin", 201),
    ]
    assert found[2]["params"] == {"name": "bot", "role": "admin"} and found[1]["role"] == "admin"
    raw = repr(connection.xrange(keys.AUDIT))
    assert secret not in raw and secret[4:] not in raw


def test_routes_added_later_are_audited_without_their_authors_doing_anything(redis_url, tmp_path, connection):
    app = make_app(redis_url, tmp_path)
    later = Blueprint("schedules", __name__, url_prefix="/api/v1/periodic")

    @later.post("/<name>/pause")
    @role_required(Role.ADMIN)
    def pause_schedule(name: str):  # type: ignore[no-untyped-def]
        return jsonify({"success": True})

    app.register_blueprint(later)
    client = app.test_client()
    users.create_user(connection, "mo", PASSWORD, Role.MODERATOR, CHEAP_HASH_METHOD)
    headers = {"Authorization": f"Bearer {login(client, 'mo')['access_token']}"}
    assert client.post("/api/v1/periodic/nightly/pause", json={"reason": "x"}, headers=headers).status_code == 403
    (_, fields) = connection.xrange(keys.AUDIT)[-1]
    assert fields[b"action"] == b"schedule.pause" and fields[b"target"] == b"nightly" and fields[b"actor"] == b"mo"


@pytest.mark.parametrize(
    "endpoint, args, action",
    [
        ("job_actions.pause", {"queueName": "q"}, "queue.pause"),
        ("job_actions.clear", {"queueName": "q"}, "queue.clear"),
        ("job_actions.retry", {"queueName": "q", "jobId": "j"}, "job.retry"),
        ("job_actions.stop", {"queueName": "q", "jobId": "j"}, "job.stop"),
        ("worker_actions.control", {"name": "w"}, "worker.control"),
        ("workers.remove_worker", {"name": "w"}, "worker.remove"),
        ("periodic.create", {}, "schedule.create"),
        ("tokens.revoke", {"name": "t"}, "token.revoke"),
        ("alerts.test", {}, "alert.test"),
        ("pages.login_submit", {}, "auth.login"),
        ("pages.logout", {}, "auth.logout"),
    ],
)
def test_action_names_come_from_endpoints(endpoint, args, action):
    assert action_name(endpoint, args) == action


def test_listing_pages_and_filters(client, auth, connection):
    ids = []
    for n in range(5):
        ids.append(
            audit.record(
                connection,
                actor=f"a{n % 2}",
                role="admin",
                action="queue.pause",
                target=f"q{n}",
                params={},
                status=200,
                address="10.0.0.1",
            )
        )
        time.sleep(0.003)  # entries in distinct milliseconds, for the filter by time
    newest = entries(client, auth, limit=2)
    assert [e["target"] for e in newest] == ["q4", "q3"]
    page = client.get(URL, query_string={"limit": 2}, headers=auth("admin")).get_json()
    older = entries(client, auth, limit=2, before=page["next"])
    assert [e["target"] for e in older] == ["q2", "q1"]
    assert [e["target"] for e in entries(client, auth, actor="a1")] == ["q3", "q1"]
    third = datetime.fromtimestamp(int(ids[2].split("-")[0]) / 1000, UTC).isoformat()
    assert [e["target"] for e in entries(client, auth, before=third, action="queue")] == ["q1", "q0"]
    assert entries(client, auth, action="job") == []
    assert entries(client, auth, before=ids[0], action="queue.pause") == []


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "ten"},
        {"before": "yesterday"},
        {"before": "2024-01-01T00:00:00"},
        {"action": "Queue.Pause!"},
        {"actor": ""},
    ],
)
def test_bad_queries_are_400(client, auth, query):
    response = client.get(URL, query_string=query, headers=auth("admin"))
    assert response.status_code == 400, response.get_json()


def test_only_admins_read_the_log(client, auth):
    assert client.get(URL, headers=auth("moderator")).status_code == 403
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers=auth("super_admin")).status_code == 200


def test_the_log_is_capped_by_count_and_age(connection, monkeypatch):
    past_retention = int((time.time() - keys.AUDIT_RETENTION_DAYS * 86400 - 60) * 1000)
    connection.xadd(keys.AUDIT, {"actor": "old", "action": "queue.pause"}, id=f"{past_retention}-0")
    for _ in range(3):
        audit.record(
            connection, actor="new", role=None, action="queue.pause", target=None, params={}, status=200, address=None
        )
    assert [fields[b"actor"] for _, fields in connection.xrange(keys.AUDIT)] == [b"new"] * 3
    monkeypatch.setattr(keys, "AUDIT_CAP", 50)
    for _ in range(400):
        audit.record(
            connection, actor="many", role=None, action="queue.pause", target=None, params={}, status=200, address=None
        )
    # MAXLEN ~ trims whole stream nodes (100 entries each): at least the cap is kept, never far more.
    assert 50 <= connection.xlen(keys.AUDIT) <= 50 + 100


def test_params_are_redacted_and_bounded(connection):
    audit.record(
        connection,
        actor="x",
        role=None,
        action="user.create",
        target=None,
        params={"password": "p", "nested": {"api_key": "k", "refresh_token": "r"}, "ok": 1},
        status=201,
        address=None,
    )
    audit.record(
        connection,
        actor="x",
        role=None,
        action="user.create",
        target=None,
        params={"blob": "z" * 10_000},
        status=201,
        address=None,
    )
    first, second = audit.list_entries(connection, audit.Query(limit=2))["entries"][::-1]
    assert first["params"] == {
        "password": "[redacted]",
        "nested": {"api_key": "[redacted]", "refresh_token": "[redacted]"},
        "ok": 1,
    }
    assert second["params"] == {"truncated": True, "fields": ["blob"]}


def test_a_refused_body_of_any_shape_is_recorded(client, auth, connection):
    """An integer past 64 bits (which orjson cannot write) in a refused body: the 400 stands, the entry is written."""
    Queue("audit-big", connection=connection).enqueue("workers.tasks.add", 1, 2)
    response = client.post("/api/v1/admin/jobs/retry/audit-big/x", json={"priority": 2**70}, headers=auth("admin"))
    assert response.status_code == 400
    (entry,) = entries(client, auth, action="job.retry")
    assert entry["params"] == {"priority": 2**70} and entry["status"] == 400


def test_an_oversized_body_is_refused_before_anyone_is_known_and_not_recorded(client, auth, connection):
    """The body limit answers before authentication: the refusal names nobody, so it is not recorded (anyone
    could send it)."""
    Queue("audit-huge", connection=connection).enqueue("workers.tasks.add", 1, 2)
    auth("admin")
    before = connection.xlen(keys.AUDIT)
    body = '{"pad": "' + "x" * 70_000 + '"}'
    response = client.post(
        "/api/v1/admin/jobs/retry/audit-huge/x", data=body, content_type="application/json", headers=auth("admin")
    )
    assert response.status_code == 413
    assert connection.xlen(keys.AUDIT) == before


def test_nobodys_refused_requests_cannot_flush_the_log(client, connection, make_user):
    """Regression: every refused request was recorded, 401s without a token and 429s included, so anyone could
    push the real history out of the capped log. Failed sign-ins are still recorded."""
    make_user("nell", Role.ADMIN)
    for _ in range(50):
        assert client.post("/api/v1/auth/logout").status_code == 401
    assert (
        client.post("/api/v1/admin/jobs/queue/any/pause", data="{bad", content_type="application/json").status_code
        == 400
    )
    assert client.post("/api/v1/auth/login", json={"username": "nell"}).status_code == 400  # no password checked
    assert connection.xlen(keys.AUDIT) == 0
    assert client.post("/api/v1/auth/login", json={"username": "nell", "password": "wrong-one"}).status_code == 401
    ((_, fields),) = connection.xrange(keys.AUDIT)
    assert fields[b"action"] == b"auth.login" and fields[b"status"] == b"401" and fields[b"actor"] == b"nell"


def test_throttled_sign_ins_are_recorded_once_per_window(client, connection, make_user):
    make_user("tess", Role.ADMIN)
    for _ in range(5):
        assert client.post("/api/v1/auth/login", json={"username": "tess", "password": "wrong-one"}).status_code == 401
    for _ in range(20):
        refused = client.post("/api/v1/auth/login", json={"username": "tess", "password": "wrong-one"})
        assert refused.status_code == 429
    form = client.post("/admin/login", data={"username": "tess", "password": PASSWORD})
    assert form.status_code == 429
    statuses = [fields[b"status"] for _, fields in connection.xrange(keys.AUDIT)]
    assert statuses == [b"401"] * 5 + [b"429"]


@pytest.mark.parametrize(
    ("before", "status"),
    [
        ("0-0", 200),
        ("00-000", 200),
        ("1970-01-01T00:00:00Z", 200),
        ("1960-01-01T00:00:00Z", 200),
        ("18446744073709551615-18446744073709551615", 200),
        ("99999999999999999999-0", 400),
        ("1-18446744073709551616", 400),
    ],
)
def test_entry_ids_at_and_past_the_ends_of_the_stream(client, auth, connection, before, status):
    """Regression: ids the pattern allowed but Redis refuses (0-0 as an exclusive end, parts past 64 bits) were 500s.
    Nothing is older than 0-0 (an empty page); a part past 2**64-1 is bad input."""
    audit.record(
        connection, actor="x", role=None, action="queue.pause", target=None, params={}, status=200, address=None
    )
    response = client.get(URL, query_string={"before": before}, headers=auth("admin"))
    assert response.status_code == status, response.get_json()
    if status == 200:
        body = response.get_json()
        expected = 1 if before.startswith("18446") else 0
        assert len([e for e in body["entries"] if e["actor"] == "x"]) == expected and body["next"] is None
    else:
        assert response.get_json()["error"]["details"]["before"]

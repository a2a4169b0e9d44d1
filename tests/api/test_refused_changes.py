"""Every state-changing route, called with each kind of bad credential, answers 401/403 with the error shape and
changes nothing in Redis. The routes come from app.url_map (via test_route_roles), so new ones are covered."""

from __future__ import annotations

from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token, decode_token
from rq import Queue

from app.domain.users import Role
from tests.api.test_auth import assert_error
from tests.api.test_job_actions import failed_job
from tests.api.test_route_roles import GUARDED, SAMPLE_ARGUMENTS, SESSION_PATHS
from tests.conftest import login
from tests.helpers import every_value

CHANGING = [(endpoint, method, path) for endpoint, method, path in GUARDED if method != "GET"]
ACTIONS = [route for route in CHANGING if route[2] not in SESSION_PATHS]


def everything(connection) -> dict:
    """Every key with its serialized value (rate-limit counters aside)."""
    return every_value(connection, (b"rqmon:ratelimit", b"LIMITS", b"rqmon:audit"))  # the refusal is audited


@pytest.fixture
def bad_tokens(app, client, make_user, connection, redis_url) -> dict[str, tuple[str, str]]:
    """kind -> (Authorization value, expected error code); the sample queue and job exist, so a call that got
    through would change something."""
    failed_job(connection, redis_url, SAMPLE_ARGUMENTS["queueName"], "a@b.c", job_id=SAMPLE_ARGUMENTS["jobId"])
    Queue(SAMPLE_ARGUMENTS["queueName"], connection=connection).enqueue("workers.tasks.noop")
    make_user("root", Role.SUPER_ADMIN)
    revoked = login(client, "root")
    logout = client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {revoked['access_token']}"})
    assert logout.status_code == 200
    with app.app_context():
        expired = create_access_token("root", additional_claims={"role": "super_admin"}, expires_delta=timedelta(-1))
    claims = {"sub": "root", "role": "super_admin", "type": "access", "jti": "f", "nbf": 1, "exp": 4102444800}
    forged = pyjwt.encode(claims, "not-the-server-secret-but-long-enough-for-hs256", algorithm="HS256")
    return {
        "expired": (f"Bearer {expired}", "token_expired"),
        "forged": (f"Bearer {forged}", "invalid_token"),
        "revoked": (f"Bearer {revoked['access_token']}", "token_revoked"),
        "refresh as access": (f"Bearer {login(client, 'root')['refresh_token']}", "invalid_token"),
        "garbage": ("Bearer not.a.jwt", "invalid_token"),
    }


def test_the_table_has_the_job_actions():
    paths = {path for _, _, path in ACTIONS}
    assert any("/pause" in path for path in paths) and any("/clear" in path for path in paths)
    assert any("/retry/" in path for path in paths)


@pytest.mark.parametrize("kind", ["expired", "forged", "revoked", "refresh as access", "garbage"])
@pytest.mark.parametrize(("endpoint", "method", "path"), ACTIONS)
def test_bad_tokens_change_nothing(client, connection, bad_tokens, kind, endpoint, method, path):
    header, code = bad_tokens[kind]
    before = everything(connection)
    response = client.open(path, method=method, headers={"Authorization": header}, json={"priority": 1})
    assert_error(response, 401, code)
    assert everything(connection) == before


@pytest.mark.parametrize("csrf", [None, "wrong-csrf-value"])
@pytest.mark.parametrize(("endpoint", "method", "path"), CHANGING)
def test_cookie_requests_without_the_right_csrf_token_change_nothing(
    client, connection, bad_tokens, csrf, endpoint, method, path
):
    tokens = login(client, "root")
    client.set_cookie("access_token_cookie", tokens["access_token"])
    client.set_cookie("refresh_token_cookie", tokens["refresh_token"])
    with client.application.app_context():
        assert decode_token(tokens["access_token"])["csrf"] != csrf
    headers = {"X-CSRF-TOKEN": csrf} if csrf else {}
    before = everything(connection)
    response = client.open(path, method=method, headers=headers, json={"priority": 1})
    assert_error(response, 403, "csrf_failed")
    assert everything(connection) == before

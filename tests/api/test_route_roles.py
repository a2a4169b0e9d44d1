"""Walks app.url_map: every route but login, health and the login page needs a token, and every non-GET
route (but the session's own logout/refresh) needs at least admin. New routes are covered automatically."""

from __future__ import annotations

import pytest
from werkzeug.routing import Rule

from tests.conftest import login, make_app

PUBLIC_PATHS = {"/api/v1/auth/login", "/healthz", "/readyz", "/admin/login", "/favicon.ico"}
# Prometheus scrapes with an API token only and is refused in plain text (tests/api/test_prometheus.py).
SCRAPE_PATHS = {"/metrics"}
# Any signed-in user may end or renew their own session.
SESSION_PATHS = {"/api/v1/auth/logout", "/api/v1/auth/refresh", "/admin/logout"}
# Routes whose minimum role is above the default (moderator reads, admin changes), from API.md.
MINIMUM_ROLES = {
    "/api/v1/audit": "admin",
    "/api/v1/auth/tokens": "super_admin",
    "/api/v1/auth/tokens/table-worker": "super_admin",
}
ROLES = ["moderator", "admin", "super_admin"]
SAMPLE_ARGUMENTS = {
    "queueName": "table-queue",
    "jobId": "table-job",
    "name": "table-worker",
    "filename": "x.css",
}


def _routes() -> list[tuple[str, str, str]]:
    app = make_app("redis://127.0.0.1:1/0", __import__("pathlib").Path("/tmp"))
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, _build(rule)))
    return routes


def _build(rule: Rule) -> str:
    path = rule.rule
    for argument in rule.arguments:
        path = path.replace(f"<{argument}>", SAMPLE_ARGUMENTS.get(argument, "x"))
        for converter in ("string", "path", "int"):
            path = path.replace(f"<{converter}:{argument}>", SAMPLE_ARGUMENTS.get(argument, "1"))
    return path


ROUTES = _routes()
GUARDED = [r for r in ROUTES if r[2] not in PUBLIC_PATHS | SCRAPE_PATHS and r[0] != "static"]


def _call(client, method: str, path: str, headers: dict[str, str] | None = None):
    response = client.open(path, method=method, headers=headers or {}, json={} if method != "GET" else None)
    response.close()  # SSE streams are not consumed
    return response


def test_the_table_covers_the_job_api():
    assert len(GUARDED) >= 4
    assert {path for _, _, path in ROUTES} >= PUBLIC_PATHS - {"/admin/login"}


@pytest.mark.parametrize(("endpoint", "method", "path"), GUARDED)
def test_every_guarded_route_needs_a_token(client, endpoint, method, path):
    response = _call(client, method, path)
    if response.status_code in (301, 302, 303) and path.startswith("/admin"):
        assert "/admin/login" in response.headers["Location"]  # HTML pages send people to the login page
    else:
        assert response.status_code == 401, (endpoint, response.status_code)
        assert response.get_json()["success"] is False


@pytest.mark.parametrize(("endpoint", "method", "path"), GUARDED)
def test_roles_per_route(client, auth, endpoint, method, path):
    if path == "/api/v1/auth/refresh":  # takes a refresh token, not an access token
        refresh_token = login(client, "user-moderator")["refresh_token"]
        assert _call(client, method, path, {"Authorization": f"Bearer {refresh_token}"}).status_code == 200
        return
    if path in MINIMUM_ROLES:
        for role in ROLES:
            allowed = ROLES.index(role) >= ROLES.index(MINIMUM_ROLES[path])
            response = _call(client, method, path, auth(role))
            assert (response.status_code not in (401, 403)) is allowed, (endpoint, role, response.status_code)
        return
    as_moderator = _call(client, method, path, auth("moderator"))
    as_admin = _call(client, method, path, auth("admin"))
    if method == "GET" or path in SESSION_PATHS:
        assert as_moderator.status_code not in (401, 403), (endpoint, as_moderator.status_code)
    else:
        assert as_moderator.status_code == 403, (endpoint, as_moderator.status_code)
        assert as_moderator.get_json()["error"]["code"] == "forbidden"
        assert as_admin.status_code not in (401, 403), (endpoint, as_admin.status_code)


@pytest.mark.parametrize("path", sorted(SCRAPE_PATHS))
def test_scrape_routes_need_an_api_token_not_a_session(client, auth, path):
    assert {p for _, _, p in ROUTES} >= SCRAPE_PATHS
    for headers in ({}, auth("super_admin")):
        refused = _call(client, "GET", path, headers)
        assert refused.status_code == 401
        assert refused.content_type.startswith("text/plain")


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS - {"/admin/login"}))
def test_public_routes_need_no_token(client, path):
    method = "POST" if path.endswith("/login") else "GET"
    assert _call(client, method, path).status_code not in (401, 403)

"""The admin pages without a browser: cookie sessions, redirects, CSRF, renewal, security headers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token, create_refresh_token

import config
from app.domain import history, users
from app.domain.users import Role
from tests.api.test_auth import assert_error
from tests.conftest import PASSWORD, make_app

PAGES = ["/admin/", "/admin/alerts", "/admin/trends", "/admin/trends?period=30d"]


def sign_in(client, username: str):
    response = client.post("/admin/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return response


def cookie_value(client, name: str) -> str | None:
    cookie = client.get_cookie(name)
    return cookie.value if cookie else None


@pytest.mark.parametrize("path", [*PAGES, "/admin/queues/q", "/admin/queues/q/jobs/j"])
def test_pages_send_strangers_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_login_sets_httponly_session_cookies_and_readable_csrf_cookies(client, make_user):
    make_user("pat", Role.ADMIN)
    response = sign_in(client, "pat")
    cookies = {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}
    assert "HttpOnly" in cookies["access_token_cookie"] and "HttpOnly" in cookies["refresh_token_cookie"]
    assert "HttpOnly" not in cookies["csrf_access_token"]  # the pages' script reads it for the X-CSRF-TOKEN header
    assert response.get_json() == {"success": True, "role": "admin"}


def test_page_login_failures_are_throttled_with_the_api_login(client, make_user):
    make_user("quin", Role.ADMIN)
    for _ in range(3):
        assert client.post("/admin/login", json={"username": "quin", "password": "bad-password"}).status_code == 401
    for _ in range(2):
        assert (
            client.post("/api/v1/auth/login", json={"username": "quin", "password": "bad-password"}).status_code == 401
        )
    assert_error(client.post("/admin/login", json={"username": "quin", "password": PASSWORD}), 429, "rate_limited")


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_for_a_session_without_inline_script_or_style(client, make_user, connection, path):
    make_user("ray", Role.MODERATOR)
    history.record_attempt(connection, "p-q", "ok", 10, "j", "f")
    sign_in(client, "ray")
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert not re.search(r"\son[a-z]+=|\sstyle=", html)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


def test_expired_access_cookie_is_renewed_from_the_refresh_cookie(app, client, make_user, connection):
    make_user("sam", Role.MODERATOR)
    claims = {"role": "moderator", "uid": users.get_user(connection, "sam").uid}  # the user's tokens carry its uid
    with app.app_context():
        expired = create_access_token("sam", additional_claims=claims, expires_delta=timedelta(seconds=-1))
        refresh = create_refresh_token("sam", additional_claims=claims)
    client.set_cookie("access_token_cookie", expired)
    client.set_cookie("refresh_token_cookie", refresh)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert any(h.startswith("access_token_cookie=") for h in response.headers.getlist("Set-Cookie"))


def test_fully_expired_session_goes_back_to_login_with_a_message(app, client, make_user):
    make_user("tia", Role.MODERATOR)
    with app.app_context():
        expired = create_access_token(
            "tia", additional_claims={"role": "moderator"}, expires_delta=timedelta(seconds=-1)
        )
        refresh = create_refresh_token("tia", expires_delta=timedelta(seconds=-1))
    client.set_cookie("access_token_cookie", expired)
    client.set_cookie("refresh_token_cookie", refresh)
    response = client.get("/admin/alerts")
    assert response.status_code == 302 and "reason=expired" in response.headers["Location"]
    login_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your session has expired" in login_page


def test_state_changes_without_the_csrf_token_are_refused(client, make_user, connection):
    make_user("uma", Role.ADMIN)
    sign_in(client, "uma")
    connection.sadd("rqmon:queues", "p-csrf")
    assert_error(client.patch("/api/v1/admin/jobs/queue/p-csrf/pause"), 403, "csrf_failed")
    assert not connection.sismember("rqmon:paused", "p-csrf")
    assert_error(client.post("/admin/logout"), 403, "csrf_failed")
    csrf = {"X-CSRF-TOKEN": cookie_value(client, "csrf_access_token")}
    assert client.patch("/api/v1/admin/jobs/queue/p-csrf/pause", headers=csrf).get_json()["paused"] is True
    assert client.post("/admin/logout", headers=csrf).status_code == 200
    assert client.get("/admin/").status_code == 302  # signed out for good
    assert cookie_value(client, "access_token_cookie") is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/admin/alerts", "/admin/alerts"), ("//evil.example/x", "/admin/"), ("https://evil.example", "/admin/")],
)
def test_login_page_only_returns_to_this_app(client, target, expected):
    html = client.get("/admin/login", query_string={"next": target}).get_data(as_text=True)
    assert f'data-next="{expected}"' in html


def test_trend_charts_are_svg_without_scripts(client, make_user, connection):
    make_user("val", Role.MODERATOR)
    history.record_attempt(connection, "p-chart", "ok", 10, "j", "f")
    sign_in(client, "val")
    response = client.get("/admin/trends/chart.svg?queue=p-chart&period=7d&kind=time")
    assert response.mimetype == "image/svg+xml" and "<script" not in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    json = {"Accept": "application/json"}
    assert_error(client.get("/admin/trends/chart.svg?queue=p-chart&period=1y", headers=json), 400, "validation_error")
    assert_error(client.get("/admin/trends/chart.svg?period=7d", headers=json), 400, "validation_error")


@pytest.mark.parametrize(("period", "bucket"), [("24h", "hour"), ("7d", "6 hours"), ("30d", "day")])
def test_trend_charts_say_their_bucket(client, make_user, connection, period, bucket):
    """The chart's words come from the period's granularity (app.domain.history), not from the template."""
    make_user("vic", Role.MODERATOR)
    history.record_attempt(connection, "p-words", "ok", 10, "j", "f")
    sign_in(client, "vic")
    html = client.get(f"/admin/trends?period={period}").get_data(as_text=True)
    assert f"Completed and failed jobs of p-words per {bucket} over {period}" in html


def test_the_rules_tab_lists_the_rules_in_force_with_extra_rules(redis_url, tmp_path, make_user):
    per_queue = {"queue_backlog": {"emails": 500.0}}
    extra = config.ExtraRule("backlog_critical", "queue_backlog", "critical", 1000, 120, ("emails", "reports"))
    rules_file = config.RulesFile(per_queue, (extra,))
    app = make_app(redis_url, tmp_path, ALERT_RULES_FILE=rules_file, ALERT_WORKER_MEMORY=None)
    client = app.test_client()
    make_user("rita", Role.MODERATOR)
    sign_in(client, "rita")
    html = client.get("/admin/alerts").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-rule="([a-z_]+)" data-kind="[a-z_]+"[^>]*>(.*?)</tr>', html, re.S))
    assert len(rows) == 13
    text = {rule: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for rule, row in rows.items()}
    assert text["backlog_critical"].startswith("backlog_critical queue_backlog critical 1000 120 s emails, reports")
    assert text["queue_backlog"].startswith("queue_backlog queue_backlog warning 100 60 s every queue emails : 500")
    assert "worker_memory warning off" in text["worker_memory"]

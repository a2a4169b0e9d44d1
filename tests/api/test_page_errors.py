"""Errors under /admin/ are HTML pages with the navigation for a browser (JSON for the pages' own scripts and under
/api/); unknown periods and chart queues are errors, not a silent default or an empty chart; /favicon.ico."""

from __future__ import annotations

import pytest
from rq import Queue

from app.domain import history
from app.domain.users import Role
from tests.api.test_auth import assert_error
from tests.api.test_pages import sign_in

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def assert_html_error(response, status: int, *texts: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'nav aria-label="Main"' in html and 'href="/admin/trends"' in html  # the navigation
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    for text in texts:
        assert text in html, (text, html)
    return html


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/admin/queues/ghost", 404, "Queue &#39;ghost&#39; does not exist"),
        ("/admin/queues/e-q/jobs/no-such-job", 404, "Job &#39;no-such-job&#39; does not exist in queue &#39;e-q&#39;"),
        ("/admin/queues/bad%20name!", 400, "Bad request"),
        ("/admin/no-such-page", 404, "No route for GET /admin/no-such-page"),
        ("/admin/trends?period=1y", 400, "period"),
        ("/admin/trends/chart.svg?queue=ghost", 404, "Queue &#39;ghost&#39; does not exist"),
    ],
)
def test_errors_a_browser_navigates_to_are_html_pages(client, make_user, connection, path, status, text):
    make_user("eve", Role.MODERATOR)
    Queue("e-q", connection=connection).enqueue("workers.tasks.noop")
    sign_in(client, "eve")
    html = assert_html_error(client.get(path, headers=BROWSER), status, text)
    assert "eve" in html  # the signed-in user's navigation
    assert client.get(path, headers={"Accept": "application/json"}).is_json  # the pages' own fetches


def test_a_stranger_gets_the_html_404_with_a_sign_in_link(client):
    html = assert_html_error(client.get("/admin/nope", headers=BROWSER), 404, "Not found")
    assert 'href="/admin/login"' in html


def test_api_errors_stay_json(client, auth):
    assert_error(
        client.get("/api/v1/admin/jobs/queue/ghost/jobs", headers=BROWSER | auth("moderator")), 404, "queue_not_found"
    )
    assert_error(client.get("/api/v1/nope", headers=BROWSER), 404, "not_found")


def test_page_scripts_posting_json_get_json_errors(client, make_user):
    make_user("flo", Role.ADMIN)
    sign_in(client, "flo")
    assert_error(client.post("/admin/logout", headers={"Accept": "application/json"}), 403, "csrf_failed")


def test_redis_down_under_admin_is_a_503_page(client, make_user, monkeypatch):
    make_user("gil", Role.MODERATOR)
    sign_in(client, "gil")
    import redis

    def down(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr("app.blueprints.pages.list_queue_names", down)
    assert_html_error(client.get("/admin/trends", headers=BROWSER), 503, "Redis is not reachable")


def test_unknown_queue_chart_is_404_but_a_queue_with_history_or_existing_gets_its_chart(client, make_user, connection):
    make_user("hal", Role.MODERATOR)
    history.record_attempt(connection, "gone-q", "ok", 10, "j", "f")  # history outlives the RQ queue
    Queue("idle-q", connection=connection).enqueue("workers.tasks.noop")
    sign_in(client, "hal")
    for queue in ("gone-q", "idle-q"):
        response = client.get(f"/admin/trends/chart.svg?queue={queue}&period=24h")
        assert response.status_code == 200 and response.mimetype == "image/svg+xml"
        assert queue in response.get_data(as_text=True)
    assert client.get("/admin/trends/chart.svg?queue=ghost&period=24h").status_code == 404


def test_trends_page_refuses_an_unknown_period_and_keeps_the_known_ones(client, make_user):
    make_user("ida", Role.MODERATOR)
    sign_in(client, "ida")
    for period in ("24h", "7d", "30d"):
        assert client.get(f"/admin/trends?period={period}").status_code == 200
    assert_html_error(client.get("/admin/trends?period=1y"), 400, "Bad request")


def test_favicon_is_an_svg_icon(client):
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "image/svg+xml"
        assert response.get_data(as_text=True).startswith("<svg")
    assert 'rel="icon"' in client.get("/admin/login").get_data(as_text=True)


def test_charts_come_in_a_narrow_size_for_phones_with_whole_job_counts(client, make_user, connection):
    make_user("joe", Role.MODERATOR)
    history.record_attempt(connection, "p-narrow", "ok", 10, "j", "f")
    sign_in(client, "joe")
    wide = client.get("/admin/trends/chart.svg?queue=p-narrow").get_data(as_text=True)
    narrow = client.get("/admin/trends/chart.svg?queue=p-narrow&size=narrow").get_data(as_text=True)
    assert 'width="760"' in wide and 'width="360"' in narrow
    assert ">0.5<" not in narrow and ">1<" in narrow  # one job: the axis counts whole jobs
    assert client.get("/admin/trends/chart.svg?queue=p-narrow&size=huge").status_code == 400

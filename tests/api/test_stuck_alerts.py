"""GET /alerts/stuck?limit= with its X-Total-Count and X-Severity-Counts headers, and /alerts/stuck/summary."""

from __future__ import annotations

import html as html_module
import json
import re

import pytest

from tests.api.test_auth import assert_error
from tests.helpers import make_active_job

API = "/api/v1/admin/jobs"


@pytest.fixture
def stuck_runs(connection):
    """105 stuck runs over two queues (101 low, 2 medium, 1 high, 1 critical) and one run not stuck yet."""
    for index in range(101):
        make_active_job(connection, f"sa-{index % 2}", 11 + index * 0.1)
    for minutes in (35, 40, 65, 125):
        make_active_job(connection, "sa-0", minutes)
    make_active_job(connection, "sa-1", 2)


def test_the_default_page_is_the_hundred_longest_with_the_whole_picture_in_headers(client, auth, stuck_runs):
    """Regression: every stuck run was returned, re-polled every 5 s by the alerts page."""
    response = client.get(f"{API}/alerts/stuck", headers=auth("moderator"))
    alerts = response.get_json()
    assert len(alerts) == 100
    durations = [alert["stuckDuration"] for alert in alerts]
    assert durations == sorted(durations, reverse=True) and durations[0] >= 125 * 60_000
    assert response.headers["X-Total-Count"] == "105"
    assert response.headers["X-Severity-Counts"] == "low=101,medium=2,high=1,critical=1"


def test_a_smaller_limit(client, auth, stuck_runs):
    response = client.get(f"{API}/alerts/stuck?limit=3", headers=auth("moderator"))
    assert [alert["severity"] for alert in response.get_json()] == ["critical", "high", "medium"]
    assert response.headers["X-Total-Count"] == "105"


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1.5", ""])
def test_a_bad_limit_is_refused(client, auth, limit):
    body = assert_error(
        client.get(f"{API}/alerts/stuck?limit={limit}", headers=auth("moderator")), 400, "validation_error"
    )
    assert "limit" in body["error"]["details"]


def test_the_query_is_validated_once_by_the_routes_schema(client, auth, stuck_runs, monkeypatch):
    """Regression: skip_validation=True turned off spectree's request validation too, so the view validated its
    query again by hand."""
    from app.extensions import spec
    from app.schemas.jobs import StuckQuery

    by_spectree: list[object] = []
    every: list[object] = []
    adapter = spec.model_adapter
    validate_obj, model_validate = adapter.validate_obj, StuckQuery.model_validate.__func__  # type: ignore[attr-defined]

    def spectree_validates(model, value):
        by_spectree.append(model)
        return validate_obj(model, value)

    def counted(cls, value, *args, **kwargs):
        every.append(value)
        return model_validate(cls, value, *args, **kwargs)

    monkeypatch.setattr(adapter, "validate_obj", spectree_validates)
    monkeypatch.setattr(StuckQuery, "model_validate", classmethod(counted))
    response = client.get(f"{API}/alerts/stuck?limit=2&_=cache-buster", headers=auth("moderator"))
    assert len(response.get_json()) == 2
    assert by_spectree == [StuckQuery] and len(every) == 1


def test_the_summary(client, auth, stuck_runs):
    summary = client.get(f"{API}/alerts/stuck/summary", headers=auth("moderator")).get_json()
    assert summary == {
        "total": 105,
        "bySeverity": {"low": 101, "medium": 2, "high": 1, "critical": 1},
        "byQueue": {
            "sa-0": {"total": 55, "low": 51, "medium": 2, "high": 1, "critical": 1},
            "sa-1": {"total": 50, "low": 50, "medium": 0, "high": 0, "critical": 0},
        },
    }
    assert_error(client.get(f"{API}/alerts/stuck/summary"), 401, "missing_token")


def test_nothing_stuck(client, auth):
    response = client.get(f"{API}/alerts/stuck", headers=auth("moderator"))
    assert response.get_json() == [] and response.headers["X-Total-Count"] == "0"
    assert client.get(f"{API}/alerts/stuck/summary", headers=auth("moderator")).get_json() == {
        "total": 0,
        "bySeverity": {"low": 0, "medium": 0, "high": 0, "critical": 0},
        "byQueue": {},
    }


@pytest.mark.parametrize(
    ("bands", "texts"),
    [
        ((10, 30, 60, 120), ["at least 10 min ago", "10 min–30 min", "30 min–1 h", "1 h–2 h", "over 2 h"]),
        ((0.5, 1.5, 45, 180), ["at least 30 s ago", "30 s–1.5 min", "1.5 min–45 min", "45 min–3 h", "over 3 h"]),
    ],
)
def test_the_alerts_page_shows_the_configured_bands(redis_url, tmp_path, make_user, bands, texts):
    """Regression: "10 minutes" and the band limits were written into the page and its script."""
    from tests.api.test_pages import sign_in
    from tests.conftest import make_app

    client = make_app(redis_url, tmp_path, STUCK_THRESHOLDS_MINUTES=bands).test_client()
    sign_in(client, make_user("pager", "moderator"))
    html = client.get("/admin/alerts").get_data(as_text=True)
    for text in texts:
        assert text in html
    attribute = re.search(r"data-vocabulary='([^']*)'", html)
    assert attribute and json.loads(html_module.unescape(attribute[1]))["stuckThresholdsMinutes"] == list(bands)
    assert 'id="stuck-counts"' in html


def test_the_page_and_the_summary_cost_two_round_trips(client, auth, stuck_runs, round_trips):
    """Regression: the token check, the queue list and the script were three round trips."""
    headers = auth("moderator")
    for path in (f"{API}/alerts/stuck", f"{API}/alerts/stuck/summary"):
        client.get(path, headers=headers)  # warm
        round_trips[0] = 0
        response = client.get(path, headers=headers)
        assert response.status_code == 200 and round_trips[0] == 2, path

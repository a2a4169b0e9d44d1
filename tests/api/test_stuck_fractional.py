"""Fractional STUCK_THRESHOLDS_MINUTES from the environment work through the stuck code with seconds resolution."""

from __future__ import annotations

import pytest

from app.domain.users import Role
from tests.conftest import login, make_app
from tests.helpers import make_active_job

API = "/api/v1/admin/jobs"


@pytest.fixture
def client(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("STUCK_THRESHOLDS_MINUTES", "0.5,1,2,3")
    return make_app(redis_url, tmp_path).test_client()


def test_half_a_minute_bands_from_the_environment(client, make_user, connection):
    assert client.application.config["STUCK_THRESHOLDS_MINUTES"] == (0.5, 1, 2, 3)
    assert client.application.config["STUCK_THRESHOLDS"].stuck_after_ms == 30_000  # the one object built from it
    headers = {"Authorization": f"Bearer {login(client, make_user('fraction', Role.ADMIN))['access_token']}"}
    runs = {minutes: make_active_job(connection, "s-fraction", minutes).id for minutes in (0.25, 0.75, 1.5, 2.5, 4)}
    alerts = {alert["jobId"]: alert for alert in client.get(f"{API}/alerts/stuck", headers=headers).get_json()}
    assert runs[0.25] not in alerts  # 15 s: not stuck yet
    assert [alerts[runs[minutes]]["severity"] for minutes in (0.75, 1.5, 2.5, 4)] == [
        "low",
        "medium",
        "high",
        "critical",
    ]
    assert 45_000 <= alerts[runs[0.75]]["stuckDuration"] < 60_000
    page = client.get(f"{API}/queue/s-fraction/live", headers=headers, buffered=False)
    chunks = (chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in page.response)
    first = next(chunk for chunk in chunks if chunk.startswith("data:"))
    page.close()
    assert first.count('"severity"') == 4
    retried = client.post(f"{API}/retry/s-fraction/{runs[0.75]}", json={}, headers=headers)  # 45 s: stuck, retryable
    assert retried.status_code == 201, retried.get_json()
    too_early = client.post(f"{API}/retry/s-fraction/{runs[0.25]}", json={}, headers=headers)
    assert too_early.status_code == 409

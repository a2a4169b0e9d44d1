"""The vocabularies are written once: RQ statuses map to the BullMQ words, the states serialize as plain words,
severities and the default stuck thresholds come from one place each."""

from __future__ import annotations

import json

import orjson
import pytest
from rq.job import JobStatus

import config
from app.domain import jobs, severity
from app.domain.states import (
    BROWSABLE_STATES,
    FAILED_STATES,
    FINISHED_STATES,
    STATE_OF_STATUS,
    JobState,
    Period,
    Severity,
    vocabulary,
)


def test_every_state_but_prioritized_is_an_rq_status():
    assert set(STATE_OF_STATUS) <= set(JobStatus)
    assert set(JobState) - set(STATE_OF_STATUS.values()) == {JobState.PRIORITIZED}  # a queued job with a priority
    assert jobs.BROWSABLE_STATES is BROWSABLE_STATES


def test_states_serialize_as_plain_words():
    document = {"state": STATE_OF_STATUS[JobStatus.FINISHED], "states": list(BROWSABLE_STATES)}
    expected = {"state": "completed", "states": ["waiting", "prioritized", "active", "completed", "failed", "delayed"]}
    assert json.loads(orjson.dumps(document)) == expected == json.loads(json.dumps(document))


def test_severities_and_default_thresholds_have_one_source():
    assert severity.SEVERITIES == tuple(s.value for s in Severity) == ("low", "medium", "high", "critical")
    assert tuple(config.Config.STUCK_THRESHOLDS_MINUTES) == severity.DEFAULT_STUCK_THRESHOLDS.minutes
    assert severity.DEFAULT_STUCK_THRESHOLDS.severity_of(31 * 60_000) == Severity.MEDIUM


def test_stuck_thresholds_band_each_run_and_refuse_a_wrong_shape():
    thresholds = severity.StuckThresholds((0.5, 1, 2, 3))
    assert thresholds.bands == tuple(zip(Severity, (0.5, 1, 2, 3), strict=True))
    assert thresholds.stuck_after_ms == 30_000
    found = [thresholds.severity_of(seconds * 1000) for seconds in (29, 30, 60, 179, 180)]
    assert found == [None, "low", "medium", "high", "critical"]
    assert not thresholds.is_stuck(29_999) and thresholds.is_stuck(30_000)
    for wrong in ((10, 30, 60), (10, 30, 30, 120), (-1, 30, 60, 120)):
        with pytest.raises(ValueError, match="increasing"):
            severity.StuckThresholds(wrong)


def test_schemas_and_periods_take_their_words_from_the_vocabulary():
    from app.domain import history
    from app.domain.clear import CLEAR_TYPES
    from app.schemas.jobs import ClearQuery, JobsQuery, StuckAlert, TrendsQuery

    def words(model: type, field: str) -> list[str]:
        return model.model_json_schema()["properties"][field]["enum"]

    assert words(JobsQuery, "state") == list(BROWSABLE_STATES)
    assert words(TrendsQuery, "period") == list(Period) == list(history.PERIODS) == ["24h", "7d", "30d"]
    assert words(StuckAlert, "severity") == list(Severity)
    assert words(ClearQuery, "type") == list(CLEAR_TYPES) == ["completed", "failed", "all"]
    assert (JobState.COMPLETED, *FAILED_STATES) == FINISHED_STATES
    assert vocabulary((10, 30, 60, 120))["stuckThresholdsMinutes"] == [10, 30, 60, 120]
    assert json.loads(orjson.dumps(vocabulary((1, 2, 3, 4))))["states"]["WAITING_CHILDREN"] == "waiting-children"


def test_alert_severities_and_health_statuses_have_one_source():
    from app.domain import alert_rules, alerts
    from app.domain.states import AlertSeverity, HealthStatus
    from app.schemas.alerts import Alert, Health
    from app.schemas.workers import SystemHealth

    assert alert_rules.AlertSeverity is AlertSeverity
    assert Alert.model_json_schema()["properties"]["severity"]["enum"] == ["warning", "critical"]
    for model, field in ((Health, "status"), (SystemHealth, "status")):
        assert model.model_json_schema()["properties"][field]["enum"] == list(HealthStatus)
    assert tuple(HealthStatus) == ("healthy", "degraded", "critical")
    assert [alerts.status_of(counts) for counts in ({}, {"warning": 1}, {"warning": 1, "critical": 1})] == [
        "healthy",
        "degraded",
        "critical",
    ]
    assert vocabulary((1, 2, 3, 4))["healthStatuses"] == ["healthy", "degraded", "critical"]


def test_worker_vocabularies_live_with_the_others():
    from app.domain import states, workers

    assert workers.Liveness is states.Liveness and workers.WorkerStatus is states.WorkerStatus  # re-exported
    assert list(states.Liveness) == ["active", "inactive", "stale"]
    assert list(states.WorkerStatus) == ["busy", "idle", "paused", "suspended", "stopping", "stopped", "stale"]

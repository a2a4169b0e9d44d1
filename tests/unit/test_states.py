"""The vocabularies are written once: RQ statuses map to the BullMQ words, the states serialize as plain words,
severities and the default stuck thresholds come from one place each."""

from __future__ import annotations

import json

import orjson
from rq.job import JobStatus

import config
from app.domain import jobs, severity
from app.domain.states import BROWSABLE_STATES, STATE_OF_STATUS, JobState, Severity


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
    assert tuple(config.Config.STUCK_THRESHOLDS_MINUTES) == severity.DEFAULT_THRESHOLDS_MINUTES
    assert severity.severity_for(31 * 60_000) == Severity.MEDIUM

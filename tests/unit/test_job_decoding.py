"""Pure decoding helpers of app.domain.jobs: JSON-safe payloads and RQ dates as the API shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from rq.utils import utcformat

from app.domain.job_data import MAX_DATA_DEPTH, Unreadable, json_safe
from app.domain.jobs import _date


def test_plain_payloads_are_returned_as_they_are():
    payload = {"to": "a@b.c", "n": [1, 2.5, None, True, {"deep": ["x"]}]}
    assert json_safe(payload) is payload


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"pair": (1, 2)}, {"pair": [1, 2]}),
        ({1: "int key"}, {"1": "int key"}),
        ([datetime(2026, 1, 2, tzinfo=UTC)], [repr(datetime(2026, 1, 2, tzinfo=UTC))]),
        ({"set": {3}}, {"set": "{3}"}),
    ],
)
def test_anything_else_becomes_json(value, expected):
    result = json_safe(value)
    assert result == expected
    json.dumps(result)


def test_a_cycle_or_too_deep_a_payload_is_unreadable_not_a_crash():
    loop: list = []
    loop.append(loop)
    with pytest.raises(Unreadable):
        json_safe(loop)
    deep: dict = {}
    for _ in range(MAX_DATA_DEPTH):
        deep = {"x": deep}
    with pytest.raises(Unreadable):
        json_safe(deep)
    with pytest.raises(Unreadable):
        json_safe((deep,))  # the slow path too
    assert json_safe(deep["x"]) is deep["x"]  # MAX_DATA_DEPTH levels are shown as they are


def test_lone_surrogates_and_non_finite_floats_become_valid_json():
    name = b"report-\xff.csv".decode("utf-8", "surrogateescape")
    value = {"name": name, name: [float("nan"), float("inf"), 1.5], "ok": "é"}
    result = json_safe(value)
    assert result == {"name": "report-\\udcff.csv", "report-\\udcff.csv": ["nan", "inf", 1.5], "ok": "é"}
    json.dumps(result, allow_nan=False).encode("utf-8")


def test_an_object_whose_repr_fails_is_unreadable():
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    with pytest.raises(Unreadable):
        json_safe([Broken()])


@pytest.mark.parametrize(
    "moment",
    [datetime(2026, 11, 23, 10, 30, 50, 123456), datetime(2026, 1, 1, 0, 0, 0, 999999), datetime(2026, 2, 3, 4, 5, 6)],
)
def test_rq_dates_keep_milliseconds(moment):
    expected = moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert _date(utcformat(moment).encode()) == expected


def test_other_date_texts_are_parsed():
    assert _date(b"2026-11-23T10:30:50") == "2026-11-23T10:30:50.000Z"
    assert _date(None) is None and _date(b"") is None

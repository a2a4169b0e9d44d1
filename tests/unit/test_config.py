"""Settings from the environment: fractional stuck thresholds (seconds resolution) and one clear line for a bad
value, from config.from_env and from create_app."""

from __future__ import annotations

import pytest

import config
from app import create_app


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("10,30,60,120", (10, 30, 60, 120)), ("0.5,1,2,3", (0.5, 1, 2, 3)), (" 0.25, 0.5 ,1.5,2", (0.25, 0.5, 1.5, 2))],
)
def test_stuck_thresholds_accept_whole_and_fractional_minutes(raw, expected):
    assert config.from_env({"STUCK_THRESHOLDS_MINUTES": raw})["STUCK_THRESHOLDS_MINUTES"] == expected


@pytest.mark.parametrize(
    "raw", ["ten,20,30,40", "10,30,60", "10,30,60,120,240", "30,10,60,120", "10,10,60,120", "0,1,2,3", "0.001,1,2,3",
            "-1,1,2,3", "nan,1,2,3", "inf,1e400,2,3", "10;30;60;120"],
)  # fmt: skip
def test_a_bad_value_is_one_line_naming_the_variable_and_an_example(raw):
    with pytest.raises(config.ConfigError) as caught:
        config.from_env({"STUCK_THRESHOLDS_MINUTES": raw})
    message = str(caught.value)
    assert message.startswith(f"STUCK_THRESHOLDS_MINUTES={raw!r} is not valid") and "\n" not in message
    assert "10,30,60,120" in message


@pytest.mark.parametrize(("name", "raw"), [("TRUSTED_PROXIES", "two"), ("LIVE_TICK_SECONDS", "fast")])
def test_every_setting_names_itself_when_it_cannot_be_read(name, raw):
    with pytest.raises(config.ConfigError, match=f"^{name}='{raw}' is not valid"):
        config.from_env({name: raw})


def test_create_app_stops_with_one_line_not_a_traceback(monkeypatch, capsys, redis_url):
    monkeypatch.setenv("STUCK_THRESHOLDS_MINUTES", "10,30")
    with pytest.raises(SystemExit) as stopped:
        create_app({"TESTING": True, "REDIS_URL": redis_url, "JWT_SECRET_KEY": "x" * 40})
    assert stopped.value.code == 4  # gunicorn's "App failed to load": its master stops, no restart loop
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "rq-monitor: configuration error: STUCK_THRESHOLDS_MINUTES='10,30' is not valid: needs four increasing "
        "numbers of minutes (1/60 at least), e.g. 10,30,60,120 or 0.5,1,2,3"
    ]


@pytest.mark.parametrize(
    "name", ["LIVE_TICK_SECONDS", "SSE_HEARTBEAT_SECONDS", "JWT_ACCESS_TOKEN_EXPIRES", "JWT_REFRESH_TOKEN_EXPIRES"]
)
@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "-inf"])
def test_intervals_and_lifetimes_must_be_positive(name, raw):
    """Regression: a tick of 0 or nan stopped the live ticker's thread silently, a heartbeat of 0 spun every
    stream; a token lifetime of 0 or less made tokens born expired."""
    with pytest.raises(config.ConfigError) as caught:
        config.from_env({name: raw})
    message = str(caught.value)
    assert message.startswith(f"{name}={raw!r} is not valid") and "\n" not in message


def test_intervals_and_lifetimes_read_when_positive():
    found = config.from_env(
        {"LIVE_TICK_SECONDS": "0.5", "SSE_HEARTBEAT_SECONDS": "30", "JWT_ACCESS_TOKEN_EXPIRES": "60"}
    )
    assert found["LIVE_TICK_SECONDS"] == 0.5 and found["SSE_HEARTBEAT_SECONDS"] == 30.0
    assert found["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds() == 60


def test_a_zero_tick_stops_start_up_with_one_line(monkeypatch, capsys, redis_url):
    monkeypatch.setenv("LIVE_TICK_SECONDS", "0")
    with pytest.raises(SystemExit) as stopped:
        create_app({"TESTING": True, "REDIS_URL": redis_url, "JWT_SECRET_KEY": "x" * 40})
    assert stopped.value.code == 4
    assert capsys.readouterr().err.splitlines() == [
        "rq-monitor: configuration error: LIVE_TICK_SECONDS='0' is not valid: expected a positive number of seconds "
        "or MB, got '0'"
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"a": ' + "[" * 40 + "]" * 40 + "}", "nested deeper than 32 levels"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "longer than 4096 bytes"),
        ('{"a": ' + "[" * 1000 + "]" * 1000 + "}", "nested deeper than 32 levels"),  # past the parser's recursion
        ('{"load": NaN}', "not valid JSON"),
    ],
)
def test_capabilities_are_json_as_the_api_takes_it(raw, reason):
    """Every reader of the worker registry shows them (a page, the API, a deep copy per read): what the API
    would refuse in a body stops the worker at start-up instead."""
    with pytest.raises(config.ConfigError, match=reason):
        config.worker_settings({"RQMON_WORKER_CAPABILITIES": raw})
    capabilities = '{"gpu": true, "models": [["a", 1]]}'
    assert config.worker_settings({"RQMON_WORKER_CAPABILITIES": capabilities})["RQMON_WORKER_CAPABILITIES"] == {
        "gpu": True,
        "models": [["a", 1]],
    }

"""The product as deployed (gunicorn + gevent through app.launcher.start_web): over-long request lines and header
fields, chunked bodies over 64 KiB and bad tokens get the JSON error shape from the app, not gunicorn's HTML;
a bad setting stops start-up with one line, not a traceback."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
import requests

from app.embedded_redis import free_port
from app.launcher import GUNICORN_LIMITS, start_web
from tests.helpers import ROOT, start_gunicorn, stop_worker

API = "/api/v1/admin/jobs"


@pytest.fixture
def web(redis_url):
    port = free_port()
    server = start_gunicorn(redis_url, port)
    yield f"http://127.0.0.1:{port}"
    stop_worker(server)


def assert_json_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:300]
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code and body["error"]["message"]


@pytest.mark.parametrize("length", [4200, 8000])
def test_a_request_line_over_4_kib_is_414_in_the_error_shape(web, length):
    response = requests.get(f"{web}{API}/metrics?pad={'x' * length}", timeout=10)
    assert_json_error(response, 414, "uri_too_long")


@pytest.mark.parametrize("length", [8300, 16000])
def test_a_header_over_8_kib_is_431_in_the_error_shape(web, length):
    response = requests.get(f"{web}/healthz", headers={"X-Padding": "x" * length}, timeout=10)
    assert_json_error(response, 431, "headers_too_large")


def test_requests_within_the_limits_are_served(web):
    assert requests.get(f"{web}/healthz?pad={'x' * 3000}", headers={"X-Padding": "x" * 7000}, timeout=10).ok


def chunks(total: int, size: int = 4096):
    yield b'{"username": "someone", "password": "'
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size
    yield b'"}'


def test_a_chunked_body_over_64_kib_is_413(web):
    response = requests.post(
        f"{web}/api/v1/auth/login", data=chunks(70 * 1024), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert_json_error(response, 413, "payload_too_large")


def test_a_chunked_body_within_64_kib_is_read_whole(web):
    response = requests.post(
        f"{web}/api/v1/auth/login",
        data=chunks(2000, size=300),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert_json_error(response, 400, "validation_error")  # read whole: the password is too long, not cut JSON
    assert "password" in response.json()["error"]["details"]


def test_a_malformed_token_gets_the_products_message(web):
    response = requests.get(f"{web}/api/v1/auth/me", headers={"Authorization": "Bearer abc"}, timeout=10)
    assert_json_error(response, 401, "invalid_token")
    assert response.json()["error"]["message"] == "The token is not valid"


@pytest.mark.parametrize("value", ["ten,20,30,40", "10,30,60", "30,10,60,120", "0,1,2,3", "nan,1,2,3"])
def test_a_bad_setting_stops_gunicorn_with_one_clear_line(redis_url, value):
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "JWT_SECRET_KEY": "limits-test-secret-key-long-enough-for-hs256",
        "RQMON_ENV": "production",
        "STUCK_THRESHOLDS_MINUTES": value,
    }
    process = start_web(env, free_port(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            stop_worker(process)
    assert process.returncode != 0
    assert "Traceback" not in err + out
    [line] = [line for line in err.splitlines() if "configuration error" in line]
    assert line.startswith(f"rq-monitor: configuration error: STUCK_THRESHOLDS_MINUTES={value!r}")
    assert "10,30,60,120" in line


def test_the_procfile_and_the_launcher_give_gunicorn_the_same_limits():
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    arguments = shlex.split(web.split(":", 1)[1])
    for flag, value in zip(GUNICORN_LIMITS[::2], GUNICORN_LIMITS[1::2], strict=True):
        assert arguments[arguments.index(flag) + 1] == value

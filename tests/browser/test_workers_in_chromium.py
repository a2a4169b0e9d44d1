"""The Workers pages in real headless Chromium against real MonitoredWorkers under gunicorn (its ticker publishes
the workers feed): health banner, rows live over the stream, a SIGKILLed worker greyed then removed, pause with
its acknowledgement shown, the worker's page with charts and linked jobs, queue status on the overview, a queue's
workers, no controls for a moderator; screenshots at 1280 and 375 px in tests/artifacts/."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from rq import Queue

from app.domain import workers as registry
from app.domain.users import Role
from app.embedded_redis import free_port
from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_pages_in_chromium import CELLS_OUT_OF_REACH
from tests.helpers import start_gunicorn, stop_worker, wait_for
from tests.workers.test_worker_liveness_and_control import launch

NARROW = {"width": 375, "height": 800}


@pytest.fixture(scope="module")
def fast_server(redis_server: str) -> Iterator[str]:
    """Workers go stale after 4 s without a heartbeat (they beat every second: see launch)."""
    port = free_port()
    process = start_gunicorn(redis_server, port, WORKER_ACTIVE_SECONDS="2", WORKER_STALE_SECONDS="4")
    yield f"http://127.0.0.1:{port}"
    stop_worker(process)


def name_of(connection, queue: str) -> str:
    found: list[str] = []

    def listed() -> bool:
        found[:] = [
            w["worker_name"] for w in registry.read_workers(connection, time.time(), 60, 300) if queue in w["queues"]
        ]
        return len(found) == 1

    wait_for(listed, timeout=30)
    return found[0]


def fits_375(page) -> None:
    assert page.evaluate(CELLS_OUT_OF_REACH) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375


def test_an_admin_watches_controls_and_removes_workers(page, fast_server, make_user, connection, redis_url, running):
    make_user("operator", Role.ADMIN)
    running.append(launch(redis_url, "bw-emails"))
    running.append(launch(redis_url, "bw-reports"))
    busy, doomed = name_of(connection, "bw-emails"), name_of(connection, "bw-reports")
    emails = Queue("bw-emails", connection=connection)
    jobs = [emails.enqueue("workers.tasks.add", 1, 2), emails.enqueue("workers.tasks.fail")]
    wait_for(lambda: all(job.get_status(refresh=True) in ("finished", "failed") for job in jobs), timeout=30)
    for _ in range(3):
        Queue("bw-nobody", connection=connection).enqueue("workers.tasks.noop")

    sign_in(page, fast_server, "operator")
    page.click("nav >> text=Workers")
    page.wait_for_url(f"{fast_server}/admin/workers")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Workers")
    row = page.locator(f'tr[data-worker="{busy}"]')
    expect(row).to_contain_text("idle")
    expect(row).to_contain_text("bw-emails")
    expect(row.locator("td[data-label='Processed / failed']")).to_have_text("2 / 1")
    expect(page.locator("#live-status")).to_contain_text("Live")
    expect(page.locator("#activity-body")).to_contain_text("failed")

    running[1].send_signal(signal.SIGKILL)  # goes stale live, over the stream
    stale_row = page.locator(f'tr[data-worker="{doomed}"]')
    expect(stale_row).to_have_class("worker-stale", timeout=30000)
    # workers_stale fires at the next tick's rules; the stream carries it the tick after
    expect(page.locator("#workers-health")).to_have_attribute("data-health", "degraded", timeout=15000)
    expect(page.locator("#health-reasons")).to_contain_text(f"worker {doomed} is stale")
    screenshot(page, "workers")

    row.locator("button[data-action=pause]").click()
    expect(page.locator("#action-dialog")).to_be_visible()
    page.click("#action-dialog-ok")
    expect(page.locator("#action-text")).to_contain_text(f"acknowledged by {busy}")
    expect(row).to_contain_text("paused", timeout=10000)
    expect(row.locator("button[data-action=resume]")).to_be_visible()

    stale_row.locator("button[data-action=remove]").click()
    page.click("#action-dialog-ok")
    expect(page.locator("#action-text")).to_contain_text(f"Removed {doomed}")
    expect(stale_row).to_have_count(0, timeout=10000)

    page.set_viewport_size(NARROW)
    expect(row).to_be_visible()
    fits_375(page)
    screenshot(page, "workers-375px")

    page.set_viewport_size({"width": 1280, "height": 860})
    row.locator("a").first.click()
    page.wait_for_url(f"{fast_server}/admin/workers/{busy}")
    expect(page.locator("#recent-body tr")).to_have_count(2)
    expect(page.locator(f"#recent-body a[href$='{jobs[1].id}']")).to_be_visible()
    expect(page.locator("#worker-facts")).to_contain_text("MonitoredWorker")
    expect(page.locator("#worker-controls button[data-action=resume]")).to_be_visible()
    for kind in ("hourly", "memory"):
        wait_for(lambda kind=kind: page.evaluate(f"() => document.getElementById('chart-{kind}').naturalWidth") > 0)
    screenshot(page, "worker-detail")
    page.set_viewport_size(NARROW)
    for kind in ("hourly", "memory"):  # phones get the chart drawn at their size
        image = f"document.getElementById('chart-{kind}')"
        narrow = f"() => {image}.complete && {image}.currentSrc.includes('size=narrow')"
        wait_for(lambda narrow=narrow: page.evaluate(narrow))
    fits_375(page)
    screenshot(page, "worker-detail-375px")

    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{fast_server}/admin/")
    unserved = page.locator('#queue-status-body tr[data-status-queue="bw-nobody"]')
    expect(unserved).to_contain_text("no worker listens to this queue")
    assert unserved.locator(".no-listener").evaluate("(node) => getComputedStyle(node).color") == "rgb(180, 35, 24)"
    screenshot(page, "overview-queue-status")
    page.set_viewport_size(NARROW)
    fits_375(page)
    screenshot(page, "overview-queue-status-375px")

    page.goto(f"{fast_server}/admin/queues/bw-emails")
    expect(page.locator("#queue-workers-body")).to_contain_text(busy)

    missing = page.goto(f"{fast_server}/admin/workers/nobody.1")
    assert missing is not None and missing.status == 404
    odd = page.goto(f"{fast_server}/admin/workers/a%20b")
    assert odd is not None and odd.status == 400


def test_a_moderator_sees_workers_without_controls(page, fast_server, make_user, connection, redis_url, running):
    make_user("watcher", Role.MODERATOR)
    running.append(launch(redis_url, "bw-watch"))
    name = name_of(connection, "bw-watch")
    sign_in(page, fast_server, "watcher")
    page.goto(f"{fast_server}/admin/workers")
    expect(page.locator(f'tr[data-worker="{name}"]')).to_contain_text("idle")
    expect(page.locator("#workers-body button")).to_have_count(0)
    expect(page.locator("#cleanup")).to_have_count(0)
    page.goto(f"{fast_server}/admin/workers/{name}")
    expect(page.locator("#worker-facts")).to_contain_text("MonitoredWorker")
    expect(page.locator("#worker-controls")).to_have_count(0)

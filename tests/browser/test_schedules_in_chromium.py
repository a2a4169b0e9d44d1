"""The Schedules pages in real headless Chromium, with a real rq-monitor-scheduler and real `rq worker` runs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from app.domain import schedule_runs, schedules
from app.domain.users import Role
from tests.browser.conftest import screenshot, sign_in
from tests.helpers import ROOT, run_worker, runs_on_the_days, stop_worker, wait_for

OVERFLOW = "() => document.documentElement.scrollWidth"


@pytest.fixture
def scheduler(redis_url: str) -> Iterator[subprocess.Popen]:
    command = [sys.executable, "-m", "workers.scheduler", "--url", redis_url, "--logging-level", "WARNING"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield process
    stop_worker(process)


def definition(name: str, func: str, **timing) -> dict:
    return {
        "name": name,
        "description": f"{name} (browser test)",
        "func": func,
        "args": [],
        "kwargs": {},
        "queue": "b-sched",
        "enabled": True,
        "overlap": "allow",
        "timeout": None,
        "attempts": 1,
        "backoff": None,
        "cron": None,
        "intervalSeconds": None,
        **timing,
    }


def test_schedules_list_form_actions_and_history(page, server, connection, redis_url, make_user, scheduler):
    make_user("sched-admin", Role.ADMIN)
    schedules.save_schedule(connection, definition("digest", "workers.tasks.noop", cron="*/5 * * * *"))
    schedules.save_schedule(connection, definition("flaky-report", "workers.tasks.fail", intervalSeconds=3600))
    for name in ("digest", "digest", "flaky-report", "flaky-report", "flaky-report"):
        schedule_runs.run_now(connection, name)
    run_worker(redis_url, "b-sched")
    wait_for(lambda: schedule_runs.list_runs(connection, "flaky-report")["runs"][-1]["failedReason"], timeout=30)
    page.on("dialog", lambda dialog: dialog.accept())

    sign_in(page, server, "sched-admin")
    shown_from = time.time()
    page.click("nav >> text=Schedules")
    digest = page.locator('tr[data-name="digest"]')
    expect(digest).to_contain_text("every 5 minutes")
    expect(digest).to_contain_text("*/5 * * * * UTC")
    expect(digest.locator(".next-run time")).to_have_text(re.compile(r"^in \d+"))
    expect(digest.locator(".strip span.run-completed")).to_have_count(2)
    flaky = page.locator('tr[data-name="flaky-report"]')
    expect(flaky).to_contain_text("every hour")
    expect(flaky.locator(".strip span.run-failed")).to_have_count(3)
    today = runs_on_the_days(connection, "flaky-report", shown_from, time.time())  # 3, but past midnight
    expect(flaky.locator("td.num").first).to_have_text(re.compile("^(" + "|".join(map(str, today)) + ")$"))
    expect(page.locator("#scheduler-status")).to_contain_text("is running")
    screenshot(page, "schedules")

    # The form: a forbidden function is refused beside its field; the preview shows five runs before saving.
    page.click("#new-schedule")
    page.fill("#f-name", "nightly")
    page.fill("#f-func", "os.system")
    page.fill("#f-args", '["echo hi"]')
    page.check("input[name=timing][value=cron]")
    page.fill("#f-cron", "0 9 * * *")
    expect(page.locator("#preview-list li")).to_have_count(5)
    expect(page.locator("#preview-list li").first).to_contain_text("09:00 UTC")
    expect(page.locator("#preview-words")).to_have_text("(every day at 09:00 UTC)")
    page.click("#schedule-save")
    expect(page.locator("#error-func")).to_contain_text("must be a function under workers.tasks")
    screenshot(page, "schedule-form-errors")
    page.fill("#f-cron", "0 9 * * * *")
    expect(page.locator("#preview-list li.field-error")).to_contain_text("5 fields")
    page.fill("#f-cron", "0 9 * * *")
    page.fill("#f-func", "workers.tasks.noop")
    page.fill("#f-args", "[]")
    page.click("#schedule-save")
    expect(page.locator('tr[data-name="nightly"]')).to_contain_text("every day at 09:00 UTC")

    # Run now, pause, resume, delete (confirmed).
    page.click('tr[data-name="nightly"] button[data-action=run]')
    expect(page.locator("#action-text")).to_contain_text("Run of nightly enqueued")
    page.click('tr[data-name="nightly"] button[data-action=pause]')
    expect(page.locator('tr[data-name="nightly"] .badge-paused')).to_be_visible()
    assert schedules.get_schedule(connection, "nightly")["enabled"] is False
    page.click('tr[data-name="nightly"] button[data-action=resume]')
    expect(page.locator('tr[data-name="nightly"] .badge-paused')).to_have_count(0)
    page.click('tr[data-name="nightly"] button[data-action=delete]')
    expect(page.locator("#action-dialog")).to_contain_text("Delete the schedule nightly")
    page.click("#action-dialog-ok")
    expect(page.locator('tr[data-name="nightly"]')).to_have_count(0)
    assert not connection.hexists("rqmon:schedules", "nightly")

    # One schedule: its run history, linked to the job pages.
    page.click('tr[data-name="flaky-report"] th a')
    expect(page.locator("#runs-body tr")).to_have_count(3)
    expect(page.locator("#runs-body")).to_contain_text("this job always fails")
    page.select_option("#runs-filter", "completed")
    expect(page.locator("#runs-body")).to_contain_text("No completed runs.")
    page.select_option("#runs-filter", "")
    screenshot(page, "schedule")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate(OVERFLOW) <= 375
    screenshot(page, "375px-schedule")
    first_job = page.locator("#runs-body a").first
    job_id = first_job.get_attribute("title")
    first_job.click()
    page.wait_for_url(re.compile(rf"/admin/queues/b-sched/jobs/{job_id}$"))
    expect(page.locator("main")).to_contain_text("failed")
    page.click("dl.facts a:text('flaky-report')")  # and back: the job page links its schedule
    page.wait_for_url(re.compile(r"/admin/schedules/flaky-report$"))

    page.goto(f"{server}/admin/schedules")
    expect(page.locator('tr[data-name="digest"]')).to_be_visible()
    assert page.evaluate(OVERFLOW) <= 375
    screenshot(page, "375px-schedules")
    page.click("#new-schedule")
    expect(page.locator("#preview-list li")).to_have_count(5)
    assert page.evaluate(OVERFLOW) <= 375
    screenshot(page, "375px-schedule-form")


def test_moderators_see_schedules_without_actions(page, server, connection, make_user):
    make_user("sched-mod", Role.MODERATOR)
    schedules.save_schedule(connection, definition("watch-only", "workers.tasks.noop", intervalSeconds=60))
    sign_in(page, server, "sched-mod")
    page.goto(f"{server}/admin/schedules")
    expect(page.locator('tr[data-name="watch-only"]')).to_contain_text("every minute")
    # no scheduler runs: the rule fires on the server's next tick, and the page polls every 5 s
    expect(page.locator("#scheduler-status [data-rule=scheduler_down]")).to_be_visible(timeout=15_000)
    assert page.locator("#new-schedule, button[data-action]").count() == 0
    assert page.goto(f"{server}/admin/schedules/no-such").status == 404

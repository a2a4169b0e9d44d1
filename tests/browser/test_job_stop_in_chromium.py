"""An admin stops a stuck run from the stuck-jobs page, in real Chromium with a real MonitoredWorker (issue 11)."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from rq import Queue
from rq.job import JobStatus
from rq.utils import now, utcformat

from app.domain import keys
from app.domain.users import Role
from tests.browser.conftest import screenshot, sign_in
from tests.helpers import start_worker, stop_worker, wait_for


def test_admins_stop_a_stuck_run_from_the_alerts_page(page, server, connection, redis_url, make_user):
    make_user("adm", Role.ADMIN)
    job = Queue("b-stop", connection=connection).enqueue("workers.tasks.sleep_for", 120)
    worker = start_worker(redis_url, "b-stop")
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
        connection.hset(job.key, "started_at", utcformat(now() - timedelta(minutes=40)))  # a stuck run, medium
        # The run-start index may have seen the real start already (the server's ticker reads the stuck runs every
        # tick): dropped, it is rebuilt from started_at at the next read, as after a Redis restart.
        connection.delete(keys.run_starts("b-stop"))
        sign_in(page, server, "adm")
        page.goto(f"{server}/admin/alerts")
        row = page.locator(f"tr[data-job='{job.id}']")
        row.get_by_role("button", name="Stop…").click()
        expect(page.locator("#action-dialog")).to_contain_text(f"Stop job {job.id} (workers.tasks.sleep_for)")
        screenshot(page, "stuck-stop-dialog")
        page.click("#action-dialog-ok")
        expect(page.locator("#action-message")).to_contain_text(f"Job {job.id} stopped")
        assert job.get_status(refresh=True) == JobStatus.STOPPED
        expect(row).to_have_count(0)  # no longer running, so no longer stuck
    finally:
        stop_worker(worker)

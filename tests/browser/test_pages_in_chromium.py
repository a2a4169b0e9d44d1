"""The admin pages in real headless Chromium, with real `rq worker` processes running the jobs."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

from playwright.sync_api import expect
from rq import Queue
from rq.job import Job, JobStatus

from app.domain import attempts, history
from app.domain.users import Role
from app.embedded_redis import free_port
from tests.api.test_job_actions import failed_job
from tests.browser.conftest import screenshot, sign_in
from tests.helpers import make_active_job, run_worker, start_gunicorn, start_worker, stop_worker, wait_for

LONG_FUNCTION = "workers.tasks_for_the_reporting_team.generate_monthly_revenue_report_for_every_region"
# Text pieces of names and ids (split at . _ : - / with <wbr>) that a line break cuts in two.
LINES_BROKEN_MID_WORD = """(table) => [...document.querySelectorAll(`${table} .mono`)].flatMap((node) =>
    [...node.childNodes].filter((child) => child.nodeType === Node.TEXT_NODE).map((text) => {
      const range = document.createRange();
      range.selectNodeContents(text);
      return [text.textContent, new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size];
    })).filter(([, lines]) => lines > 1)"""
# Cells of the tables that a 375 px screen cannot reach (cut off, hidden, or only reachable by a sideways scroll).
CELLS_OUT_OF_REACH = """() => [...document.querySelectorAll('table.data tbody td, table.data tbody th')]
    .filter((cell) => !cell.closest('[hidden]'))  // a closed tab's table is one click away, not out of reach
    .filter((cell) => {
      const box = cell.getBoundingClientRect();
      return getComputedStyle(cell).display === 'none' || box.width === 0 || box.left < 0 || box.right > 376;
    }).map((cell) => cell.dataset.label + ': ' + cell.textContent)"""


def count_cell(page, queue: str, state: str):
    return page.locator(f'tr[data-queue="{queue}"] td[data-count="{state}"]')


def test_sign_in_refuses_a_bad_password_keeps_tokens_out_of_storage_and_signs_out(page, server, make_user):
    make_user("mod", Role.MODERATOR)
    page.goto(f"{server}/admin/login")
    page.fill("#username", "mod")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    assert page.url == f"{server}/admin/login"
    screenshot(page, "login")
    sign_in(page, server, "mod")
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies["access_token_cookie"]["httpOnly"] and cookies["refresh_token_cookie"]["httpOnly"]
    assert not cookies["csrf_access_token"]["httpOnly"]  # the pages read it to send X-CSRF-TOKEN
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    page.click("#logout")
    page.wait_for_url(f"{server}/admin/login*")
    expect(page.locator("p.notice")).to_have_text("You are signed out.")
    page.goto(f"{server}/admin/")
    assert page.url.startswith(f"{server}/admin/login")  # signed out, the pages lead back to sign-in
    assert "Sign in" in page.inner_text("h1")


def test_moderators_watch_without_action_buttons(page, server, connection, make_user):
    make_user("mod", Role.MODERATOR)
    Queue("b-mod", connection=connection).enqueue("workers.tasks.noop")
    sign_in(page, server, "mod")
    page.goto(f"{server}/admin/queues/b-mod")
    page.wait_for_selector("#count-waiting:text('1')")
    assert page.locator("#pause-btn").count() == 0 and page.locator("[data-clear]").count() == 0
    assert "need the admin role" in page.inner_text("main")
    screenshot(page, "queue-as-moderator")


def test_overview_updates_without_reload_when_jobs_finish(page, server, connection, redis_url, make_user):
    make_user("adm", Role.ADMIN)
    queue = Queue("b-live", connection=connection)
    for _ in range(3):
        queue.enqueue("workers.tasks.noop")
    streams = []
    page.on("response", lambda response: streams.append(response) if response.url.endswith("/jobs/live") else None)
    sign_in(page, server, "adm")
    expect(count_cell(page, "b-live", "waiting")).to_have_text("3")
    page.evaluate("window.__sameDocument = true")
    run_worker(redis_url, "b-live")
    expect(count_cell(page, "b-live", "completed")).to_have_text("3")
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert count_cell(page, "b-live", "waiting").inner_text() == "0"
    assert "Live" in page.inner_text("#live-status")
    assert streams and streams[0].headers.get("content-encoding") == "deflate"  # Chromium reads the stream deflated
    screenshot(page, "overview")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375  # the page itself never scrolls sideways
    screenshot(page, "overview-375px")


def test_pause_from_the_queue_page_stops_a_running_worker_taking_jobs(page, server, connection, redis_url, make_user):
    make_user("adm", Role.ADMIN)
    queue = Queue("b-pause", connection=connection)
    queue.enqueue("workers.tasks.noop")
    worker = start_worker(redis_url, "b-pause")
    try:
        wait_for(lambda: queue.count == 0)
        sign_in(page, server, "adm")
        page.goto(f"{server}/admin/queues/b-pause")
        page.click("#pause-btn")
        page.wait_for_selector("#paused-badge", state="visible")
        assert page.locator("#resume-btn").is_visible() and not page.locator("#pause-btn").is_visible()
        job = queue.enqueue("workers.tasks.noop")
        time.sleep(2.5)
        assert job.get_status() == JobStatus.QUEUED  # the running worker honours the pause
        page.wait_for_selector("#count-waiting:text('1')")
        screenshot(page, "queue-paused")
        page.click("#resume-btn")
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=5)
    finally:
        stop_worker(worker)


def test_clear_asks_for_confirmation_naming_what_is_deleted(page, server, connection, redis_url, make_user):
    make_user("adm", Role.ADMIN)
    queue = Queue("b-clear", connection=connection)
    for _ in range(3):
        queue.enqueue("workers.tasks.fail")
    keep = queue.enqueue("workers.tasks.noop", result_ttl=600)
    run_worker(redis_url, "b-clear")
    sign_in(page, server, "adm")
    page.goto(f"{server}/admin/queues/b-clear")
    page.wait_for_selector("#count-failed:text('3')")
    page.click("[data-clear=failed]")
    assert "Delete 3 failed jobs of queue b-clear" in page.inner_text("#confirm-text")
    screenshot(page, "clear-confirmation")
    page.click("#confirm-ok")
    page.wait_for_selector("#count-failed:text('0')")
    assert queue.failed_job_registry.get_job_count(cleanup=False) == 0
    assert Job.exists(keep.id, connection)  # completed jobs were not part of "failed"


def test_retry_with_overrides_opens_the_new_job_which_completes(page, server, connection, redis_url, make_user):
    make_user("adm", Role.ADMIN)
    backoff = {"type": "exponential", "delay": 1000}
    meta = {attempts.BACKOFF: backoff, attempts.ATTEMPTS: 3}
    original = failed_job(connection, redis_url, "b-retry", "a@b.c", customParam="old", meta=meta)
    sign_in(page, server, "adm")
    page.goto(f"{server}/admin/queues/b-retry/jobs/{original.id}")
    page.wait_for_selector("#job-state:text('failed')")
    # the form shows the job's own arguments, so editing them never invents a keyword argument
    expect(page.locator("#retry-args")).to_have_value('["a@b.c"]')
    assert json.loads(page.input_value("#retry-kwargs")) == {"customParam": "old"}
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    screenshot(page, "375px-retry-form")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.fill("#retry-kwargs", "not json")
    page.click("#retry-form button[type=submit]")
    assert "JSON object" in page.inner_text('[data-field="dataOverrides"]')
    page.fill("#retry-kwargs", '{"customParam": "new"}')
    page.fill("#retry-args", '["x@y.z"]')
    page.fill("#retry-priority", "9999999")
    page.click("#retry-form button[type=submit]")
    dialog = page.locator("#action-dialog")
    expect(dialog).to_contain_text('Positional arguments: ["x@y.z"]')
    expect(dialog).to_contain_text('Keyword arguments changed: {"customParam":"new"}')
    screenshot(page, "retry-confirmation")
    page.click("#action-dialog-ok")
    page.wait_for_selector('[data-field="priority"]:not(:empty)')  # the API's field error, shown by the field
    assert "2097151" in page.inner_text('[data-field="priority"]')
    page.fill("#retry-priority", "")
    page.fill("#retry-attempts", "2")
    page.fill("#retry-backoff-delay", "5000")  # a delay alone keeps the original's backoff type
    page.click("#retry-form button[type=submit]")
    expect(dialog).to_contain_text("Backoff: exponential, 5000 ms")
    page.click("#action-dialog-ok")
    page.wait_for_url(lambda url: original.id not in url)
    new_id = page.url.rsplit("/", 1)[1]
    new = Job.fetch(new_id, connection=connection)
    assert new.args == ("x@y.z",) and new.meta[attempts.BACKOFF] == {"type": "exponential", "delay": 5000}
    expect(page.locator("#retry-unavailable")).to_be_visible()  # a waiting job: the API would refuse its retry
    assert not page.locator("#retry-form").is_visible()
    run_worker(redis_url, "b-retry")
    page.wait_for_selector("#job-state:text('completed')")
    assert '"customParam": "new"' in page.inner_text("#job-result")
    assert original.id[:12] in page.inner_text("#job-facts")  # the link back to the original
    assert new.get_status(refresh=True) == JobStatus.FINISHED
    screenshot(page, "job-retried")
    page.goto(f"{server}/admin/queues/b-retry/jobs/{original.id}")
    expect(page.locator("#retry-copy")).to_contain_text(f"already retried as {new_id}")
    page.click("#retry-form button[type=submit]")
    expect(page.locator("#action-dialog-title")).to_have_text("Retry again?")
    page.keyboard.press("Escape")  # cancelled: nothing is sent
    assert Queue("b-retry", connection=connection).count == 0
    page.goto(f"{server}/admin/queues/b-retry")
    page.click("[role=tab][data-state=failed]")
    expect(page.locator(f'tr[data-job="{original.id}"]')).to_contain_text(f"retried as {new_id[:12]}")


def test_stuck_page_colours_each_band(page, server, connection, make_user):
    make_user("mod", Role.MODERATOR)
    for minutes in (15, 45, 90, 150):
        make_active_job(connection, "b-stuck_reports.nightly", minutes, func=LONG_FUNCTION)
    sign_in(page, server, "mod")
    page.goto(f"{server}/admin/alerts")
    page.wait_for_selector("#alerts-table tr[data-severity]")
    assert page.evaluate(LINES_BROKEN_MID_WORD, "#alerts-table") == []  # at 1280 px: breaks only at . _ - etc.
    # the stuck table's rows (the hidden Rules tab lists the stuck_jobs alert once the ticker has evaluated it)
    severities = page.eval_on_selector_all(
        "#alerts-table tr[data-severity]", "rows => rows.map(r => r.dataset.severity)"
    )
    assert severities == ["critical", "high", "medium", "low"]
    colours = page.eval_on_selector_all(
        "#alerts-table tr[data-severity] .sev", "chips => chips.map(c => getComputedStyle(c).backgroundColor)"
    )
    assert colours == ["rgb(127, 29, 29)", "rgb(255, 210, 204)", "rgb(255, 227, 194)", "rgb(255, 247, 214)"]
    assert page.inner_text("#stuck-badge") == "4"
    assert page.inner_text("#stuck-counts") == "Showing 4 of 4 stuck runs (1 low, 1 medium, 1 high, 1 critical)."
    screenshot(page, "stuck-alerts")


def test_admins_retry_a_stuck_job_from_the_alerts_page(page, server, connection, make_user):
    make_user("adm", Role.ADMIN)
    stuck = make_active_job(connection, "b-stuck-retry", 40, func="workers.tasks.send_email", args=("a@b.c",))
    sign_in(page, server, "adm")
    page.goto(f"{server}/admin/alerts")
    row = page.locator("tr[data-severity='medium']")
    expect(row.get_by_role("link", name="Retry with overrides")).to_have_attribute("href", re.compile("#retry-title$"))
    screenshot(page, "stuck-alerts-admin")
    row.get_by_role("button", name="Retry…").click()
    expect(page.locator("#action-dialog")).to_contain_text(f"Retry job {stuck.id} (workers.tasks.send_email)")
    page.click("#action-dialog-ok")
    message = page.locator("#action-message")
    expect(message).to_contain_text(f"Job {stuck.id} retried as ")
    new_id = message.locator("a").inner_text()
    new_job = Job.fetch(new_id, connection=connection)
    assert new_job.get_status() == JobStatus.QUEUED and new_job.args == ("a@b.c",)
    assert new_job.meta[attempts.RETRIED_FROM] == stuck.id
    updated = page.inner_text("#updated")
    page.wait_for_function(f"() => document.querySelector('#updated').textContent !== {json.dumps(updated)}")
    expect(message).to_contain_text(f"retried as {new_id}")  # the confirmation outlives the next refresh
    expect(row).to_contain_text(f"retried as {new_id[:12]}")
    row.get_by_role("button", name="Retry again…").click()  # a second retry must be asked for, as such
    expect(page.locator("#action-dialog-title")).to_have_text("Retry again?")
    page.keyboard.press("Escape")
    page.click("#action-dismiss")
    expect(message).to_be_hidden()
    page.reload()  # the page learns from the API which runs were retried
    expect(page.locator("tr[data-severity='medium']")).to_contain_text(f"retried as {new_id[:12]}")
    assert Queue("b-stuck-retry", connection=connection).job_ids == [new_id]  # one copy, not one per click


def test_trends_page_draws_charts_of_the_recorded_data(page, server, connection, make_user):
    make_user("mod", Role.MODERATOR)
    now = time.time()
    for hours in range(1, 20):
        history.record_attempt(connection, "b-trend", "ok", 100 * hours, f"j{hours}", "f", ended_at=now - hours * 3600)
    history.record_attempt(connection, "b-trend", "fail", 50, "bad", "f", ended_at=now - 7200)
    sign_in(page, server, "mod")
    page.goto(f"{server}/admin/trends")
    loaded = "() => [...document.querySelectorAll('img.chart')].every(i => i.complete && i.naturalWidth > 0)"
    wait_for(lambda: page.evaluate(loaded), timeout=10)
    svg = page.request.get(server + page.locator("img.chart").first.get_attribute("src")).text()
    assert svg.count("<rect") > 19 and "completed" in svg and "<script" not in svg
    assert "19" in page.inner_text("section.trend")
    screenshot(page, "trends")


def test_streams_outlive_token_expiry_when_cut_the_page_polls_then_recovers(browser, connection, redis_url, make_user):
    make_user("adm", Role.ADMIN)
    port = free_port()
    # The server ends every stream when the 4-second access token expires: that is our server-side kill.
    server = start_gunicorn(redis_url, port, JWT_ACCESS_TOKEN_EXPIRES="4")
    context = browser.new_context()
    page = context.new_page()
    try:
        base = f"http://127.0.0.1:{port}"
        queue = Queue("b-poll", connection=connection)
        queue.enqueue("workers.tasks.noop")
        sign_in(page, base, "adm")
        expect(count_cell(page, "b-poll", "waiting")).to_have_text("1")
        page.evaluate(
            """() => { window.__statuses = []; const region = document.querySelector('#live-status');
                new MutationObserver(() => window.__statuses.push(region.textContent))
                  .observe(region, {childList: true, characterData: true, subtree: true}); }"""
        )
        time.sleep(9)  # two token expiries: each ended stream is renewed and reopened at once, no polling phase
        assert not any("polling" in text for text in page.evaluate("window.__statuses"))
        assert "Live" in page.inner_text("#live-status")

        page.route("**/api/v1/admin/jobs/live", lambda route: route.abort())  # the stream cannot come back
        page.wait_for_selector("#live-status:has-text('polling every 5 seconds')", timeout=15000)
        queue.enqueue("workers.tasks.noop")
        # One poll interval (5 s) plus a token refresh may pass before the next /metrics answer lands.
        expect(count_cell(page, "b-poll", "waiting")).to_have_text("2", timeout=12000)
        screenshot(page, "overview-polling")

        page.unroute("**/api/v1/admin/jobs/live")  # the stream is back: the next probe (every 15 s) finds it
        # to_have_text with a pattern is case-sensitive (":has-text('Live')" would match the polling message too)
        expect(page.locator("#live-status")).to_have_text(re.compile(r"^Live"), timeout=20000)
        queue.enqueue("workers.tasks.noop")
        expect(count_cell(page, "b-poll", "waiting")).to_have_text("3", timeout=5000)
    finally:
        context.close()
        stop_worker(server)


def test_every_page_is_offline_labelled_live_and_fits_375_px(page, server, connection, redis_url, make_user):
    make_user("adm", Role.ADMIN)
    queue = Queue("b-every", connection=connection)
    queue.enqueue_many([Queue.prepare_data("workers.tasks.noop") for _ in range(12_345)])
    job = queue.enqueue("workers.tasks.send_email", "a@b.c")
    queue.enqueue_in(timedelta(minutes=4, seconds=20), "workers.tasks.noop")
    make_active_job(connection, "b-every", 95, func=LONG_FUNCTION)  # a stuck run: 1 h 35 min
    for outcome in ("ok", "ok", "ok", "fail"):
        history.record_attempt(connection, "b-every", outcome, 1500, "j", "f")
    # a job whose first attempt failed and whose second completed: the error is history, not the outcome
    recovered = Queue("b-recovered", connection=connection).enqueue(
        "workers.tasks.flaky", key="b-recovered-runs", failures=1, retry=attempts.retry_for(2, None)
    )
    run_worker(redis_url, "b-recovered")
    assert recovered.get_status() == JobStatus.FINISHED
    outside: list[str] = []
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(server)
            else (outside.append(route.request.url), route.abort())
        ),
    )
    sign_in(page, server, "adm")
    expect(count_cell(page, "b-every", "waiting")).to_have_text("12,346")  # thousands separated
    expect(page.locator('tr[data-queue="b-every"]')).to_contain_text("75.00 %")
    page.set_viewport_size({"width": 375, "height": 800})
    unlabelled = """() => [...document.querySelectorAll('input, select, textarea')].filter((field) =>
        !(field.labels && field.labels.length) && !field.getAttribute('aria-label')).map((field) => field.outerHTML)"""
    for path, name in (
        ("/admin/", "overview"),
        ("/admin/queues/b-every", "queue"),
        (f"/admin/queues/b-every/jobs/{job.id}", "job"),
        (f"/admin/queues/b-recovered/jobs/{recovered.id}", "job-recovered"),
        ("/admin/alerts", "alerts"),
        ("/admin/trends", "trends"),
        ("/admin/queues/no-such-queue", "error-404"),
    ):
        response = page.goto(server + path)
        page.wait_for_load_state("networkidle")
        wide = """() => [...document.querySelectorAll('body *')]
            .filter((node) => node.getBoundingClientRect().right > 376)
            .map((node) => node.tagName + '#' + node.id + '.' + node.className)"""
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375, (path, page.evaluate(wide)[:8])
        assert page.evaluate(CELLS_OUT_OF_REACH) == [], path  # every column of every table, as card rows
        assert page.evaluate(unlabelled) == [], path
        assert page.locator("[aria-live]").count() >= 1, path
        assert page.locator("main h1, main h2").count() >= 1, path
        assert page.locator("nav[aria-label=Main]").is_visible(), path
        screenshot(page, f"375px-{name}")
        if name == "error-404":
            assert response.status == 404 and "Queue 'no-such-queue' does not exist" in page.inner_text("main")
    expect(page.locator("#error-title")).to_contain_text("Not found")
    page.goto(f"{server}/admin/alerts")
    expect(page.locator("#alerts-body")).to_contain_text("1 h 35 min")  # durations in words
    expect(page.get_by_role("button", name="Retry…")).to_be_in_viewport()
    page.goto(f"{server}/admin/trends")
    narrow = "() => [...document.querySelectorAll('img.chart')].map((img) => [img.currentSrc, img.naturalWidth])"
    wait_for(lambda: all(width for _src, width in page.evaluate(narrow)), timeout=10)
    assert all("size=narrow" in src and width == 360 for src, width in page.evaluate(narrow))  # drawn for phones
    page.goto(f"{server}/admin/queues/b-recovered/jobs/{recovered.id}")
    expect(page.locator("#job-error")).to_have_text(re.compile("^No error now. An earlier attempt failed"))
    assert page.eval_on_selector("#job-error", "node => getComputedStyle(node).color") == "rgb(82, 96, 109)"  # muted
    assert page.locator("details.history").count() == 1
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{server}/admin/queues/b-every")
    page.click("[role=tab][data-state=delayed]")
    expect(page.locator("#jobs-body time")).to_have_text(re.compile(r"^in [34] min$"))  # when it will run
    expect(page.locator("#when-column")).to_have_text("Runs")
    screenshot(page, "queue-delayed")
    assert outside == []  # every asset is served by the app: no CDN, works offline

"""Health and alert rules in real Chromium against gunicorn (its own ticker evaluates the rules): the navigation's
health badge on every page turns critical with the count of firing alerts, live, and back to healthy without a
reload; the Alerts page's Rules tab lists firing alerts (since, value, threshold) and recent resolutions; 1280 and
375 px screenshots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from rq import Queue

from app.domain.users import Role
from app.embedded_redis import free_port
from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_pages_in_chromium import CELLS_OUT_OF_REACH
from tests.helpers import start_gunicorn, stop_worker

QUEUE = "br-alerts.backlog"


EXTRA_RULE = f"""
[[rules]]
name = "backlog_critical"
kind = "queue_backlog"
severity = "critical"
threshold = 6
queues = ["{QUEUE}"]
"""


@pytest.fixture(scope="module")
def alerting_server(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    rules_file = tmp_path_factory.mktemp("alert-rules") / "rules.toml"
    rules_file.write_text(EXTRA_RULE)
    process = start_gunicorn(
        redis_server,
        port,
        LIVE_TICK_SECONDS="1",
        ALERT_QUEUE_BACKLOG="5",
        ALERT_QUEUE_BACKLOG_FOR="0",
        ALERT_NO_WORKERS_FOR="0",
        ALERT_RULES_FILE=str(rules_file),
    )
    yield f"http://127.0.0.1:{port}"
    stop_worker(process)


def test_health_badge_is_live_and_the_rules_tab_lists_firing_and_resolved(page, alerting_server, connection, make_user):
    make_user("mod", Role.MODERATOR)
    sign_in(page, alerting_server, "mod")
    badge = page.locator("#health-badge")
    expect(badge).to_have_attribute("data-status", "healthy", timeout=20000)
    expect(page.locator("#alerts-firing-count")).to_be_hidden()

    queue = Queue(QUEUE, connection=connection)
    for n in range(8):
        queue.enqueue("workers.tasks.add", n, 1)
    # No reload: the alerts stream brings the new status (no_workers and the extra backlog_critical are critical,
    # queue_backlog a warning).
    expect(badge).to_have_attribute("data-status", "critical", timeout=20000)
    expect(page.locator("#alerts-firing-count")).to_have_text("3")
    expect(page.locator("#health-text")).to_have_text("Critical")
    screenshot(page, "health-badge-critical")

    page.goto(f"{alerting_server}/admin/trends")  # every page has it
    expect(page.locator("#health-badge")).to_have_attribute("data-status", "critical", timeout=20000)

    page.goto(f"{alerting_server}/admin/alerts#rules")
    expect(page.locator("#tab-rules")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-stuck")).to_be_hidden()
    backlog = page.locator(f'#rules-firing-body tr[data-alert="queue_backlog:queue:{QUEUE}"]')
    expect(backlog).to_contain_text("8")  # the value
    expect(backlog).to_contain_text("5")  # the threshold
    expect(backlog).to_contain_text("ago")  # since, relative
    expect(page.locator(f'#rules-firing-body tr[data-alert="no_workers:queue:{QUEUE}"]')).to_contain_text("critical")
    extra = page.locator(f'#rules-firing-body tr[data-alert="backlog_critical:queue:{QUEUE}"]')
    expect(extra).to_contain_text("critical")
    expect(extra).to_contain_text("6")  # its own threshold
    in_force = page.locator('#rules-in-force tr[data-rule="backlog_critical"]')
    expect(in_force).to_contain_text("queue_backlog")
    expect(in_force).to_contain_text(QUEUE)
    expect(page.locator("#rules-in-force tbody tr")).to_have_count(13)
    screenshot(page, "alert-rules-1280px")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate(CELLS_OUT_OF_REACH) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    screenshot(page, "alert-rules-375px")

    queue.empty()  # the condition ends: resolved after one whole false tick, the badge follows live
    expect(page.locator("#health-badge")).to_have_attribute("data-status", "healthy", timeout=20000)
    expect(page.locator("#rules-firing-body")).to_contain_text("No alert is firing.", timeout=15000)
    expect(page.locator("#rules-recent-body")).to_contain_text("queue_backlog")
    expect(page.locator("#rules-recent-body")).to_contain_text("backlog_critical")
    page.click("#tab-stuck")
    expect(page.locator("#panel-rules")).to_be_hidden()
    expect(page.locator("#panel-stuck")).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 860})
    screenshot(page, "alert-rules-resolved")

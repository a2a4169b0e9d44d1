"""The Audit page in real headless Chromium: admins only (in the navigation and at the URL), filters, older
entries, readable at 1280 and 375 px."""

from __future__ import annotations

from playwright.sync_api import expect
from rq import Queue

from app.domain.users import Role
from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_pages_in_chromium import CELLS_OUT_OF_REACH


def test_admins_see_and_filter_the_audit_log(page, server, make_user, connection):
    make_user("auditor", Role.ADMIN)
    Queue("audit-emails", connection=connection).enqueue("workers.tasks.add", 1, 2)
    page.goto(f"{server}/admin/login")
    page.fill("#username", "auditor")
    page.fill("#password", "a-wrong-password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_be_visible()
    sign_in(page, server, "auditor")
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrf_access_token")
    paused = page.request.patch(f"{server}/api/v1/admin/jobs/queue/audit-emails/pause", headers={"X-CSRF-TOKEN": csrf})
    assert paused.status == 200

    page.click("nav >> text=Audit")
    page.wait_for_url(f"{server}/admin/audit")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Audit")
    rows = page.locator("#audit-table tbody tr")
    expect(rows.first).to_contain_text("queue.pause")
    expect(rows.first).to_contain_text("audit-emails")
    expect(page.locator("#audit-table")).to_contain_text("auth.login")
    assert "a-wrong-password" not in page.content()
    screenshot(page, "audit")

    page.fill("#audit-action", "auth")
    page.click(".audit-filters button[type=submit]")
    page.wait_for_url("**/admin/audit?*action=auth*")
    actions = page.locator("#audit-table tbody td[data-label=Action]").all_inner_texts()
    assert actions and all(action.startswith("auth.") for action in actions)
    statuses = page.locator("#audit-table tbody td[data-label=Status]").all_inner_texts()
    assert "401" in statuses and "200" in statuses  # the failed sign-in and the right one

    page.goto(f"{server}/admin/audit?limit=50&action=queue")
    page.set_viewport_size({"width": 375, "height": 800})
    expect(rows.first).to_contain_text("queue.pause")
    assert page.evaluate(CELLS_OUT_OF_REACH) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    screenshot(page, "audit-375px")

    bad = page.goto(f"{server}/admin/audit?before=yesterday")
    assert bad is not None and bad.status == 400
    expect(page.locator("h1")).to_contain_text("Bad request")


def test_moderators_have_no_audit_page(page, server, make_user):
    make_user("watcher", Role.MODERATOR)
    sign_in(page, server, "watcher")
    expect(page.locator("nav >> text=Audit")).to_have_count(0)
    response = page.goto(f"{server}/admin/audit")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_contain_text("Not allowed")

"""Signing in works before (or without) the page's script: the form itself posts, never a GET with the password."""

from __future__ import annotations

from playwright.sync_api import expect

from app.domain.users import Role
from tests.conftest import PASSWORD


def test_sign_in_with_script_disabled_posts_the_form_and_lands_on_the_page_asked_for(browser, server, make_user):
    make_user("noscript", Role.MODERATOR)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        requests: list[tuple[str, str]] = []
        page.on("request", lambda request: requests.append((request.method, request.url)))
        page.goto(f"{server}/admin/alerts")  # not signed in: sent to the login page, asking for the alerts
        assert page.url.startswith(f"{server}/admin/login?next=")
        page.fill("#username", "noscript")
        page.fill("#password", "not-the-password")
        page.press("#password", "Enter")
        expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
        page.fill("#username", "noscript")
        page.fill("#password", PASSWORD)
        page.press("#password", "Enter")
        page.wait_for_url(f"{server}/admin/alerts")
        assert "Sign in" not in page.inner_text("h1")
        assert not any("password" in url for _, url in requests)  # the password never went into a URL
        assert ("POST", f"{server}/admin/login") in requests
    finally:
        context.close()

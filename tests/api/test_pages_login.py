"""The login page's form works without script: a form-encoded POST /admin/login signs in (303 to `next`)."""

from __future__ import annotations

import re

import pytest

from app.domain.users import Role
from tests.api.test_auth import assert_error
from tests.conftest import PASSWORD


def post_form(client, username: str, password: str, next_url: str | None = "/admin/alerts", **kwargs):
    form = {"username": username, "password": password}
    if next_url is not None:
        form["next"] = next_url
    return client.post("/admin/login", data=form, **kwargs)


def set_cookies(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def test_the_form_posts_its_fields_never_a_get(client):
    """Regression: the form had no method, so Enter before the script ran sent the password in the URL."""
    html = client.get("/admin/login", query_string={"next": "/admin/trends"}).get_data(as_text=True)
    [form] = re.findall(r"<form[^>]*>", html)
    assert 'method="post"' in form and 'action="/admin/login"' in form
    assert '<input type="hidden" name="next" value="/admin/trends">' in html


def test_a_form_post_signs_in_and_goes_to_the_page_asked_for(client, make_user):
    """Regression: a form-encoded post was refused with 415 JSON, so sign-in needed the script."""
    make_user("fern", Role.MODERATOR)
    response = post_form(client, "fern", PASSWORD)
    assert response.status_code == 303 and response.headers["Location"] == "/admin/alerts"
    cookies = set_cookies(response)
    assert "HttpOnly" in cookies["access_token_cookie"] and "HttpOnly" in cookies["refresh_token_cookie"]
    assert "HttpOnly" not in cookies["csrf_access_token"]
    assert client.get("/admin/alerts").status_code == 200  # the cookies are a session


def test_the_scripts_json_post_still_signs_in(client, make_user):
    make_user("finn", Role.MODERATOR)
    response = client.post("/admin/login", json={"username": "finn", "password": PASSWORD})
    assert response.status_code == 200 and response.get_json() == {"success": True, "role": "moderator"}
    assert "access_token_cookie" in set_cookies(response)


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "https://evil.example/admin", "/\\evil.example", "/admin\\..\\x", "/admin/\r\nX-A: b", None],
)
def test_a_form_post_only_goes_back_to_this_app(client, make_user, target):
    make_user("flo", Role.MODERATOR)
    response = post_form(client, "flo", PASSWORD, next_url=target)
    assert response.status_code == 303 and response.headers["Location"] == "/admin/"


def test_a_wrong_password_shows_the_form_again_with_the_error(client, make_user):
    make_user("fay", Role.MODERATOR)
    response = post_form(client, "fay", "not-the-password")
    assert response.status_code == 401 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Wrong username or password." in html and 'id="login-form"' in html
    assert 'value="/admin/alerts"' in html  # the page asked for is kept for the next try
    assert not response.headers.getlist("Set-Cookie")
    assert client.get("/admin/alerts").status_code == 302  # not signed in


def test_an_empty_form_is_refused_on_the_page(client):
    response = post_form(client, "", "")
    assert response.status_code == 400 and "Enter your username and password." in response.get_data(as_text=True)


def test_a_throttled_form_post_says_how_long_to_wait(client, make_user):
    make_user("fitz", Role.MODERATOR)
    for _ in range(5):
        assert post_form(client, "fitz", "not-the-password").status_code == 401
    response = post_form(client, "fitz", PASSWORD)
    assert response.status_code == 429 and response.mimetype == "text/html"
    assert 0 < int(response.headers["Retry-After"]) <= 300
    assert re.search(r"try again in [1-5] minutes?", response.get_data(as_text=True))
    assert not response.headers.getlist("Set-Cookie")


def test_another_site_cannot_post_the_form(client, make_user):
    make_user("flynn", Role.MODERATOR)
    response = post_form(client, "flynn", PASSWORD, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and not response.headers.getlist("Set-Cookie")


def test_other_routes_still_refuse_form_bodies(client, auth):
    response = client.post("/api/v1/auth/logout", data={"a": "b"}, headers=auth("moderator"))
    assert_error(response, 415, "unsupported_media_type")

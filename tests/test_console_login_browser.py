"""The console's sign-in in a real browser: the form, a wrong password, the cookie no script can
read, keyboard use, and a 375 px wide phone screen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from browser_support import PASSWORD, browser, sign_in, snap
from servers import Server, running_server

__all__ = ["browser"]  # the fixture, imported for pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-login")
    with running_server({"VOICEBOOK_CONSOLE_PASSWORD": PASSWORD}, tmp) as running:
        yield running


def test_a_wrong_password_is_said_and_the_right_one_opens_the_console(
    browser: Browser, server: Server
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    expect(page.get_by_role("navigation", name="Console sections")).to_be_hidden()
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("VOICEBOOK_CONSOLE_PASSWORD")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    snap(page, "login-refused")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")  # the keyboard alone signs in
    nav = page.get_by_role("navigation", name="Console sections")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="Calls")).to_have_attribute("aria-current", "page")
    # The sign-in cookie is HttpOnly: the page's own scripts cannot read it.
    assert "voicebook_console" not in page.evaluate("document.cookie")
    assert any(c["name"] == "voicebook_console" for c in context.cookies())
    snap(page, "login-done")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    context.close()


def test_the_sign_in_fits_a_375_px_screen(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 720})
    page = context.new_page()
    sign_in(page, server.url)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 375px"
    snap(page, "login-375")
    context.close()

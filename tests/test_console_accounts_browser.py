"""A named account in a real browser (Chromium): the sign-in form takes a name, the header says
who is signed in, the shared password is refused with its sentence once accounts exist, and an
appointment the account cancels says so in its details."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from browser_support import PASSWORD, browser, snap
from calendar_support import API_KEY, ahead, book, clinic
from commands import voicebook

__all__ = ["browser"]  # the fixture, imported for pytest
SECRET = "maria's own console password"


def test_an_account_signs_in_and_its_cancel_names_it(
    browser: Browser,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    with clinic("sqlite", request, tmp_path_factory, hours="mon-sun 08:00-18:00") as site:
        added = voicebook(
            "operators", "add", "maria", "--password-stdin", cwd=tmp_path, stdin=SECRET,
            VOICEBOOK_DATABASE_URL=site.database_url, VOICEBOOK_API_KEY=API_KEY,
            VOICEBOOK_CONSOLE_PASSWORD=PASSWORD,
        )  # fmt: skip
        assert added.code == 0, added.text
        day = ahead(3)
        _, booked = book(site.url, day, "09:30", name="Cy")
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(site.url)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("sign in with your own name")
        page.get_by_label("Name").fill("maria")
        page.get_by_label("Password").fill(SECRET)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Signed in as maria")).to_be_visible()
        page.goto(f"{site.url}/#/calendar?date={day.isoformat()}&view=day")
        block = page.locator(f"section[aria-labelledby='cal-{day.isoformat()}-lee']").get_by_role(
            "button", name="Cy"
        )
        block.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Cancel appointment…").click()
        dialog.get_by_role("button", name="Cancel this appointment").click()
        expect(block).to_have_class("cal-appt cancelled")
        block.click()
        expect(dialog.locator("dt", has_text="Cancelled by")).to_be_visible()
        expect(dialog.locator("dd", has_text="maria (console)")).to_be_visible()
        snap(page, "account-cancel-1280")
        answer = page.request.get(f"{site.url}/console/api/calendar?date={day.isoformat()}")
        held = {a["id"]: a for a in answer.json()["appointments"]}[booked]
        assert (held["status"], held["changed_by_operator"]) == ("cancelled", "maria")
        context.close()

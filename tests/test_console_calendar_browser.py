"""The Calendar tab in a real browser (Chromium): the week by resource, the details of an
appointment opened from the keyboard, cancel and reschedule from the page (only offered times),
a refused move saying its sentence with nothing changed, the hour that happens twice when DST
ends told apart, and a 375 px wide phone screen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from browser_support import browser, sign_in, snap
from calendar_support import (
    API_KEY,
    ZONE,
    Clinic,
    ahead,
    book,
    clinic,
    local,
    new_phone,
    next_fall_back,
)
from voicebook.sdk import Client

__all__ = ["browser"]  # the fixture, imported for pytest


@pytest.fixture(scope="module")
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    with clinic("sqlite", request, tmp_path_factory, hours="mon-sun 08:00-18:00") as running:
        yield running


@pytest.fixture(scope="module")
def desk(browser: Browser, site: Clinic) -> Iterator[Page]:
    """One signed-in 1280 px page for the module (sign-ins are rate-limited per address)."""
    context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, site.url)
    yield page
    context.close()


def open_calendar(page: Page, site: Clinic, day: str, view: str = "day") -> None:
    page.goto(f"{site.url}/#/calendar?date={day}&view={view}")
    expect(page.get_by_role("heading", name="Calendar", exact=True)).to_be_visible()


def column(page: Page, day: str, resource: str) -> Locator:
    """The section of one resource on one day (named by its heading)."""
    return page.locator(f"section[aria-labelledby='cal-{day}-{resource}']")


def stored(page: Page, site: Clinic, day: str) -> dict[str, dict[str, Any]]:
    """The day's appointments by id, as the calendar API gives them to this signed-in page."""
    answer = page.request.get(f"{site.url}/console/api/calendar?date={day}")
    assert answer.ok, answer.text()
    return {a["id"]: a for a in answer.json()["appointments"]}


def test_the_week_shows_appointments_per_resource(desk: Page, site: Clinic) -> None:
    day = ahead(3)
    book(site.url, day, "09:00", name="Ada")
    book(site.url, day, "10:00", staff="patel", name="Ben")
    book(site.url, day, "12:30", staff="patel", service="treatment", name="Eve")
    open_calendar(desk, site, day.isoformat(), "week")
    iso = day.isoformat()
    expect(column(desk, iso, "lee").get_by_role("button", name="Ada")).to_be_visible()
    # Read as a list per resource and day, each appointment's time in its text.
    listed = column(desk, iso, "lee").get_by_role("list").get_by_role("listitem")
    expect(listed.get_by_role("button")).to_contain_text(["9:00 AM – 9:30 AM"])
    expect(column(desk, iso, "lee").get_by_role("button", name="Ben")).to_have_count(0)
    expect(column(desk, iso, "patel").get_by_role("button", name="Ben")).to_be_visible()
    # The treatment holds the room as well: it is in the room's column too.
    expect(column(desk, iso, "room-1").get_by_role("button", name="Eve")).to_be_visible()
    assert desk.locator("section.cal-col").count() == 7 * 3
    overflow = desk.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px (the grid has its own)"
    snap(desk, "calendar-week-1280")

    desk.get_by_label("Show").select_option("patel")
    expect(desk.locator("section.cal-col")).to_have_count(7)
    expect(column(desk, iso, "patel").get_by_role("button", name="Ben")).to_be_visible()
    desk.get_by_label("View").select_option("day")
    expect(desk.locator("section.cal-col")).to_have_count(1)
    desk.get_by_role("button", name="Next day").click()
    expect(column(desk, ahead(4).isoformat(), "patel")).to_be_visible()


def test_cancel_from_the_details_opened_with_the_keyboard(desk: Page, site: Clinic) -> None:
    day = ahead(5)
    _, booked = book(site.url, day, "09:30", name="Cy")
    open_calendar(desk, site, day.isoformat())
    block = column(desk, day.isoformat(), "lee").get_by_role("button", name="Cy")
    block.focus()
    desk.keyboard.press("Enter")
    dialog = desk.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Cut · Cy")).to_be_visible()
    expect(dialog).to_contain_text("***")
    expect(dialog.locator("dt", has_text="Booked by")).to_be_visible()
    expect(dialog.locator("dd", has_text="the caller")).to_be_visible()
    dialog.get_by_role("button", name="Cancel appointment…").click()
    dialog.get_by_label("Reason (optional)").fill("asked by text")
    snap(desk, "calendar-cancel-1280")
    dialog.get_by_role("button", name="Cancel this appointment").click()
    expect(dialog).to_be_hidden()
    expect(block).to_have_class("cal-appt cancelled")
    expect(block).to_be_focused()  # the keyboard is back where it was
    held = stored(desk, site, day.isoformat())[booked]
    assert (held["status"], held["cancel_reason"]) == ("cancelled", "asked by text")
    block.click()
    expect(dialog.get_by_role("button", name="Cancel appointment…")).to_have_count(0)
    expect(dialog.locator("dt", has_text="Cancelled by")).to_be_visible()
    expect(dialog.locator("dd", has_text="the business (console)")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()


def test_reschedule_to_an_offered_slot(desk: Page, site: Clinic) -> None:
    day = ahead(6)
    iso = day.isoformat()
    _, booked = book(site.url, day, "10:00", name="Dee")
    open_calendar(desk, site, iso)
    column(desk, iso, "lee").get_by_role("button", name="Dee").click()
    dialog = desk.get_by_role("dialog")
    dialog.get_by_role("button", name="Reschedule…").click()
    dialog.get_by_label("With").select_option("patel")
    slot = dialog.get_by_label("11:30 AM", exact=True)
    expect(slot).to_be_visible()
    slot.check()
    snap(desk, "calendar-reschedule-1280")
    dialog.get_by_role("button", name="Move appointment").click()
    expect(dialog).to_be_hidden()
    moved = column(desk, iso, "patel").get_by_role("button", name="Dee")
    expect(moved).to_contain_text("11:30")
    expect(column(desk, iso, "lee").get_by_role("button", name="Dee")).to_have_class(
        "cal-appt rescheduled"
    )
    snap(desk, "calendar-moved-1280")
    moved.click()
    expect(desk.get_by_role("dialog")).to_contain_text("10:00 AM")  # where it was moved from
    expect(desk.get_by_role("dialog").locator("dt", has_text="Moved by")).to_be_visible()
    desk.get_by_role("dialog").get_by_role("button", name="Close").click()
    after = stored(desk, site, iso)
    assert after[booked]["status"] == "rescheduled"
    new = next(a for a in after.values() if a["name"] == "Dee" and a["status"] == "confirmed")
    assert (new["resource"], new["start"]) == ("patel", local(day, "11:30"))


def test_a_refused_move_says_why_and_changes_nothing(desk: Page, site: Clinic) -> None:
    day = ahead(7)
    iso = day.isoformat()
    _, booked = book(site.url, day, "10:00", name="Flo")
    open_calendar(desk, site, iso)
    column(desk, iso, "lee").get_by_role("button", name="Flo").click()
    dialog = desk.get_by_role("dialog")
    dialog.get_by_role("button", name="Reschedule…").click()
    slot = dialog.get_by_label("2:00 PM", exact=True)
    expect(slot).to_be_visible()
    # Another caller takes 2:00 PM while the operator is choosing it.
    with Client(site.url, API_KEY) as vb:
        session = vb.start_session(phone=new_phone(), name="Gus").session_id
        vb.book_appointment(session, start=local(day, "14:00"), service="cut", staff="lee")
    slot.check()
    dialog.get_by_role("button", name="Move appointment").click()
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("already taken")
    expect(dialog.get_by_label("2:00 PM", exact=True)).to_have_count(0)  # no longer offered
    snap(desk, "calendar-refused-1280")
    assert stored(desk, site, iso)[booked]["status"] == "confirmed"
    dialog.get_by_role("button", name="Close").click()
    expect(column(desk, iso, "lee").get_by_role("button", name="Flo")).to_have_class(
        "cal-appt confirmed"
    )


def test_a_375_px_screen_stacks_the_day_without_sideways_scroll(
    browser: Browser, site: Clinic
) -> None:
    day = ahead(8)
    iso = day.isoformat()
    book(site.url, day, "09:00", name="Hal")
    book(site.url, day, "09:00", staff="patel", name="Ivy")
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    sign_in(page, site.url)
    open_calendar(page, site, iso)
    lee, patel = column(page, iso, "lee"), column(page, iso, "patel")
    expect(lee.get_by_role("button", name="Hal")).to_be_visible()
    expect(patel.get_by_role("button", name="Ivy")).to_be_visible()
    first, second = lee.bounding_box(), patel.bounding_box()
    assert first and second and second["y"] >= first["y"] + first["height"]  # stacked
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 375px"
    snap(page, "calendar-day-375")
    patel.get_by_role("button", name="Ivy").click()
    page.get_by_role("dialog").get_by_role("button", name="Reschedule…").click()
    expect(page.get_by_role("dialog").get_by_label("9:30 AM", exact=True)).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    snap(page, "calendar-dialog-375")
    page.get_by_role("dialog").get_by_role("button", name="Close").click()
    open_calendar(page, site, iso, "week")
    expect(lee.get_by_role("button", name="Hal")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    snap(page, "calendar-week-375")
    context.close()


def test_the_repeated_hour_when_dst_ends_names_its_zone(
    browser: Browser, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """1:30 AM happens twice on the day New York's clocks go back: the grid and the dialog say
    which ("1:30 AM EDT", "1:30 AM EST"), as the receptionist does; other times say no zone."""
    day = next_fall_back(ahead(1))
    iso = day.isoformat()
    first = datetime(day.year, day.month, day.day, 1, 30, tzinfo=ZONE)
    second = first.replace(fold=1)
    assert first.utcoffset() != second.utcoffset()
    with clinic("sqlite", request, tmp_path_factory) as night, Client(night.url, API_KEY) as vb:
        for name, start in (("Early", first), ("Later", second)):
            session = vb.start_session(phone=new_phone(), name=name).session_id
            vb.book_appointment(session, start=start.isoformat(), service="cut", staff="lee")
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        sign_in(page, night.url)
        open_calendar(page, night, iso)
        lee = column(page, iso, "lee")
        expect(lee.get_by_role("heading")).to_contain_text("Open all day")  # 25 hours, 00:00-24:00
        expect(lee.get_by_role("button", name="Early")).to_contain_text("1:30 AM EDT")
        expect(lee.get_by_role("button", name="Later")).to_contain_text("1:30 AM EST")
        # Ends too: 2:00 AM EDT is the instant of 1:00 AM EST, and 2:00 AM EST happens once.
        expect(lee.get_by_role("button", name="Early")).to_contain_text("– 1:00 AM EST")
        expect(lee.get_by_role("button", name="Later")).to_contain_text("– 2:00 AM")
        expect(lee.get_by_role("button", name="Later")).not_to_contain_text("2:00 AM E")
        # Both in sight: side by side, neither drawn under the other nor ending before it starts.
        early = lee.get_by_role("button", name="Early").bounding_box()
        later = lee.get_by_role("button", name="Later").bounding_box()
        assert early and later and early["height"] > 0
        assert (
            early["x"] + early["width"] <= later["x"] or later["x"] + later["width"] <= early["x"]
        )
        snap(page, "calendar-fall-back-1280")
        lee.get_by_role("button", name="Later").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Reschedule…").click()
        expect(dialog.get_by_label("1:00 AM EDT", exact=True)).to_be_visible()
        expect(dialog.get_by_label("1:00 AM EST", exact=True)).to_be_visible()
        expect(dialog.get_by_label("3:00 AM", exact=True)).to_be_visible()
        context.close()


def test_book_for_a_caller_from_the_toolbar(desk: Page, site: Clinic) -> None:
    """Book… asks for the number first; a number it cannot read is said and books nothing; a
    free time of the chosen service books it, and it shows in its column."""
    day = ahead(9)
    iso = day.isoformat()
    open_calendar(desk, site, iso)
    desk.get_by_role("button", name="Book…").click()
    dialog = desk.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Book an appointment")).to_be_visible()
    expect(dialog.get_by_label("Caller's phone")).to_be_focused()
    # exact: the free times offered for "Anyone" say "… with Dr. Lee" in their labels
    dialog.get_by_label("Service", exact=True).select_option("cut")
    dialog.get_by_label("With", exact=True).select_option("patel")
    slot = dialog.get_by_label("11:00 AM", exact=True)
    expect(slot).to_be_visible()
    dialog.get_by_label("Caller's phone").fill("12")
    dialog.get_by_label("Name (optional)").fill("Walk In")
    slot.check()
    dialog.get_by_role("button", name="Book appointment").click()
    expect(dialog.get_by_role("alert")).to_contain_text("phone number")
    expect(dialog.get_by_label("Caller's phone")).to_have_attribute("aria-invalid", "true")
    assert not [a for a in stored(desk, site, iso).values() if a["name"] == "Walk In"]
    dialog.get_by_label("Caller's phone").fill(new_phone())
    snap(desk, "calendar-book-1280")
    dialog.get_by_role("button", name="Book appointment").click()
    expect(dialog).to_be_hidden()
    block = column(desk, iso, "patel").get_by_role("button", name="Walk In")
    expect(block).to_be_visible()
    expect(block).to_contain_text("11:00 AM")
    expect(block).to_be_focused()
    (made,) = [a for a in stored(desk, site, iso).values() if a["name"] == "Walk In"]
    assert (made["resource"], made["start"], made["changed_by"]) == (
        "patel",
        local(day, "11:00"),
        "operator",
    )

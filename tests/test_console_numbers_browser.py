"""The Numbers tab in a real browser: calls, bookings and failures made through the real API show
as the right bars, with the same figures in each chart's table; the window picker redraws; the
charts fit a 375 px wide phone screen; and the page's strict policy refuses nothing it draws."""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect

from browser_support import PASSWORD, browser, sign_in, snap
from servers import Server, running_server

__all__ = ["browser"]  # the fixture, imported for pytest

SERVICE_KEY = "numbers-browser-service-key"


def seed(url: str) -> None:
    """Three calls today through the API: one books twice, cancels the second and hangs up after
    90 s of speech (priced at $1 a minute), one is refused three times (two wrong numbers, a
    booking before identifying), one is still open."""
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    with httpx.Client(base_url=url, timeout=10, headers=headers) as client:

        def tool(name: str, session_id: str, /, **args: Any) -> httpx.Response:
            return client.post(
                f"/tools/{name}",
                json={"session_id": session_id, **args},
                headers={"Idempotency-Key": secrets.token_hex(8)},
            )

        def start() -> str:
            return str(client.post("/session/start").json()["session_id"])

        booker = start()
        assert tool("identify_user", booker, phone="+12125550142", name="Ada").status_code == 200
        first, second = tool("fetch_slots", booker).json()["slots"][:2]
        assert tool("book_appointment", booker, slot_id=first["slot_id"]).status_code == 200
        dropped = tool("book_appointment", booker, slot_id=second["slot_id"])
        assert dropped.status_code == 200
        cancelled = tool(
            "cancel_appointment", booker, appointment_id=dropped.json()["appointment"]["id"]
        )
        assert cancelled.status_code == 200
        report = {"session_id": booker, "usage": {"stt_seconds": 90}, "hangup": True}
        assert client.post("/agent/report", json=report).status_code == 200

        refused = start()
        for phone in ("12", "34"):
            assert tool("identify_user", refused, phone=phone).status_code == 422
        booking = tool("book_appointment", refused, start="2030-01-07T15:00:00Z")
        assert booking.status_code == 409
        start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-numbers")
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp / 'voicebook.db'}",
        "VOICEBOOK_CONSOLE_PASSWORD": PASSWORD,
        "VOICEBOOK_API_KEY": SERVICE_KEY,
        "VOICEBOOK_HOURS": "mon-sun 09:00-17:00",
        "VOICEBOOK_PRICE_STT_PER_MINUTE": "1",
    }
    with running_server(env, tmp) as running:
        seed(running.url)
        yield running


def opened(browser: Browser, server: Server, width: int, days: int) -> tuple[Page, list[str]]:
    """A signed-in page on the Numbers tab; the list collects policy refusals and page errors."""
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in(page, server.url)
    page.goto(f"{server.url}/#/numbers?days={days}")
    return page, problems


def chart(page: Page, caption: str) -> Locator:
    return page.locator("figure").filter(has=page.locator("figcaption", has_text=caption))


def table_rows(figure: Locator) -> list[list[str]]:
    figure.get_by_text("Show the numbers").click()
    rows = figure.locator("tbody tr")
    expect(rows.first).to_be_visible()
    return [
        [cell.strip() for cell in rows.nth(i).locator("th, td").all_inner_texts()]
        for i in range(rows.count())
    ]


def test_the_charts_show_what_the_api_counted(browser: Browser, server: Server) -> None:
    page, problems = opened(browser, server, 1280, 7)
    api = page.request.get(f"{server.url}/console/api/numbers?days=7").json()
    today = api["per_day"][-1]
    assert (today["calls"], today["bookings"], today["cancellations"]) == (3, 2, 1)
    assert api["totals"]["failures"] == 3

    activity = chart(page, "Calls, bookings and cancellations per day")
    image = activity.get_by_role("img")
    label = re.compile(r"3 calls, 2 bookings and 1 cancellation in all")
    expect(image).to_have_attribute("aria-label", label)
    for series in ("calls", "bookings", "cancellations"):
        expect(image.locator(f"rect.bar.{series}")).to_have_count(7)
    cancellations = image.locator("rect.bar.cancellations title").all_text_contents()
    assert cancellations[-1].endswith(": 1 cancellation")
    calls = image.locator("rect.bar.calls title").all_text_contents()
    assert [int(re.findall(r"(\d+) calls?$", t)[0]) for t in calls] == [
        d["calls"] for d in api["per_day"]
    ]
    heights = [
        float(h)
        for h in image.locator("rect.bar.calls").evaluate_all(
            "bars => bars.map(b => b.getAttribute('height'))"
        )
    ]
    assert heights[-1] > 0 and heights[:-1] == [0.0] * 6
    days = image.locator("text.day")
    expect(days).to_have_count(7)  # room for every day's label at this width
    assert len(set(days.all_text_contents())) == 7
    rows = table_rows(activity)
    assert [[int(c) for c in row[1:]] for row in rows] == [
        [d["calls"], d["bookings"], d["moves"], d["cancellations"]] for d in api["per_day"]
    ]

    cost = chart(page, "Cost per call per day").get_by_role("img")
    expect(cost.locator("circle.dot")).to_have_count(1)  # only today has an ended call
    expect(cost.locator("circle.dot title")).to_have_text(re.compile(r"\$1\.50"))

    failures = chart(page, "Tool failures by code")
    bars = failures.get_by_role("img")
    expect(bars.locator("rect.bar.failure")).to_have_count(2)
    expect(bars.locator("text.name")).to_have_text(["invalid_phone", "not_identified"])
    expect(bars.locator("text.count")).to_have_text(["2", "1"])
    assert [row[:2] for row in table_rows(failures)] == [
        ["invalid_phone", "2"],
        ["not_identified", "1"],
    ]

    total = page.locator(".numbers-total").filter(
        has=page.locator("dt", has_text=re.compile("^Calls$"))
    )
    expect(total.locator(".numbers-value")).to_have_text("3")
    costliest = page.locator(".numbers-costliest tbody tr")
    expect(costliest).to_have_count(1)
    expect(costliest.get_by_role("link")).to_have_attribute("href", re.compile(r"^#/calls/"))
    snap(page, "numbers-1280")

    page.get_by_role("navigation", name="Days shown").get_by_role("link", name="30 days").click()
    expect(page.get_by_role("link", name="30 days")).to_have_attribute("aria-current", "true")
    expect(activity.get_by_role("img").locator("rect.bar.calls")).to_have_count(30)
    assert problems == [], problems
    page.context.close()


def test_the_charts_fit_a_375_px_screen(browser: Browser, server: Server) -> None:
    page, problems = opened(browser, server, 375, 90)
    activity = chart(page, "Calls, bookings and cancellations per day").get_by_role("img")
    expect(activity.locator("rect.bar.calls")).to_have_count(90)
    for figure in page.locator("figure svg").all():
        box = figure.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 375px"
    labels = activity.locator("text.day").evaluate_all(
        "ticks => ticks.map(t => [t.getBoundingClientRect().left, t.getBoundingClientRect().right])"
    )
    names = activity.locator("text.day").evaluate_all(
        "ticks => ticks.map(t => [t.getBoundingClientRect().left, t.textContent])"
    )
    today = activity.locator("rect.bar.calls title").last.text_content() or ""
    assert max(names)[1] == today.split(":")[0], "the last day is the one labelled at the right"
    assert 2 <= len(labels) < 90  # a label for some of the days, not a smudge of 90
    assert all(left >= 0 and right <= 375 for left, right in labels), labels
    ordered = sorted(labels)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ordered)), f"labels overlap: {labels}"
    snap(page, "numbers-375")
    assert problems == [], problems
    page.context.close()

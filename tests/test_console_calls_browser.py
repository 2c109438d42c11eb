"""The Calls tab in a real browser (Chromium): the list (newest first, live calls marked, updating
itself), one call's page, a tool call made over HTTP while it is open appearing live, a refused
booking shown as failed with its code and sentence, and both pages at 375 px wide."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from browser_support import PASSWORD, browser, sign_in, snap
from calls_support import PHONE, RAW_PHONE_FORMS, SERVER_ENV, Agent
from servers import Server, running_server
from tcp_proxy import TcpProxy

__all__ = ["browser"]  # the fixture, imported for pytest

PAGE = 50
"""Calls on one page of the list (calls.js)."""
LIVE_MS = 15_000
"""How long a live update may take to show (the list reads itself every few seconds)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-calls")
    env = {
        **SERVER_ENV,
        "VOICEBOOK_CONSOLE_PASSWORD": PASSWORD,
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp / 'voicebook.db'}",
    }
    with running_server(env, tmp) as running:
        yield running


@pytest.fixture(scope="module")
def agent(server: Server) -> Iterator[Agent]:
    made = Agent(server.url)
    yield made
    made.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()


def signed_in_page(context: BrowserContext, server: Server) -> Page:
    page = context.new_page()
    sign_in(page, server.url)
    return page


def wait_until(page: Page, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Whether `condition` came true within `timeout_s`, asked again every 50 ms."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(50)
    return True


def open_websockets(agent: Agent) -> float:
    """The server's gauge of open session WebSockets (/metrics, with the service key)."""
    metrics = agent.http.get("/metrics").text
    found = re.search(r"^voicebook_websockets_open(?:\{[^}]*\})? (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_list_shows_calls_newest_first_and_opens_one(
    context: BrowserContext, server: Server, agent: Agent
) -> None:
    ended = agent.start(PHONE, "Grace")
    agent.book(ended, agent.first_slot(ended))
    agent.end(ended)
    live = agent.start(PHONE)
    page = signed_in_page(context, server)
    expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    rows = page.locator("table.calls-table tbody tr")
    expect(rows.first).to_have_attribute("data-session", live)
    expect(rows.first.locator(".badge.live")).to_be_visible()
    ended_row = page.locator(f'tr[data-session="{ended}"]')
    expect(ended_row).to_contain_text("***0188 (Grace)")
    expect(ended_row).to_contain_text("booked 1")
    text = page.locator("main").inner_text()
    for raw in RAW_PHONE_FORMS:
        assert raw not in text
    snap(page, "calls-list-1280")

    ended_row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"#/calls/{ended}$"))
    expect(page.get_by_role("heading", name=f"Call {ended[:6]}…")).to_be_visible()
    summary = page.get_by_role("region", name="Summary")
    expect(summary).to_be_visible()
    expect(summary.get_by_role("table", name="Cost")).to_be_visible()
    expect(page.get_by_role("article", name="book appointment: completed")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="ended")).to_be_visible()
    snap(page, "calls-ended-1280")


def test_the_list_updates_itself_while_it_is_open(
    context: BrowserContext, server: Server, agent: Agent
) -> None:
    earlier = agent.start()
    page = signed_in_page(context, server)
    focused = page.locator(f'tr[data-session="{earlier}"]').get_by_role("link")
    focused.focus()  # a keyboard user resting on a row keeps their place while the list updates
    started = agent.start()
    row = page.locator(f'tr[data-session="{started}"]')
    expect(row).to_be_visible(timeout=LIVE_MS)
    expect(focused).to_be_focused()
    expect(row.locator(".badge.live")).to_be_visible()
    agent.end(started)
    expect(row.locator(".badge.live")).to_have_count(0, timeout=LIVE_MS)


def test_older_calls_come_a_page_at_a_time(
    context: BrowserContext, server: Server, agent: Agent
) -> None:
    oldest = agent.start()
    for _ in range(PAGE):  # one page of newer calls pushes it to the next
        agent.start()
    page = signed_in_page(context, server)
    rows = page.locator("table.calls-table tbody tr")
    expect(rows).to_have_count(PAGE)
    expect(page.locator(f'tr[data-session="{oldest}"]')).to_have_count(0)
    page.get_by_role("button", name="Show older calls").click()
    expect(page.locator(f'tr[data-session="{oldest}"]')).to_be_visible()
    sessions = rows.evaluate_all("rows => rows.map(r => r.dataset.session)")
    assert len(sessions) == len(set(sessions)) > PAGE


def test_a_search_by_the_callers_digits_and_state_narrows_the_list(
    context: BrowserContext, server: Server, agent: Agent
) -> None:
    """The operator types the last digits the caller gave: only that number's calls stay,
    newest first; "Ended" narrows them further; a single digit waits for more; clearing the
    box brings every call back."""
    earlier = agent.start("(415) 555-0161", "Lin")
    agent.end(earlier)
    later = agent.start("(415) 555-0161")
    stranger = agent.start("(212) 555-0199")
    page = signed_in_page(context, server)
    rows = page.locator("table.calls-table tbody tr")
    expect(page.locator(f'tr[data-session="{stranger}"]')).to_be_visible()

    box = page.get_by_label("Caller's number ends with")
    box.fill("0")
    expect(page.get_by_role("status").filter(has_text="at least two digits")).to_be_visible()
    box.fill("555 0161")
    expect(rows).to_have_count(2, timeout=LIVE_MS)
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.session)") == [later, earlier]
    page.get_by_label("Show").select_option("ended")
    expect(rows).to_have_count(1, timeout=LIVE_MS)
    expect(rows.first).to_have_attribute("data-session", earlier)
    expect(rows.first).to_contain_text("***0161 (Lin)")
    snap(page, "calls-search-1280")

    box.fill("0000009")
    expect(page.get_by_text("No calls match this search.")).to_be_visible(timeout=LIVE_MS)
    box.fill("")
    page.get_by_label("Show").select_option("")
    expect(page.locator(f'tr[data-session="{stranger}"]')).to_be_visible(timeout=LIVE_MS)


def test_a_calls_events_appear_live_and_a_refused_booking_shows_as_failed(
    context: BrowserContext, server: Server, agent: Agent
) -> None:
    holder, caller = agent.start(PHONE), agent.start()
    slot = agent.first_slot(holder)
    assert agent.book(holder, slot).status_code == 200
    page = signed_in_page(context, server)
    page.goto(f"{server.url}/#/calls/{caller}")
    expect(page.get_by_role("heading", name=f"Call {caller[:6]}…")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="live")).to_be_visible()
    announcer = page.locator("[aria-live='polite'].sr-only")

    assert agent.tool("identify_user", caller, phone="212 555 0147", name="Lin").status_code == 200
    identified = page.get_by_role("article", name="identify user: completed")
    expect(identified).to_be_visible()
    expect(announcer).to_contain_text("identify user")
    for raw in ("2125550147", "555-0147", "555 0147"):
        assert raw not in identified.inner_text()  # the phone argument is masked
    expect(page.locator(".call-facts")).to_contain_text("***0147 (Lin)")

    refused = agent.book(caller, slot)
    assert refused.status_code == 409
    error = refused.json()["error"]
    card = page.get_by_role("article", name="book appointment: failed")
    expect(card).to_be_visible()
    expect(card).to_have_class(re.compile(r"\bfailed\b"))
    expect(card.locator(".badge.failed")).to_have_text("failed")
    expect(card.locator(".tool-refusal code")).to_have_text(error["code"])
    expect(card.locator(".tool-refusal")).to_contain_text(error["message"])
    expect(announcer).to_contain_text("slot_taken")
    failures = page.locator(".call-facts div").filter(has=page.locator("dt", has_text="Failed"))
    expect(failures.locator("dd")).to_have_text("1")  # the header follows the timeline

    agent.say(caller, "agent", "That time was just taken; shall I offer another?")
    line = page.locator(".line-agent").last
    expect(line).to_contain_text("That time was just taken; shall I offer another?")
    snap(page, "calls-live-1280")

    agent.end(caller)
    expect(page.get_by_role("region", name="Summary")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="ended")).to_be_visible()
    ids = page.locator("ol.timeline > li").evaluate_all("items => items.map(i => i.dataset.event)")
    assert len(ids) == len(set(ids)), "an event was shown twice"


def test_leaving_a_live_call_closes_its_socket(
    context: BrowserContext, server: Server, agent: Agent
) -> None:
    session_id = agent.start()
    page = signed_in_page(context, server)
    page.goto(f"{server.url}/#/calls/{session_id}")
    expect(page.get_by_role("status").filter(has_text="live")).to_be_visible()
    assert wait_until(page, lambda: open_websockets(agent) == 1), "the page opened no socket"
    page.get_by_role("link", name="← All calls").click()
    expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    assert wait_until(page, lambda: open_websockets(agent) == 0), "the socket stayed open"


def test_a_dropped_socket_resumes_after_the_last_event_with_nothing_lost_or_twice(
    context: BrowserContext, server: Server, agent: Agent
) -> None:
    session_id = agent.start()
    with TcpProxy("127.0.0.1", server.port) as proxy:  # the page reaches the server through it
        page = context.new_page()
        sign_in(page, f"http://127.0.0.1:{proxy.port}")
        page.goto(f"http://127.0.0.1:{proxy.port}/#/calls/{session_id}")
        following = page.locator(".call-following")
        expect(following).to_have_text("Following this call live.")
        assert wait_until(page, lambda: open_websockets(agent) == 1), "the page opened no socket"
        proxy.cut()  # the network goes: the socket drops and reconnecting is refused
        expect(following).to_have_text("Reconnecting…")
        agent.say(session_id, "user", "Said while the console was cut off.")
        proxy.restore()
        expect(page.locator(".line-user")).to_contain_text("Said while the console was cut off.")
        expect(following).to_have_text("Following this call live.")
        agent.say(session_id, "agent", "Said after it came back.")
        expect(page.locator(".line-agent")).to_contain_text("Said after it came back.")
        ids = page.locator("ol.timeline > li").evaluate_all(
            "items => items.map(i => i.dataset.event)"
        )
        assert ids == [str(n) for n in range(1, len(ids) + 1)] and len(ids) == 3


def test_the_list_and_a_call_fit_a_375_px_screen(
    browser: Browser, server: Server, agent: Agent
) -> None:
    session_id = agent.start(PHONE, "Margaret Hamilton-Lovelace")
    agent.tool("fetch_slots", session_id, limit=2)
    agent.book(session_id, "not-a-slot-id-but-a-very-long-string-that-could-push-the-width")
    narrow = browser.new_context(viewport={"width": 375, "height": 740})
    try:
        page = narrow.new_page()
        sign_in(page, server.url)
        expect(page.locator(f'tr[data-session="{session_id}"]')).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the list scrolls sideways by {overflow}px at 375px"
        snap(page, "calls-list-375")
        page.locator(f'tr[data-session="{session_id}"]').get_by_role("link").click()
        expect(page.get_by_role("article", name="book appointment: failed")).to_be_visible()
        page.locator(".tool-answer summary").first.click()  # an opened answer must fit too
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the call scrolls sideways by {overflow}px at 375px"
        snap(page, "calls-call-375")
    finally:
        narrow.close()

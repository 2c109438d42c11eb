"""The Try-it tab in a real browser: talk to the (scripted) receptionist, see its answers and
its tool calls as cards marked ok or failed, end the conversation and read the summary; the
unavailable state names the variable to set; everything fits a 375 px screen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from agent_support import ASK, BOOKING_RULES, IDENTIFY, require_agent_extra
from browser_support import PASSWORD, browser, sign_in, snap
from scripted_llm import ScriptedServer, scripted_llm
from servers import Server, running_server
from voicebook.sdk import Client

__all__ = ["browser"]  # the fixture, imported for pytest

require_agent_extra()

WRONG_SLOT = "Book the slot called nowhere, please."
OFFER = "The first free time is the one I found. Shall I book it?"
FIRST_GREETING_MS = 60_000
"""The server imports the agent (livekit-agents) when its first conversation starts."""


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedServer]:
    rules = {
        **BOOKING_RULES,
        WRONG_SLOT: [
            {"call": "book_appointment", "args": {"slot_id": "nowhere"}},
            {"say": "I could not book that one."},
        ],
    }
    with scripted_llm(rules) as running:
        yield running


def start_server(tmp: Path, llm: dict[str, str]) -> Iterator[Server]:
    env = {
        "VOICEBOOK_CONSOLE_PASSWORD": PASSWORD,
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp / 'voicebook.db'}",
        **llm,
    }
    return running_server(env, tmp)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model: ScriptedServer) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("try-browser"), model.env()) as running:
        yield running


def open_try(page: Page, url: str) -> None:
    sign_in(page, url)
    tabs = page.get_by_role("navigation", name="Console sections")
    tabs.get_by_role("link", name="Try it").click()


def send(page: Page, text: str) -> None:
    """Type a line and send it with Enter, as an operator at a keyboard does."""
    box = page.get_by_label("Your message")
    expect(box).to_be_enabled(timeout=FIRST_GREETING_MS)
    box.fill(text)
    box.press("Enter")


def test_talk_to_the_receptionist_and_end_with_the_summary(
    browser: Browser, server: Server
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    open_try(page, server.url)
    conversation = page.get_by_role("log", name="Conversation with the receptionist")
    expect(conversation).to_have_attribute("aria-live", "polite")
    greeting = conversation.locator(".try-line.agent")
    expect(greeting).to_have_count(1, timeout=FIRST_GREETING_MS)
    calls_link = page.get_by_role("link", name="this call in the Calls tab")
    expect(calls_link).to_have_attribute("href", re.compile(r"^#/calls/[A-Za-z0-9_-]{16,}$"))
    session_link = calls_link.get_attribute("href")

    send(page, IDENTIFY)
    identify = conversation.get_by_role("group", name="Tool call identify_user, ok")
    expect(identify).to_be_visible()
    expect(identify).not_to_contain_text("415 555 0101")  # the number is masked
    send(page, ASK)
    expect(conversation.get_by_text(OFFER)).to_be_visible()
    expect(conversation.get_by_role("group", name="Tool call fetch_slots, ok")).to_be_visible()
    expect(conversation.get_by_text(ASK)).to_be_visible()  # the operator's own line
    send(page, WRONG_SLOT)
    refused = conversation.get_by_role("group", name="Tool call book_appointment, failed")
    expect(refused).to_be_visible()
    expect(refused.locator(".badge.failed")).to_be_visible()
    snap(page, "try-conversation-1280")

    page.get_by_role("button", name="End conversation").click()
    summary = page.get_by_role("region", name="Summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("$")  # the cost
    expect(summary).not_to_contain_text("null")  # nothing missing is written as "null"
    expect(summary.get_by_role("link", name="Open this call in the Calls tab")).to_have_attribute(
        "href", session_link
    )
    expect(page.get_by_label("Your message")).to_be_disabled()
    snap(page, "try-summary-1280")

    page.get_by_role("button", name="Start a new conversation").click()
    expect(page.get_by_role("log").locator(".try-line.agent")).to_have_count(1)
    expect(page.get_by_role("region", name="Summary")).to_be_hidden()
    context.close()


def test_the_conversation_fits_a_375_px_screen(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    open_try(page, server.url)
    send(page, IDENTIFY)
    expect(page.get_by_role("group", name="Tool call identify_user, ok")).to_be_visible()
    send(page, ASK)
    expect(page.get_by_role("group", name="Tool call fetch_slots, ok")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 375px"
    snap(page, "try-conversation-375")
    page.get_by_role("button", name="End conversation").click()
    expect(page.get_by_role("region", name="Summary")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the summary scrolls sideways by {overflow}px at 375px"
    snap(page, "try-summary-375")
    context.close()


def test_leaving_the_tab_hangs_up(browser: Browser, server: Server) -> None:
    context = browser.new_context()
    page = context.new_page()
    open_try(page, server.url)
    calls_link = page.get_by_role("link", name="this call in the Calls tab")
    expect(calls_link).to_be_visible(timeout=FIRST_GREETING_MS)
    session_id = (calls_link.get_attribute("href") or "").removeprefix("#/calls/")
    page.get_by_role("navigation", name="Console sections").get_by_role(
        "link", name="Calls"
    ).click()
    # The tab closed its socket: the server ended the call and summarised it.
    with Client(server.url) as client, client.stream_events(session_id) as events:
        kinds = [event.type for event in events]  # ends after session_closed
    assert "summary" in kinds and kinds[-1] == "session_closed"
    context.close()


def test_without_a_model_the_tab_names_the_variable(browser: Browser, tmp_path: Path) -> None:
    with start_server(tmp_path, {}) as bare:
        context = browser.new_context(viewport={"width": 375, "height": 740})
        page = context.new_page()
        open_try(page, bare.url)
        card = page.get_by_role("region", name="Try it is not available on this server")
        expect(card).to_contain_text("OPENROUTER_API_KEY")
        expect(page.get_by_label("Your message")).to_have_count(0)
        snap(page, "try-unavailable-375")
        context.close()

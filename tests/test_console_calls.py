"""The Calls tab's JSON over real HTTP, on SQLite and on Postgres: the list of calls (newest
first, keyset-paged, phones masked, outcome, cost and counts) and one call's timeline (every
event, a refused tool call with its code and sentence), behind the operator's sign-in."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend_servers import BACKENDS, server_on
from calls_support import PHONE, RAW_PHONE_FORMS, SERVER_ENV, Agent
from servers import Server
from voicebook.server.console.auth import CSRF_HEADER

PASSWORD = "calls-tab-console-password"
USAGE = {"llm_input_tokens": 12_000.0, "llm_output_tokens": 800.0, "stt_seconds": 90.0}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {**SERVER_ENV, "VOICEBOOK_CONSOLE_PASSWORD": PASSWORD}
    with server_on(request.param, env, request, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def operator(server: Server) -> Iterator[httpx.Client]:
    """A client signed in to the console, as the page is after its sign-in form."""
    client = httpx.Client(base_url=server.url, timeout=15)
    client.get("/")
    token = client.get("/console/api/me").json()["csrf_token"]
    answer = client.post(
        "/console/api/login", json={"password": PASSWORD}, headers={CSRF_HEADER: token}
    )
    assert answer.status_code == 204, answer.text
    yield client
    client.close()


@pytest.fixture(scope="module")
def agent(server: Server) -> Iterator[Agent]:
    made = Agent(server.url)
    yield made
    made.close()


def test_nothing_answers_without_the_sign_in(server: Server, agent: Agent) -> None:
    session_id = agent.start()
    for path in ("/console/api/calls", f"/console/api/calls/{session_id}"):
        answer = httpx.get(f"{server.url}{path}", timeout=15)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "sign_in_required"


def test_calls_are_listed_newest_first_a_page_at_a_time_with_phones_masked(
    operator: httpx.Client, agent: Agent
) -> None:
    started = [agent.start(PHONE, "Ada"), agent.start(), agent.start(PHONE)]
    first = operator.get("/console/api/calls", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [c["session_id"] for c in page["calls"]] == started[::-1][:2]
    assert page["next_before"]
    second = operator.get("/console/api/calls", params={"limit": 2, "before": page["next_before"]})
    assert second.status_code == 200, second.text
    assert second.json()["calls"][0]["session_id"] == started[0]
    newest, anonymous = page["calls"]
    assert newest["caller"]["phone_masked"] == "***0188"
    assert newest["identity_level"] == "trusted"
    assert anonymous["caller"] is None
    assert second.json()["calls"][0]["caller"]["name"] == "Ada"
    assert all(c["live"] and c["outcome"]["kind"] == "live" for c in page["calls"])
    for raw in RAW_PHONE_FORMS:
        assert raw not in first.text and raw not in second.text


def test_a_page_started_from_a_cursor_skips_and_repeats_nothing_as_calls_start(
    operator: httpx.Client, agent: Agent
) -> None:
    older = [agent.start() for _ in range(3)]
    page = operator.get("/console/api/calls", params={"limit": 1}).json()
    assert page["calls"][0]["session_id"] == older[-1]
    agent.start()  # a new call between two pages shifts nothing in the older ones
    rest = operator.get("/console/api/calls", params={"limit": 2, "before": page["next_before"]})
    assert [c["session_id"] for c in rest.json()["calls"]] == older[1::-1]


def test_calls_are_found_by_the_callers_last_digits_and_by_state(
    operator: httpx.Client, agent: Agent
) -> None:
    """The operator types the digits the caller gave (any spacing): the calls whose caller's
    number ends so, newest first, paged within the search, alone or with live/ended."""
    first = agent.start("(415) 555-0143")
    other = agent.start("(212) 555-0176")
    last = agent.start("(415) 555-0143")
    agent.end(first)

    def found(**params: str) -> list[str]:
        answer = operator.get("/console/api/calls", params=params)
        assert answer.status_code == 200, answer.text
        return [c["session_id"] for c in answer.json()["calls"]]

    assert found(caller="0143") == [last, first]
    assert found(caller="415 555-0143") == [last, first]
    assert found(caller="(0176)") == [other]
    assert found(caller="0143", state="live") == [last]
    assert found(caller="0143", state="ended") == [first]
    assert first in found(state="ended") and last not in found(state="ended")
    page = operator.get("/console/api/calls", params={"caller": "0143", "limit": "1"}).json()
    assert [c["session_id"] for c in page["calls"]] == [last]
    assert found(caller="0143", limit="1", before=page["next_before"]) == [first]
    assert found(caller="9999999") == []


@pytest.mark.parametrize(
    "params",
    [
        {"caller": "1"},
        {"caller": "abc12"},
        {"caller": "0143; DROP TABLE users"},
        {"caller": "\u0663\u0663\u0663"},
        {"caller": "1" * 16},
        {"caller": "%"},
        {"state": "active"},
    ],
    ids=["one-digit", "letters", "sql", "arabic-digits", "too-long", "wildcard", "state"],
)
def test_a_bad_search_is_refused_with_a_sentence(
    operator: httpx.Client, params: dict[str, str]
) -> None:
    answer = operator.get("/console/api/calls", params=params)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input" and error["message"].endswith(".")


def test_an_ended_call_shows_its_outcome_cost_and_counts(
    operator: httpx.Client, agent: Agent
) -> None:
    session_id = agent.start(PHONE)
    assert agent.book(session_id, agent.first_slot(session_id)).status_code == 200
    agent.say(session_id, "user", "That works, thanks.", usage=USAGE)
    live = operator.get(f"/console/api/calls/{session_id}").json()["call"]
    assert live["live"] and live["cost"]["total"] > 0  # the running usage, priced
    agent.end(session_id)
    answer = operator.get(f"/console/api/calls/{session_id}")
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    call = detail["call"]
    assert call["state"] == "ended" and not call["live"]
    assert call["outcome"] == {"kind": "booked", "booked": 1, "cancelled": 0, "moved": 0}
    # attest_caller (the trusted start), fetch_slots, book_appointment, end_conversation
    assert call["tool_calls"] == 4 and call["failures"] == 0
    assert call["cost"] == detail["summary"]["cost"]
    assert call["ended_at"] is not None and call["duration_s"] >= 0
    listed = operator.get("/console/api/calls", params={"limit": 100}).json()["calls"]
    assert next(c for c in listed if c["session_id"] == session_id) == call


def test_a_calls_timeline_holds_every_event_and_a_refused_booking_with_its_code(
    operator: httpx.Client, agent: Agent
) -> None:
    first, second = agent.start(PHONE), agent.start()
    slot = agent.first_slot(first)
    assert agent.book(first, slot).status_code == 200
    agent.tool("identify_user", second, phone="212 555 0147")
    refused = agent.book(second, slot)
    assert refused.status_code == 409
    agent.say(second, "agent", "Sorry, that time was just taken.")
    answer = operator.get(f"/console/api/calls/{second}")
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    events = detail["events"]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events] == ["status", "tool_call", "tool_call", "transcript"]
    failed = events[2]["payload"]
    assert failed["name"] == "book_appointment" and failed["status"] == "failed"
    assert failed["error"]["code"] == "slot_taken"
    assert failed["error"]["message"] == refused.json()["error"]["message"]
    assert events[3]["payload"]["role"] == "agent"
    assert detail["call"]["failures"] == 1 and detail["call"]["tool_calls"] == 2
    assert "2125550147" not in answer.text and "555-0147" not in answer.text


def test_the_timeline_is_paged_like_the_event_log(operator: httpx.Client, agent: Agent) -> None:
    session_id = agent.start()
    for n in range(4):
        agent.say(session_id, "user", f"line {n}")
    first = operator.get(f"/console/api/calls/{session_id}", params={"limit": 3}).json()
    assert [e["id"] for e in first["events"]] == [1, 2, 3] and first["next_after"] == 3
    rest = operator.get(
        f"/console/api/calls/{session_id}", params={"after": first["next_after"], "limit": 3}
    ).json()
    assert [e["id"] for e in rest["events"]] == [4, 5] and rest["next_after"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/console/api/calls/AAAAAAAAAAAAAAAAAAAAAA",
        "/console/api/calls/not-a-session",
        "/console/api/calls/%00",
    ],
    ids=["unknown", "malformed", "nul"],
)
def test_an_unknown_call_is_404_with_a_sentence(operator: httpx.Client, path: str) -> None:
    answer = operator.get(path)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "not_found" and error["message"].endswith(".")


@pytest.mark.parametrize(
    "params",
    [
        {"before": "nonsense"},
        {"before": "99999999999999999999.AAAAAAAAAAAAAAAAAAAAAA"},
        {"before": "1.bad id"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "many"},
    ],
    ids=["cursor", "far-cursor", "cursor-id", "zero", "too-many", "not-a-number"],
)
def test_a_bad_page_request_is_refused_with_a_code(
    operator: httpx.Client, params: dict[str, str]
) -> None:
    answer = operator.get("/console/api/calls", params=params)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_input"


def test_the_log_never_holds_a_session_id_whole(
    server: Server, operator: httpx.Client, agent: Agent
) -> None:
    session_id = agent.start()
    agent.start()
    page = operator.get("/console/api/calls", params={"limit": 1}).json()
    operator.get("/console/api/calls", params={"limit": 1, "before": page["next_before"]})
    operator.get(f"/console/api/calls/{session_id}")
    assert session_id not in server.log()
    assert page["calls"][0]["session_id"] not in server.log()

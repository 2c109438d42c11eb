"""The console's Calendar API over real HTTP against `voicebook serve`, on SQLite and Postgres:
local days across a DST change, the operator's cancel and reschedule by the tools' rules
(refusals with stable codes, a refused move changing nothing, one winner of two concurrent
moves into one slot), the free times offered to move to, CSRF, and the caller's session seeing
nothing of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from backend_servers import BACKENDS
from browser_support import PASSWORD
from calendar_support import (
    API_KEY,
    ZONE,
    Clinic,
    ahead,
    at_once,
    book,
    calendar,
    clinic,
    local,
    next_dst_change,
    operator,
    refused,
    seed_many,
    seed_past,
)
from servers import running_server
from voicebook.sdk import Client
from voicebook.server.console.auth import CSRF_HEADER


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    with clinic(request.param, request, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def http(site: Clinic) -> Iterator[httpx.Client]:
    client = operator(site.url)
    yield client
    client.close()


def appointment(http: httpx.Client, appointment_id: str, day: str) -> dict[str, Any]:
    """The appointment as the calendar of its local day shows it."""
    items = calendar(http, date=day)["appointments"]
    return next(a for a in items if a["id"] == appointment_id)


def cancel(http: httpx.Client, appointment_id: str, **body: Any) -> httpx.Response:
    return http.post(f"/console/api/appointments/{appointment_id}/cancel", json=body)


def move(http: httpx.Client, appointment_id: str, start: str, **body: Any) -> httpx.Response:
    path = f"/console/api/appointments/{appointment_id}/reschedule"
    return http.post(path, json={"start": start, **body})


def events(site: Clinic, session: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{site.url}/session/{session}/events", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_window_is_the_local_day_across_a_dst_change(site: Clinic, http: httpx.Client) -> None:
    change = next_dst_change(ahead(2))
    before, after = change - timedelta(days=1), change + timedelta(days=1)
    _, late_before = book(site.url, before, "23:30")
    _, midnight = book(site.url, change, "00:00")
    _, late = book(site.url, change, "23:30", staff="patel")
    _, next_midnight = book(site.url, after, "00:00")

    ours = [late_before, midnight, late, next_midnight]  # other tests may book these days too

    day = calendar(http, date=change.isoformat())
    shown = [a for a in day["appointments"] if a["id"] in ours]
    assert [a["id"] for a in shown] == [midnight, late]  # not 23:30 before nor 00:00 after
    assert [(a["start_minute"], a["end_minute"]) for a in shown] == [
        (0, 30),
        (23 * 60 + 30, 24 * 60),
    ]
    assert day["timezone"] == "America/New_York" and len(day["days"]) == 1
    (span,) = day["days"][0]["hours"]["lee"]
    opened = datetime.fromisoformat(span["end"]) - datetime.fromisoformat(span["start"])
    assert opened in (timedelta(hours=23), timedelta(hours=25))  # the day's real length
    assert (span["start_minute"], span["end_minute"]) == (0, 24 * 60)
    assert span["start"][:10] == change.isoformat() and span["end"][:10] == after.isoformat()

    week = calendar(http, date=before.isoformat(), days=7)
    assert [d["date"] for d in week["days"]] == [
        (before + timedelta(days=n)).isoformat() for n in range(7)
    ]
    in_week = [a for a in week["appointments"] if a["id"] in ours]
    assert [a["id"] for a in in_week] == ours
    assert [a["date"] for a in in_week] == [
        before.isoformat(),
        change.isoformat(),
        change.isoformat(),
        after.isoformat(),
    ]


def test_a_day_lists_every_resource_masked_phones_and_every_status(
    site: Clinic, http: httpx.Client
) -> None:
    day = ahead(5)
    _, kept = book(site.url, day, "09:00", name="Bea")
    _, treated = book(site.url, day, "09:00", staff="patel", service="treatment", name="Cal")
    _, dropped = book(site.url, day, "12:00", name="Dot")
    assert cancel(http, dropped, reason="asked by phone").status_code == 200

    shown = calendar(http, date=day.isoformat())
    assert {(r["id"], r["kind"]) for r in shown["resources"]} == {
        ("lee", "staff"),
        ("patel", "staff"),
        ("room-1", "room"),
    }
    assert set(shown["days"][0]["hours"]) == {"lee", "patel", "room-1"}
    by_id = {a["id"]: a for a in shown["appointments"]}
    assert by_id[kept]["service_name"] == "Cut" and by_id[kept]["name"] == "Bea"
    assert (by_id[treated]["resource"], by_id[treated]["room"]) == ("patel", "room-1")
    assert by_id[dropped]["status"] == "cancelled"
    assert by_id[dropped]["cancel_reason"] == "asked by phone"
    for item in by_id.values():
        assert item["phone_masked"].startswith("***") and len(item["phone_masked"]) == 7
    assert "+1415" not in str(shown)

    room = calendar(http, date=day.isoformat(), resource="Treatment room")
    assert room["resource"] == "room-1" and set(room["days"][0]["hours"]) == {"room-1"}
    assert [a["id"] for a in room["appointments"]] == [treated]


def test_a_week_past_the_cap_lists_its_earliest_and_says_it_is_truncated(
    site: Clinic, http: httpx.Client
) -> None:
    """A week of 1,001 appointments answers the first 1,000 by start (the grid says some are
    not shown); one of its days alone fits, and lists them all."""
    first = ahead(200)  # a week no other test books into
    seeded = seed_many(site.database_url, first, 1001)
    week = calendar(http, date=first.isoformat(), days=7)
    assert week["truncated"] is True
    shown = [a["id"] for a in week["appointments"]]
    assert len(shown) == 1000
    assert set(shown) == {appointment_id for _, appointment_id in seeded[:1000]}
    last_day = seeded[-1][0].astimezone(ZONE).date()
    day = calendar(http, date=last_day.isoformat())
    assert day["truncated"] is False
    on_that_day = [i for s, i in seeded if s.astimezone(ZONE).date() == last_day]
    assert {a["id"] for a in day["appointments"]} >= set(on_that_day)


def test_operator_cancel_of_a_past_or_cancelled_appointment_is_refused(
    site: Clinic, http: httpx.Client
) -> None:
    past = seed_past(site.database_url)
    refused(cancel(http, past), 422, "in_past")
    today = datetime.now(ZONE).date().isoformat()
    yesterday = (datetime.now(ZONE).date() - timedelta(days=1)).isoformat()
    shown = calendar(http, date=yesterday, days=2)["appointments"]
    assert next(a for a in shown if a["id"] == past)["status"] == "confirmed"
    refused(move(http, past, local(ahead(3), "10:00")), 422, "in_past")

    _, booked = book(site.url, ahead(6), "10:00")
    assert cancel(http, booked).json()["appointment"]["status"] == "cancelled"
    error = refused(cancel(http, booked), 409, "already_cancelled")
    assert "already cancelled" in error["message"]
    refused(move(http, booked, local(ahead(6), "11:00")), 409, "already_cancelled")
    slots = http.get("/console/api/calendar/slots", params={"appointment": booked, "date": today})
    refused(slots, 409, "already_cancelled")
    refused(cancel(http, "apt_0000000000000000"), 404, "not_found")


def test_a_move_into_a_buffer_or_a_taken_room_is_refused_and_changes_nothing(
    site: Clinic, http: httpx.Client
) -> None:
    day = ahead(7)
    # A treatment holds Dr. Lee and the room 09:00-10:00, and its buffer keeps them until 10:30.
    _, treatment = book(site.url, day, "09:00", service="treatment")
    _, cut = book(site.url, day, "11:00")
    _, other = book(site.url, day, "13:30", staff="patel", service="treatment")

    error = refused(move(http, cut, local(day, "10:00"), resource="lee"), 409, "slot_taken")
    assert error["alternatives"]
    unchanged = appointment(http, cut, day.isoformat())
    assert (unchanged["status"], unchanged["start"]) == ("confirmed", local(day, "11:00"))
    # The staff member is free at 09:00 but the room is not: both or neither.
    refused(move(http, other, local(day, "09:00"), resource="patel"), 409, "slot_taken")
    assert appointment(http, other, day.isoformat())["status"] == "confirmed"
    # The original still holds its time: nobody else can have Dr. Lee at 11:00.
    refused(move(http, treatment, local(day, "10:30"), resource="lee"), 409, "slot_taken")
    refused(move(http, cut, local(day, "10:10")), 422, "not_on_grid")
    refused(move(http, cut, local(day, "11:00"), resource="room-1"), 422, "invalid_input")


def test_a_move_to_an_offered_slot_links_the_new_appointment(
    site: Clinic, http: httpx.Client
) -> None:
    day = ahead(8)
    _, held = book(site.url, day, "10:00", staff="lee")
    offered = http.get(
        "/console/api/calendar/slots",
        params={"appointment": held, "date": day.isoformat(), "resource": "patel"},
    )
    assert offered.status_code == 200, offered.text
    slots = offered.json()["slots"]
    assert {s["resource"] for s in slots} == {"patel"}
    ten = next(s for s in slots if s["start"] == local(day, "10:00"))
    same_person = http.get(
        "/console/api/calendar/slots", params={"appointment": held, "date": day.isoformat(),
        "resource": "lee"},
    ).json()["slots"]  # fmt: skip
    starts = {s["start"] for s in same_person}
    assert local(day, "10:00") not in starts  # where it already is
    assert local(day, "09:30") in starts and local(day, "10:30") in starts

    moved = move(http, held, ten["start"], resource=ten["resource"])
    assert moved.status_code == 200, moved.text
    new, previous = moved.json()["appointment"], moved.json()["previous"]
    assert (new["resource"], new["start"], new["status"]) == ("patel", ten["start"], "confirmed")
    assert new["rescheduled_from"] == held and previous["status"] == "rescheduled"
    listed = {a["id"]: a["status"] for a in calendar(http, date=day.isoformat())["appointments"]}
    assert listed[held] == "rescheduled" and listed[new["id"]] == "confirmed"


def test_a_move_may_take_time_the_appointment_holds_itself(
    site: Clinic, http: httpx.Client
) -> None:
    day = ahead(14)
    # The treatment holds Dr. Lee and the room 09:00-10:30; to Dr. Patel at 09:00 it keeps the
    # room, which only it holds: offered, and the move takes it.
    _, treatment = book(site.url, day, "09:00", service="treatment")
    params = {"appointment": treatment, "date": day.isoformat(), "resource": "patel"}
    offered = http.get("/console/api/calendar/slots", params=params)
    assert offered.status_code == 200, offered.text
    assert local(day, "09:00") in {s["start"] for s in offered.json()["slots"]}
    moved = move(http, treatment, local(day, "09:00"), resource="patel")
    assert moved.status_code == 200, moved.text
    new = moved.json()["appointment"]
    assert (new["resource"], new["room"], new["start"]) == ("patel", "room-1", local(day, "09:00"))


def test_two_concurrent_moves_into_one_slot_one_wins(site: Clinic, http: httpx.Client) -> None:
    day = ahead(9)
    for round_ in range(3):
        target = local(day, f"{15 + round_}:00")
        first = book(site.url, day, f"{8 + 2 * round_}:00")[1]
        second = book(site.url, day, f"{9 + 2 * round_}:00")[1]
        moves = [partial(move, http, first, target, resource="lee"),
                 partial(move, http, second, target, resource="lee")]  # fmt: skip
        answers = dict(zip([first, second], at_once(*moves), strict=True))
        assert sorted(a.status_code for a in answers.values()) == [200, 409]
        loser = next(i for i, a in answers.items() if a.status_code == 409)
        refused(answers[loser], 409, "slot_taken")
        kept = appointment(http, loser, day.isoformat())
        assert kept["status"] == "confirmed"
        starting = [
            a
            for a in calendar(http, date=day.isoformat())["appointments"]
            if a["start"] == target and a["status"] == "confirmed"
        ]
        assert len(starting) == 1


def test_a_cancel_and_a_move_of_one_appointment_at_once_one_wins(
    site: Clinic, http: httpx.Client
) -> None:
    day = ahead(13)
    for round_ in range(3):
        booked = book(site.url, day, f"{8 + round_}:00")[1]
        to = local(day, f"{14 + round_}:00")
        answers = at_once(partial(cancel, http, booked), partial(move, http, booked, to))
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        refused(next(a for a in answers if a.status_code == 409), 409, "already_cancelled")
        listed = calendar(http, date=day.isoformat())["appointments"]
        status = next(a["status"] for a in listed if a["id"] == booked)
        successors = [a for a in listed if a["rescheduled_from"] == booked]
        # Cancelled and nothing new, or moved to exactly one new appointment.
        assert (status, len(successors)) in {("cancelled", 0), ("rescheduled", 1)}


def test_writes_need_the_csrf_token_and_reads_a_sign_in(site: Clinic, http: httpx.Client) -> None:
    _, booked = book(site.url, ahead(10), "10:00")
    path = f"/console/api/appointments/{booked}/cancel"
    without = http.post(path, json={}, headers={CSRF_HEADER: ""})
    refused(without, 403, "csrf_refused")
    foreign = http.post(path, json={}, headers={"Origin": "https://evil.example"})
    refused(foreign, 403, "csrf_refused")
    assert appointment(http, booked, ahead(10).isoformat())["status"] == "confirmed"
    stranger = httpx.get(f"{site.url}/console/api/calendar", timeout=30)
    refused(stranger, 401, "sign_in_required")


def test_the_callers_session_sees_nothing_of_the_operators_changes(
    site: Clinic, http: httpx.Client
) -> None:
    day = ahead(11)
    session, booked = book(site.url, day, "10:00")
    log = events(site, session)
    tools = httpx.get(f"{site.url}/session/{session}/tools", timeout=30).json()
    moved = move(http, booked, local(day, "11:00"))
    assert moved.status_code == 200, moved.text
    assert cancel(http, moved.json()["appointment"]["id"], reason="closed").status_code == 200
    assert events(site, session) == log
    assert httpx.get(f"{site.url}/session/{session}/tools", timeout=30).json() == tools


def test_each_row_says_whether_the_caller_or_the_business_made_it_so(
    site: Clinic, http: httpx.Client
) -> None:
    """A caller's booking and cancel say 'caller'; the operator's move (its old row and its
    new one) and cancel say 'operator' — on the calendar and on the service-facing API."""
    day = ahead(12)
    session, by_caller = book(site.url, day, "09:00")
    _, to_move = book(site.url, day, "10:00")
    _, to_cancel = book(site.url, day, "11:00")
    with Client(site.url, API_KEY) as vb:
        dropped = vb.book_appointment(session, start=local(day, "13:00"), service="cut")
        vb.cancel_appointment(session, appointment_id=dropped.appointment.id)
    moved = move(http, to_move, local(day, "14:00"))
    assert moved.status_code == 200, moved.text
    assert cancel(http, to_cancel).status_code == 200
    new_id = moved.json()["appointment"]["id"]
    expected = {
        by_caller: ("confirmed", "caller"),
        dropped.appointment.id: ("cancelled", "caller"),
        to_move: ("rescheduled", "operator"),
        new_id: ("confirmed", "operator"),
        to_cancel: ("cancelled", "operator"),
    }
    shown = {
        a["id"]: (a["status"], a["changed_by"])
        for a in calendar(http, date=day.isoformat())["appointments"]
    }
    assert {k: shown[k] for k in expected} == expected
    with Client(site.url, API_KEY) as vb:
        listed = vb.business_appointments(date=day.isoformat())
    assert {
        a.id: (a.status, a.changed_by) for a in listed.appointments if a.id in expected
    } == expected


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/console/api/calendar", {"date": "2026-13-40"}, 422, "invalid_time"),
        ("/console/api/calendar", {"days": "9"}, 422, "invalid_input"),
        ("/console/api/calendar", {"resource": "nobody"}, 404, "not_found"),
        ("/console/api/calendar/slots", {"appointment": "a\x00b", "date": "2027-01-01"}, 422,
         "invalid_input"),
        ("/console/api/calendar/slots", {"appointment": "apt_1", "date": "2027-01-01"}, 404,
         "not_found"),
    ],
)  # fmt: skip
def test_bad_reads_are_error_bodies(
    http: httpx.Client, path: str, params: dict[str, str], status: int, code: str
) -> None:
    refused(http.get(path, params=params), status, code)


def test_bad_writes_are_error_bodies(site: Clinic, http: httpx.Client) -> None:
    _, booked = book(site.url, ahead(12), "10:00")
    refused(move(http, booked, "tomorrow at ten"), 422, "invalid_time")
    refused(http.post(f"/console/api/appointments/{booked}/reschedule", json={}), 422,
            "invalid_time")  # fmt: skip
    refused(cancel(http, booked, reason="x" * 501), 422, "invalid_input")
    refused(cancel(http, booked, reason="nul\x00"), 422, "invalid_input")
    refused(http.post("/console/api/appointments/a%00b/cancel", json={}), 422, "invalid_input")
    assert appointment(http, booked, ahead(12).isoformat())["status"] == "confirmed"


def test_without_a_business_file_the_one_calendar_is_the_grid(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("calendar-single")
    env = {
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_CONSOLE_PASSWORD": PASSWORD,
        "VOICEBOOK_HOURS": "mon-sun 09:00-17:00",
        "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    }
    with running_server(env, folder) as server:
        client = operator(server.url)
        try:
            day = ahead(2)
            _, booked = book(server.url, day, "10:00", staff=None, service=None)
            shown = calendar(client, date=day.isoformat())
            assert [(r["id"], r["kind"]) for r in shown["resources"]] == [("default", "staff")]
            (span,) = shown["days"][0]["hours"]["default"]
            assert (span["start_minute"], span["end_minute"]) == (9 * 60, 17 * 60)
            assert [a["id"] for a in shown["appointments"]] == [booked]
            slots = client.get(
                "/console/api/calendar/slots",
                params={"appointment": booked, "date": day.isoformat()},
            ).json()["slots"]
            assert local(day, "10:00") not in {s["start"] for s in slots} and slots
            moved = move(client, booked, slots[0]["start"])
            assert moved.status_code == 200, moved.text
        finally:
            client.close()

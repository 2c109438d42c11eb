"""The operator's booking from the console's Calendar, over real HTTP against `voicebook serve`
on SQLite and Postgres: the free times offered for a service, a booking for a caller who phoned
in (any way their number is written, masked in the answer, no session), the tools' refusals with
stable codes (a taken time with the next free ones, a closed hour, an unknown service or person,
a number it cannot read), one winner of two operators booking one time at once, a stored name
never overwritten, the caller seeing it once their number is proved, and CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from backend_servers import BACKENDS
from calendar_support import (
    API_KEY,
    Clinic,
    ahead,
    at_once,
    calendar,
    clinic,
    local,
    new_phone,
    operator,
    refused,
)
from voicebook.sdk import Client
from voicebook.server.console.auth import CSRF_HEADER


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    with clinic(request.param, request, tmp_path_factory, hours="mon-sun 08:00-18:00") as running:
        yield running


@pytest.fixture(scope="module")
def http(site: Clinic) -> Iterator[httpx.Client]:
    client = operator(site.url)
    yield client
    client.close()


def book(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/console/api/appointments", json={"service": "cut", **body})


def free(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = http.get("/console/api/calendar/free", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["slots"]


def test_free_times_are_offered_per_service_and_person(http: httpx.Client) -> None:
    day = ahead(20).isoformat()
    lee = free(http, service="cut", date=day, resource="lee")
    assert lee and all(s["resource"] == "lee" and s["service"] == "cut" for s in lee)
    assert lee[0]["start"] == local(ahead(20), "08:00")
    treatments = free(http, service="treatment", date=day)
    assert treatments and {s["resource"] for s in treatments} <= {"lee", "patel"}
    assert all(s["service"] == "treatment" for s in treatments)
    # Anyone: one offer a time, to someone free then — Dr. Patel once Dr. Lee is booked at 8.
    taken = book(http, phone=new_phone(), start=local(ahead(20), "08:00"), resource="lee")
    assert taken.status_code == 201, taken.text
    (eight,) = [s for s in free(http, service="cut", date=day) if s["start"] == lee[0]["start"]]
    assert eight["resource"] == "patel"
    assert lee[0]["start"] not in [s["start"] for s in free(http, service="cut", date=day,
                                                             resource="lee")]  # fmt: skip
    refused(http.get("/console/api/calendar/free", params={"service": "massage", "date": day}),
            422, "invalid_input")  # fmt: skip
    refused(http.get("/console/api/calendar/free", params={"date": day}), 422, "invalid_input")


def test_a_booking_for_a_caller_who_phoned_in(site: Clinic, http: httpx.Client) -> None:
    day = ahead(21)
    number = new_phone()
    written = f"({number[2:5]}) {number[5:8]}-{number[8:]}"  # as a person types it
    answer = book(http, phone=written, name="Walk In", notes="first visit",
                  start=local(day, "09:00"), resource="lee")  # fmt: skip
    assert answer.status_code == 201, answer.text
    made = answer.json()["appointment"]
    assert (made["status"], made["resource"], made["start"]) == (
        "confirmed", "lee", local(day, "09:00"),
    )  # fmt: skip
    assert (made["name"], made["notes"], made["changed_by"]) == (
        "Walk In", "first visit", "operator",
    )  # fmt: skip
    assert made["phone_masked"] == f"***{number[-4:]}" and number not in answer.text
    listed = {a["id"]: a for a in calendar(http, date=day.isoformat())["appointments"]}
    assert listed[made["id"]]["name"] == "Walk In"

    # The caller sees it once their number is proved (here: attested by the business's back-end).
    with Client(site.url, API_KEY) as vb:
        session = vb.start_session(phone=number).session_id
        mine = vb.retrieve_appointments(session)
    assert [a.id for a in mine.appointments] == [made["id"]]


def test_the_tools_refusals_with_their_codes(http: httpx.Client) -> None:
    day = ahead(22)
    first = book(http, phone=new_phone(), start=local(day, "10:00"), resource="lee")
    assert first.status_code == 201, first.text
    taken = refused(book(http, phone=new_phone(), start=local(day, "10:00"), resource="lee"),
                    409, "slot_taken")  # fmt: skip
    assert taken["alternatives"]  # the next free times, as the tool offers them
    refused(book(http, phone=new_phone(), start=local(day, "19:00")), 422, "outside_hours")
    unreadable = refused(book(http, phone="12", start=local(day, "11:00")), 422, "invalid_phone")
    assert "area code" in unreadable["message"]  # said to someone typing, not to a caller
    refused(book(http, phone=new_phone(), start=local(day, "11:00"), service="massage"), 422,
            "invalid_input")  # fmt: skip
    refused(book(http, phone=new_phone(), start=local(day, "11:00"), resource="dr-who"), 422,
            "invalid_input")  # fmt: skip
    refused(book(http, phone=new_phone(), start="at eleven"), 422, "invalid_time")
    refused(book(http, phone=new_phone(), start=local(day, "11:00"), name="x" * 201), 422,
            "invalid_input")  # fmt: skip
    refused(http.post("/console/api/appointments", json={"start": local(day, "11:00")}), 422,
            "invalid_input")  # fmt: skip
    confirmed = [
        a
        for a in calendar(http, date=day.isoformat())["appointments"]
        if a["status"] == "confirmed"
    ]
    assert [a["id"] for a in confirmed] == [first.json()["appointment"]["id"]]


def test_two_operators_booking_one_time_at_once_one_wins(site: Clinic, http: httpx.Client) -> None:
    day = ahead(23)
    other = operator(site.url)
    for round_ in range(3):
        start = local(day, f"{9 + round_}:00")
        attempts = [
            partial(book, client, phone=new_phone(), start=start, resource="lee")
            for client in (http, other)
        ]
        answers = at_once(*attempts)
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
        refused(next(a for a in answers if a.status_code == 409), 409, "slot_taken")
        held = [
            a
            for a in calendar(http, date=day.isoformat())["appointments"]
            if a["start"] == start and a["status"] == "confirmed"
        ]
        assert len(held) == 1
    other.close()


def test_a_stored_name_is_never_overwritten(site: Clinic, http: httpx.Client) -> None:
    day = ahead(24)
    number = new_phone()
    with Client(site.url, API_KEY) as vb:
        vb.start_session(phone=number, name="Real Name")
    answer = book(http, phone=number, name="Typo Nmae", start=local(day, "09:00"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["appointment"]["name"] == "Typo Nmae"  # kept on the appointment
    with Client(site.url, API_KEY) as vb:
        later = vb.start_session(phone=number)
    assert later.user is not None and later.user.name == "Real Name"


def test_a_booking_needs_the_pages_token_and_a_sign_in(site: Clinic, http: httpx.Client) -> None:
    day = ahead(25)
    body = {"service": "cut", "phone": new_phone(), "start": local(day, "09:00")}
    refused(http.post("/console/api/appointments", json=body, headers={CSRF_HEADER: ""}), 403,
            "csrf_refused")  # fmt: skip
    stranger = httpx.post(f"{site.url}/console/api/appointments", json=body, timeout=30)
    assert stranger.status_code in (401, 403)
    listed = calendar(http, date=day.isoformat())["appointments"]
    assert not [a for a in listed if a["status"] == "confirmed"]

"""`GET /business/appointments` over HTTP against a real `voicebook serve` with a business file,
on SQLite and Postgres: the day's appointments in the business zone, by resource, keyset-paged,
phones masked, behind the service key. The SDK's `business_appointments` reads the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from backend_servers import BACKENDS
from business_support import API_KEY, ZONE, Day, clinic_server, seed
from servers import Server
from voicebook.models import BusinessAppointmentsResponse
from voicebook.sdk import AsyncClient, Client

PATH = "/business/appointments"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with clinic_server(request.param, request, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def day(server: Server) -> Day:
    return seed(server.url)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30, headers=AUTH) as client:
        yield client


def listing(http: httpx.Client, **params: Any) -> dict[str, Any]:
    response = http.get(PATH, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def walk(http: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item over every page (following `next`), and how many pages it took."""
    items, pages, after = [], 0, None
    while True:
        page = listing(http, **params, **({"after": after} if after else {}))
        pages += 1
        items.extend(page["appointments"])
        after = page["next"]
        if after is None:
            return items, pages
        assert pages < 50, "paging does not end"


def expected_order(day: Day, staff: str | None = None) -> list[str]:
    """Ids ordered by local start, then id: the order the API promises."""
    return [
        appointment_id
        for appointment_id, (who, hhmm, _) in sorted(
            day.booked.items(), key=lambda item: (item[1][1], item[0])
        )
        if staff is None or who == staff
    ]


def test_the_whole_day_in_order_with_names_and_masked_phones(http: httpx.Client, day: Day) -> None:
    page = listing(http, date=day.date.isoformat())
    BusinessAppointmentsResponse.model_validate(page)
    assert page["date"] == day.date.isoformat() and page["timezone"] == "America/New_York"
    assert page["next"] is None
    items = page["appointments"]
    assert [a["id"] for a in items] == expected_order(day)  # the next day's booking is not here
    by_id = {a["id"]: a for a in items}
    for appointment_id, (staff, hhmm, status) in day.booked.items():
        item = by_id[appointment_id]
        assert item["resource"] == staff and item["status"] == status
        assert item["start"].endswith(("-05:00", "-04:00"))  # in the business zone
        assert item["start"][11:16] == hhmm
        assert item["phone_masked"].startswith("***") and len(item["phone_masked"]) == 7
    ada = next(a for a in items if a["name"] == "Ada")
    assert ada["service_name"] == "Cut" and ada["resource_name"] == "Dr. Lee"
    assert ada["notes"] == "first visit" and ada["label"].endswith("at 9:00 AM with Dr. Lee")
    eve = next(a for a in items if a["name"] == "Eve")
    assert (eve["service"], eve["room"], eve["room_name"]) == (
        "treatment",
        "room-1",
        "Treatment room",
    )
    assert next(a for a in items if a["name"] == "Cy")["status"] == "cancelled"
    body = str(page)
    assert not any(phone[2:] in body or phone[-7:] in body for phone in day.phones)


def test_pages_follow_the_cursor_without_gaps_or_repeats(http: httpx.Client, day: Day) -> None:
    items, pages = walk(http, date=day.date.isoformat(), limit=2)
    assert [a["id"] for a in items] == expected_order(day)
    assert pages == 4  # 7 appointments, 2 a page: the last page is not an empty one
    one, pages = walk(http, date=day.date.isoformat(), limit=1)
    assert [a["id"] for a in one] == expected_order(day) and pages == 7


def test_bookings_made_between_pages_are_neither_skipped_nor_repeated(
    server: Server, http: httpx.Client, day: Day
) -> None:
    other = (day.date + timedelta(days=2)).isoformat()

    def book(hhmm: str, phone: str) -> str:
        session = vb.start_session(phone=phone, name="Ivy").session_id
        start = f"{other}T{hhmm}:00"  # no offset: the business zone
        return vb.book_appointment(session, start=start, service="cut", staff="lee").appointment.id

    with Client(server.url, API_KEY) as vb:
        nine, noon = book("09:00", "+14155556001"), book("12:00", "+14155556002")
        first = listing(http, date=other, limit=1)
        assert [a["id"] for a in first["appointments"]] == [nine]
        earlier, between = book("08:00", "+14155556003"), book("10:30", "+14155556004")
    second = listing(http, date=other, limit=1, after=first["next"])
    third = listing(http, date=other, limit=1, after=second["next"])
    assert [a["id"] for a in second["appointments"] + third["appointments"]] == [between, noon]
    assert third["next"] is None
    assert earlier in [a["id"] for a in listing(http, date=other)["appointments"]]


@pytest.mark.parametrize(
    ("resource", "staff"),
    [("patel", "patel"), ("Dr. Lee", "lee"), ("Lee", "lee")],
)
def test_one_staff_member_by_id_or_name(
    http: httpx.Client, day: Day, resource: str, staff: str
) -> None:
    items, _ = walk(http, date=day.date.isoformat(), resource=resource, limit=2)
    assert [a["id"] for a in items] == expected_order(day, staff)


def test_a_room_lists_what_holds_it(http: httpx.Client, day: Day) -> None:
    page = listing(http, date=day.date.isoformat(), resource="room-1")
    assert page["resource"] == "room-1"
    assert [(a["name"], a["resource"]) for a in page["appointments"]] == [("Eve", "patel")]


def test_refusals_are_error_bodies(server: Server, http: httpx.Client, day: Day) -> None:
    for params, status, code in [
        ({"resource": "nobody"}, 404, "not_found"),
        ({"after": "not-a-cursor"}, 422, "invalid_input"),
        ({"after": "99999999T999999999999Z.apt_1"}, 422, "invalid_input"),
        ({"limit": 0}, 422, "invalid_input"),
        ({"limit": 201}, 422, "invalid_input"),
        ({"date": "2026-02-30"}, 422, "invalid_time"),
        ({"date": "9999-01-01"}, 422, "invalid_time"),
    ]:
        response = http.get(PATH, params=params)
        assert response.status_code == status, (params, response.text)
        assert response.json()["error"]["code"] == code, params


def test_the_service_key_is_required(server: Server, day: Day) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(f"{server.url}{PATH}", headers=headers, timeout=30)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert "phone_masked" not in response.text


def test_today_in_the_business_zone_is_the_default_day(http: httpx.Client, day: Day) -> None:
    before = datetime.now(ZONE).date().isoformat()
    page = listing(http)
    assert page["date"] in {before, datetime.now(ZONE).date().isoformat()}


def test_the_sdk_reads_the_same_pages(server: Server, http: httpx.Client, day: Day) -> None:
    with Client(server.url, API_KEY) as vb:
        first = vb.business_appointments(date=day.date, resource="lee", limit=3)
        assert isinstance(first, BusinessAppointmentsResponse) and first.next is not None
        rest = vb.business_appointments(date=day.date, resource="lee", after=first.next)
    ids = [a.id for a in first.appointments + rest.appointments]
    assert ids == expected_order(day, "lee") and rest.next is None
    assert first.appointments[0].start.tzinfo is not None


async def test_the_async_sdk_too(server: Server, day: Day) -> None:
    async with AsyncClient(server.url, API_KEY) as vb:
        page = await vb.business_appointments(date=day.date.isoformat())
    assert [a.id for a in page.appointments] == expected_order(day)

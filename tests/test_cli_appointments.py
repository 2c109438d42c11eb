"""`voicebook appointments` against a real `voicebook serve` with a business file (subprocesses,
server and key from VOICEBOOK_URL / VOICEBOOK_API_KEY or --url / --api-key): a table per
resource with every id whole at any terminal width, `--staff`, one JSON document, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_support import voicebook
from business_support import API_KEY, Day, clinic_server, seed
from servers import Server, clean_env
from voicebook.models import BusinessAppointmentsResponse


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with clinic_server("sqlite", request, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def day(server: Server) -> Day:
    return seed(server.url)


def run(server: Server, tmp_path: Path, *args: str, columns: int = 200, **env: str):  # type: ignore[no-untyped-def]
    base = clean_env(VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY, COLUMNS=str(columns))
    return voicebook("appointments", *args, env={**base, **env}, cwd=tmp_path)


def ids_in_order(day: Day, staff: str | None = None) -> list[str]:
    ordered = sorted(day.booked.items(), key=lambda item: (item[1][1], item[0]))
    return [i for i, (who, _, _) in ordered if staff is None or who == staff]


@pytest.mark.parametrize("columns", [200, 100, 60, 30])
def test_a_table_per_staff_member_with_every_id_whole(
    server: Server, day: Day, tmp_path: Path, columns: int
) -> None:
    done = run(server, tmp_path, "--date", day.date.isoformat(), columns=columns)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for appointment_id in day.booked:
        assert appointment_id in out, (columns, out)
    lee, patel = out.index("Dr. Lee ·"), out.index("Dr. Patel ·")
    lee_part, patel_part = (
        (out[lee:patel], out[patel:]) if lee < patel else (out[lee:], out[patel:lee])
    )
    for appointment_id, (staff, _, _) in day.booked.items():
        assert appointment_id in (lee_part if staff == "lee" else patel_part)
    if columns >= 100:
        assert "cancelled" in lee_part and "Treatment room" in patel_part and "knee" in patel_part
        assert f"***{day.phones[0][-4:]}" in out
    assert not any(phone[2:] in out for phone in day.phones)
    assert "America/New_York" in out


def test_one_staff_member_or_room(server: Server, day: Day, tmp_path: Path) -> None:
    done = run(server, tmp_path, "--date", day.date.isoformat(), "--staff", "Patel")
    assert done.returncode == 0, done.stderr
    assert "Dr. Patel ·" in done.stdout and "Dr. Lee" not in done.stdout
    shown = sorted((done.stdout.index(i), i) for i in day.booked if i in done.stdout)
    assert [i for _, i in shown] == ids_in_order(day, "patel")  # in order of start, then id
    room = run(server, tmp_path, "--date", day.date.isoformat(), "--staff", "room-1")
    assert room.returncode == 0 and "Treatment room ·" in room.stdout


def test_json_is_one_document_of_the_whole_day(server: Server, day: Day, tmp_path: Path) -> None:
    done = run(server, tmp_path, "--date", day.date.isoformat(), "--json")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    answer = BusinessAppointmentsResponse.model_validate(json.loads(done.stdout))
    assert [a.id for a in answer.appointments] == ids_in_order(day) and answer.next is None
    empty = run(server, tmp_path, "--date", "2030-01-01", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout)["appointments"] == []


def test_options_instead_of_the_environment(server: Server, day: Day, tmp_path: Path) -> None:
    done = voicebook(
        "appointments", "--date", day.date.isoformat(), "--json", "--url", server.url,
        "--api-key", API_KEY, env=clean_env(), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["appointments"]) == len(day.booked)


def test_exit_codes(server: Server, day: Day, tmp_path: Path) -> None:
    unknown = run(server, tmp_path, "--staff", "nobody")
    assert unknown.returncode == 1 and "not_found" in unknown.stderr
    as_json = run(server, tmp_path, "--staff", "nobody", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"]["code"] == "not_found"
    no_key = run(server, tmp_path, VOICEBOOK_API_KEY="wrong")
    assert no_key.returncode == 2 and "--api-key" in no_key.stderr
    bad_date = run(server, tmp_path, "--date", "tomorrow")
    assert bad_date.returncode == 2 and "YYYY-MM-DD" in bad_date.stderr
    away = run(server, tmp_path, "--url", "http://127.0.0.1:1")
    assert away.returncode == 3 and "127.0.0.1:1" in away.stderr


def test_the_whole_day_is_read_page_by_page() -> None:
    """Past one page (200) the command follows `next`: checked on a stand-in SDK client."""
    from voicebook.cli.appointments import _whole_day

    pages = {
        None: {"appointments": ["a", "b"], "next": "c1"},
        "c1": {"appointments": ["c"], "next": None},
    }
    calls: list[dict[str, object]] = []

    class Pages:
        def business_appointments(self, **asked: object) -> BusinessAppointmentsResponse:
            calls.append(asked)
            page = pages[asked.get("after")]  # type: ignore[index]
            return BusinessAppointmentsResponse.model_validate(
                {
                    "date": "2027-03-02",
                    "timezone": "UTC",
                    "appointments": [_item(i) for i in page["appointments"]],
                    "next": page["next"],
                }
            )

    day = _whole_day(Pages(), "2027-03-02", "lee")  # type: ignore[arg-type]
    assert [a.id for a in day.appointments] == ["a", "b", "c"] and day.next is None
    assert [c.get("after") for c in calls] == [None, "c1"]
    assert all(c["resource"] == "lee" for c in calls)


def _item(appointment_id: str) -> dict[str, object]:
    return {
        "id": appointment_id,
        "start": "2027-03-02T09:00:00+00:00",
        "end": "2027-03-02T09:30:00+00:00",
        "status": "confirmed",
        "label": "Tuesday, March 2 at 9:00 AM",
        "phone_masked": "***0000",
        "created_at": "2027-03-01T09:00:00+00:00",
    }


def test_a_change_the_business_made_says_so() -> None:
    """`changed_by = 'operator'` (the console's cancel or move) reads "by the business"; the
    caller's own and older rows (no changed_by) show the status alone."""
    from voicebook.cli.appointments import _status
    from voicebook.models import BusinessAppointment

    def item(**fields: object) -> BusinessAppointment:
        return BusinessAppointment.model_validate({**_item("apt_1"), **fields})

    assert _status(item(status="cancelled", changed_by="operator")) == "cancelled by the business"
    assert _status(item(status="cancelled", changed_by="caller")) == "cancelled"
    assert _status(item(status="rescheduled")) == "rescheduled"

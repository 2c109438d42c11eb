"""Named console accounts, through the CLI that makes them and the console that signs in to
them, on SQLite and Postgres: a change from the console names the account that made it (in the
business API, `voicebook appointments` and the calendar); once an account exists the shared
console password stops signing in (the service key still does); a new password or a removed
account ends that account's open sign-ins; wrong names and passwords get one answer; the
database holds an Argon2id hash, never the password."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from browser_support import PASSWORD
from calendar_support import API_KEY, Clinic, ahead, book, clinic
from commands import Outcome, voicebook
from voicebook.server.console.auth import CSRF_HEADER

BACKENDS = ["sqlite", "postgres"]
MARIA = "correct horse battery maria"


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    with clinic(request.param, request, tmp_path_factory, hours="mon-sun 08:00-18:00") as running:
        yield running


def operators(site: Clinic, tmp_path: Path, *args: str, stdin: str | None = None) -> Outcome:
    """`voicebook operators ARGS` with the clinic server's configuration, as its owner would
    run it beside the server (the same `.env`)."""
    return voicebook(
        "operators",
        *args,
        cwd=tmp_path,
        stdin=stdin,
        VOICEBOOK_DATABASE_URL=site.database_url,
        VOICEBOOK_API_KEY=API_KEY,
        VOICEBOOK_CONSOLE_PASSWORD=PASSWORD,
    )


def page(site: Clinic) -> httpx.Client:
    """A browser-like client that loaded the console: its CSRF cookie, and the header on every
    request (as the page sends it); not signed in."""
    client = httpx.Client(base_url=site.url, timeout=30)
    client.get("/")
    client.headers[CSRF_HEADER] = client.get("/console/api/me").json()["csrf_token"]
    return client


def sign_in(client: httpx.Client, password: str, name: str | None = None) -> httpx.Response:
    return client.post("/console/api/login", json={"name": name, "password": password})


def me(client: httpx.Client) -> dict[str, object]:
    answer = client.get("/console/api/me")
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def maria(site: Clinic, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The clinic's first account (the shared password signed in before it existed)."""
    folder = tmp_path_factory.mktemp("operators")
    added = operators(site, folder, "add", "Maria", "--password-stdin", stdin=MARIA + "\n")
    assert added.code == 0, added.text
    assert "maria" in added.text
    return "maria"


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_shared_password_stops_when_the_first_account_is_added(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    with clinic(backend, request, tmp_path_factory, hours="mon-sun 08:00-18:00") as fresh:
        shared_password_then_accounts(fresh, tmp_path)


def shared_password_then_accounts(site: Clinic, tmp_path: Path) -> None:
    before = page(site)
    assert sign_in(before, PASSWORD).status_code == 204
    assert me(before)["signed_in"] is True and me(before)["account"] is None
    added = operators(site, tmp_path, "add", "first.one", "--password-stdin", stdin=MARIA + "\n")
    assert added.code == 0, added.text
    try:
        assert "no longer signs in" in added.text  # it says so, as the console password is set
        assert me(before)["signed_in"] is False  # its open sign-in ended with the first account
        refused = sign_in(page(site), PASSWORD)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "account_required"
        assert "voicebook_console=" not in refused.headers.get("set-cookie", "")
        # The service key still signs in, as the business (no account named).
        owner = page(site)
        assert sign_in(owner, API_KEY).status_code == 204
        assert me(owner)["signed_in"] is True and me(owner)["account"] is None
    finally:
        assert operators(site, tmp_path, "remove", "first.one").code == 0
    assert sign_in(page(site), PASSWORD).status_code == 204  # no account left: it signs in again


def test_an_account_signs_in_by_name_and_its_changes_name_it(
    site: Clinic, maria: str, tmp_path: Path
) -> None:
    desk = page(site)
    assert sign_in(desk, MARIA, name="  MARIA ").status_code == 204  # names are case-blind
    assert me(desk)["account"] == "maria"
    day = ahead(2)
    _, cancelled = book(site.url, day, "09:00", name="Ada")
    _, moved = book(site.url, day, "10:00", name="Ben")
    answer = desk.post(f"/console/api/appointments/{cancelled}/cancel", json={"reason": "ill"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["appointment"]["changed_by_operator"] == "maria"
    answer = desk.post(
        f"/console/api/appointments/{moved}/reschedule",
        json={"start": f"{day.isoformat()}T15:00:00", "resource": "lee"},
    )
    assert answer.status_code == 200, answer.text
    new_id = answer.json()["appointment"]["id"]
    assert answer.json()["previous"]["changed_by_operator"] == "maria"

    business = httpx.get(
        f"{site.url}/business/appointments",
        params={"date": day.isoformat(), "limit": 200},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    ).json()["appointments"]
    by = {a["id"]: (a["status"], a["changed_by"], a["changed_by_operator"]) for a in business}
    assert by[cancelled] == ("cancelled", "operator", "maria")
    assert by[moved] == ("rescheduled", "operator", "maria")
    assert by[new_id] == ("confirmed", "operator", "maria")

    table = voicebook(
        "appointments",
        "--date",
        day.isoformat(),
        cwd=tmp_path,
        VOICEBOOK_URL=site.url,
        VOICEBOOK_API_KEY=API_KEY,
        COLUMNS="200",
    )
    assert table.code == 0, table.text
    assert "cancelled by maria" in table.text

    # A change made with the service key is the business's: no account named.
    owner = page(site)
    assert sign_in(owner, API_KEY).status_code == 204
    _, third = book(site.url, day, "11:00", name="Cy")
    answer = owner.post(f"/console/api/appointments/{third}/cancel", json={})
    assert answer.status_code == 200, answer.text
    assert answer.json()["appointment"]["changed_by"] == "operator"
    assert answer.json()["appointment"]["changed_by_operator"] is None


def test_wrong_names_and_passwords_get_one_answer(site: Clinic, maria: str) -> None:
    answers = [
        sign_in(page(site), "not maria's password", name="maria"),
        sign_in(page(site), MARIA, name="nobody"),
        sign_in(page(site), MARIA, name="maria2"),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    errors = [a.json()["error"] for a in answers]
    assert len({(e["code"], e["message"]) for e in errors}) == 1, errors
    assert errors[0]["code"] == "wrong_password"
    assert all("voicebook_console=" not in a.headers.get("set-cookie", "") for a in answers)
    malformed = sign_in(page(site), MARIA, name="maria lopez; drop")
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "invalid_account_name"


def test_a_new_password_or_a_removed_account_ends_its_sign_ins(
    site: Clinic, tmp_path: Path
) -> None:
    first = "first password of lee"
    assert operators(site, tmp_path, "add", "lee.o", "--password-stdin", stdin=first).code == 0
    desk = page(site)
    assert sign_in(desk, first, name="lee.o").status_code == 204
    assert me(desk)["account"] == "lee.o"

    second = "second password of lee"
    changed = operators(site, tmp_path, "password", "lee.o", "--password-stdin", stdin=second)
    assert changed.code == 0, changed.text
    assert me(desk)["signed_in"] is False  # the old sign-in ended
    assert sign_in(page(site), first, name="lee.o").status_code == 401
    again = page(site)
    assert sign_in(again, second, name="lee.o").status_code == 204

    removed = operators(site, tmp_path, "remove", "lee.o", "--json")
    assert removed.code == 0 and removed.json() == {"removed": "lee.o"}
    assert me(again)["signed_in"] is False
    assert sign_in(page(site), second, name="lee.o").status_code == 401
    gone = operators(site, tmp_path, "remove", "lee.o", "--json")
    assert gone.code == 1 and gone.json()["error"]["code"] == "no_such_account"


def test_the_cli_refuses_weak_passwords_duplicates_and_asking_without_a_terminal(
    tmp_path: Path,
) -> None:
    """`voicebook operators` needs only the database (no server): its refusals, exit codes and
    `--json` documents, and a listing that shows no password and no hash."""

    def run(*args: str, stdin: str | None = None) -> Outcome:
        url = f"sqlite:///{tmp_path / 'accounts.db'}"
        return voicebook("operators", *args, cwd=tmp_path, stdin=stdin, VOICEBOOK_DATABASE_URL=url)

    assert run("add", "maria", "--password-stdin", stdin=MARIA).code == 0
    weak = run("add", "bob", "--password-stdin", "--json", stdin="short\n")
    assert weak.code == 2 and weak.json()["error"]["code"] == "weak_password"
    blank = run("add", "bob", "--password-stdin", stdin=" " * 12 + "\n")
    assert blank.code == 2  # a blank secret is no secret
    no_terminal = run("add", "bob", stdin="")
    assert no_terminal.code == 2 and "--password-stdin" in no_terminal.text
    assert run("add", "-x y", "--password-stdin", stdin=MARIA).code == 2
    again = run("add", "MARIA", "--password-stdin", "--json", stdin=MARIA)
    assert again.code == 1 and again.json()["error"]["code"] == "account_exists"
    listed = run("list", "--json")
    assert listed.code == 0, listed.text
    assert [a["name"] for a in listed.json()["accounts"]] == ["maria"]
    assert MARIA not in listed.stdout and "argon2" not in listed.stdout
    # Without a console secret it says accounts cannot sign in yet.
    assert "no sign-in yet" in run("add", "lee", "--password-stdin", stdin=MARIA).text


def test_the_database_holds_an_argon2id_hash_never_the_password(site: Clinic, maria: str) -> None:
    query = "SELECT password_hash FROM operators WHERE name = 'maria'"
    if site.database_url.startswith("sqlite"):
        path = site.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            (stored,) = db.execute(query).fetchone()
    else:
        with psycopg.connect(site.database_url) as db:
            row = db.execute(query).fetchone()
            assert row is not None
            stored = row[0]
    assert stored.startswith("$argon2id$")
    assert MARIA not in stored

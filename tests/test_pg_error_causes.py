"""A Postgres the store cannot reach is named by its cause (issue 13): a database that does not
exist, a user it rejects, a host unknown in DNS, a port that refuses — in `voicebook db status`
(exit 3, "database unreachable") and in a server's /readyz, without the password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from commands import Outcome
from conftest import ADMIN_URL, service_missing
from servers import clean_env, free_port, running_server

EXIT_UNREACHABLE = 3
SECRET = "hunter2-not-echoed"


@pytest.fixture(scope="module")
def admin_url() -> str:
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        service_missing("Postgres", exc)
    return ADMIN_URL


def with_parts(
    url: str,
    *,
    user: str | None = None,
    host: str | None = None,
    port: int | None = None,
    dbname: str | None = None,
) -> str:
    """`url` with some of its parts replaced (and the test password added)."""
    parts = urlsplit(url)
    netloc = f"{user or parts.username or 'root'}:{SECRET}@{host or parts.hostname}"
    netloc += f":{port or parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{dbname or parts.path.lstrip('/')}"))


def db_status(url: str, cwd: Path) -> Outcome:
    result = subprocess.run(
        [sys.executable, "-m", "voicebook", "db", "status", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=clean_env(COLUMNS="200"),
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


CASES = {
    "missing database": (
        dict(dbname="voicebook_no_such_db"),
        "'voicebook_no_such_db' does not exist",
    ),
    "unknown user": (dict(user="voicebook_no_such_role"), "rejected the user name or password"),
    "unknown host": (dict(host="nonexistent.invalid"), "'nonexistent.invalid' is unknown"),
    "refused port": (dict(host="127.0.0.1", port=-1), "(connection refused)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_db_status_names_the_cause(case: str, admin_url: str, tmp_path: Path) -> None:
    parts, cause = CASES[case]
    if parts.get("port") == -1:
        parts = {**parts, "port": free_port()}
    outcome = db_status(with_parts(admin_url, **parts), tmp_path)
    assert outcome.code == EXIT_UNREACHABLE, outcome
    assert "Cannot reach the database at" in outcome.text, outcome
    assert cause in outcome.text, outcome
    assert "couldn't get a connection" not in outcome.text
    assert SECRET not in outcome.text
    assert "Traceback" not in outcome.text


def test_readyz_names_a_missing_database(admin_url: str, tmp_path: Path) -> None:
    url = with_parts(admin_url, dbname="voicebook_no_such_db")
    with running_server({"VOICEBOOK_DATABASE_URL": url}, tmp_path) as server:
        answer = httpx.get(f"{server.url}/readyz", timeout=10)
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "store_unavailable"
        assert "'voicebook_no_such_db' does not exist" in error["message"], error
        assert SECRET not in answer.text
        assert SECRET not in server.log()

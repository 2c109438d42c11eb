"""A real `voicebook serve` on either store, for test modules that run the same checks on both:
SQLite (a file of its own) or Postgres (a copy of the migrated template database, dropped after).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import ADMIN_URL, database_url
from servers import Server, running_server

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""Parameters of a module's `backend` fixture."""


@contextlib.contextmanager
def database_on(backend: str, request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A fresh database URL on `backend`: a new SQLite file in `directory`, or a copy of the
    migrated Postgres template, dropped on exit."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'voicebook.db'}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"vb_srv_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def server_on(
    backend: str,
    env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """A server with `env` on `backend`, stopped (and its database dropped) on exit."""
    directory = tmp_path_factory.mktemp(f"server-{backend}")
    with (
        database_on(backend, request, directory) as url,
        running_server({**env, "VOICEBOOK_DATABASE_URL": url}, directory) as running,
    ):
        yield running

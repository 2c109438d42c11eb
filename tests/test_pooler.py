"""Postgres through a transaction pooler (PgBouncer in transaction mode, as Supabase's port 6543).

Behind such a pooler consecutive transactions of one client land on different server connections,
so server-side prepared statements break; voicebook turns them off by setting or by the port.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REQUIRE_SERVICES
from helpers import call, identified
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.service import SchedulingService
from voicebook.store.postgres import PostgresStore, uses_transaction_pooler

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pooler_url(pg_url: str) -> Iterator[str]:
    """`pg_url`, reached through a PgBouncer in transaction mode with two server connections."""
    if not Path(PGBOUNCER).exists():
        message = "pgbouncer is not installed (apt-get install pgbouncer)"
        pytest.fail(message) if REQUIRE_SERVICES else pytest.skip(message)
    port = free_port()
    # pgbouncer refuses to run as root and switches to the postgres user, which cannot enter
    # pytest's private tmp dirs: use a world-readable directory of our own.
    tmp_path = Path(tempfile.mkdtemp(prefix="vb-pgbouncer-"))
    tmp_path.chmod(0o777)
    (tmp_path / "users.txt").write_text('"root" ""\n')
    (tmp_path / "pgbouncer.ini").write_text(
        "[databases]\n* = host=127.0.0.1 port=5432\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {tmp_path / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 2\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {tmp_path / 'pgbouncer.log'}\n"
    )
    for path in tmp_path.iterdir():
        path.chmod(0o666)
    process = subprocess.Popen(
        [PGBOUNCER, "-u", "postgres", str(tmp_path / "pgbouncer.ini")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"pgbouncer did not start: {output}")
            time.sleep(0.05)
    try:
        yield f"postgresql://root@127.0.0.1:{port}/{pg_url.rsplit('/', 1)[1]}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_transaction_pooler_port_turns_prepared_statements_off() -> None:
    supabase = "postgresql://postgres.ref:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
    assert uses_transaction_pooler(supabase)
    assert not uses_transaction_pooler("postgresql://root@127.0.0.1:5432/postgres")
    assert PostgresStore(supabase).prepared_statements is False
    assert PostgresStore(supabase, prepared_statements=True).prepared_statements is True
    assert PostgresStore("postgresql://root@127.0.0.1:5432/x").prepared_statements is True


async def test_booking_flow_through_pgbouncer_transaction_mode(
    pooler_url: str, rules: AvailabilityRules, clock: Any
) -> None:
    store = PostgresStore(pooler_url, prepared_statements=False, pool_size=6)
    await store.open()
    try:
        service = SchedulingService(store, rules, clock=clock)
        # Enough repetitions of every query, from several connections at once, that prepared
        # statements would have been created and then missed on another server connection.
        sessions = await asyncio.gather(
            *(identified(service, f"+1 415 555 01{i:02d}") for i in range(12))
        )
        for _ in range(3):
            slots = await asyncio.gather(*(call(service, "fetch_slots", s) for s in sessions))
            assert all(len(result.slots) == 5 for result in slots)
        booked = await asyncio.gather(
            *(
                call(service, "book_appointment", s, slot_id=slots[0].slots[i].slot_id)
                for i, s in enumerate(sessions[:5])
            )
        )
        assert len({b.appointment.id for b in booked}) == 5
        listed = await call(service, "retrieve_appointments", sessions[0])
        assert [a.id for a in listed.appointments] == [booked[0].appointment.id]
    finally:
        await store.close()

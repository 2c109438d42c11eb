"""Real processes for end-to-end tests: `voicebook serve` (or any server) on a free loopback
port, started with a clean environment and stopped when the test is done."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from voicebook.config import Settings, variable_name

_READ_BY_VOICEBOOK = frozenset(variable_name(field) for field in Settings.model_fields)


def clean_env(extra: Mapping[str, str] | None = None, **more: str) -> dict[str, str]:
    """This environment without any variable voicebook reads (its own VOICEBOOK_* and the
    established names of its settings: LiveKit, Supabase, the providers, the frontend), plus
    `extra` and `more`: a subprocess sees only what the test gives it."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VOICEBOOK_") and k not in _READ_BY_VOICEBOOK
    }
    return {**base, **(extra or {}), **more}


UNLIMITED_BROWSER = {
    "VOICEBOOK_RATE_LIMIT_PER_ADDRESS": "100000/minute",
    "VOICEBOOK_RATE_LIMIT_PER_SESSION": "100000/minute",
}
"""Every test talks to its server from 127.0.0.1: the browser budgets are lifted unless a test
sets them (tests/test_browser_limits.py does)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A running `python -m voicebook serve`; `url` is its base URL, `log()` its output."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self._log_path = log_path

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_process(
    argv: Sequence[str], *, ready_url: str, env: Mapping[str, str], cwd: Path, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv` (output to `log_path`), wait until `ready_url` answers 200, and stop it on
    exit (terminate, then kill after 15 s). Fails with the log if it exits or is not up in 30 s."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                log = log_path.read_text(errors="replace")
                raise RuntimeError(f"{argv[0]} exited with {process.returncode}:\n{log}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                log = log_path.read_text(errors="replace")
                raise RuntimeError(f"{argv[0]} did not start in 30 s:\n{log}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_server(
    env: dict[str, str], tmp_path: Path, *, args: tuple[str, ...] = (), port: int | None = None
) -> Iterator[Server]:
    """Start a server with `env` added to a clean environment; stop it on exit.

    The working directory is `tmp_path`, so no stray `.env` is read, and the user data directory
    is one inside it: a server given no database uses the embedded default there, never the
    person's own `~/.local/share/voicebook/voicebook.db`.
    """
    data_home = {"XDG_DATA_HOME": str(tmp_path / "user-data")}
    env = clean_env({**UNLIMITED_BROWSER, **data_home, **env})
    for attempt in range(PORT_ATTEMPTS):
        chosen = port or free_port()
        log_path = tmp_path / f"server-{chosen}.log"
        argv = [sys.executable, "-m", "voicebook", "serve", "--port", str(chosen), *args]
        url = f"http://127.0.0.1:{chosen}"
        with contextlib.ExitStack() as stack:
            try:
                process = stack.enter_context(
                    running_process(
                        argv, ready_url=f"{url}/healthz", env=env, cwd=tmp_path, log_path=log_path
                    )
                )
            except RuntimeError as error:
                lost_the_port = "address already in use" in str(error).lower()
                if port is None and lost_the_port and attempt + 1 < PORT_ATTEMPTS:
                    continue
                raise
            yield Server(process, chosen, log_path)
            return


PORT_ATTEMPTS = 3
"""A free port can be taken by someone else (another test run in parallel) between the moment
`free_port` sees it free and the server binding it: then the server starts on another."""


ALWAYS_OPEN = {
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
}
"""A calendar with free slots whatever the hour the test runs, and as many session starts from
one address as the test makes."""


@contextlib.contextmanager
def keyed_server(tmp_path_factory: Any, name: str, api_key: str, **extra: str) -> Iterator[Server]:
    """A server with its own SQLite file, the service key `api_key`, always open (`ALWAYS_OPEN`),
    plus `extra` settings: what most end-to-end tests of one command or client need."""
    tmp = tmp_path_factory.mktemp(name)
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp / 'x.db'}",
        "VOICEBOOK_API_KEY": api_key,
        **ALWAYS_OPEN,
        **extra,
    }
    with running_server(env, tmp) as running:
        yield running

"""Real `voicebook serve` processes on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


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
def running_server(
    env: dict[str, str], tmp_path: Path, *, args: tuple[str, ...] = (), port: int | None = None
) -> Iterator[Server]:
    """Start a server with `env` added to a clean environment; stop it on exit.

    The working directory is `tmp_path`, so no stray `.env` is read.
    """
    port = port or free_port()
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOICEBOOK_", "LIVEKIT_", "SUPABASE_"))
    }
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicebook", "serve", "--port", str(port), *args],
            env={**base_env, **env},
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start in 30 s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

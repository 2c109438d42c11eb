"""Server processes for the HTTP and fan-out benchmarks, on free loopback ports.

`python -m voicebook serve` (and the bare baseline app of `http_loopback.py`) run as real
subprocesses with a clean environment (no `VOICEBOOK_*`, `LIVEKIT_*`, `SUPABASE_*` from the
caller) in a temporary working directory (so no stray `.env` is read), exactly as a user starts
them. Their output goes to a log file whose tail is printed when a server fails to start. The
CPU time a server used is read from `/proc/<pid>/stat` (NaN where there is no /proc), which also
tells when a server has gone idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness import Unavailable

REDIS_URL = os.environ.get(
    "VOICEBOOK_BENCH_REDIS_URL",
    os.environ.get("VOICEBOOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
)
STARTUP_S = 30.0
STOP_S = 15.0
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
IDLE_S = 0.25
"""A server whose CPU time has not moved for this long (25 clock ticks) has nothing to do."""
IDLE_POLL_S = 0.05
IDLE_LIMIT_S = 15.0


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all bound at once, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port() -> int:
    return free_ports(1)[0]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without voicebook's own settings, plus `extra`."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOICEBOOK_", "LIVEKIT_", "SUPABASE_"))
    }
    return {**base, **extra}


def voicebook_argv(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "voicebook", "serve", "--port", str(port), *extra]


def raise_open_files(needed: int) -> None:
    """Raise this process's soft open-file limit to at least `needed` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class Spec:
    """How to start one server: its command line (listening on `port`) and environment."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)


class Process:
    """A started server; `url` / `ws_url` are its base URLs."""

    def __init__(self, spec: Spec, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = spec.name
        self.popen = popen
        self.port = spec.port
        self.url = f"http://127.0.0.1:{spec.port}"
        self.ws_url = f"ws://127.0.0.1:{spec.port}"
        self.log_path = log_path

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time this process has used so far."""
        try:
            stat = Path(f"/proc/{self.popen.pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK

    async def wait_ready(self, path: str = "/healthz") -> None:
        deadline = asyncio.get_running_loop().time() + STARTUP_S
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if self.popen.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + path)).status_code == 200:
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(
                        f"{self.name} did not start in {STARTUP_S:.0f} s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.1)

    async def wait_idle(self) -> None:
        """Until the process has used no CPU for IDLE_S (at most IDLE_LIMIT_S).

        A load generator that stops leaves a request in flight on every connection; the server
        still runs them. Waiting for it to go quiet keeps that work out of the next measured
        run and inside the one that sent them.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IDLE_LIMIT_S
        last, quiet_since = self.cpu_seconds(), loop.time()
        if math.isnan(last):
            return
        while loop.time() < deadline and loop.time() - quiet_since < IDLE_S:
            await asyncio.sleep(IDLE_POLL_S)
            now = self.cpu_seconds()
            if now != last:
                last, quiet_since = now, loop.time()

    async def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            for _ in range(int(STOP_S / 0.05)):
                if self.popen.poll() is not None:
                    return
                await asyncio.sleep(0.05)
            self.popen.kill()
        self.popen.wait()


def spawn(spec: Spec, workdir: Path) -> Process:
    """Start one server (Popen returns at once; `Process.wait_ready` waits for it to answer)."""
    log_path = workdir / f"{spec.name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            spec.argv,
            env=clean_env(spec.env),
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Process(spec, popen, log_path)


@contextlib.asynccontextmanager
async def running(specs: Sequence[Spec], workdir: Path) -> AsyncIterator[list[Process]]:
    """Start every server in `specs` at once, wait until each answers /healthz, stop them after.

    The working directory is `workdir` (no `.env` there); each log is `workdir/<name>.log`.
    """
    processes: list[Process] = []
    try:
        for spec in specs:
            processes.append(spawn(spec, workdir))
        await asyncio.gather(*(p.wait_ready() for p in processes))
        yield processes
    finally:
        await asyncio.gather(*(p.stop() for p in processes))


async def check_redis(url: str = REDIS_URL) -> None:
    """Raise Unavailable when Redis cannot be reached (the benchmark is then skipped)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        raise Unavailable(f"Redis at {url}: {exc}") from exc
    finally:
        await client.aclose()

"""wrk, the load generator of the HTTP benchmark, and what one wrk run measured.

The benchmark's own Python process is a poor load generator: an httpx request costs more CPU
than the server spends answering a bare endpoint, so its ratios measured the client. wrk (C, one
event loop per thread) costs a fraction of that; `wrk_load.lua` builds every request (distinct
slots and idempotency keys) and prints the result as one JSON line.

wrk's CPU time is read from the kernel when it is reaped (`os.wait4`, user + system of all its
threads): its `/proc/<pid>` is gone by the time the numbers are known.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import Unavailable

SCRIPT = Path(__file__).resolve().with_name("wrk_load.lua")
INSTALL_HINT = "apt-get install -y wrk (Debian/Ubuntu; brew install wrk on macOS)"
TIMEOUT_S = 30
RESULT_MARK = "WRK_RESULT "
ERROR_MARK = "WRK_ERROR "


def wrk_path() -> str:
    """The wrk executable, or Unavailable (the benchmark is skipped) naming how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise Unavailable(f"wrk is not installed; install it with: {INSTALL_HINT}")
    return path


@dataclass
class WrkRun:
    """One wrk run: its counts, latency percentiles (ms) and its own CPU time."""

    requests: int
    duration_s: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float
    first_error: str | None

    @property
    def ops_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @classmethod
    def parse(cls, output: str, cpu_s: float) -> WrkRun:
        result = next((line for line in output.splitlines() if line.startswith(RESULT_MARK)), None)
        if result is None:
            raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
        data = json.loads(result.removeprefix(RESULT_MARK))
        first_error = next(
            (
                line.removeprefix(ERROR_MARK)
                for line in output.splitlines()
                if line.startswith(ERROR_MARK)
            ),
            None,
        )
        if data["slots_reused"]:
            first_error = f"ran out of distinct slots (replays follow); {first_error}"
        errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
        return cls(
            requests=data["requests"],
            duration_s=data["duration_us"] / 1e6,
            errors=errors,
            p50_ms=data["p50"] / 1e3,
            p90_ms=data["p90"] / 1e3,
            p99_ms=data["p99"] / 1e3,
            max_ms=data["max"] / 1e3,
            cpu_s=cpu_s,
            first_error=first_error,
        )


@dataclass
class Target:
    """What to load: a base URL, the script's mode, and the files of callers and slots."""

    url: str
    mode: str
    callers: Path
    slots: Path | None = None


def _spawn_and_reap(argv: list[str], output: Path) -> tuple[int, float]:
    """Run argv with stdout and stderr to `output`; its exit status and its CPU seconds."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    pid = os.posix_spawn(
        argv[0],
        argv,
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 1, str(output), flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
    )
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


async def run_wrk(
    target: Target, *, connections: int, duration_s: int, key_prefix: str, workdir: Path
) -> WrkRun:
    """One closed-loop wrk run: `connections` keep-alive connections for `duration_s` seconds.

    Threads = min(connections, CPUs): wrk needs at least one connection per thread, and more
    threads than CPUs would only compete with the server.
    """
    threads = max(1, min(connections, os.cpu_count() or 1))
    argv = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={TIMEOUT_S}s",
        "-s",
        str(SCRIPT),
        target.url,
        "--",
        target.mode,
        str(target.callers),
        str(target.slots) if target.slots else "-",
        key_prefix,
        str(threads),
    ]
    output = workdir / f"wrk-{key_prefix}.out"
    code, cpu_s = await asyncio.to_thread(_spawn_and_reap, argv, output)
    text = output.read_text(errors="replace")
    if code != 0:
        raise RuntimeError(f"wrk exited with {code}:\n{text[-2000:]}")
    return WrkRun.parse(text, cpu_s)

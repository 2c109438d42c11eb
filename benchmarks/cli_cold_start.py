"""Benchmark E: cold start of the `voicebook` command line, as fresh processes.

Issue: *cold start of `voicebook --help` and of `voicebook tool fetch_slots --json` against a
running server (targets < 0.3 s and < 0.6 s), measured as wall time of fresh subprocesses (median
of ~10), with `python -c pass` as the same-run baseline ratio.*

- A real `python -m voicebook serve` (SQLite in a temporary directory, rules open around the
  clock, no notice) on a free loopback port; one session is started over HTTP beforehand.
- Four commands, each a fresh process started with `subprocess.run` (output to /dev/null) from a
  clean environment (no `VOICEBOOK_*`, `LIVEKIT_*`, `SUPABASE_*`) in a temporary directory:
  `python -c pass` (the interpreter alone: the baseline), `voicebook --help`, and
  `voicebook tool fetch_slots --session S --json --url URL --api-key K` (import, parse, one HTTP
  call, print); and, for information, `python -c "import typer"`: the floor any Typer command
  line pays before its own code runs. `voicebook` is the console script next to this Python
  (what a user runs), else `python -m voicebook`.
- Wall time from spawn to exit, in interleaved rounds (the order rotates every round) so drift on
  the machine falls on all of them alike: 2 warm-up rounds (the OS file cache), then 11 measured
  (quick: 1 + 5).
- Judged: median < 0.3 s (`--help`) and < 0.6 s (`tool fetch_slots --json`). `× base` = median ÷
  the median of `python -c pass`; `net` = median − that median, the time voicebook itself adds
  to the interpreter's start-up (on a loaded machine this is the steadier figure).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.table import Table

from harness import console, verdict
from serving import Spec, clean_env, free_port, running, voicebook_argv

API_KEY = "bench-key"
SERVER_ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
}


@dataclass
class Command:
    label: str
    argv: list[str]
    target_s: float | None
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def voicebook_command() -> list[str]:
    script = Path(sys.executable).parent / "voicebook"
    return [str(script)] if script.exists() else [sys.executable, "-m", "voicebook"]


def wall_time(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {result.returncode}: {result.stderr.decode()[-500:]}"
        )
    return elapsed


async def run(quick: bool) -> None:
    warmup, rounds = (1, 5) if quick else (2, 11)
    with tempfile.TemporaryDirectory(prefix="vb_bench_cli_") as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = {**SERVER_ENV, "VOICEBOOK_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}"}
        spec = Spec("voicebook", voicebook_argv(port), port, env)
        async with running([spec], workdir) as (server,):
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(server.url + "/session/start", json={})
                answer.raise_for_status()
                session_id = answer.json()["session_id"]
            voicebook = voicebook_command()
            commands = [
                Command("python -c pass", [sys.executable, "-c", "pass"], None, []),
                Command(
                    "python -c 'import typer'", [sys.executable, "-c", "import typer"], None, []
                ),
                Command("voicebook --help", [*voicebook, "--help"], 0.3, []),
                Command(
                    "voicebook tool fetch_slots --json",
                    [
                        *voicebook,
                        "tool",
                        "fetch_slots",
                        "--session",
                        session_id,
                        "--json",
                        "--url",
                        server.url,
                        "--api-key",
                        API_KEY,
                    ],
                    0.6,
                    [],
                ),
            ]
            cli_env = clean_env({"COLUMNS": "100"})
            for index in range(warmup + rounds):
                shift = index % len(commands)
                for command in commands[shift:] + commands[:shift]:
                    elapsed = wall_time(command.argv, cli_env, workdir)
                    if index >= warmup:
                        command.samples.append(elapsed)
    report(commands, "console script" if len(voicebook) == 1 else "python -m voicebook")


def target(seconds: float | None) -> str:
    return "info" if seconds is None else f"< {seconds * 1e3:.0f} ms"


def report(commands: list[Command], how: str) -> None:
    base = commands[0].median
    table = Table(
        title=f"E · CLI cold start, fresh processes ({len(commands[0].samples)} rounds, "
        f"voicebook as the {how})",
        title_justify="left",
    )
    for name, justify in (
        ("command", "left"),
        ("median ms", "right"),
        ("min ms", "right"),
        ("max ms", "right"),
        ("× base", "right"),
        ("net ms", "right"),
        ("target", "right"),
        ("", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for command in commands:
        is_base = command is commands[0]
        table.add_row(
            command.label,
            f"{command.median * 1e3:,.0f}",
            f"{min(command.samples) * 1e3:,.0f}",
            f"{max(command.samples) * 1e3:,.0f}",
            "1.0" if is_base else f"{command.median / base:.1f}",
            "—" if is_base else f"{(command.median - base) * 1e3:,.0f}",
            "baseline" if is_base else target(command.target_s),
            "" if command.target_s is None else verdict(command.median < command.target_s),
        )
    console.print(table)

"""Benchmark E: cold start of the `voicebook` command line, as fresh processes.

Issue 13: *`voicebook --help` ≤ 1.6× and `voicebook --version` ≤ 1.3× `python -c 'import typer'`;
a leaf command's `--help` ≤ 2×; `voicebook call --text` shows the greeting ≤ 1.5× `voicebook
--version`, each a ratio in one run.*

- A real `python -m voicebook serve` (SQLite in a temporary directory, rules open around the
  clock, no notice) on a free loopback port; one session is started over HTTP beforehand. The
  scripted stand-in model (tests/scripted_llm.py) is the LLM of `call --text`.
- Each command is a fresh process started from a clean environment (no `VOICEBOOK_*`,
  `LIVEKIT_*`, `SUPABASE_*`) in a temporary directory: `python -c pass` (the interpreter alone),
  `python -c "import typer"` (the floor any Typer command line pays: the reference of the
  ratios), `voicebook --version`, `voicebook --help`, `voicebook tool fetch_slots --help` (a
  leaf command's help), `voicebook tool fetch_slots --session S --json --url URL --api-key K`
  (import, parse, one HTTP call, print; for information) and `voicebook call --text --url URL
  --say …` against the server, timed to the greeting's line on stdout (then stopped): judged
  as a user meets it from the second call on (the greeting remembered from the previous run
  with the same configuration, cli/greeting_cache.py), and for information on a first run
  (an empty cache directory each time: the greeting waits for the settings to load).
  `voicebook` is the console script next to this Python (what a user runs), else
  `python -m voicebook`.
- Wall time from spawn to exit (to the greeting for `call`), in interleaved rounds (the order
  rotates every round) so drift on the machine falls on all of them alike: 2 warm-up rounds (the
  OS file cache, and the bytecode an installed package has: PYTHONDONTWRITEBYTECODE is dropped
  for these processes), then 11 measured (quick: 1 + 5).
- Judged: the ratio of medians against the reference named in the table (`import typer`, or
  `--version` for the greeting). `× base` = median ÷ the median of `python -c pass`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.table import Table

from harness import console, verdict
from serving import Spec, clean_env, free_port, running, voicebook_argv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted model

API_KEY = "bench-key"
SERVER_ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
}


GREETING = "agent>"
"""How `call --text` prints the agent's lines (the greeting is the first)."""


@dataclass
class Command:
    label: str
    argv: list[str]
    reference: str | None = None
    """The label of the command this one's median is judged against."""
    max_ratio: float | None = None
    until: str | None = None
    """Time to the first stdout line holding this, instead of to the exit."""
    fresh_cache: bool = False
    """Run with an empty XDG_CACHE_HOME (nothing remembered from an earlier run)."""
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def voicebook_command() -> list[str]:
    script = Path(sys.executable).parent / "voicebook"
    return [str(script)] if script.exists() else [sys.executable, "-m", "voicebook"]


def wall_time(command: Command, env: dict[str, str], cwd: Path) -> float:
    """Seconds from spawn to exit, or to the first line holding `command.until` (the process
    is then stopped)."""
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryDirectory() as empty:
        if command.fresh_cache:
            env = {**env, "XDG_CACHE_HOME": empty}
        started = time.perf_counter()
        process = subprocess.Popen(
            command.argv,
            stdout=subprocess.PIPE if command.until else subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=cwd,
            text=True,
        )
        elapsed = None
        if command.until:
            assert process.stdout is not None
            for line in process.stdout:
                if command.until in line:
                    elapsed = time.perf_counter() - started
                    break
            process.kill()
        code = process.wait()
        if elapsed is None:
            elapsed = time.perf_counter() - started
            if code != 0 or command.until:
                stderr.seek(0)
                raise RuntimeError(
                    f"{' '.join(command.argv)} exited with {code}: {stderr.read().decode()[-500:]}"
                )
    return elapsed


async def run(quick: bool) -> None:
    from scripted_llm import ScriptedModel, ScriptedServer

    warmup, rounds = (1, 5) if quick else (2, 11)
    model = ScriptedServer(ScriptedModel()).start()
    with tempfile.TemporaryDirectory(prefix="vb_bench_cli_") as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = {**SERVER_ENV, "VOICEBOOK_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}"}
        spec = Spec("voicebook", voicebook_argv(port), port, env)
        try:
            async with running([spec], workdir) as (server,):
                async with httpx.AsyncClient(timeout=30) as client:
                    answer = await client.post(server.url + "/session/start", json={})
                    answer.raise_for_status()
                    session_id = answer.json()["session_id"]
                commands = measured(voicebook_command(), server.url, session_id)
                cli_env = clean_env(
                    {
                        "COLUMNS": "100",
                        "PYTHONUNBUFFERED": "1",  # the greeting's line as soon as it is printed
                        "OPENAI_API_BASE": model.base_url,
                        "OPENAI_API_KEY": "x",
                        "XDG_CACHE_HOME": str(workdir / "cache"),  # not the user's
                    }
                )
                # Bytecode as an installed package has it (pip compiles at install): an
                # editable checkout run with PYTHONDONTWRITEBYTECODE would compile every
                # voicebook module from source on every start. The warm-up rounds write it.
                cli_env.pop("PYTHONDONTWRITEBYTECODE", None)
                for index in range(warmup + rounds):
                    shift = index % len(commands)
                    for command in commands[shift:] + commands[:shift]:
                        elapsed = wall_time(command, cli_env, workdir)
                        if index >= warmup:
                            command.samples.append(elapsed)
        finally:
            model.stop()
    report(commands, "console script" if len(voicebook_command()) == 1 else "python -m voicebook")


TYPER = "python -c 'import typer'"
VERSION = "voicebook --version"


def measured(voicebook: list[str], url: str, session_id: str) -> list[Command]:
    server = ["--url", url, "--api-key", API_KEY]
    return [
        Command("python -c pass", [sys.executable, "-c", "pass"]),
        Command(TYPER, [sys.executable, "-c", "import typer"]),
        Command(VERSION, [*voicebook, "--version"], TYPER, 1.3),
        Command("voicebook --help", [*voicebook, "--help"], TYPER, 1.6),
        Command(
            "voicebook tool fetch_slots --help",
            [*voicebook, "tool", "fetch_slots", "--help"],
            TYPER,
            2.0,
        ),
        Command(
            "voicebook tool fetch_slots --json",
            [*voicebook, "tool", "fetch_slots", "--session", session_id, "--json", *server],
        ),
        Command(
            "voicebook call --text: the greeting",
            [*voicebook, "call", "--text", *server, "--say", "Hello"],
            VERSION,
            1.5,
            until=GREETING,
        ),
        Command(
            "voicebook call --text: the greeting, first run",
            [*voicebook, "call", "--text", *server, "--say", "Hello"],
            until=GREETING,
            fresh_cache=True,
        ),
    ]


def report(commands: list[Command], how: str) -> None:
    base = commands[0].median
    by_label = {command.label: command for command in commands}
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
        ("ratio", "right"),
        ("target", "right"),
        ("", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    verdicts = []
    for command in commands:
        ratio = target = judged = ""
        if command.reference is not None and command.max_ratio is not None:
            value = command.median / by_label[command.reference].median
            ratio = f"{value:.2f}×"
            target = f"≤ {command.max_ratio}× {command.reference}"
            judged = verdict(value <= command.max_ratio)
            verdicts.append(f"{command.label} {ratio} {judged}")
        table.add_row(
            command.label,
            f"{command.median * 1e3:,.0f}",
            f"{min(command.samples) * 1e3:,.0f}",
            f"{max(command.samples) * 1e3:,.0f}",
            f"{command.median / base:.1f}",
            ratio,
            target or ("baseline" if command is commands[0] else "info"),
            judged,
        )
    console.print(table)
    console.print("ratios: " + "; ".join(verdicts))

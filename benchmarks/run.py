"""Run the voicebook benchmarks and print one table per benchmark.

    python benchmarks/run.py                 # everything (about 4-5.5 minutes)
    python benchmarks/run.py --quick         # shorter phases, fewer iterations (about 1-1.5 min)
    python benchmarks/run.py --only booking  # one benchmark (or a prefix: --only fetch_slots)
    python benchmarks/run.py --only http --only fanout  # the server benchmarks C and D

Every target is judged against a baseline measured in the same run; a MISS is reported, never
turned into a failing exit code. A benchmark whose database cannot be reached is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agent
import booking
import cli_cold_start
import fanout
import faults
import fetch_slots
import http_loopback
from harness import ADMIN_URL, Unavailable, console

BENCHMARKS: dict[str, tuple[str, Callable[[bool], Awaitable[None]]]] = {
    "fetch_slots.sqlite": ("A: fetch_slots vs store size, SQLite", fetch_slots.run_sqlite),
    "fetch_slots.postgres": ("A: fetch_slots vs store size, Postgres", fetch_slots.run_postgres),
    "booking.postgres": ("B: booking vs bare INSERT, Postgres", booking.run),
    "http.postgres": ("C: HTTP on loopback vs a bare FastAPI INSERT, Postgres", http_loopback.run),
    "fanout.redis": ("D: one event to 500 WebSockets over 2 processes, Redis", fanout.run),
    "cli.cold_start": ("E: CLI cold start, fresh processes", cli_cold_start.run),
    "agent.text": ("F: the agent: prompt tokens, overhead per turn, first prompt", agent.run),
    "faults.services": ("G: per fault of Postgres or Redis: answers, failures, events", faults.run),
}


def selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    names = [n for n in BENCHMARKS if any(n == o or n.startswith(o + ".") for o in only)]
    if not names:
        raise SystemExit(
            f"no benchmark matches {', '.join(only)}; choose from: "
            + ", ".join([*sorted({n.split(".")[0] for n in BENCHMARKS}), *BENCHMARKS])
        )
    return names


async def main(names: list[str], quick: bool) -> None:
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(
        f"voicebook benchmarks — {'quick' if quick else 'full'} run · Python "
        f"{platform.python_version()} · {os.cpu_count()} CPUs, load average {load} · "
        f"Postgres admin URL {ADMIN_URL}"
    )
    for name in names:
        title, bench = BENCHMARKS[name]
        console.rule(f"{name} · {title}")
        started = time.perf_counter()
        try:
            await bench(quick)
        except Unavailable as exc:
            console.print(f"[yellow]skipped:[/yellow] {exc}")
            continue
        console.print(f"[dim]{name} took {time.perf_counter() - started:.1f} s[/dim]")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 1-1.5 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this benchmark or group: " + ", ".join(BENCHMARKS) + " (repeatable)",
    )
    args = parser.parse_args()
    names = selected(args.only)
    started = time.perf_counter()
    asyncio.run(main(names, args.quick))
    console.print(f"[dim]total {time.perf_counter() - started:.1f} s[/dim]")


if __name__ == "__main__":
    cli()

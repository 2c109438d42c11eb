"""The agent's parts on their own: tool schemas, the clock, usage, metadata, settings checks,
the worker built offline, and the commands' answers when something is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from agent_support import BOOKING_RULES, IDENTIFY, require_agent_extra, voicebook
from servers import clean_env, free_port, running_server
from voicebook.config import ConfigError, load_settings
from voicebook.models import TOOL_NAMES, TOOL_REQUESTS

require_agent_extra()

from livekit.agents.metrics.usage import (  # noqa: E402
    LLMModelUsage,
    STTModelUsage,
    TTSModelUsage,
)

from voicebook.agent.prompt import clock_message  # noqa: E402
from voicebook.agent.providers import check_settings, missing_variables  # noqa: E402
from voicebook.agent.reporting import usage_totals  # noqa: E402
from voicebook.agent.schemas import tool_schema, tool_schemas  # noqa: E402
from voicebook.agent.tools import (  # noqa: E402
    AGENT_RETRY,
    AGENT_TIMEOUT,
    OUTAGE_READ,
    OUTAGE_WRITE,
    TOOL_DEADLINE_S,
    ServerTools,
    agent_client,
    spoken_message,
    tool_error,
)
from voicebook.agent.worker import session_id_from_metadata  # noqa: E402
from voicebook.errors import (  # noqa: E402
    ConnectionFailed,
    ServiceUnavailable,
    SlotTaken,
    TimedOut,
    VerificationUnavailable,
    error_from_body,
)

# --- the tools the model sees -----------------------------------------------------------------


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_each_tool_schema_has_the_http_tool_parameters(name: str) -> None:
    schema = tool_schema(name)
    fields = set(TOOL_REQUESTS[name].model_fields) - {"session_id"}
    assert schema["name"] == name
    assert set(schema["parameters"]["properties"]) == fields
    required = {f for f, info in TOOL_REQUESTS[name].model_fields.items() if info.is_required()}
    assert set(schema["parameters"].get("required", [])) == required - {"session_id"}
    text = json.dumps(schema)
    for noise in ('"title"', '"anyOf"', '"additionalProperties"', '"default"', "session_id"):
        assert noise not in text


def test_tool_schemas_keep_enums_and_formats() -> None:
    slots = tool_schema("fetch_slots")["parameters"]["properties"]
    assert slots["part_of_day"]["enum"] == ["morning", "afternoon", "evening"]
    assert slots["date"]["format"] == "date"
    assert [s["name"] for s in tool_schemas()] == list(TOOL_NAMES)


def test_a_taken_slot_reaches_the_model_with_its_alternatives() -> None:
    alternative = {
        "slot_id": "slot_20261127T1500Z",
        "start": "2026-11-27T10:00:00-05:00",
        "end": "2026-11-27T10:30:00-05:00",
        "label": "Friday, November 27 at 10:00 AM",
    }
    body = {"error": {"code": "slot_taken", "message": "That time was just taken."}}
    body["error"]["alternatives"] = [alternative]
    error = error_from_body(409, body)
    assert isinstance(error, SlotTaken)
    told = json.loads(tool_error(error).message)
    assert told["error"] == "slot_taken"
    assert told["message"] == "That time was just taken."
    assert told["alternatives"][0]["slot_id"] == alternative["slot_id"]
    assert told["alternatives"][0]["label"] == alternative["label"]


def test_the_agent_client_is_sized_for_a_caller_on_the_line() -> None:
    """A couple of seconds an attempt, a few in all: two stuck attempts (the last one starts
    within the budget) fit in the tool deadline, which bounds the call whatever happens."""
    client = agent_client("http://127.0.0.1:9", None)
    assert client.retry == AGENT_RETRY
    timeout = client._wire.timeout
    assert (timeout.connect, timeout.read, timeout.write) == (1.0, 2.0, 2.0)
    assert AGENT_TIMEOUT.read is not None
    assert AGENT_RETRY.max_total_s + AGENT_TIMEOUT.read <= TOOL_DEADLINE_S <= 5.0


async def test_an_unreachable_server_is_a_sentence_not_a_url() -> None:
    """Nothing listens: the agent gives up at once (a refused connection never reached the
    server), and the model and the terminal get a sentence without the URL or the exception."""
    port = free_port()
    async with agent_client(f"http://127.0.0.1:{port}", None) as client:
        seen: list[Any] = []
        tools = ServerTools(client, "sess_x", seen.append)
        with pytest.raises(ConnectionFailed) as failed:
            await tools.call("fetch_slots", {}, "call_1")
    assert "127.0.0.1" in str(failed.value)  # the SDK's own error keeps it, for the log
    told = json.loads(tool_error(failed.value, "fetch_slots").message)
    assert told == {"error": "connection_failed", "message": OUTAGE_READ}
    (record,) = seen
    assert record.output == OUTAGE_READ
    for leak in ("http", "127.0.0.1", str(port), "ConnectError", "VOICEBOOK_URL"):
        assert leak not in json.dumps(told)


def test_what_the_model_reads_for_each_kind_of_failure() -> None:
    """The server's refusals keep their sentence; an outage is said the same way whatever
    failed, and a write that may have happened is not called undone."""
    taken = SlotTaken("That time was just taken.")
    assert spoken_message(taken, "book_appointment") == "That time was just taken."
    no_code = VerificationUnavailable("No code can be sent now; booking still works.")
    assert spoken_message(no_code, "verify_caller") == no_code.message
    down = ServiceUnavailable("The store at db.internal:5432 is down.")
    assert spoken_message(down, "fetch_slots") == OUTAGE_READ
    slow = TimedOut("The voicebook server at http://10.0.0.5:8000 did not answer in time.")
    assert spoken_message(slow, "book_appointment") == OUTAGE_WRITE
    assert "may or may not" in OUTAGE_WRITE


# --- the clock ------------------------------------------------------------------------------


def test_clock_is_worded_like_the_slot_labels_in_the_business_zone() -> None:
    rules = load_settings(timezone="America/New_York").rules
    now = datetime(2026, 11, 25, 22, 4, tzinfo=timezone.utc)
    assert clock_message(rules, now) == (
        "Now: Wednesday, November 25 at 5:04 PM, 2026 (America/New_York)."
    )


def test_clock_names_the_zone_in_the_repeated_hour_of_a_dst_change() -> None:
    rules = load_settings(timezone="America/New_York").rules
    first = clock_message(rules, datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc))
    second = clock_message(rules, datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc))
    assert "1:30 AM EDT" in first
    assert "1:30 AM EST" in second


def test_clock_uses_the_local_year_at_new_year() -> None:
    rules = load_settings(timezone="Pacific/Auckland").rules
    message = clock_message(rules, datetime(2026, 12, 31, 12, 0, tzinfo=timezone.utc))
    assert message.startswith("Now: Friday, January 1 at 1:00 AM, 2027")


# --- usage ----------------------------------------------------------------------------------


def test_usage_totals_add_up_every_model() -> None:
    usage = usage_totals(
        [
            LLMModelUsage(
                provider="openai", model="gpt-4o-mini", input_tokens=900, output_tokens=40
            ),
            LLMModelUsage(provider="openai", model="gpt-4o", input_tokens=100, output_tokens=10),
            STTModelUsage(provider="deepgram", model="nova-3", audio_duration=61.5),
            TTSModelUsage(provider="cartesia", model="sonic", characters_count=420),
        ],
        avatar_seconds=30.25,
    )
    assert usage.llm_model == "gpt-4o-mini"
    assert (usage.llm_input_tokens, usage.llm_output_tokens) == (1000, 50)
    assert usage.stt_seconds == pytest.approx(61.5)
    assert usage.tts_characters == 420
    assert usage.avatar_seconds == pytest.approx(30.25)


def test_usage_totals_of_nothing_are_zero() -> None:
    usage = usage_totals([])
    assert (usage.llm_input_tokens, usage.tts_characters, usage.stt_seconds) == (0, 0, 0)
    assert usage.llm_model is None


# --- the job's metadata and the settings ------------------------------------------------------


def test_session_id_comes_from_the_dispatch_metadata() -> None:
    assert session_id_from_metadata('{"session_id": "abc123"}') == "abc123"


@pytest.mark.parametrize("metadata", [None, "", "not json", "[]", '{"session_id": ""}', "{}"])
def test_a_job_without_a_session_id_is_refused_with_the_reason(metadata: str | None) -> None:
    with pytest.raises(ValueError, match="POST /livekit/token"):
        session_id_from_metadata(metadata)


def test_missing_variables_are_listed_together() -> None:
    settings = load_settings(bey_enabled=True)
    assert missing_variables(settings, voice=True) == [
        "OPENROUTER_API_KEY (or OPENAI_API_BASE with OPENAI_API_KEY)",
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "DEEPGRAM_API_KEY",
        "CARTESIA_API_KEY",
        "BEY_API_KEY",
    ]
    assert missing_variables(settings, voice=False) == [
        "OPENROUTER_API_KEY (or OPENAI_API_BASE with OPENAI_API_KEY)"
    ]
    local = load_settings(openai_api_base="http://127.0.0.1:11434/v1")
    assert missing_variables(local, voice=False) == []  # a local server needs no key
    with pytest.raises(ConfigError, match="text agent is missing settings: OPENROUTER_API_KEY"):
        check_settings(settings, voice=False)


# --- offline construction -------------------------------------------------------------------

NO_NETWORK = """
import socket

def refuse(*args, **kwargs):
    raise AssertionError("the network was touched")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""


def run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_worker_builds_its_session_offline_with_dummy_keys(tmp_path: Path) -> None:
    env = clean_env(
        {
            "OPENROUTER_API_KEY": "dummy",
            "OPENROUTER_MODEL": "openai/gpt-4o-mini",
            "DEEPGRAM_API_KEY": "dummy",
            "CARTESIA_API_KEY": "dummy",
            "CARTESIA_VOICE_ID": "dummy-voice",
            "LIVEKIT_URL": "wss://example.invalid",
            "LIVEKIT_API_KEY": "dummy",
            "LIVEKIT_API_SECRET": "dummy-secret-dummy-secret-dummy-secret",
            "BEY_ENABLED": "true",
            "BEY_API_KEY": "dummy",
        }
    )
    code = (
        NO_NETWORK
        + """
from livekit.agents import inference
from livekit.plugins import cartesia, deepgram, openai

from voicebook.agent.link import CallLink
from voicebook.agent.providers import build_avatar, build_voice_session
from voicebook.agent.receptionist import Receptionist
from voicebook.agent.worker import create_agent_server
from voicebook.config import load_settings
from voicebook.sdk import AsyncClient

settings = load_settings()
session = build_voice_session(settings)
assert isinstance(session.stt, deepgram.STT), session.stt
assert isinstance(session.llm, openai.LLM), session.llm
assert isinstance(session.tts, cartesia.TTS), session.tts
assert isinstance(session.vad, inference.VAD), session.vad
assert isinstance(session.turn_detection, inference.TurnDetector), session.turn_detection
agent = Receptionist(CallLink(AsyncClient("http://127.0.0.1:9"), "sess"), settings.rules)
assert len(agent.tools) == 8  # the eight tools; a SIP-attested line has no verify_caller
build_avatar(settings)
create_agent_server(settings)
print("built offline:", session.llm.model)
"""
    )
    done = run_python(code, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "built offline: openai/gpt-4o-mini" in done.stdout


def test_text_mode_never_builds_speech(scripted: Any, tmp_path: Path) -> None:
    """A whole text call, then: no STT, TTS or VAD on the session, and neither speech plugin
    was even imported."""
    scripted.model.add(BOOKING_RULES)
    with running_server(
        {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/vb.db"}, tmp_path
    ) as server:
        code = f"""
import asyncio
import sys

from voicebook.agent.textmode import TextCall
from voicebook.config import load_settings
from voicebook.sdk import AsyncClient

async def main():
    async with AsyncClient({server.url!r}) as client:
        call = TextCall(load_settings(), client)
        await call.start()
        turn = await call.say({IDENTIFY!r})
        assert turn.tool_calls and turn.tool_calls[0].ok, turn
        session = call.agent_session
        assert session.stt is None and session.tts is None and session.vad is None
        await call.close()

asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.startswith(("livekit.plugins.deepgram",
    "livekit.plugins.cartesia", "livekit.plugins.bey")))
print("speech modules:", loaded)
"""
        done = run_python(code, clean_env(scripted.env()), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "speech modules: []" in done.stdout


# --- the commands when something is missing ---------------------------------------------------


def test_agent_start_without_keys_lists_every_missing_variable(tmp_path: Path) -> None:
    done = voicebook("agent", "start", env=clean_env({"COLUMNS": "300"}), cwd=tmp_path)
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    for name in (
        "OPENROUTER_API_KEY",
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "DEEPGRAM_API_KEY",
        "CARTESIA_API_KEY",
    ):
        assert name in message
    assert "Traceback" not in done.stderr


def test_call_without_text_says_calls_here_are_text_only(tmp_path: Path) -> None:
    done = voicebook("call", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 2
    assert "voicebook call --text" in " ".join(done.stderr.split())


def test_call_text_without_an_llm_key_says_which_variables(tmp_path: Path) -> None:
    done = voicebook("call", "--text", "--say", "hi", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 2
    assert "OPENROUTER_API_KEY (or OPENAI_API_BASE with OPENAI_API_KEY)" in " ".join(
        done.stderr.split()
    )


HIDE_LIVEKIT = """
import sys

class HideLiveKitAgents:
    def find_spec(self, name, path=None, target=None):
        if name == "livekit.agents" or name.startswith("livekit.agents."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideLiveKitAgents())
sys.argv = ["voicebook", ARGS]
from voicebook.cli.app import main
main()
"""


@pytest.mark.parametrize(
    "args", [["agent", "start"], ["agent", "dev"], ["call", "--text"], ["eval", "x.yaml"]]
)
def test_without_the_agent_extra_the_commands_print_the_install_line(
    args: list[str], tmp_path: Path
) -> None:
    code = HIDE_LIVEKIT.replace("ARGS", repr(args)[1:-1])
    done = run_python(code, clean_env({"COLUMNS": "300"}), tmp_path)
    assert done.returncode == 2, done.stderr
    assert 'pip install "voicebook[agent]"' in done.stderr
    assert "livekit-agents" in done.stderr


def test_help_lists_the_agent_commands(tmp_path: Path) -> None:
    done = voicebook("--help", env=clean_env({"COLUMNS": "200"}), cwd=tmp_path)
    assert done.returncode == 0
    for command in ("agent", "call", "eval"):
        assert command in done.stdout


def test_the_agent_never_imports_the_server_or_a_database_driver(tmp_path: Path) -> None:
    """The agent talks to the server only over HTTP (DESIGN: agent → sdk → models); it reads
    the settings and the label wording, never the store, the service or FastAPI."""
    code = """
import sys
import voicebook.agent.evals, voicebook.agent.textmode, voicebook.agent.worker
heavy = ("fastapi", "uvicorn", "starlette", "psycopg", "psycopg_pool", "aiosqlite", "redis")
inner = ("voicebook.server", "voicebook.store", "voicebook.events", "voicebook.scheduling.service")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(inner)))
"""
    done = run_python(code, clean_env(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_call_text_against_a_server_that_is_not_there(scripted: Any, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = voicebook(
        "call", "--text", "--say", "hi", "--url", dead, env=clean_env(scripted.env()), cwd=tmp_path
    )
    assert done.returncode == 3
    message = " ".join(done.stderr.split())
    assert f"cannot reach the voicebook server at {dead}" in message
    assert scripted.model.requests == []  # nothing was said to the model


def test_agent_start_drains_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The worker starts (LiveKit itself is not reachable here, so it keeps retrying), and
    SIGTERM makes it drain and exit 0, as an orchestrator stopping it expects."""
    import signal
    import time

    env = clean_env(
        {
            "OPENROUTER_API_KEY": "dummy",
            "DEEPGRAM_API_KEY": "dummy",
            "CARTESIA_API_KEY": "dummy",
            "LIVEKIT_URL": f"ws://127.0.0.1:{free_port()}",
            "LIVEKIT_API_KEY": "dummy",
            "LIVEKIT_API_SECRET": "dummy-secret-dummy-secret-dummy-secret",
        }
    )
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicebook", "agent", "start", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 60
        while "failed to connect to livekit" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text(errors="replace")
    finally:
        process.kill()
    text = log.read_text(errors="replace")
    assert "draining worker" in text
    assert "Traceback" not in text


def test_the_worker_reads_the_session_id_the_server_puts_in_the_token(tmp_path: Path) -> None:
    """The contract between `POST /livekit/token` and the worker: the dispatch the token carries
    names the worker's agent, and its metadata gives the worker the session it joins."""
    from livekit import api

    from voicebook.server.livekit import mint_token

    secret = "a-secret-that-is-long-enough-for-hs256"
    settings = load_settings(
        livekit_url="wss://example.invalid",
        livekit_api_key="key",
        livekit_api_secret=secret,
        livekit_agent_name="front-desk",
    )
    minted = mint_token(settings, "sess_42")
    claims = api.TokenVerifier("key", secret).verify(minted.token)
    assert claims.room_config is not None
    (dispatch,) = claims.room_config.agents
    assert dispatch.agent_name == settings.livekit_agent_name
    assert session_id_from_metadata(dispatch.metadata) == "sess_42"

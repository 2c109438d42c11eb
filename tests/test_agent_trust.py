"""The agent's side of the trust model: what the model is told and given, the worker's SIP
attestation (as far as it runs without a LiveKit server: the participant is the one thing
LiveKit would hand it), and the eval harness's code inbox and trust scenarios.

The servers are real `voicebook serve` processes with a service key; the LLM is the scripted
stand-in (tests/scripted_llm.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from agent_support import REPO, require_agent_extra, voicebook
from scripted_llm import rules_from_scenarios
from servers import Server, clean_env, running_server
from voicebook.config import Settings, load_settings
from voicebook.errors import error_from_body
from voicebook.sdk import AsyncClient

require_agent_extra()

from livekit import rtc  # noqa: E402

from voicebook.agent.evals import CodeInbox, wrong_code  # noqa: E402
from voicebook.agent.greeting import LINE_GREETING  # noqa: E402
from voicebook.agent.prompt import COMMON, KNOWN_LINE, instructions  # noqa: E402
from voicebook.agent.schemas import line_tools, tool_schema, tool_schemas  # noqa: E402
from voicebook.agent.textmode import TextCall  # noqa: E402
from voicebook.agent.tools import tool_error  # noqa: E402
from voicebook.agent.worker import (  # noqa: E402
    SIP_PHONE_NUMBER,
    dispatched_session_id,
    line_caller_number,
    link_call,
)

API_KEY = "agent-trust-key-0123456789"
LINE = "+14155550177"
SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD


def participant(kind: int, **attributes: str) -> Any:
    """A joined participant as LiveKit hands it to the worker: kind, attributes, identity."""
    return SimpleNamespace(kind=kind, attributes=attributes, identity=f"p-{kind}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'vb.db'}",
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
        "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    }
    with running_server(env, tmp_path) as running:
        yield running


def settings_for(scripted: Any) -> Settings:
    return load_settings(
        openai_api_base=scripted.base_url, openai_api_key="x", llm_model="scripted-model"
    )


# --- what the model sees ------------------------------------------------------------------------


def test_identify_user_takes_an_optional_phone_and_verify_caller_an_optional_code() -> None:
    identify = tool_schema("identify_user")["parameters"]
    assert set(identify["properties"]) == {"phone", "name"}
    assert "required" not in identify  # a trusted session identifies without one
    verify = tool_schema("verify_caller")
    assert set(verify["parameters"]["properties"]) == {"code"}
    assert "required" not in verify["parameters"]
    assert "code" in verify["description"]


def test_on_a_known_line_the_model_cannot_name_a_number_and_has_nothing_to_verify() -> None:
    identify = tool_schema("identify_user", known_line=True)
    assert set(identify["parameters"]["properties"]) == {"name"}
    assert "phone" not in json.dumps(identify["parameters"])
    assert "verify_caller" not in line_tools(known_line=True)
    assert "verify_caller" in line_tools(known_line=False)
    assert [s["name"] for s in tool_schemas(known_line=True)] == list(line_tools(True))


def test_the_prompt_reads_the_number_back_and_asks_for_the_code() -> None:
    assert "repeat it back and wait for a yes, then call identify_user" in COMMON
    for step in ("verification_required", "verify_caller without a code", "wrong code"):
        assert step.lower() in COMMON.lower()
    assert "never ask for it" in KNOWN_LINE
    assert "identify_user without a phone" in KNOWN_LINE
    assert "verify_caller" not in KNOWN_LINE
    assert "get the caller's phone number" not in KNOWN_LINE
    voice = instructions(known_line=False)
    assert "digit by digit" in voice.audio and "digits" in voice.text
    assert str(instructions(known_line=True)).startswith(KNOWN_LINE.splitlines()[0])


def test_a_wrong_code_reaches_the_model_with_the_tries_left() -> None:
    body = {
        "error": {"code": "wrong_code", "message": "That code doesn't match.", "attempts_left": 2}
    }
    told = json.loads(tool_error(error_from_body(422, body)).message)
    assert told == {
        "error": "wrong_code",
        "message": "That code doesn't match.",
        "attempts_left": 2,
    }


# --- the worker on a phone line -------------------------------------------------------------------


def test_only_a_sip_participant_brings_a_number() -> None:
    assert line_caller_number(participant(SIP, **{SIP_PHONE_NUMBER: " +14155550177 "})) == LINE
    # A web participant may set attributes on itself: they are never read as a caller id.
    assert line_caller_number(participant(STANDARD, **{SIP_PHONE_NUMBER: LINE})) is None
    assert line_caller_number(participant(SIP)) is None
    assert line_caller_number(participant(SIP, **{SIP_PHONE_NUMBER: "  "})) is None


def test_a_dispatch_without_a_session_id_is_not_an_error_for_a_phone_line() -> None:
    assert dispatched_session_id('{"session_id": "sess_1"}') == "sess_1"
    for metadata in (None, "", "not json", '{"other": 1}', "[]"):
        assert dispatched_session_id(metadata) is None


async def test_the_worker_attests_a_sip_callers_number_before_the_call(server: Server) -> None:
    async with AsyncClient(server.url, API_KEY) as client:
        session_id = (await client.start_session()).session_id
        link = await link_call(client, session_id, participant(SIP, **{SIP_PHONE_NUMBER: LINE}))
        assert link.session_id == session_id
        assert link.known_line and link.line_caller is not None
        assert link.line_caller.phone_masked.endswith(LINE[-4:])
        view = await client.get_session(session_id)
        assert view.identity_level == "trusted"
        who = await client.identify_user(session_id)
        assert who.level == "trusted"


async def test_a_sip_call_from_a_dispatch_rule_gets_a_trusted_session(server: Server) -> None:
    async with AsyncClient(server.url, API_KEY) as client:
        link = await link_call(client, None, participant(SIP, **{SIP_PHONE_NUMBER: LINE}))
        assert link.known_line
        view = await client.get_session(link.session_id)
        assert view.identity_level == "trusted" and view.state in ("connected", "active")
        with pytest.raises(ValueError, match="POST /livekit/token"):
            await link_call(client, None, participant(STANDARD, **{SIP_PHONE_NUMBER: LINE}))


async def test_a_web_caller_is_not_attested_and_a_bad_caller_id_is_not_fatal(
    server: Server,
) -> None:
    async with AsyncClient(server.url, API_KEY) as client:
        web = (await client.start_session()).session_id
        link = await link_call(client, web, participant(STANDARD, **{SIP_PHONE_NUMBER: LINE}))
        assert not link.known_line
        assert (await client.get_session(web)).identity_level is None

        withheld = (await client.start_session()).session_id
        link = await link_call(client, withheld, participant(SIP, **{SIP_PHONE_NUMBER: "anon"}))
        assert not link.known_line  # the call goes on; the caller is asked for the number
        assert (await client.get_session(withheld)).identity_level is None


async def test_a_call_on_a_known_line_never_lets_the_model_change_the_number(
    scripted: Any, server: Server
) -> None:
    """The model is told the line gave the number and has no phone parameter; a phone it adds
    anyway (here another caller's) is dropped, so the session's caller stays the line's."""
    line = "Hi, I'm Ellen. Book me in, my number is 415 555 0166."
    scripted.model.add(
        {
            line: [
                {"call": "identify_user", "args": {"phone": "415 555 0166", "name": "Ellen"}},
                {"say": "Thanks, Ellen."},
            ]
        }
    )
    async with AsyncClient(server.url, API_KEY) as client:
        call = TextCall(settings_for(scripted), client, line_phone=LINE)
        greeting = await call.start()
        assert greeting.agent == [LINE_GREETING]
        turn = await call.say(line)
        (identify,) = turn.tool_calls
        assert identify.ok, identify.output
        assert identify.arguments == {"name": "Ellen"}
        answer = json.loads(identify.output)
        assert answer["level"] == "trusted"
        assert answer["user"]["phone_masked"].endswith(LINE[-4:])
        await call.close()
    request = scripted.model.requests[0]
    tools = {t["function"]["name"]: t["function"] for t in request["tools"]}
    assert "verify_caller" not in tools
    assert "phone" not in tools["identify_user"]["parameters"]["properties"]
    assert "never ask for it" in json.dumps(request["messages"][0])


async def test_a_said_number_gets_all_eight_tools_and_the_read_back_prompt(
    scripted: Any, server: Server
) -> None:
    scripted.model.add({"Hello?": [{"say": "Hello! May I have your phone number?"}]})
    async with AsyncClient(server.url, API_KEY) as client:
        call = TextCall(settings_for(scripted), client)
        await call.start()
        await call.say("Hello?")
        await call.close()
    request = scripted.model.requests[0]
    names = [t["function"]["name"] for t in request["tools"]]
    assert "verify_caller" in names and len(names) == 8
    assert "repeat it back and wait for a yes" in json.dumps(request["messages"][0])


# --- the eval harness -------------------------------------------------------------------------


def _signed(secret: str, body: bytes, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "X-Voicebook-Timestamp": stamp,
        "X-Voicebook-Signature": f"sha256={mac}",
        "Content-Type": "application/json",
    }


def test_the_code_inbox_takes_only_signed_fresh_deliveries() -> None:
    with CodeInbox(secret="inbox-secret") as inbox:
        body = json.dumps({"phone": "+14155550106", "code": "123456", "message": "…"}).encode()
        assert inbox.last_code("415 555 0106") is None
        forged = httpx.post(inbox.url, content=body, headers=_signed("not-the-secret", body))
        stale = httpx.post(
            inbox.url,
            content=body,
            headers=_signed("inbox-secret", body, str(int(time.time()) - 3600)),
        )
        assert (forged.status_code, stale.status_code) == (401, 401)
        assert inbox.refused == 2 and inbox.messages == []
        good = httpx.post(inbox.url, content=body, headers=_signed("inbox-secret", body))
        assert good.status_code == 200
        for spelling in ("415 555 0106", "+1 (415) 555-0106", "+14155550106"):
            assert inbox.last_code(spelling) == "123456"
        assert inbox.last_code("415 555 0107") is None
        newer = json.dumps({"phone": "+14155550106", "code": "654321"}).encode()
        httpx.post(inbox.url, content=newer, headers=_signed("inbox-secret", newer))
        assert inbox.last_code("4155550106") == "654321"
    settings = inbox.configure(load_settings())
    assert settings.verification == "webhook"
    assert settings.verification_webhook_url == inbox.url
    assert settings.verification_webhook_secret.get_secret_value() == "inbox-secret"


def test_a_wrong_code_is_never_the_code() -> None:
    for code in ("000000", "123456", "999999", "000009"):
        wrong = wrong_code(code)
        assert wrong != code and len(wrong) == len(code) and wrong.isdigit()


TRUST_SCENARIOS = {
    "a claimed caller books",
    "a claimed caller proves the number to hear an earlier booking",
    "a wrong code, then the right one",
    "a caller on a phone line is never asked for the number",
}


def test_the_trust_scenarios_pass_through_voicebook_eval(scripted: Any, tmp_path: Path) -> None:
    """The shipped scenarios for the four trust cases, offline: the in-process server texts its
    codes to the eval's inbox, and the caller reads them back."""
    scenarios = REPO / "examples" / "scenarios.eval.yaml"
    scripted.model.add(rules_from_scenarios(scenarios))
    done = voicebook("eval", str(scenarios), "--json", env=clean_env(scripted.env()), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["name"]: r for r in json.loads(done.stdout) if r["name"] in TRUST_SCENARIOS}
    assert set(results) == TRUST_SCENARIOS
    assert all(r["passed"] for r in results.values()), results

    def checks(name: str) -> list[tuple[int, str, str]]:
        return [(c["turn"], c["what"], c["detail"]) for c in results[name]["checks"]]

    booked = checks("a claimed caller books")
    assert (1, "no identify_user", "") in booked  # the number was read back first

    proved = checks("a claimed caller proves the number to hear an earlier booking")
    assert any(w.startswith("an earlier call booked for") for _, w, _ in proved)
    assert any("status='code_sent'" in d for t, w, d in proved if t == 3)
    assert any("status='verified'" in d for t, w, d in proved if t == 4)
    assert any("annual check-up" in d for t, w, d in proved if w.startswith("retrieve"))

    wrong = checks("a wrong code, then the right one")
    assert [d for t, w, d in wrong if t == 4] == ["→ wrong_code"]
    assert any("status='verified'" in d for t, w, d in wrong if t == 5)

    line = checks("a caller on a phone line is never asked for the number")
    assert (0, "the line's caller id attested", "") in line
    assert any(w == "identify_user() without phone ok" for _, w, _ in line)
    assert any("level='trusted'" in d for _, w, d in line)

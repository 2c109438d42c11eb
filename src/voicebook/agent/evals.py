"""`voicebook eval FILE.yaml`: scripted conversations with the tool calls they must produce.

A scenario is a list of caller turns, each with the tool calls the agent is expected to make in
that turn (each must be among the calls of that turn) and their outcomes:

    format: voicebook-eval/1                       # required: not livekit's scenarios.yaml
    scenarios:
      - name: book the first free slot
        variant: voice                             # the voice instructions (default: text)
        turns:
          - user: "Hi, this is Ada, my number is 415 555 0101."
            not_called: [writes]                   # no write before the caller's yes
            judge: ["reads the number back and asks whether it is right"]
          - user: "Yes, that's right."
            expect:
              - tool: identify_user
                args: {phone: {phone: "+14155550101"}}   # these arguments (matchers:
                                                   # eval_match.py), others may be there too
                outcome: ok                        # ok | error | an error code (slot_taken)
          - user: "Someone else takes it while I think."
            before: {take: fetch_slots.slots.0.slot_id}   # another caller books that slot first
            expect: [...]
            model: [...]                           # what the scripted stand-in model answers

A scenario may also set up what came before and how the call arrives:

      - name: a caller proves their number
        before:                                    # done before the call, in sessions of their own
          - book: {phone: "415 555 0106", name: "Mary Jackson", notes: "check-up", slot: 2}
        sip_phone: "+1 415 555 0109"               # the call comes from a phone line with this
                                                   # caller id, attested before the first turn
        turns:
          - user: "It's {code}."                   # the newest code texted to the caller's number
            not_called: [identify_user]            # tools that must not be called in this turn
            expect:
              - tool: identify_user
                without: [phone]                   # arguments that must not be given
              - tool: retrieve_appointments
                output: {appointments.0.name: "Mary Jackson"}   # paths into the tool's answer
            says: ["Mary"]                         # words the agent's answer must contain

`judge:` intents are read by livekit-agents' judge against the agent's last answer of the turn
when a judge model is named (`--judge-model` / VOICEBOOK_JUDGE_MODEL), else reported as skipped
(eval_judge.py).

`{code}` in a caller's line is the newest verification code delivered to the caller's number
(the number of the call's last identify_user, or its `sip_phone`); `{wrong_code}` is one that
is certainly not it. The codes come from a local webhook receiver standing in for the
business's SMS system (`CodeInbox`): the in-process server sends its codes there
(`VOICEBOOK_VERIFICATION=webhook`, signed as the server signs them).

Each scenario runs in a fresh server session through `TextCall`, so it exercises the real
agent, tools, SDK and server; only the LLM is whatever is configured. The call checks are
read from livekit-agents' `RunResult` events: each expected call is matched (eval_match.py)
against the calls of the turn, its outcome read from the matching function-call output.
`model:` is ignored here: it is the script that the local stand-in model
(tests/scripted_llm.py) follows, so the file also runs offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from livekit.agents.voice.run_result import FunctionCallEvent, FunctionCallOutputEvent
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from voicebook.agent.eval_judge import SKIPPED, judge_intent
from voicebook.agent.eval_match import (
    WRITE_TOOLS,
    WRITES,
    check_matcher,
    describe,
    is_matcher,
    mismatch,
)
from voicebook.agent.faq import NAME as FAQ_TOOL
from voicebook.agent.textmode import TextCall, Turn
from voicebook.config import Settings
from voicebook.errors import VoicebookError
from voicebook.models import TOOL_NAMES
from voicebook.sdk import AsyncClient

if TYPE_CHECKING:
    from livekit.agents.llm import LLM

FORMAT = "voicebook-eval/1"
"""The value of a scenario file's top-level `format:` key: a livekit `scenarios.yaml`
simulation (another format under the same kind of name) is refused, not half-run."""
# --- the file -----------------------------------------------------------------------------------


KNOWN_TOOLS = (*TOOL_NAMES, FAQ_TOOL)
"""The server's tools and the agent's own FAQ search (for a business whose FAQ is searched)."""


def _known_tools(names: list[str]) -> None:
    unknown = [name for name in names if name not in KNOWN_TOOLS]
    if unknown:
        raise ValueError(f"unknown tool {unknown[0]!r}; the tools are {', '.join(KNOWN_TOOLS)}")


class ExpectedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    without: list[str] = Field(
        default_factory=list, description="Arguments the call must not have."
    )
    output: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted paths into the call's answer and the values they must hold.",
    )
    outcome: str = "ok"

    @model_validator(mode="after")
    def _known_tool(self) -> ExpectedCall:
        _known_tools([self.tool])
        for value in self.args.values():
            if is_matcher(value):
                check_matcher(value)
        return self


class Before(BaseModel):
    model_config = ConfigDict(extra="forbid")
    take: str = Field(description="tool.path.to.slot_id: book that slot for another caller.")


class ScenarioTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1)
    expect: list[ExpectedCall] = Field(default_factory=list)
    not_called: list[str] = Field(
        default_factory=list,
        description=f"Tools the agent must not call in this turn; {WRITES!r}: every write.",
    )
    says: list[str] = Field(
        default_factory=list,
        description="Texts the agent's answer in this turn must contain (any case).",
    )
    judge: list[str] = Field(
        default_factory=list,
        description="Intents the agent's last answer of the turn must fulfil (a judge model).",
    )
    before: Before | None = None
    model: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_tools(self) -> ScenarioTurn:
        _known_tools([name for name in self.not_called if name != WRITES])
        return self


class EarlierBooking(BaseModel):
    """A booking made before the call, in a session of its own, under `phone`."""

    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=1)
    name: str | None = None
    notes: str | None = None
    slot: int = Field(default=0, ge=0, lt=50, description="Which free slot (0: the first).")


class Setup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    book: EarlierBooking


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    before: list[Setup] = Field(default_factory=list)
    sip_phone: str | None = Field(
        default=None,
        min_length=1,
        description="The call comes from a phone line with this caller id (attested first).",
    )
    variant: Literal["text", "voice"] = Field(
        default="text", description="Which variant of the instructions the agent gets."
    )
    turns: list[ScenarioTurn] = Field(min_length=1)


class ScenarioFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["voicebook-eval/1"]
    scenarios: list[Scenario] = Field(min_length=1)


class ScenarioFileError(Exception):
    """The file cannot be read or is not a scenario file (the message says where)."""


def load_scenarios(path: Path) -> list[Scenario]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ScenarioFileError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ScenarioFileError(
            f"{path} is not a voicebook eval file: it needs `format: {FORMAT}` at the top "
            "(livekit's own scenarios.yaml simulations are another format)"
        )
    try:
        return ScenarioFile.model_validate(data).scenarios
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ScenarioFileError(f"{path} is not a scenario file: {problems}") from None


# --- running ------------------------------------------------------------------------------------


@dataclass
class Check:
    """One expectation and whether it held."""

    scenario: str
    turn: int
    what: str
    passed: bool
    detail: str = ""
    skipped: bool = False
    """Not run (a judged intent without a judge model); never a failure."""


@dataclass
class ScenarioResult:
    name: str
    variant: str = "text"
    session_id: str = ""
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass
class TurnCall:
    """One function call of a turn as the model made it, with its answer and the newest answer
    of each tool before it (what `{from: ...}` matchers accept)."""

    name: str
    call_id: str
    arguments: dict[str, Any]
    answers_before: dict[str, Any]
    is_error: bool = True
    code: str = "no output"


def calls_of(turn: Turn, answers: dict[str, Any]) -> list[TurnCall]:
    """The turn's calls in order, read from its `RunResult` events; `answers` (the newest answer
    of each tool in the call so far) is brought up to date."""
    assert turn.result is not None
    calls: dict[str, TurnCall] = {}
    for event in turn.result.events:
        item = event.item
        if isinstance(event, FunctionCallEvent):
            try:
                arguments = json.loads(item.arguments or "{}")
            except ValueError:
                arguments = {}
            calls[item.call_id] = TurnCall(
                item.name,
                item.call_id,
                arguments if isinstance(arguments, dict) else {},
                dict(answers),
            )
        elif isinstance(event, FunctionCallOutputEvent):
            try:
                answer = json.loads(item.output)
            except ValueError:
                answer = item.output
            answers[item.name] = answer
            call = calls.get(item.call_id)
            if call is not None:
                call.is_error = item.is_error
                error = answer.get("error", "") if isinstance(answer, dict) else ""
                call.code = str(error) if item.is_error else ""
    return list(calls.values())


def _path(value: Any, path: str) -> Any:
    """`value` at the dotted `path` ("appointments.0.name"); `_MISSING` when it is not there."""
    for key in path.split("."):
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return _MISSING
    return value


_MISSING = object()


def _output_problems(item: ExpectedCall, output: str) -> list[str]:
    try:
        answer = json.loads(output)
    except ValueError:
        answer = None
    problems = []
    for path, expected in item.output.items():
        found = _path(answer, path)
        if found is _MISSING:
            problems.append(f"no {path} in the answer")
        elif found != expected:
            problems.append(f"{path} is {found!r}, not {expected!r}")
    return problems


def _expected_call_check(
    scenario: str, index: int, turn: Turn, item: ExpectedCall, calls: list[TurnCall], region: str
) -> Check:
    what = f"{item.tool}({', '.join(f'{k}={describe(v)}' for k, v in item.args.items())})"
    if item.without:
        what += f" without {', '.join(item.without)}"
    named = [call for call in calls if call.name == item.tool]
    why = [mismatch(item.args, c.arguments, c.answers_before, region) for c in named]
    call = next((c for c, problem in zip(named, why, strict=True) if problem is None), None)
    if call is None:
        made = [c.name for c in calls] or ["no tool call"]
        detail = f"made: {', '.join(made)}"
        if named:
            detail += f"; {why[0]}"
        return Check(scenario, index, what, False, detail)
    expected_error = item.outcome != "ok"
    passed = call.is_error == expected_error and item.outcome in ("ok", "error", call.code)
    code = call.code
    detail = f"→ {code or 'ok'}" if passed else f"expected {item.outcome}, got {code or 'ok'}"
    extra = [name for name in item.without if call.arguments.get(name) is not None]
    if extra:
        passed, detail = False, f"{detail}; gave {', '.join(extra)}"
    record = next((r for r in turn.tool_calls if r.call_id == call.call_id), None)
    if item.output and passed:
        problems = _output_problems(item, record.output if record else "")
        if problems:
            passed, detail = False, "; ".join(problems)
        else:
            detail += f" ({', '.join(f'{k}={v!r}' for k, v in item.output.items())})"
    return Check(scenario, index, f"{what} {item.outcome}", passed, detail)


def _forbidden_checks(
    scenario: str, index: int, names: list[str], calls: list[TurnCall]
) -> list[Check]:
    """`not_called`: each tool named, and `writes` as one check naming every early write."""
    checks = []
    for tool in names:
        if tool == WRITES:
            early = [c.name for c in calls if c.name in WRITE_TOOLS]
            detail = f"wrote before the caller's yes: {', '.join(early)}" if early else ""
            checks.append(Check(scenario, index, "no write before a yes", not early, detail))
            continue
        made = [c for c in calls if c.name == tool]
        detail = f"called {len(made)} time(s)" if made else ""
        checks.append(Check(scenario, index, f"no {tool}", not made, detail))
    return checks


async def check_turn(
    scenario: str,
    index: int,
    turn: Turn,
    spec: ScenarioTurn,
    answers: dict[str, Any],
    region: str,
    judge: LLM | None = None,
) -> list[Check]:
    """The expectations of one turn, each as a `Check`; `answers` (the newest answer of each
    tool so far) is brought up to date; `region`: the default region of spoken numbers;
    `judge`: the model that reads the `judge:` intents (None: they are skipped)."""
    if turn.result is None:
        return [Check(scenario, index, "the agent answered", False, turn.error or "no answer")]
    calls = calls_of(turn, answers)
    checks = [
        _expected_call_check(scenario, index, turn, item, calls, region) for item in spec.expect
    ]
    checks += _forbidden_checks(scenario, index, spec.not_called, calls)
    answer = " ".join(" ".join(turn.agent).split()).lower()
    for text in spec.says:
        said = " ".join(text.split()).lower() in answer
        checks.append(Check(scenario, index, f"says {text!r}", said, "" if said else answer))
    for intent in spec.judge:
        what = f"judged: {intent}"
        if judge is None:
            checks.append(Check(scenario, index, what, True, SKIPPED, skipped=True))
            continue
        held, why = await judge_intent(judge, turn.result, intent)
        checks.append(Check(scenario, index, what, held, why))
    return checks


def _resolve(path: str, outputs: dict[str, Any]) -> Any:
    tool, *keys = path.split(".")
    value: Any = outputs.get(tool)
    for key in keys:
        value = value[int(key)] if isinstance(value, list) else (value or {}).get(key)
    return value


async def _take_slot(client: AsyncClient, slot_id: str) -> None:
    """Another caller books `slot_id` (for the double-booking scenarios)."""
    other = await client.start_session()
    await client.identify_user(other.session_id, phone="+14155550199", name="Another caller")
    await client.book_appointment(other.session_id, slot_id=slot_id)
    await client.end_session(other.session_id)


async def _book_earlier(client: AsyncClient, earlier: EarlierBooking) -> str:
    """A booking under `earlier.phone` in a session of its own (a call that came before);
    its label."""
    other = await client.start_session()
    await client.identify_user(other.session_id, phone=earlier.phone, name=earlier.name)
    slots = (await client.fetch_slots(other.session_id, limit=earlier.slot + 1)).slots
    if len(slots) <= earlier.slot:
        raise LookupError(f"there are only {len(slots)} free slots, not {earlier.slot + 1}")
    booked = await client.book_appointment(
        other.session_id,
        slot_id=slots[earlier.slot].slot_id,
        name=earlier.name,
        notes=earlier.notes,
    )
    await client.end_session(other.session_id)
    return booked.appointment.label


# --- verification codes ---------------------------------------------------------------------

CODE_WAIT_S = 10.0
"""How long a turn that says `{code}` waits for the code to be delivered."""
SIGNATURE_TOLERANCE_S = 300
_CODE_FIELDS = re.compile(r"\{(code|wrong_code)\}")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


class CodeInbox:
    """The business's SMS system, as far as `voicebook eval` needs one: a local HTTP server
    that takes the server's verification webhook (`VOICEBOOK_VERIFICATION=webhook`), checks its
    signature as a real receiver would (`X-Voicebook-Signature: sha256=HMAC(secret,
    "<X-Voicebook-Timestamp>.<body>")`), and keeps each code by phone number.

        with CodeInbox() as inbox:
            settings = inbox.configure(settings)   # the in-process server texts codes here
            ...
            inbox.last_code("415 555 0106")
    """

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or secrets.token_urlsafe(32)
        self.messages: list[dict[str, Any]] = []
        """Every delivery accepted, oldest first: `{phone, code, expires_at, message}`."""
        self.refused = 0
        """Deliveries refused (a bad signature or body)."""
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = inbox._receive(
                    body,
                    self.headers.get("X-Voicebook-Timestamp", ""),
                    self.headers.get("X-Voicebook-Signature", ""),
                )
                answer = b"{}" if status == 200 else b'{"error": "refused"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return  # the eval prints its own table

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/codes"

    def start(self) -> CodeInbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> CodeInbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, settings: Settings) -> Settings:
        """`settings` for an in-process server that delivers its codes to this inbox."""
        return settings.model_copy(
            update={
                "verification": "webhook",
                "verification_webhook_url": self.url,
                "verification_webhook_secret": SecretStr(self.secret),
            }
        )

    def _receive(self, body: bytes, timestamp: str, signature: str) -> int:
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        try:
            fresh = abs(time.time() - int(timestamp)) <= SIGNATURE_TOLERANCE_S
            message = json.loads(body)
        except ValueError:
            fresh, message = False, None
        signed = hmac.compare_digest(signature.encode(), f"sha256={expected}".encode())
        if not (signed and fresh and isinstance(message, dict)):
            with self._lock:
                self.refused += 1
            return 401
        if not (isinstance(message.get("phone"), str) and isinstance(message.get("code"), str)):
            with self._lock:
                self.refused += 1
            return 422
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return 200

    def _newest(self, phone: str) -> str | None:
        wanted = _digits(phone)
        for message in reversed(self.messages):
            got = _digits(message["phone"])
            if wanted and (got.endswith(wanted) or wanted.endswith(got)):
                return str(message["code"])
        return None

    def last_code(self, phone: str, timeout: float = 0.0) -> str | None:
        """The newest code delivered to `phone` (any common form), waiting up to `timeout`
        seconds for one to arrive."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while (code := self._newest(phone)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)
            return code


def wrong_code(code: str) -> str:
    """A code of the same length that is certainly not `code`."""
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def _caller_phone(records: list[Any], sip_phone: str | None) -> str | None:
    """The call's caller: the phone of its newest identify_user that was answered, else the
    line's number."""
    for record in reversed(records):
        if record.name == "identify_user" and record.ok and record.arguments.get("phone"):
            return str(record.arguments["phone"])
    return sip_phone


async def _fill_codes(
    text: str, inbox: CodeInbox | None, phone: str | None
) -> tuple[str, str | None]:
    """`text` with `{code}` / `{wrong_code}` filled in; or the reason they cannot be."""
    if not _CODE_FIELDS.search(text):
        return text, None
    if inbox is None:
        return text, "no code inbox (codes are read only with the in-process server)"
    if phone is None:
        return text, "no caller number yet (identify_user first)"
    code = await asyncio.to_thread(inbox.last_code, phone, CODE_WAIT_S)
    if code is None:
        return text, f"no code was delivered to {phone} (is VOICEBOOK_VERIFICATION=webhook?)"
    values = {"code": code, "wrong_code": wrong_code(code)}
    return _CODE_FIELDS.sub(lambda m: values[m.group(1)], text), None


async def _set_up(client: AsyncClient, scenario: Scenario, result: ScenarioResult) -> bool:
    """The scenario's `before:` steps; False when one failed (the call is then not made)."""
    for setup in scenario.before:
        earlier = setup.book
        what = f"an earlier call booked for {earlier.phone}"
        try:
            label = await _book_earlier(client, earlier)
        except (VoicebookError, LookupError) as exc:
            result.checks.append(Check(scenario.name, 0, what, False, str(exc)))
            return False
        result.checks.append(Check(scenario.name, 0, what, True, label))
    return True


async def run_scenario(
    settings: Settings,
    client: AsyncClient,
    scenario: Scenario,
    inbox: CodeInbox | None = None,
    *,
    voice: bool = False,
    judge: LLM | None = None,
) -> ScenarioResult:
    """One scenario in a call of its own; `voice`: every scenario gets the voice instructions
    (else only those that say `variant: voice`); `judge`: the model for `judge:` intents."""
    variant = "voice" if voice else scenario.variant
    result = ScenarioResult(scenario.name, variant=variant)
    if not await _set_up(client, scenario, result):
        return result
    modality = "audio" if variant == "voice" else "text"
    call = TextCall(settings, client, line_phone=scenario.sip_phone, modality=modality)
    try:
        await call.start()
    except (RuntimeError, VoicebookError) as exc:
        result.session_id = call.session_id
        result.checks.append(Check(scenario.name, 0, "the call started", False, str(exc)))
        await call.close()
        return result
    result.session_id = call.session_id
    if scenario.sip_phone is not None:
        attested = call.link is not None and call.link.known_line
        result.checks.append(Check(scenario.name, 0, "the line's caller id attested", attested))
    outputs: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    records: list[Any] = []
    try:
        for index, spec in enumerate(scenario.turns, start=1):
            if spec.before is not None:
                slot_id = _resolve(spec.before.take, outputs)
                try:
                    await _take_slot(client, str(slot_id))
                    taken = Check(scenario.name, index, f"another caller took {slot_id}", True)
                    result.checks.append(taken)
                except VoicebookError as exc:
                    result.checks.append(
                        Check(scenario.name, index, f"take {spec.before.take}", False, exc.message)
                    )
            text, problem = await _fill_codes(
                spec.user, inbox, _caller_phone(records, scenario.sip_phone)
            )
            if problem is not None:
                result.checks.append(Check(scenario.name, index, "the code to say", False, problem))
                break
            turn = await call.say(text)
            for record in turn.tool_calls:
                records.append(record)
                if record.ok:
                    outputs[record.name] = json.loads(record.output)
            result.checks.extend(
                await check_turn(
                    scenario.name, index, turn, spec, answers, settings.default_region, judge
                )
            )
            if call.ending:
                break
    finally:
        summary = await call.close()
    result.checks.append(
        Check(scenario.name, len(scenario.turns), "summary", summary is not None, "")
    )
    return result


async def run_scenarios(
    settings: Settings,
    client: AsyncClient,
    scenarios: list[Scenario],
    inbox: CodeInbox | None = None,
    *,
    voice: bool = False,
    judge: LLM | None = None,
) -> list[ScenarioResult]:
    return [
        await run_scenario(settings, client, scenario, inbox, voice=voice, judge=judge)
        for scenario in scenarios
    ]

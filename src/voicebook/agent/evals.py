"""`voicebook eval FILE.yaml`: scripted conversations with the tool calls they must produce.

A scenario is a list of caller turns, each with the tool calls the agent is expected to make in
that turn (each must be among the calls of that turn) and their outcomes:

    scenarios:
      - name: book the first free slot
        turns:
          - user: "Hi, this is Ada, my number is 415 555 0101."
            expect:
              - tool: identify_user
                args: {phone: "415 555 0101"}     # these arguments, others may be there too
                outcome: ok                        # ok | error | an error code (slot_taken)
          - user: "Someone else takes it while I think."
            before: {take: fetch_slots.slots.0.slot_id}   # another caller books that slot first
            expect: [...]
            model: [...]                           # what the scripted stand-in model answers

Each scenario runs in a fresh server session through `TextCall`, so it exercises the real
agent, tools, SDK and server; only the LLM is whatever is configured. The call checks are
livekit-agents' `RunResult` expectations (`contains_function_call`); outcomes are read from
the matching function-call outputs. `model:` is ignored here: it is the script that the local
stand-in model (tests/scripted_llm.py) follows, so the file also runs offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from voicebook.agent.textmode import TextCall, Turn
from voicebook.config import Settings
from voicebook.errors import VoicebookError
from voicebook.models import TOOL_NAMES
from voicebook.sdk import AsyncClient

# --- the file -----------------------------------------------------------------------------------


class ExpectedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    outcome: str = "ok"

    @model_validator(mode="after")
    def _known_tool(self) -> ExpectedCall:
        if self.tool not in TOOL_NAMES:
            raise ValueError(f"unknown tool {self.tool!r}; the tools are {', '.join(TOOL_NAMES)}")
        return self


class Before(BaseModel):
    model_config = ConfigDict(extra="forbid")
    take: str = Field(description="tool.path.to.slot_id: book that slot for another caller.")


class ScenarioTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1)
    expect: list[ExpectedCall] = Field(default_factory=list)
    before: Before | None = None
    model: list[dict[str, Any]] = Field(default_factory=list)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    turns: list[ScenarioTurn] = Field(min_length=1)


class ScenarioFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
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


@dataclass
class ScenarioResult:
    name: str
    session_id: str = ""
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _outcome_of(turn: Turn, call_id: str) -> tuple[bool, str]:
    """(is_error, error code or '') of the output of call `call_id` in this turn."""
    assert turn.result is not None
    for event in turn.result.events:
        item = event.item
        if getattr(item, "type", None) == "function_call_output" and item.call_id == call_id:
            if not item.is_error:
                return False, ""
            try:
                return True, str(json.loads(item.output).get("error", ""))
            except (ValueError, AttributeError):
                return True, ""
    return True, "no output"


def check_turn(scenario: str, index: int, turn: Turn, expected: list[ExpectedCall]) -> list[Check]:
    """The expectations of one turn, each as a `Check`."""
    if turn.result is None:
        return [Check(scenario, index, "the agent answered", False, turn.error or "no answer")]
    checks = []
    assertion = turn.result.expect
    for item in expected:
        what = f"{item.tool}({', '.join(f'{k}={v!r}' for k, v in item.args.items())})"
        try:
            found = assertion.contains_function_call(name=item.tool, arguments=item.args)
        except AssertionError:
            made = [c.name for c in turn.tool_calls] or ["no tool call"]
            checks.append(Check(scenario, index, what, False, f"made: {', '.join(made)}"))
            continue
        is_error, code = _outcome_of(turn, found.event().item.call_id)
        expected_error = item.outcome != "ok"
        passed = is_error == expected_error and item.outcome in ("ok", "error", code)
        detail = f"→ {code or 'ok'}" if passed else f"expected {item.outcome}, got {code or 'ok'}"
        checks.append(Check(scenario, index, f"{what} {item.outcome}", passed, detail))
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


async def run_scenario(
    settings: Settings, client: AsyncClient, scenario: Scenario
) -> ScenarioResult:
    result = ScenarioResult(scenario.name)
    call = TextCall(settings, client)
    await call.start()
    result.session_id = call.session_id
    outputs: dict[str, Any] = {}
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
            turn = await call.say(spec.user)
            for record in turn.tool_calls:
                if record.ok:
                    outputs[record.name] = json.loads(record.output)
            result.checks.extend(check_turn(scenario.name, index, turn, spec.expect))
            if call.ending:
                break
    finally:
        summary = await call.close()
    result.checks.append(
        Check(scenario.name, len(scenario.turns), "summary", summary is not None, "")
    )
    return result


async def run_scenarios(
    settings: Settings, client: AsyncClient, scenarios: list[Scenario]
) -> list[ScenarioResult]:
    return [await run_scenario(settings, client, scenario) for scenario in scenarios]

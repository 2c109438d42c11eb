"""The eight tools as the model sees them, derived from the HTTP request models.

One source for the parameters: each tool's JSON schema is its request model's (DESIGN §4), so
the names and types the model sees are the ones the server validates. The schema is made
compact because it is paid for on every turn: the session id (the agent adds it), titles,
defaults, length and number limits (the server enforces them) and `additionalProperties` are
dropped, and `X or null` becomes `X`.
"""

from __future__ import annotations

from typing import Any

from voicebook.models import TOOL_NAMES, TOOL_REQUESTS

DESCRIPTIONS: dict[str, str] = {
    "identify_user": "Identify the caller by the phone number they confirmed (and name, if "
    "given). Call this first.",
    "verify_caller": "Prove the caller's number: without code, text a six-digit code to it; "
    "with code, check the digits the caller read back.",
    "fetch_slots": "Free appointment slots, soonest first; optionally on a date or part of day.",
    "book_appointment": "Book a slot (slot_id from fetch_slots) for the caller, after they agree.",
    "retrieve_appointments": "The caller's appointments.",
    "cancel_appointment": "Cancel one of the caller's appointments, after they confirm.",
    "modify_appointment": "Move one of the caller's appointments to a new slot, after they agree.",
    "end_conversation": "End the call when the caller is done; then say goodbye.",
}
WRITE_TOOLS = frozenset(
    {"book_appointment", "cancel_appointment", "modify_appointment", "verify_caller"}
)
"""Tools with effects (appointments changed, a code texted or used up): their calls are never
abandoned half-way (see tools.py)."""
LINE_FIXED = "phone"
"""The argument a call from a known line cannot give: the line already said who is calling."""

_DROPPED_KEYS = frozenset(
    {
        "title",
        "default",
        "additionalProperties",
        "examples",
        "maxLength",
        "minLength",
        "maxItems",
        "maximum",
        "minimum",
    }
)


def _compact(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_compact(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    options = schema.get("anyOf")
    if options and {"type": "null"} in options and len(options) == 2:
        (kept,) = [option for option in options if option != {"type": "null"}]
        merged = {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept}
        return _compact(merged)
    return {key: _compact(value) for key, value in schema.items() if key not in _DROPPED_KEYS}


def tool_schema(name: str, *, known_line: bool = False) -> dict[str, Any]:
    """The raw OpenAI function schema of tool `name`: `{name, description, parameters}`.

    `known_line`: the call comes from a line that vouched for the caller (a SIP caller id), so
    identify_user has no phone parameter: the model cannot name another number."""
    parameters = _compact(TOOL_REQUESTS[name].model_json_schema())
    hidden = {"session_id"}
    if known_line and name == "identify_user":
        hidden.add(LINE_FIXED)
    for field in hidden:
        parameters["properties"].pop(field, None)
    required = [field for field in parameters.get("required", []) if field not in hidden]
    parameters.pop("required", None)
    if required:
        parameters["required"] = required
    description = DESCRIPTIONS[name]
    if known_line and name == "identify_user":
        description = "Identify the caller; the line already gave their number. Call this first."
    return {"name": name, "description": description, "parameters": parameters}


def line_tools(known_line: bool) -> tuple[str, ...]:
    """The tools of a call: all of them, but verify_caller when the line proved the number."""
    return tuple(n for n in TOOL_NAMES if not (known_line and n == "verify_caller"))


def tool_schemas(*, known_line: bool = False) -> list[dict[str, Any]]:
    return [tool_schema(name, known_line=known_line) for name in line_tools(known_line)]

"""The seven tools as the model sees them, derived from the HTTP request models.

One source for the parameters: each tool's JSON schema is its request model's (DESIGN §4), so
the names and types the model sees are the ones the server validates. The schema is made
compact because it is paid for on every turn: the session id (the agent adds it), titles,
defaults, length limits (the server enforces them) and `additionalProperties` are dropped,
and `X or null` becomes `X`.
"""

from __future__ import annotations

from typing import Any

from voicebook.models import TOOL_NAMES, TOOL_REQUESTS

DESCRIPTIONS: dict[str, str] = {
    "identify_user": "Identify the caller by phone number (and name, if given). Call this first.",
    "fetch_slots": "Free appointment slots, soonest first; optionally on a date or part of day.",
    "book_appointment": "Book a slot (slot_id from fetch_slots) for the caller, after they agree.",
    "retrieve_appointments": "The caller's appointments.",
    "cancel_appointment": "Cancel one of the caller's appointments, after they confirm.",
    "modify_appointment": "Move one of the caller's appointments to a new slot, after they agree.",
    "end_conversation": "End the call when the caller is done; then say goodbye.",
}
WRITE_TOOLS = frozenset({"book_appointment", "cancel_appointment", "modify_appointment"})
"""Tools that change appointments: their calls are never abandoned half-way (see tools.py)."""

_DROPPED_KEYS = frozenset(
    {"title", "default", "additionalProperties", "examples", "maxLength", "minLength", "maxItems"}
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


def tool_schema(name: str) -> dict[str, Any]:
    """The raw OpenAI function schema of tool `name`: `{name, description, parameters}`."""
    parameters = _compact(TOOL_REQUESTS[name].model_json_schema())
    parameters["properties"].pop("session_id", None)
    required = [field for field in parameters.get("required", []) if field != "session_id"]
    parameters.pop("required", None)
    if required:
        parameters["required"] = required
    return {"name": name, "description": DESCRIPTIONS[name], "parameters": parameters}


def tool_schemas() -> list[dict[str, Any]]:
    return [tool_schema(name) for name in TOOL_NAMES]

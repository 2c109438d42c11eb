"""Argument matchers of `voicebook eval`: what an expected tool call's argument may be.

A model that follows the prompt writes a number as the caller said it and books whichever of
the offered slots the caller chose, so an expectation that compares characters fails a good
model. An expected argument is therefore either a plain value (compared as it is) or one
matcher:

    {phone: "+14155550101"}      the same number in any spelling ("415 555 0101", "(415) 555-0101")
    {from: fetch_slots}          any id the newest answer of that tool offered (slot ids of
                                 fetch_slots, appointment ids of retrieve_appointments, ...)
    {from: "book_appointment.alternatives.*.slot_id"}   any value at a path (`*`: every item)
    {contains: "check-up"}       a text that contains this (any case)

A turn's `not_called` may name `writes`: every tool that changes something for the caller
(identify_user, book_appointment, cancel_appointment, modify_appointment), so "no write
before the caller says yes" is one word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicebook.scheduling.errors import InvalidPhone
from voicebook.scheduling.phone import normalize_phone

WRITES = "writes"
WRITE_TOOLS = ("identify_user", "book_appointment", "cancel_appointment", "modify_appointment")
"""The tools that bind or change something; the prompt asks for a read-back and a yes first."""

MATCHERS = ("phone", "from", "contains")

OFFERED = {
    "fetch_slots": "slots.*.slot_id",
    "retrieve_appointments": "appointments.*.id",
    "identify_user": "upcoming.*.id",
    "book_appointment": "appointment.id",
    "modify_appointment": "appointment.id",
}
"""What `{from: TOOL}` means for each tool: the ids its answer hands the model."""


def is_matcher(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in MATCHERS


def check_matcher(value: dict[str, Any]) -> None:
    """Refuse a matcher the runner cannot apply (when the file is read, not mid-run)."""
    (kind, operand), *_ = value.items()
    if not isinstance(operand, str) or not operand:
        raise ValueError(f"{{{kind}: ...}} needs a text, not {operand!r}")
    if kind == "from" and "." not in operand and operand not in OFFERED:
        raise ValueError(f"{{from: {operand}}}: say a path, e.g. {operand}.items.*.id")


def _values(value: Any, keys: list[str]) -> list[Any]:
    """Every value at the path `keys` (`*` walks every item of a list)."""
    if not keys:
        return [value]
    key, rest = keys[0], keys[1:]
    if key == "*" and isinstance(value, list):
        return [found for item in value for found in _values(item, rest)]
    if isinstance(value, list) and key.isdigit() and int(key) < len(value):
        return _values(value[int(key)], rest)
    if isinstance(value, dict) and key in value:
        return _values(value[key], rest)
    return []


def offered(source: str, answers: Mapping[str, Any]) -> list[Any]:
    """The values `{from: source}` accepts, from the newest answer of each tool."""
    tool, _, path = source.partition(".")
    path = path or OFFERED.get(tool, "")
    return _values(answers.get(tool), path.split("."))


def _same_phone(expected: str, given: Any, region: str) -> bool:
    if not isinstance(given, str):
        return False
    try:
        return normalize_phone(given, region) == normalize_phone(expected, region)
    except InvalidPhone:
        return False


def mismatch(
    expected: Mapping[str, Any], given: Mapping[str, Any], answers: Mapping[str, Any], region: str
) -> str | None:
    """Why the call's arguments `given` do not match `expected` (None when they do); `answers`
    are the newest tool answers before the call, `region` the default phone region."""
    for name, want in expected.items():
        got = given.get(name)
        if not is_matcher(want):
            if got != want:
                return f"{name}={got!r}, not {want!r}"
            continue
        (kind, operand), *_ = want.items()
        if kind == "phone" and not _same_phone(operand, got, region):
            return f"{name}={got!r} is not the number {operand}"
        if kind == "contains" and not (isinstance(got, str) and operand.lower() in got.lower()):
            return f"{name}={got!r} does not contain {operand!r}"
        if kind == "from" and got not in offered(operand, answers):
            return f"{name}={got!r} is not one {operand} offered"
    return None


def describe(value: Any) -> str:
    """An expected argument as the eval table shows it."""
    if is_matcher(value):
        (kind, operand), *_ = value.items()
        return f"<{kind} {operand}>"
    return repr(value)

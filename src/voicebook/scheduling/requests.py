"""Tool requests: validation into spoken errors, fingerprints for retries, redaction for events."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from voicebook.models import TOOL_REQUESTS, UNSTORABLE, Request
from voicebook.scheduling.errors import (
    DomainError,
    InvalidInput,
    InvalidTime,
    NotFound,
)
from voicebook.scheduling.phone import mask_phone, mask_phones

_TIME_FIELDS = frozenset({"start", "new_start", "date"})
LOGGED_DEPTH = 4
LOGGED_ITEMS = 20
LOGGED_CHARS = 500
"""How much of a refused call's raw arguments its failed tool_call event keeps: they can be
anything a client sent, and the log is read by every page that follows the session."""


def parse_request(
    name: str, payload: dict[str, Any] | Request, model: type[Request] | None = None
) -> Request:
    """Validate a tool (or report) request; bad fields become a DomainError that can be spoken."""
    model = model or TOOL_REQUESTS.get(name)
    if model is None:
        raise NotFound(f"There is no tool called {name!r}.")
    if isinstance(payload, model):
        return payload
    data = payload.model_dump() if isinstance(payload, Request) else payload
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def validation_error(errors: Sequence[Any], skip: Sequence[str] = ()) -> DomainError:
    """The first validation problem as a sentence: `invalid_time` for times, else `invalid_input`.

    `skip` drops location prefixes such as FastAPI's "body"/"query".
    """
    first = errors[0] if errors else {"loc": (), "msg": "it could not be read"}
    if first.get("type") == "json_invalid":
        return InvalidInput("The request body is not valid JSON.")
    loc = [str(part) for part in first.get("loc", ()) if str(part) not in skip]
    where = loc[0] if loc else ""
    if where in _TIME_FIELDS and first.get("type") == "time_out_of_range":
        return InvalidTime(f"I can't use that {where.replace('_', ' ')}: {first['msg']}.")
    if where in _TIME_FIELDS:
        return InvalidTime(
            f"I couldn't understand the {where.replace('_', ' ')}; please give a date and "
            "time like 2027-12-02T15:00."
        )
    problem = str(first.get("msg", "")).removeprefix("Value error, ").rstrip(".")
    subject = f"The {where.replace('_', ' ')}" if where else "The request"
    return InvalidInput(f"{subject} is not valid: {problem}.", field=where or None)


def request_hash(name: str, args: dict[str, Any]) -> str:
    """Fingerprint of a call, to tell a retry from a different request under the same key."""
    canonical = json.dumps([name, args], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def loggable(value: Any, depth: int = LOGGED_DEPTH) -> Any:
    """`value` as the log may keep it: text without NULs or lone surrogates (which the stores
    cannot keep or give back), numbers finite, and size bounded (`LOGGED_*`: deeper levels,
    further items and longer texts are cut). The raw arguments of a refused call reach the log."""
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value[:LOGGED_CHARS])
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return str(value)[:LOGGED_CHARS]
    if isinstance(value, (dict, list)) and depth <= 0:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:LOGGED_ITEMS]
        return {loggable(str(k)): loggable(v, depth - 1) for k, v in items}
    if isinstance(value, list):
        return [loggable(v, depth - 1) for v in value[:LOGGED_ITEMS]]
    return value


def redact_args(arguments: dict[str, Any], region: str) -> dict[str, Any]:
    """Arguments as events show them: the session id and empty ones left out, and every phone
    number masked wherever it is (any key, nested objects, lists; see `mask_phones`). The
    `phone` argument itself is masked even when it is not a valid number (a misheard one)."""
    args = {k: v for k, v in loggable(arguments).items() if k != "session_id" and v is not None}
    return {
        k: _masked_phone(v) if k == "phone" else mask_phones(v, region) for k, v in args.items()
    }


def _masked_phone(value: Any) -> str:
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return mask_phone(digits) if digits else "***"

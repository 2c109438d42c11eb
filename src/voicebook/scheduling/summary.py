"""The end-of-call summary, built only from what this session committed.

Actions come from the session's own completed tool_call events: every booking, cancellation and
move, in order. Booked appointments are what the call leaves booked: the rows this session created
that are still confirmed (a move's new time, not its old one; nothing cancelled), because the page
lists them as the caller's bookings whatever their status says. The caller's older appointments
never leak in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from voicebook.models import Summary, SummaryAction, SummaryAppointment
from voicebook.scheduling.availability import PARTS_OF_DAY, AvailabilityRules
from voicebook.scheduling.phone import mask_phone, mask_phones
from voicebook.store.base import AppointmentRecord, EventRecord, SessionRecord, UserRecord

NO_NAME = "No name given"
"""An appointment's `name` in the summary when the caller gave none: the page shows the name as
the line's title, and DESIGN §3 has it never null (nor blank)."""

_ACTION_TOOLS = {
    "book_appointment": "booked",
    "cancel_appointment": "cancelled",
    "modify_appointment": "rescheduled",
}


def session_actions(events: Sequence[EventRecord]) -> list[SummaryAction]:
    """Bookings, cancellations and reschedules this session completed, in order."""
    actions = []
    for event in events:
        payload = event.payload
        kind = _ACTION_TOOLS.get(payload.get("name", ""))
        if event.type != "tool_call" or payload.get("status") != "completed" or kind is None:
            continue
        result = payload.get("result") or {}
        appointment = result.get("appointment") or {}
        previous = result.get("previous") or {}
        actions.append(
            SummaryAction(
                kind=kind,  # type: ignore[arg-type]
                appointment_id=appointment.get("id", ""),
                label=appointment.get("label", ""),
                previous_label=previous.get("label"),
            )
        )
    return actions


def inferred_preferences(
    rules: AvailabilityRules, appointments: Sequence[AppointmentRecord], stated: Sequence[str] = ()
) -> list[str]:
    """'Prefers mornings' / 'Prefers Tuesdays' when every confirmed booking here agrees, unless
    a `stated` preference already names that part of the day or day ("mornings", "Tuesdays
    only"): the summary would say it twice."""
    confirmed = [a for a in appointments if a.status == "confirmed"]
    if not confirmed:
        return []
    said = " ".join(stated).lower()
    inferred = []
    locals_ = [a.starts_at.astimezone(rules.zone) for a in confirmed]
    parts = Counter(
        next(p for p, (lo, hi) in PARTS_OF_DAY.items() if lo <= t.hour * 60 + t.minute < hi)
        for t in locals_
    )
    part, count = parts.most_common(1)[0]
    if count == len(confirmed) and part not in said:
        inferred.append(f"Prefers {part}s")
    days = Counter(t.strftime("%A") for t in locals_)
    day, count = days.most_common(1)[0]
    if count == len(confirmed) and day.lower() not in said:
        inferred.append(f"Prefers {day}s")
    return inferred


def _sentence(actions: Sequence[SummaryAction], who: str) -> str:
    if not actions:
        return f"{who} made no changes to their appointments."
    phrases = []
    for action in actions:
        if action.kind == "booked":
            phrases.append(f"booked {action.label}")
        elif action.kind == "cancelled":
            phrases.append(f"cancelled {action.label}")
        else:
            phrases.append(f"moved {action.previous_label} to {action.label}")
    joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"{who} {joined}."


def build_summary(
    rules: AvailabilityRules,
    session: SessionRecord,
    user: UserRecord | None,
    appointments: Sequence[AppointmentRecord],
    events: Sequence[EventRecord],
    *,
    phones: Mapping[str, str] | None = None,
    caller_name: str | None = None,
    preferences: Sequence[str],
    recap: str | None,
    now: datetime,
    cost: dict[str, Any] | None = None,
    region: str = "US",
) -> Summary:
    """The summary payload (DESIGN §3). What the agent or its model wrote (recap, preferences) is
    passed through `mask_phones` for `region`: a spoken number never reaches the summary whole."""
    masked = mask_phone(user.phone) if user else None
    phones = phones or {}
    owner = {a.id: mask_phone(phones[a.user_id]) for a in appointments if a.user_id in phones}
    actions = session_actions(events)
    stated = [mask_phones(p.strip(), region) for p in preferences if p and p.strip()]
    merged = list(dict.fromkeys([*stated, *inferred_preferences(rules, appointments, stated)]))
    if user is None:
        text = "The caller did not give a phone number, so nothing was booked."
    else:
        who = f"Caller {masked}" + (f" ({caller_name})" if caller_name else "")
        # Bookings made for an earlier identity of this call are credited to that number.
        others: dict[str, list[SummaryAction]] = {}
        for action in actions:
            number = owner.get(action.appointment_id, masked)
            if number != masked:
                others.setdefault(str(number), []).append(action)
        mine = [a for a in actions if owner.get(a.appointment_id, masked) == masked]
        text = " ".join(
            [_sentence(mine, who)]
            + [_sentence(done, f"For {number}, the caller") for number, done in others.items()]
        )
    if recap and recap.strip():
        text = recap.strip() + " " + text
    text = mask_phones(text, region)  # the recap, and a name the model gave
    return Summary(
        session_id=session.id,
        contact_number=masked,
        summary=text,
        booked_appointments=[
            SummaryAppointment(
                id=a.id,
                contact_number=owner.get(a.id, masked or ""),
                name=a.name or NO_NAME,
                date=a.starts_at.astimezone(rules.zone).strftime("%Y-%m-%d"),
                time=a.starts_at.astimezone(rules.zone).strftime("%H:%M"),
                status=a.status,
                start=a.starts_at,
                end=a.ends_at,
            )
            for a in appointments
            if a.status == "confirmed"
        ],
        preferences=merged,
        created_at=now,
        actions=actions,
        cost=cost,
        duration_s=round((now - session.created_at).total_seconds(), 3),
    )

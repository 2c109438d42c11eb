"""Book, list, reschedule and cancel an appointment through the synchronous SDK, step by step.

What an agent does during a call, without the call: start a session, identify the caller, find
free slots, book one, list the caller's appointments, move the booking to another slot, cancel it,
and end the conversation (which returns the session's summary).

    python examples/book_flow.py --url http://127.0.0.1:8000 --api-key ...
    VOICEBOOK_URL=... VOICEBOOK_API_KEY=... python examples/book_flow.py --phone "415 555 0100"

Exit code 0 when every step worked; 1 with the server's sentence when one failed; 2 for a bad
--url.
"""

from __future__ import annotations

import argparse
import sys

from voicebook import Client
from voicebook.errors import VoicebookError


def step(number: int, text: str) -> None:
    print(f"{number}. {text}", flush=True)


def run(vb: Client, phone: str, name: str) -> None:
    session = vb.start_session()
    sid = session.session_id
    step(1, f"start session: {sid} (events at {session.ws_url})")

    who = vb.identify_user(sid, phone=phone, name=name)
    kind = "returning caller" if who.returning else "new caller"
    step(2, f"identify caller: {who.user.phone_masked} ({who.user.name}), {kind}")

    slots = vb.fetch_slots(sid, limit=3).slots
    if not slots:
        raise SystemExit("no free slots: nothing to book (check VOICEBOOK_HOURS on the server)")
    step(3, "fetch slots: " + "; ".join(slot.label for slot in slots))

    booked = vb.book_appointment(sid, slot_id=slots[0].slot_id, notes="booked by book_flow.py")
    appointment = booked.appointment
    step(4, f"book: {appointment.label} ({appointment.id})")

    mine = vb.retrieve_appointments(sid).appointments
    step(5, f"list: {len(mine)} upcoming — " + "; ".join(a.label for a in mine))

    later = next(s for s in vb.fetch_slots(sid, limit=5).slots if s.start != appointment.start)
    moved = vb.modify_appointment(sid, appointment_id=appointment.id, new_slot_id=later.slot_id)
    step(6, f"reschedule: {moved.previous.label} → {moved.appointment.label}")

    cancelled = vb.cancel_appointment(
        sid, appointment_id=moved.appointment.id, reason="plans changed"
    )
    step(7, f"cancel: {cancelled.appointment.label} is now {cancelled.appointment.status}")

    history = vb.retrieve_appointments(sid, include_cancelled=True).appointments
    statuses = ", ".join(f"{a.label}: {a.status}" for a in history)
    step(8, f"list with cancelled: {statuses}")

    summary = vb.end_conversation(sid, recap="Booked, moved, then cancelled.").summary
    step(9, f"end conversation: {summary.summary}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="voicebook server (default: VOICEBOOK_URL, else http://127.0.0.1:8000)"
    )
    parser.add_argument("--api-key", help="service key (default: VOICEBOOK_API_KEY)")
    parser.add_argument("--phone", default="+1 415 555 0100", help="the caller's phone")
    parser.add_argument("--name", default="Ana Example", help="the caller's name")
    args = parser.parse_args()
    try:
        with Client(args.url, args.api_key) as vb:
            print(f"voicebook at {vb.base_url}", flush=True)
            run(vb, args.phone, args.name)
    except VoicebookError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a --url that is not http(s)://
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

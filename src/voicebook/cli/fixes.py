"""What the person at the terminal should do about an error, by its stable code.

The server's messages are sentences the agent can say to a caller ("could you say it again,
digit by digit?"); at the command line the same failure needs the option or command that fixes
it. Codes not listed keep the server's sentence, which already reads as a statement of fact
("We're closed on Friday, December 25.").
"""

from __future__ import annotations

FIXES = {
    "invalid_phone": "The phone number cannot be read: give it with its country code, e.g. "
    "--phone '+1 415 555 0100' (a national number is read in VOICEBOOK_DEFAULT_REGION).",
    "invalid_time": "The time cannot be read: give an ISO 8601 time such as 2027-03-02T15:00 "
    "(no offset: the business zone).",
    "not_identified": "The session has no caller yet: run `voicebook tool identify_user "
    "--session ID --phone NUMBER` first (or start it with `voicebook session start --phone`).",
    "not_found": "Nothing has that id: check it (`voicebook tool retrieve_appointments --session "
    "ID` lists the caller's appointments, `voicebook session start` starts a session).",
    "verification_required": "Bookings made before this session stay hidden until the number is "
    "proved: run `voicebook tool verify_caller --session ID`, then again with --code.",
    "no_code_sent": "No code was sent in this session: run `voicebook tool verify_caller "
    "--session ID` without --code first.",
    "wrong_code": "The code does not match the one sent: check it and run `voicebook tool "
    "verify_caller --session ID --code CODE` again.",
    "code_expired": "The code has expired: send a new one with `voicebook tool verify_caller "
    "--session ID` (without --code).",
    "too_many_attempts": "Too many wrong codes for this number: wait a while, then send a new "
    "one with `voicebook tool verify_caller --session ID`.",
    "too_many_codes": "Several codes were already sent to this number: wait a while before "
    "asking for another.",
    "verification_unavailable": "The server cannot send codes: set VOICEBOOK_VERIFICATION "
    "(webhook or twilio, with their settings) where the server runs.",
    "caller_fixed": "The line or a trusted start fixed this session's caller: start a new "
    "session (`voicebook session start`) for another number.",
    "session_ended": "The session has ended: start a new one with `voicebook session start`.",
    "idempotency_conflict": "That --idempotency-key was used for a different request: pass a "
    "new key, or leave the option out.",
    "store_unavailable": "The server cannot use its database right now: check the database "
    "(the server's /readyz names the cause), then try again.",
}


def fix_for(code: str, message: str) -> str:
    """The sentence to print for an error `code` whose own sentence is `message`."""
    return FIXES.get(code, message)

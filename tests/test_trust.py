"""The trust model (DESIGN §4 identity levels) through the service, on SQLite and Postgres.

A second session that says someone else's number learns nothing and changes nothing until it
proves the number with a one-time code; a number the line vouches for is trusted and cannot be
replaced by the LLM. Codes are delivered by the real console sender: the tests read them from
the server log, as a developer would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import pytest

from helpers import call, key
from servers import free_port
from voicebook.models import CallerRequest
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.identity import VerificationPolicy
from voicebook.scheduling.service import SchedulingService
from voicebook.server.senders import ConsoleSender, WebhookSender

ANN = "(415) 555-0123"
MALLORY = "(212) 555-0199"
NINE_AM = "2027-03-02T09:00:00-05:00"
TEN_AM = "2027-03-02T10:00:00-05:00"
ELEVEN_AM = "2027-03-02T11:00:00-05:00"
SECRET_NOTE = "knee surgery follow-up"
CODE_LINE = re.compile(r"verification code for \*\*\*(\d{4}): (\d{6})")


@pytest.fixture
def service(store: Any, rules: AvailabilityRules, clock: Any) -> SchedulingService:
    return SchedulingService(
        store, rules, default_region="US", clock=clock, verifier=ConsoleSender()
    )


class Inbox:
    """The codes the console sender wrote to the log, by the last four digits of the number."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
        caplog.set_level(logging.WARNING, logger="voicebook.server.senders")

    def last_code(self, last4: str) -> str:
        codes = [
            m[2]
            for r in self._caplog.records
            if (m := CODE_LINE.search(r.getMessage())) and m[1] == last4
        ]
        assert codes, f"no code was sent to ***{last4}"
        return codes[-1]


@pytest.fixture
def inbox(caplog: pytest.LogCaptureFixture) -> Inbox:
    return Inbox(caplog)


async def refused(service: SchedulingService, tool: str, session_id: str, **args: Any) -> Any:
    with pytest.raises(DomainError) as caught:
        await service.run_tool(tool, {"session_id": session_id, **args}, key())
    return caught.value


async def verified_session(
    service: SchedulingService, inbox: Inbox, phone: str = ANN, name: str | None = None
) -> str:
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone=phone, name=name)
    await call(service, "verify_caller", session)
    answer = await call(service, "verify_caller", session, code=inbox.last_code(phone[-4:]))
    assert answer.status == "verified"
    return session


async def ann_with_a_booking(service: SchedulingService, inbox: Inbox) -> tuple[str, str]:
    """Ann proves her number and books 9:00 with a private note: (session, appointment id)."""
    session = await verified_session(service, inbox, name="Ann Lee")
    booked = await call(service, "book_appointment", session, start=NINE_AM, notes=SECRET_NOTE)
    return session, booked.appointment.id


def _log_text(events: list[Any]) -> str:
    return json.dumps([e.payload for e in events])


async def test_a_stranger_claiming_a_number_learns_nothing_and_changes_nothing(
    service: SchedulingService, inbox: Inbox
) -> None:
    _, appointment_id = await ann_with_a_booking(service, inbox)
    stranger = (await service.start_session()).id

    who = await call(service, "identify_user", stranger, phone=ANN, name="Mallory")
    assert who.level == "claimed" and who.verification_required is True
    assert who.upcoming == [] and who.returning is False
    assert who.user.name == "Mallory"  # what they said, never the stored "Ann Lee"
    listed = await call(service, "retrieve_appointments", stranger, include_past=True)
    assert listed.appointments == [] and listed.verification_required is True

    for tool, args in [
        ("cancel_appointment", {"appointment_id": appointment_id}),
        ("cancel_appointment", {"start": NINE_AM}),
        ("modify_appointment", {"appointment_id": appointment_id, "new_start": TEN_AM}),
        ("modify_appointment", {"start": NINE_AM, "new_start": TEN_AM}),
    ]:
        error = await refused(service, tool, stranger, **args)
        assert error.code == "verification_required", (tool, args)
    # Asking about a time that holds nothing gives the same answer: nothing to tell apart.
    nothing = await refused(service, "cancel_appointment", stranger, start=ELEVEN_AM)
    assert nothing.code == "verification_required"

    # Nothing changed: Ann's name, her appointment.
    owner = await verified_session(service, inbox)
    mine = await call(service, "retrieve_appointments", owner)
    assert [(a.id, a.status, a.notes) for a in mine.appointments] == [
        (appointment_id, "confirmed", SECRET_NOTE)
    ]
    again = await call(service, "identify_user", owner, phone=ANN)
    assert again.user.name == "Ann Lee"

    # The stranger's page never held any of it (the id is only there because they sent it).
    page = _log_text(await service.session_events(stranger))
    for secret in ("Ann Lee", SECRET_NOTE, "9:00 AM", "T14:00"):
        assert secret not in page


async def test_a_claimed_caller_may_book_and_manage_what_this_call_booked(
    service: SchedulingService,
) -> None:
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone=MALLORY, name="Mal")
    booked = await call(service, "book_appointment", session, start=NINE_AM)
    assert booked.appointment.name == "Mal"
    listed = await call(service, "retrieve_appointments", session)
    assert [a.id for a in listed.appointments] == [booked.appointment.id]
    moved = await call(
        service, "modify_appointment", session, appointment_id=booked.appointment.id,
        new_start=TEN_AM,
    )  # fmt: skip
    cancelled = await call(
        service, "cancel_appointment", session, appointment_id=moved.appointment.id
    )
    assert cancelled.appointment.status == "cancelled"


async def test_verification_reveals_the_callers_appointments(
    service: SchedulingService, inbox: Inbox
) -> None:
    _, appointment_id = await ann_with_a_booking(service, inbox)
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone=ANN)

    sent = await call(service, "verify_caller", session)
    assert sent.status == "code_sent" and sent.expires_at is not None
    code = inbox.last_code("0123")
    wrong = "000000" if code != "000000" else "111111"
    error = await refused(service, "verify_caller", session, code=wrong)
    assert error.code == "wrong_code" and error.extra["attempts_left"] == 4

    answer = await call(service, "verify_caller", session, code=code)
    assert answer.status == "verified" and answer.level == "verified"
    assert answer.user.name == "Ann Lee"
    assert [a.id for a in answer.upcoming] == [appointment_id]
    cancelled = await call(service, "cancel_appointment", session, appointment_id=appointment_id)
    assert cancelled.appointment.status == "cancelled"
    # A used code does not work twice, even in a later claim of the same number.
    await call(service, "identify_user", session, phone=MALLORY)
    await call(service, "identify_user", session, phone=ANN)
    reused = await refused(service, "verify_caller", session, code=code)
    assert reused.code == "no_code_sent"


async def test_codes_are_stored_hashed(
    service: SchedulingService, inbox: Inbox, store: Any
) -> None:
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone=ANN)
    await call(service, "verify_caller", session)
    code = inbox.last_code("0123")
    async with store.transaction(write=False) as tx:
        record = await tx.latest_code(session, "+14155550123")
    assert record is not None and record.code_hash is not None
    assert code not in record.code_hash and record.verified_at is None


async def test_too_many_wrong_codes_lock_the_code(service: SchedulingService, inbox: Inbox) -> None:
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone=ANN)
    await call(service, "verify_caller", session)
    code = inbox.last_code("0123")
    wrong = "000000" if code != "000000" else "111111"
    codes = [(await refused(service, "verify_caller", session, code=wrong)).code for _ in range(6)]
    assert codes == ["wrong_code"] * 4 + ["too_many_attempts"] * 2
    right = await refused(service, "verify_caller", session, code=code)
    assert right.code == "too_many_attempts"


async def test_concurrent_guesses_are_counted_exactly(
    service: SchedulingService, inbox: Inbox
) -> None:
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone=ANN)
    await call(service, "verify_caller", session)
    code = inbox.last_code("0123")
    guesses = [f"{n:06d}" for n in range(20) if f"{n:06d}" != code][:20]
    results = await asyncio.gather(
        *(refused(service, "verify_caller", session, code=g) for g in guesses)
    )
    codes = sorted(error.code for error in results)
    assert codes.count("wrong_code") == 4
    assert codes.count("too_many_attempts") == len(guesses) - 4
    right = await refused(service, "verify_caller", session, code=code)
    assert right.code == "too_many_attempts"


async def test_a_code_expires(service: SchedulingService, inbox: Inbox, clock: Any) -> None:
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone=ANN)
    await call(service, "verify_caller", session)
    code = inbox.last_code("0123")
    clock.advance(minutes=11)
    error = await refused(service, "verify_caller", session, code=code)
    assert error.code == "code_expired"


async def test_sends_per_number_are_limited_across_sessions(
    service: SchedulingService,
) -> None:
    for _ in range(3):
        session = (await service.start_session()).id
        await call(service, "identify_user", session, phone=ANN)
        await call(service, "verify_caller", session)
    other = (await service.start_session()).id
    await call(service, "identify_user", other, phone=ANN)
    error = await refused(service, "verify_caller", other)
    assert error.code == "too_many_codes"
    # Another number is not affected.
    await call(service, "identify_user", other, phone=MALLORY)
    assert (await call(service, "verify_caller", other)).status == "code_sent"


async def test_no_code_before_identifying_or_sending(service: SchedulingService) -> None:
    session = (await service.start_session()).id
    assert (await refused(service, "verify_caller", session)).code == "not_identified"
    await call(service, "identify_user", session, phone=ANN)
    error = await refused(service, "verify_caller", session, code="123456")
    assert error.code == "no_code_sent"
    malformed = await refused(service, "verify_caller", session, code="12ab")
    assert malformed.code == "invalid_input"


async def test_a_new_number_drops_the_earlier_callers_rights(
    service: SchedulingService,
) -> None:
    session = (await service.start_session()).id
    await call(service, "identify_user", session, phone=ANN, name="Ann")
    first = await call(service, "book_appointment", session, start=NINE_AM)
    who = await call(service, "identify_user", session, phone=MALLORY, name="Mal")
    assert who.upcoming == [] and who.user.name == "Mal"
    error = await refused(
        service, "cancel_appointment", session, appointment_id=first.appointment.id
    )
    assert error.code == "verification_required"
    second = await call(service, "book_appointment", session, start=TEN_AM)
    assert second.appointment.name == "Mal"
    listed = await call(service, "retrieve_appointments", session)
    assert [a.id for a in listed.appointments] == [second.appointment.id]

    summary = (await call(service, "end_conversation", session)).summary
    credited = {a.id: a.contact_number for a in summary.booked_appointments}
    assert credited == {first.appointment.id: "***0123", second.appointment.id: "***0199"}
    assert summary.contact_number == "***0199"
    assert "***0123" in summary.summary and "***0199" in summary.summary
    assert all(a.name for a in summary.booked_appointments)


async def test_a_claim_never_overwrites_a_stored_name(
    service: SchedulingService, inbox: Inbox
) -> None:
    await verified_session(service, inbox, name="Ann Lee")
    stranger = (await service.start_session()).id
    await call(service, "identify_user", stranger, phone=ANN, name="Not Ann")
    booked = await call(service, "book_appointment", stranger, start=TEN_AM)
    assert booked.appointment.name == "Not Ann"  # kept on the appointment they made
    owner = await verified_session(service, inbox)
    assert (await call(service, "identify_user", owner, phone=ANN)).user.name == "Ann Lee"


async def test_a_line_vouched_caller_is_trusted_and_fixed(
    service: SchedulingService, inbox: Inbox
) -> None:
    _, appointment_id = await ann_with_a_booking(service, inbox)
    session = (await service.start_session()).id
    attested = await service.attest_caller(session, CallerRequest(phone="+14155550123"))
    assert attested.identity_level == "trusted" and attested.returning is True
    assert attested.user.name == "Ann Lee"

    who = await call(service, "identify_user", session)  # no number: the line's
    assert who.level == "trusted" and who.verification_required is False
    assert [a.id for a in who.upcoming] == [appointment_id]
    error = await refused(service, "identify_user", session, phone=MALLORY)
    assert error.code == "caller_fixed"
    assert (await call(service, "verify_caller", session)).status == "verified"


async def test_a_back_end_starts_a_trusted_session(service: SchedulingService) -> None:
    session = await service.start_session(CallerRequest(phone=ANN, name="Ann Lee"))
    stored, user = await service.get_session(session.id)
    assert stored.identity_level == "trusted" and user is not None
    assert user.phone == "+14155550123" and user.name == "Ann Lee"
    who = await call(service, "identify_user", session.id)
    assert who.level == "trusted" and who.user.name == "Ann Lee"


async def test_switching_verification_off_believes_claims(
    store: Any, rules: AvailabilityRules, clock: Any
) -> None:
    open_service = SchedulingService(
        store, rules, clock=clock, policy=VerificationPolicy(enabled=False)
    )
    first = (await open_service.start_session()).id
    await call(open_service, "identify_user", first, phone=ANN, name="Ann")
    booked = await call(open_service, "book_appointment", first, start=NINE_AM)
    second = (await open_service.start_session()).id
    who = await call(open_service, "identify_user", second, phone=ANN)
    assert who.verification_required is False and who.returning is True
    assert [a.id for a in who.upcoming] == [booked.appointment.id]


async def test_delivery_failure_is_verification_unavailable(
    store: Any, rules: AvailabilityRules, clock: Any
) -> None:
    # The business's SMS system is down: nothing listens on its port.
    unreachable = WebhookSender(f"http://127.0.0.1:{free_port()}/sms", "webhook-secret")
    failing = SchedulingService(store, rules, clock=clock, verifier=unreachable)
    session = (await failing.start_session()).id
    await call(failing, "identify_user", session, phone=ANN)
    error = await refused(failing, "verify_caller", session)
    assert error.code == "verification_unavailable" and error.status == 503
    events = await failing.session_events(session)
    assert events[-1].payload["status"] == "failed"

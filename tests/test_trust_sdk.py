"""The trust model through the SDK (`Client` and `AsyncClient`) against a real `voicebook serve`.

The server texts its codes with the webhook sender to a local receiver that checks the
signature (tests/sms.py), which is where each test reads the code, as the phone's owner would.
Every refusal arrives as its typed error; the ones that waiting does not lift are not retried.
"""

from __future__ import annotations

import inspect
import itertools
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Server, running_server
from sms import SmsWebhook
from voicebook import errors
from voicebook.sdk import AsyncClient, Client, RetryPolicy

API_KEY = "trust-sdk-key-0123456789"
MAX_ATTEMPTS = 2
_numbers = itertools.count(3100)


def phone() -> str:
    """A distinct valid US number per use: tests sharing the server never share a caller."""
    return f"+1415555{next(_numbers):04d}"


@pytest.fixture(scope="module")
def webhook() -> Iterator[SmsWebhook]:
    with SmsWebhook(secret="sdk-webhook-" + secrets.token_hex(8)) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def server(webhook: SmsWebhook, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("trust-sdk")
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{directory / 'voicebook.db'}",
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
        "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
        "VOICEBOOK_SESSION_RATE_LIMIT": "100000",
        **webhook.env(),
        "VOICEBOOK_VERIFY_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    }
    with running_server(env, directory) as running:
        yield running


async def maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Attempts:
    """Counts the HTTP requests a client sends (every attempt of every call)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)

    async def hook(self, request: httpx.Request) -> None:
        self(request)


@pytest.fixture(params=["sync", "async"])
async def vb(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Any]:
    """A client of each kind with the service key and a patient retry policy (so a test sees
    that a refusal was *not* retried, not that the budget ran out)."""
    attempts = Attempts()
    retry = RetryPolicy(max_attempts=5, max_total_s=20, base_delay_s=0.05, max_delay_s=0.2)
    if request.param == "sync":
        with (
            httpx.Client(timeout=10, event_hooks={"request": [attempts]}) as http,
            Client(server.url, API_KEY, retry=retry, http_client=http) as client,
        ):
            client.attempts = attempts
            yield client
    else:
        async with (
            httpx.AsyncClient(timeout=10, event_hooks={"request": [attempts.hook]}) as ahttp,
            AsyncClient(server.url, API_KEY, retry=retry, http_client=ahttp) as aclient,
        ):
            aclient.attempts = attempts
            yield aclient


async def book_earlier(vb: Any, number: str, notes: str) -> str:
    """The owner of `number` books in a call of their own (proving it); the appointment id."""
    sid = (await maybe(vb.start_session(phone=number, name="Owner"))).session_id
    slot = (await maybe(vb.fetch_slots(sid, limit=1))).slots[0]
    booked = await maybe(vb.book_appointment(sid, slot_id=slot.slot_id, notes=notes))
    await maybe(vb.end_session(sid))
    return booked.appointment.id


async def raised(call: Callable[[], Any], kind: type[errors.VoicebookError]) -> Any:
    with pytest.raises(kind) as caught:
        await maybe(call())
    return caught.value


async def test_a_trusted_start_sees_everything_and_cannot_change_number(vb: Any) -> None:
    number = phone()
    earlier = await book_earlier(vb, number, "earlier visit")
    started = await maybe(vb.start_session(phone=number, name="Owner"))
    assert started.identity_level == "trusted"
    assert started.user is not None and started.user.phone_masked.endswith(number[-4:])
    sid = started.session_id

    who = await maybe(vb.identify_user(sid))  # the line (here: the back-end) vouched for it
    assert (who.level, who.returning, who.verification_required) == ("trusted", True, False)
    assert [a.id for a in who.upcoming] == [earlier]
    listed = await maybe(vb.retrieve_appointments(sid))
    assert listed.verification_required is False
    assert [a.id for a in listed.appointments] == [earlier]

    fixed = await raised(lambda: vb.identify_user(sid, phone=phone()), errors.CallerFixed)
    assert isinstance(fixed, errors.Conflict) and fixed.status == 409 and fixed.message
    assert (await maybe(vb.get_session(sid))).identity_level == "trusted"


async def test_a_browser_cannot_start_a_trusted_session(server: Server) -> None:
    async with AsyncClient(server.url, api_key="") as browser:
        plain = await browser.start_session()
        assert plain.identity_level is None and plain.user is None
        with pytest.raises(errors.Unauthorized):
            await browser.start_session(phone=phone())
        with pytest.raises(errors.Unauthorized):
            await browser.attest_caller(plain.session_id, phone=phone())
    with Client(server.url, api_key="not-the-key") as wrong, pytest.raises(errors.Unauthorized):
        wrong.start_session(phone=phone())


async def test_the_agent_attests_a_sip_caller(vb: Any) -> None:
    number = phone()
    earlier = await book_earlier(vb, number, "from the line")
    sid = (await maybe(vb.start_session())).session_id
    attested = await maybe(vb.attest_caller(sid, phone=number))
    assert (attested.session_id, attested.identity_level, attested.returning) == (
        sid,
        "trusted",
        True,
    )
    assert attested.user.phone_masked.endswith(number[-4:])
    again = await maybe(vb.attest_caller(sid, phone=number))  # idempotent: the same caller
    assert again.user.id == attested.user.id
    who = await maybe(vb.identify_user(sid, name="Caller"))
    assert who.level == "trusted" and [a.id for a in who.upcoming] == [earlier]
    await raised(lambda: vb.identify_user(sid, phone=phone()), errors.CallerFixed)


async def test_a_claimed_caller_proves_the_number_with_the_texted_code(
    vb: Any, webhook: SmsWebhook
) -> None:
    number = phone()
    earlier = await book_earlier(vb, number, "private note")
    sid = (await maybe(vb.start_session())).session_id
    await raised(lambda: vb.verify_caller(sid), errors.NotIdentified)

    who = await maybe(vb.identify_user(sid, phone=number))
    assert (who.level, who.verification_required, who.upcoming) == ("claimed", True, [])
    listed = await maybe(vb.retrieve_appointments(sid))
    assert listed.verification_required is True and listed.appointments == []
    refused = await raised(
        lambda: vb.cancel_appointment(sid, appointment_id=earlier), errors.VerificationRequired
    )
    assert isinstance(refused, errors.Forbidden) and refused.status == 403
    await raised(lambda: vb.verify_caller(sid, code="123456"), errors.NoCodeSent)

    sent = await maybe(vb.verify_caller(sid))
    assert (sent.status, sent.level) == ("code_sent", "claimed")
    assert sent.expires_at is not None and sent.upcoming == []
    code = webhook.last_code(number)
    wrong = await raised(
        lambda: vb.verify_caller(sid, code=f"{(int(code) + 1) % 10**6:06d}"), errors.WrongCode
    )
    assert isinstance(wrong, errors.InvalidInput)
    assert wrong.attempts_left == MAX_ATTEMPTS - 1

    proved = await maybe(vb.verify_caller(sid, code=code))
    assert (proved.status, proved.level) == ("verified", "verified")
    assert [a.id for a in proved.upcoming] == [earlier]
    assert [a.id for a in (await maybe(vb.retrieve_appointments(sid))).appointments] == [earlier]
    cancelled = await maybe(vb.cancel_appointment(sid, appointment_id=earlier))
    assert cancelled.appointment.status == "cancelled"
    assert (await maybe(vb.get_session(sid))).identity_level == "verified"


async def test_refusals_that_waiting_does_not_lift_are_not_retried(
    vb: Any, webhook: SmsWebhook
) -> None:
    number = phone()
    sid = (await maybe(vb.start_session())).session_id
    await maybe(vb.identify_user(sid, phone=number))
    await maybe(vb.verify_caller(sid))
    code = webhook.last_code(number)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(MAX_ATTEMPTS - 1):
        await raised(lambda: vb.verify_caller(sid, code=wrong), errors.WrongCode)
    before = len(vb.attempts.paths)
    spent = await raised(lambda: vb.verify_caller(sid, code=wrong), errors.TooManyAttempts)
    assert isinstance(spent, errors.RateLimited) and not spent.transient
    assert spent.status == 429 and spent.attempts == 1
    assert vb.attempts.paths[before:] == ["/tools/verify_caller"]  # one request, no retry
    # Even the right code is refused now: a new code is needed.
    await raised(lambda: vb.verify_caller(sid, code=code), errors.TooManyAttempts)


def test_verification_unavailable_is_said_at_once(tmp_path: Path) -> None:
    """An SMS system that is not there: a 503 with a sentence, not retried for the caller."""
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}",
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_VERIFICATION": "webhook",
        "VOICEBOOK_VERIFICATION_WEBHOOK_URL": "http://127.0.0.1:1/sms",
        "VOICEBOOK_VERIFICATION_WEBHOOK_SECRET": "s" * 32,
    }
    attempts = Attempts()
    with (
        running_server(env, tmp_path) as server,
        httpx.Client(timeout=30, event_hooks={"request": [attempts]}) as http,
        Client(server.url, API_KEY, http_client=http) as vb,
    ):
        sid = vb.start_session().session_id
        vb.identify_user(sid, phone=phone())
        with pytest.raises(errors.VerificationUnavailable) as caught:
            vb.verify_caller(sid)
    assert isinstance(caught.value, errors.ServiceUnavailable)
    assert caught.value.status == 503 and caught.value.message
    assert attempts.paths.count("/tools/verify_caller") == 1

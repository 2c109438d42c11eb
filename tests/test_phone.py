"""Phone numbers as callers write or say them (scheduling/phone.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from voicebook.scheduling.availability import slot_id
from voicebook.scheduling.errors import InvalidPhone
from voicebook.scheduling.ids import new_appointment_id, new_code_id, new_user_id
from voicebook.scheduling.phone import mask_phone, mask_phones, normalize_phone

SF = "+14155550123"
LONDON = "+442079460958"


@pytest.mark.parametrize(
    "text",
    [
        "(415) 555-0123",
        "415.555.0123",
        "415-555-0123",
        "4155550123",
        "+1 415 555 0123",
        "+1 (415) 555-0123",
        "1 415 555 0123",
        "  415 555 0123  ",
        "415/555/0123",
    ],
)
def test_written_us_forms(text: str) -> None:
    assert normalize_phone(text, "US") == SF


@pytest.mark.parametrize(
    "text",
    [
        "four one five five five five zero one two three",
        "four one five five five five oh one two three",
        "four one five double five five oh one two three",
        "four one five five double five oh one two three",
        "four one five triple five oh one two three",
        "Four one five, five five five, oh one two three.",
        "four fifteen five five five oh one twenty three",
        "my number is 415 555 0123",
        "my number is four one five five five five zero one two three",
        "uh it's four one five, five five five, oh one two three",
        "call me at 415 555 0123",
        "plus one four one five five five five zero one two three",
        "415 five five five 0123",
    ],
)
def test_spoken_us_forms(text: str) -> None:
    assert normalize_phone(text, "US") == SF


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("six four six triple two one two three four", "+16462221234"),
        ("nine one seven double two three four five six seven", "+19172234567"),
        ("two one two five five five double oh one two", "+12125550012"),
        ("one eight hundred five five five zero one nine nine", "+18005550199"),
    ],
)
def test_spoken_repeats_and_numbers(text: str, expected: str) -> None:
    assert normalize_phone(text, "US") == expected


@pytest.mark.parametrize(
    "text",
    [
        "+44 20 7946 0958",
        "+442079460958",
        "plus four four two zero seven nine four six zero nine five eight",
        "plus forty four two oh seven nine four six oh nine five eight",
    ],
)
def test_international_numbers_ignore_the_default_region(text: str) -> None:
    assert normalize_phone(text, "US") == LONDON
    assert normalize_phone(text, "GB") == LONDON


def test_default_region_decides_national_numbers() -> None:
    assert normalize_phone("020 7946 0958", "GB") == LONDON
    assert normalize_phone("oh two oh seven nine four six oh nine five eight", "GB") == LONDON
    assert normalize_phone("(415) 555-0123", "us") == SF  # region case does not matter
    with pytest.raises(InvalidPhone):
        normalize_phone("020 7946 0958", "US")
    with pytest.raises(InvalidPhone):
        normalize_phone("415 555 0123", "GB")


def test_normalizing_twice_changes_nothing() -> None:
    for number in (SF, LONDON):
        assert normalize_phone(number, "US") == number
        assert normalize_phone(number, "GB") == number


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "123",
        "555 0123",  # seven digits, no area code
        "call me maybe",
        "four one five",
        "my number is",
        "double",
        "415 555 01234",  # one digit too many
        "plus one four one five plus five five five zero one two three",  # a second plus
        "four one five five five five zero one two three plus",
        "415 555 0123 ext 5",
        "four one five banana five five five zero one two three",
    ],
)
def test_invalid_numbers(text: str) -> None:
    with pytest.raises(InvalidPhone) as info:
        normalize_phone(text, "US")
    error = info.value
    assert error.code == "invalid_phone"
    assert error.to_dict()["code"] == "invalid_phone"
    assert error.status == 422
    assert error.message
    assert error.message[0].isupper()
    assert error.message.endswith((".", "?"))
    assert "phone number" in error.message
    # Speakable: plain words, nothing technical and no echo of the input.
    assert not any(ch.isdigit() for ch in error.message)
    assert "Exception" not in error.message


def test_incomplete_number_asks_for_the_area_code() -> None:
    with pytest.raises(InvalidPhone) as info:
        normalize_phone("020 7946 0958", "US")
    assert "area code" in info.value.message


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+14155550123", "***0123"),
        ("+442079460958", "***0958"),
        ("+16462221234", "***1234"),
    ],
)
def test_mask_phone(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked
    assert e164[:-4] not in mask_phone(e164)


def test_mask_of_a_spoken_number() -> None:
    assert mask_phone(normalize_phone("four one five five five five zero one two three", "US")) == (
        "***0123"
    )


@pytest.fixture
def matched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text phonenumbers' matcher is asked to read (it costs tens of microseconds)."""
    import phonenumbers

    calls: list[str] = []
    real = phonenumbers.PhoneNumberMatcher

    def counting(text: str, *args: object, **kwargs: object) -> object:
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(phonenumbers, "PhoneNumberMatcher", counting)
    return calls


def test_addresses_in_log_lines_are_not_read_as_phone_numbers(matched: list[str]) -> None:
    """Every access-log line starts with `client:port`: the phone matcher (a third of a
    millisecond a line) must not run on it, and a number next to an address is still masked."""
    line = '127.0.0.1:54321 - "GET /healthz HTTP/1.1" 200'
    assert mask_phones(line, "US") == line
    assert matched == []
    assert mask_phones("10.0.0.1 asked for 415.555.0123", "US") == "10.0.0.1 asked for ***0123"
    query = '127.0.0.1:5 - "GET /x?phone=4155550123 HTTP/1.1" 200'
    assert "4155550123" not in mask_phones(query, "US")
    # Dotted national forms are not addresses: a French mobile stays masked.
    assert mask_phones("call 06.12.34.56.78", "FR") == "call ***5678"


def test_our_own_ids_are_not_read_as_phone_numbers(matched: list[str]) -> None:
    """Every tool answer holds slot, appointment and user ids, whose digits pass the seven-digit
    pre-check: the matcher must not run on them, and a number beside one is still masked."""
    start = datetime(2027, 3, 2, 14, 0, tzinfo=timezone.utc)
    ids = [
        slot_id(start),
        slot_id(start, "cut", "ana"),
        *(make() for make in (new_appointment_id, new_user_id, new_code_id) for _ in range(50)),
        "apt_4155550123abcdef",  # a valid number's digits inside an id are not a number
    ]
    payload = {"appointment": {"id": ids[2], "slot_id": ids[0]}, "ids": ids}
    assert mask_phones(payload, "US") == payload
    assert matched == []
    beside = f"{ids[2]} for 415-555-0123"
    assert mask_phones(beside, "US") == f"{ids[2]} for ***0123"

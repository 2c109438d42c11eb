"""Phone numbers: written or spoken forms → E.164, and masking for anything a person may see.

Callers speak their number and the STT writes it down in many shapes ("four one five, five five
five, oh one two three", "double five", "(415) 555-0123"). Spoken words are turned into digits here;
`phonenumbers` then does the real parsing and validation against `VOICEBOOK_DEFAULT_REGION`.
"""

from __future__ import annotations

import re

import phonenumbers

from voicebook.scheduling.errors import InvalidPhone

_UNITS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "for": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 2, "thirty": 3, "forty": 4, "fifty": 5, "sixty": 6, "seventy": 7, "eighty": 8,
    "ninety": 9,
}  # fmt: skip
_REPEATS = {"double": 2, "triple": 3}
_FILLERS = frozenset(
    [
        "my",
        "number",
        "is",
        "its",
        "it's",
        "it",
        "is",
        "the",
        "phone",
        "mobile",
        "cell",
        "area",
        "code",
        "country",
        "and",
        "dash",
        "hyphen",
        "um",
        "uh",
        "er",
        "ah",
        "okay",
        "ok",
        "so",
        "yes",
        "yeah",
        "sure",
        "that's",
        "thats",
        "call",
        "me",
        "at",
        "on",
    ]
)
_WRITTEN = re.compile(r"^[\d\s+().\-/]+$")
_TOKENS = re.compile(r"\+|\d+|[a-z']+")
_MIN_DIGITS = 7


def _spoken_to_digits(text: str) -> str | None:
    """Turn a transcript into '+'/digits, or None when it holds words that are not a number."""
    out: list[str] = []
    repeat = 1
    tokens = _TOKENS.findall(text.lower())
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "+" or token == "plus":
            if out:
                return None
            out.append("+")
            continue
        if token in _REPEATS:
            repeat = _REPEATS[token]
            continue
        if token.isdigit():
            group = token
        elif token in _UNITS:
            group = str(_UNITS[token])
        elif token in _TEENS:
            group = str(_TEENS[token])
        elif token in _TENS:
            group = str(_TENS[token])
            if i < len(tokens) and tokens[i] in _UNITS and _UNITS[tokens[i]] > 0:
                group += str(_UNITS[tokens[i]])
                i += 1
            else:
                group += "0"
        elif token == "hundred" and out:
            group = "00"
        elif token == "thousand" and out:
            group = "000"
        elif token in _FILLERS:
            continue
        else:
            return None
        if repeat > 1:
            # "double five" repeats one digit; "double 55" is read literally.
            group = group * repeat if len(group) == 1 else group
            repeat = 1
        out.append(group)
    return "".join(out)


def normalize_phone(text: str, default_region: str) -> str:
    """E.164 form of a written or spoken phone number; `InvalidPhone` when it is not a valid one."""
    raw = text.strip()
    candidate = raw if _WRITTEN.match(raw) else _spoken_to_digits(raw)
    digits = re.sub(r"\D", "", candidate or "")
    if candidate is None or len(digits) < _MIN_DIGITS:
        raise InvalidPhone()
    try:
        number = phonenumbers.parse(candidate, default_region.upper())
    except phonenumbers.NumberParseException:
        raise InvalidPhone() from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(
            "That doesn't look like a complete phone number; could you say it again, "
            "including the area code?"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """'***4567': enough for a caller to recognise their number, useless to anyone else."""
    return "***" + e164[-4:]

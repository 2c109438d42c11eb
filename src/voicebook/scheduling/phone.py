"""Phone numbers: written or spoken forms → E.164, and masking for anything a person may see.

Callers speak their number and the STT writes it down in many shapes ("four one five, five five
five, oh one two three", "double five", "(415) 555-0123"). Spoken words are turned into digits here;
`phonenumbers` then does the real parsing and validation against `VOICEBOOK_DEFAULT_REGION`.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import phonenumbers

from voicebook.scheduling.availability import SLOT_ID_START
from voicebook.scheduling.errors import InvalidPhone
from voicebook.scheduling.ids import PREFIXED_ID

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


# --- masking by what a value is, not by the key it arrives under ---------------------------------

_LENIENCY = phonenumbers.Leniency.VALID
"""VALID: a real number of its region, not glued to letters (so ids such as `apt_0123456789abcdef`
or `usr_…` stay whole); POSSIBLE also takes any digit run of the right length."""
_MAX_E164_DIGITS = 15
_DIGIT_RUN = re.compile(r"\d(?:\D{0,3}\d){6}")
"""Seven digits with at most three other characters between neighbours: the pre-check."""
_ISO_OR_CLOCK = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\b"
)
"""Dates, instants and clock times: removed before the pre-check counts digits."""
_IPV4 = re.compile(r"(?<![.\d])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![.\d])")
"""An IPv4 address, perhaps with a port: every access-log line starts with one, none is a phone
number, and without this the matcher (about 0.3 ms a line) ran on every request's log line."""
_NUMBER_WORDS = sorted(
    [*_UNITS, *_TEENS, *_TENS, *_REPEATS, "plus", "hundred", "thousand"], key=len, reverse=True
)
_SPOKEN_TOKEN = r"(?:\d+|" + "|".join(_NUMBER_WORDS) + r")"
_SPOKEN_RUN = re.compile(
    rf"(?<![\w']){_SPOKEN_TOKEN}(?:[\s,.\-]+{_SPOKEN_TOKEN}){{3,}}(?![\w'])", re.IGNORECASE
)
"""Four or more number words or digit groups in a row ("four one five, five five five, …")."""
_RUN_TOKEN = re.compile(_SPOKEN_TOKEN, re.IGNORECASE)
_MAX_RUN_TOKENS = 40


def mask_phones(value: Any, region: str) -> Any:
    """`value` with every phone number in it replaced by `mask_phone` of it ("***0123").

    Walks dicts (values only; keys stay as they are), lists and tuples; any other value but a
    string or an integer is returned as it is. Numbers are found by what they are, whatever key
    they sit under:

    - written numbers anywhere in a string, via `phonenumbers.PhoneNumberMatcher` at VALID
      leniency for `region` (any region when written with +country code or an international
      prefix): "(415) 555-0123", "415.555.0123", "4155550123", "+1 415 555 0123",
      "+44 20 7946 0958", "call me at 415-555-0123 please";
    - numbers the STT wrote as words or as digits said one by one, possibly mixed: runs of four
      or more number words or digit groups such as "four one five, double five five, oh one two
      three" or "4 1 5, 5 5 5, 0 1 2 3" (the words `normalize_phone` reads), when the run or a
      stretch of it is a valid number (ten number words in a row that happen to form one, such
      as counting to ten, are masked too);
    - an integer whose digits are a valid number (a model may send `4155550123` unquoted).

    Not caught: numbers that are not complete and valid for their region (a local "555-0123"
    without area code, a national form of another country such as "020 7946 0958" outside GB),
    numbers glued to letters ("Bob4155550123"), and numbers spelled across other words
    ("four one five, and then five five five …"). Dates, instants, clock times, slot and
    appointment ids, prices and short numbers are never touched.

    Fast on values without numbers: a string with fewer than seven digits (dates and clock times
    not counted) and no run of number words is returned without running the matcher.
    """
    if isinstance(value, str):
        return _mask_text(value, region)
    if isinstance(value, dict):
        return {k: mask_phones(v, region) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_phones(v, region) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**6:
        masked = _mask_text(str(value), region)
        return value if masked == str(value) else masked
    return value


def _mask_text(text: str, region: str) -> str:
    if len(text) < _MIN_DIGITS:
        return text
    region = region.upper()
    if _may_hold_digits(text):
        text = _mask_written(text, region)
    if _SPOKEN_RUN.search(text) and _SPOKEN_RUN.search(_IPV4.sub(" ", text)):
        text = _mask_spoken(text, region)
    return text


def _may_hold_digits(text: str) -> bool:
    """Whether the matcher must read `text`: seven digits close together once dates, clock
    times, IPv4 addresses and our own ids (slot, appointment, user, code: every tool answer
    holds several, and the matcher costs tens of microseconds each) are set aside."""
    if not _DIGIT_RUN.search(text):
        return False
    for known in (_ISO_OR_CLOCK, _IPV4, SLOT_ID_START, PREFIXED_ID):
        text = known.sub(" ", text)
    return _DIGIT_RUN.search(text) is not None


def _mask_written(text: str, region: str) -> str:
    out, last = [], 0
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=_LENIENCY):
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        out += [text[last : match.start], mask_phone(e164)]
        last = match.end
    return "".join(out) + text[last:] if out else text


def _mask_spoken(text: str, region: str) -> str:
    out, last = [], 0
    for run in _SPOKEN_RUN.finditer(text):
        tokens = list(_RUN_TOKEN.finditer(text, run.start(), run.end()))[:_MAX_RUN_TOKENS]
        i = 0
        while i < len(tokens):
            for j in range(len(tokens), i, -1):  # leftmost, then longest
                window = tokens[i:j]
                if not _spoken_window(text, window):
                    continue
                e164 = _spoken_number(text[window[0].start() : window[-1].end()], region)
                if e164 is not None:
                    out += [text[last : window[0].start()], mask_phone(e164)]
                    last = window[-1].end()
                    i = j
                    break
            else:
                i += 1
    return "".join(out) + text[last:] if out else text


def _spoken_window(text: str, tokens: list[re.Match[str]]) -> bool:
    """A stretch worth reading: it has a number word, or is digits said one at a time
    ("4 1 5, 5 5 5, 0 1 2 3"; the matcher reads written groups like "415 555 0123" itself),
    never decimals ("2.5, 3.5, …")."""
    if any(not t.group().isdigit() for t in tokens):
        return True
    if any(len(t.group()) != 1 for t in tokens):
        return False
    return all(text[a.end() : b.start()] != "." for a, b in pairwise(tokens))


def _spoken_number(text: str, region: str) -> str | None:
    candidate = _spoken_to_digits(text)
    if candidate is None:
        return None
    digits = len(candidate.lstrip("+"))
    if not _MIN_DIGITS <= digits <= _MAX_E164_DIGITS:
        return None
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

"""Parsing of the weekly opening hours (`VOICEBOOK_HOURS`) and closed dates.

Accepted form: comma-separated entries, each a day or day range followed by one or more time
ranges, e.g. ``"mon-fri 09:00-12:00 13:00-17:00, sat 10:00-14:00"``. ``24:00`` is allowed as an
end. A day may appear in several entries; its ranges are merged, and overlapping ranges are refused
because every instant must be offered at most once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from itertools import pairwise

HOURS_EXAMPLE = "mon-fri 09:00-17:00, sat 10:00-14:00"
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    **{name: i for i, name in enumerate(DAY_NAMES)},
    **{
        full: i
        for i, full in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
    "tues": 1,
    "wednes": 2,
    "thur": 3,
    "thurs": 3,
}
_TIME_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True, order=True)
class TimeRange:
    """Opening range within one local day, in minutes after midnight; `end` may be 1440 (24:00)."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


WeeklyHours = dict[int, tuple[TimeRange, ...]]
"""Weekday (0 = Monday) → its sorted, non-overlapping opening ranges."""


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_day(token: str) -> int:
    day = _DAY_ALIASES.get(token.lower())
    if day is None:
        raise ValueError(f"unknown day {token!r}; use mon, tue, wed, thu, fri, sat or sun")
    return day


def _parse_days(token: str) -> list[int]:
    if "-" in token:
        first, last = (_parse_day(part) for part in token.split("-", 1))
        if last < first:
            raise ValueError(f"day range {token!r} runs backwards; write it as e.g. mon-fri")
        return list(range(first, last + 1))
    return [_parse_day(token)]


def _parse_range(token: str) -> TimeRange:
    match = _TIME_RANGE.match(token)
    if not match:
        raise ValueError(f"time range {token!r} must look like 09:00-17:00")
    sh, sm, eh, em = (int(g) for g in match.groups())
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em != 0):
        raise ValueError(f"time range {token!r} has an impossible time")
    start, end = sh * 60 + sm, eh * 60 + em
    if end <= start:
        raise ValueError(f"time range {token!r} must end after it starts")
    return TimeRange(start, end)


def parse_hours(text: str) -> WeeklyHours:
    """Parse weekly hours; a ValueError names the bad part and shows the expected form."""
    ranges: dict[int, list[TimeRange]] = {}
    try:
        entries = [entry.strip() for entry in text.split(",") if entry.strip()]
        if not entries:
            raise ValueError("no opening hours given")
        for entry in entries:
            tokens = entry.split()
            if len(tokens) < 2:
                raise ValueError(f"entry {entry!r} needs days and at least one time range")
            days = _parse_days(tokens[0])
            for token in tokens[1:]:
                time_range = _parse_range(token)
                for day in days:
                    ranges.setdefault(day, []).append(time_range)
        weekly: WeeklyHours = {}
        for day, day_ranges in sorted(ranges.items()):
            day_ranges.sort()
            for before, after in pairwise(day_ranges):
                if after.start < before.end:
                    raise ValueError(
                        f"{DAY_NAMES[day]} has overlapping ranges {before} and {after}"
                    )
            weekly[day] = tuple(day_ranges)
        return weekly
    except ValueError as exc:
        raise ValueError(f"{exc} (expected a form like {HOURS_EXAMPLE!r})") from None


def format_hours(weekly: WeeklyHours) -> str:
    """The canonical text form of weekly hours (inverse of `parse_hours`); consecutive days with
    the same ranges are written as one day range: "mon-fri 09:00-17:00, sat 10:00-14:00"."""
    groups: list[tuple[int, int, tuple[TimeRange, ...]]] = []
    for day, ranges in sorted(weekly.items()):
        if groups and groups[-1][1] == day - 1 and groups[-1][2] == ranges:
            groups[-1] = (groups[-1][0], day, ranges)
        else:
            groups.append((day, day, ranges))
    return ", ".join(
        f"{DAY_NAMES[first]}{'-' + DAY_NAMES[last] if last != first else ''} "
        + " ".join(str(r) for r in ranges)
        for first, last, ranges in groups
    )


def parse_closed_dates(text: str) -> frozenset[date]:
    """Comma-separated ISO dates → a set; raise ValueError naming the bad date."""
    closed: set[date] = set()
    for token in (part.strip() for part in text.split(",")):
        if not token:
            continue
        try:
            closed.add(date.fromisoformat(token))
        except ValueError:
            raise ValueError(f"{token!r} is not a date in the form YYYY-MM-DD") from None
    return frozenset(closed)

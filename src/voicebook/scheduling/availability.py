"""The availability engine: opening rules + confirmed bookings → free slots. Pure, no I/O.

Slots are generated in absolute time: each opening range is resolved to UTC instants on its local
day and stepped forward by slot length + buffer. That single choice makes DST come out right on both
transition days — a spring-forward day has no 02:xx slots, and on a fall-back day the repeated hour
is offered twice (as two distinct instants) and no instant is offered twice.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property, lru_cache
from itertools import islice
from typing import Literal
from zoneinfo import ZoneInfo

from voicebook.scheduling.errors import (
    Closed,
    InPast,
    InvalidInput,
    NotOnGrid,
    OutsideHours,
    TooFar,
    TooSoon,
)
from voicebook.scheduling.hours import TimeRange, WeeklyHours

UTC = timezone.utc
PartOfDay = Literal["morning", "afternoon", "evening"]
PARTS_OF_DAY: dict[str, tuple[int, int]] = {
    "morning": (0, 12 * 60),
    "afternoon": (12 * 60, 17 * 60),
    "evening": (17 * 60, 24 * 60),
}
"""Part of day → [start, end) in local minutes after midnight, judged on a slot's local start."""
_SLOT_ID_PREFIX = "slot_"
SLOT_ID_START = re.compile(r"\bslot_\d{8}T\d{4}Z")
"""The start of every `slot_id` (its UTC minute): digits that are never a phone number."""


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open span [start, end) of aware UTC instants."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class AvailabilityRules:
    """Everything that decides which instants can be booked (DESIGN §6 availability settings)."""

    zone: ZoneInfo
    weekly: WeeklyHours
    slot_minutes: int = 30
    buffer_minutes: int = 0
    """Time kept free after each appointment (a service's buffer after)."""
    min_notice_minutes: int = 0
    horizon_days: int = 30
    closed_dates: frozenset[date] = field(default_factory=frozenset)
    buffer_before_minutes: int = 0
    """Time kept free before each appointment (a service's buffer before)."""

    # Cached: the slot loops read these once per slot.
    @cached_property
    def slot_length(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    @cached_property
    def buffer(self) -> timedelta:
        return timedelta(minutes=self.buffer_minutes)

    @cached_property
    def buffer_before(self) -> timedelta:
        return timedelta(minutes=self.buffer_before_minutes)

    @cached_property
    def step_minutes(self) -> int:
        return self.buffer_before_minutes + self.slot_minutes + self.buffer_minutes

    @cached_property
    def step(self) -> timedelta:
        """Distance between slot starts, so on-grid bookings never violate the buffers."""
        return timedelta(minutes=self.step_minutes)

    def blocked(self, slot: Interval) -> Interval:
        """What an appointment in `slot` keeps its resource from: its buffers included. The
        database refuses two overlapping blocked spans of one resource (DESIGN §5)."""
        return Interval(slot.start - self.buffer_before, slot.end + self.buffer)

    def earliest(self, now: datetime) -> datetime:
        """The first instant a slot may start (minimum notice)."""
        return now + timedelta(minutes=self.min_notice_minutes)

    def latest(self, now: datetime) -> datetime:
        """Slots must start before this instant (horizon)."""
        return now + timedelta(days=self.horizon_days)


class BusyIndex:
    """Confirmed bookings, searchable for overlap in O(log n).

    Bookings of one resource never overlap each other, but the index does not rely on it: a running
    maximum of end times keeps the lookup correct for any input.
    """

    def __init__(self, busy: Sequence[Interval]) -> None:
        ordered = sorted(busy)
        self._starts = [interval.start for interval in ordered]
        self._max_end: list[datetime] = []
        running: datetime | None = None
        for interval in ordered:
            running = interval.end if running is None or interval.end > running else running
            self._max_end.append(running)

    def count_starting(self, start: datetime, end: datetime) -> int:
        """How many bookings start in [start, end)."""
        return bisect.bisect_left(self._starts, end) - bisect.bisect_left(self._starts, start)

    def conflicts(self, slot: Interval, margin: timedelta) -> bool:
        """True when `slot`, widened by `margin` on both sides, overlaps a booking."""
        i = bisect.bisect_left(self._starts, slot.end + margin)
        return i > 0 and self._max_end[i - 1] > slot.start - margin


def to_utc(rules: AvailabilityRules, day: date, minutes: int) -> datetime:
    """The UTC instant at which the business clock shows `minutes` after midnight of `day`
    (1440 = next midnight).

    An ambiguous (fall-back) wall time resolves to its first occurrence. A wall time that does not
    exist (spring-forward gap) resolves to the gap's end — the moment the clock passes it — so a
    range ending at 02:30 on that day closes when the clock jumps, and one starting then opens.
    """
    if minutes == 24 * 60:
        day, minutes = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(minutes // 60, minutes % 60))
    instant = wall.replace(tzinfo=rules.zone).astimezone(UTC)
    if instant.astimezone(rules.zone).replace(tzinfo=None) != wall:
        instant = _gap_end(rules.zone, wall)
    return instant


def _gap_end(zone: ZoneInfo, wall: datetime) -> datetime:
    """The first instant whose local time is at or after `wall`, which lies in a DST gap."""
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # before the gap
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # after the gap
    if low > high:
        low, high = high, low
    minute = timedelta(minutes=1)
    while high - low > minute:
        middle = low + (high - low) // 2
        middle -= timedelta(seconds=middle.second, microseconds=middle.microsecond)
        if middle <= low:
            break
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def local_date(rules: AvailabilityRules, instant: datetime) -> date:
    return instant.astimezone(rules.zone).date()


def range_bounds(rules: AvailabilityRules, day: date, opening: TimeRange) -> Interval:
    return Interval(to_utc(rules, day, opening.start), to_utc(rules, day, opening.end))


def day_grid(rules: AvailabilityRules, day: date) -> list[Interval]:
    """Every slot the weekly hours put on local `day`, ignoring closures, notice and bookings.

    The first slot of a range starts after its buffer before, so the whole blocked span lies in
    opening hours; the buffer after may run past the range's end (clean-up after the last one).
    """
    slots: list[Interval] = []
    for opening in rules.weekly.get(day.weekday(), ()):
        bounds = range_bounds(rules, day, opening)
        start = bounds.start + rules.buffer_before
        while start + rules.slot_length <= bounds.end:
            slots.append(Interval(start, start + rules.slot_length))
            start += rules.step
    return slots


def _in_part_of_day(rules: AvailabilityRules, instant: datetime, part: str) -> bool:
    local = instant.astimezone(rules.zone)
    low, high = PARTS_OF_DAY[part]
    return low <= local.hour * 60 + local.minute < high


def search_window(
    rules: AvailabilityRules,
    now: datetime,
    on: date | None = None,
    *,
    not_before: datetime | None = None,
    before: datetime | None = None,
) -> Interval:
    """The UTC span whose bookings can affect `free_slots` with the same arguments (what a store
    should fetch, no more)."""
    if on is None:
        start = max(rules.earliest(now), not_before or rules.earliest(now))
        end = min(rules.latest(now), before or rules.latest(now)) + rules.slot_length
    else:
        start, end = to_utc(rules, on, 0), to_utc(rules, on, 24 * 60)
    return Interval(start - rules.buffer_before, end + rules.buffer)


def iter_free_slots(
    rules: AvailabilityRules,
    now: datetime,
    busy: Sequence[Interval],
    *,
    on: date | None = None,
    part_of_day: str | None = None,
    not_before: datetime | None = None,
    before: datetime | None = None,
) -> Iterator[Interval]:
    """Free slots in time order: on local date `on` or across the horizon, lazily; starting no
    earlier than `not_before` and before `before` when given."""
    if part_of_day is not None and part_of_day not in PARTS_OF_DAY:
        raise InvalidInput(f"Part of day must be one of {', '.join(PARTS_OF_DAY)}.")
    earliest, latest = rules.earliest(now), rules.latest(now)
    if not_before is not None and not_before > earliest:
        earliest = not_before
    if before is not None and before < latest:
        latest = before
    index = BusyIndex(busy)
    first = on or local_date(rules, earliest)
    last = on or local_date(rules, latest)
    day = first
    while day <= last:
        if day not in rules.closed_dates:
            for slot in day_grid(rules, day):
                if slot.start < earliest or slot.start >= latest:
                    continue
                if part_of_day is not None and not _in_part_of_day(rules, slot.start, part_of_day):
                    continue
                if not index.conflicts(rules.blocked(slot), timedelta(0)):
                    yield slot
        day += timedelta(days=1)


def free_slots(
    rules: AvailabilityRules,
    now: datetime,
    busy: Sequence[Interval],
    *,
    on: date | None = None,
    part_of_day: str | None = None,
    limit: int | None = None,
    not_before: datetime | None = None,
    before: datetime | None = None,
) -> list[Interval]:
    """Up to `limit` free slots (all when None); see `iter_free_slots`."""
    found = iter_free_slots(
        rules, now, busy, on=on, part_of_day=part_of_day, not_before=not_before, before=before
    )
    return list(islice(found, limit))


def is_open(rules: AvailabilityRules, slot: Interval) -> bool:
    """True when one opening range of the slot's local day holds the whole slot (a room's hours
    must cover the appointment that also needs it)."""
    day = local_date(rules, slot.start)
    if day in rules.closed_dates:
        return False
    return any(
        bounds.start <= slot.start and slot.end <= bounds.end
        for bounds in (range_bounds(rules, day, r) for r in rules.weekly.get(day.weekday(), ()))
    )


def check_bookable(rules: AvailabilityRules, now: datetime, start: datetime) -> Interval:
    """The slot starting at `start`, or the domain error explaining why it cannot be booked.

    Bookings are not consulted here; the store refuses overlaps (DESIGN §5).
    """
    if start < now:
        raise InPast(f"{label(rules, start)} has already passed.")
    if start < rules.earliest(now):
        raise TooSoon(
            f"{label(rules, start)} is too soon; we need at least "
            f"{_duration_words(rules.min_notice_minutes)} notice."
        )
    if start >= rules.latest(now):
        raise TooFar(f"We only book up to {rules.horizon_days} days ahead.")
    day = local_date(rules, start)
    if day in rules.closed_dates:
        raise Closed(f"We're closed on {day_label(day)}.")
    openings = (range_bounds(rules, day, r) for r in rules.weekly.get(day.weekday(), ()))
    opening = next((b for b in openings if b.start <= start < b.end), None)
    if opening is None:
        raise OutsideHours(f"{label(rules, start)} is outside our opening hours.")
    # On the grid: a whole number of steps after the range's first start, with room for the slot.
    on_step = (start - opening.start - rules.buffer_before) % rules.step == timedelta(0)
    if on_step and start + rules.slot_length <= opening.end:
        return Interval(start, start + rules.slot_length)
    grid = day_grid(rules, day)
    nearby = sorted(grid, key=lambda slot: abs(slot.start - start))[:2]
    suggestions = " or ".join(time_label(rules, slot.start) for slot in sorted(nearby))
    raise NotOnGrid(
        f"Appointments start every {_duration_words(rules.step_minutes)}"
        + (f"; the nearest times are {suggestions}." if suggestions else ".")
    )


def _duration_words(minutes: int) -> str:
    if minutes % 60 == 0 and minutes:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minutes"


def _is_ambiguous(local: datetime) -> bool:
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def _clock_text(local: datetime) -> str:
    text = f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    if _is_ambiguous(local):
        text += f" {local.tzname()}"
    return text


def time_label(rules: AvailabilityRules, instant: datetime) -> str:
    """'3:00 PM' in the business zone; a repeated fall-back time adds its zone: '1:30 AM EST'."""
    return _clock_text(instant.astimezone(rules.zone))


@lru_cache(maxsize=1024)
def day_label(day: date) -> str:
    """'Tuesday, December 2' (cached: every slot of a day asks for it)."""
    return f"{day:%A}, {day:%B} {day.day}"


def label(rules: AvailabilityRules, instant: datetime) -> str:
    """Speakable label in the business zone: 'Tuesday, December 2 at 3:00 PM'."""
    local = instant.astimezone(rules.zone)
    return f"{day_label(local.date())} at {_clock_text(local)}"


def slot_id(start: datetime, service: str | None = None, resource: str | None = None) -> str:
    """Opaque, stable id of the slot starting at `start` (its UTC start, minute precision), and
    of the service and resource it is for when the business has more than one."""
    text = _SLOT_ID_PREFIX + start.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
    if service is not None and resource is not None:
        text += f".{service}.{resource}"
    return text


def parse_slot_id(value: str) -> tuple[datetime, str | None, str | None]:
    """(start, service id, resource id) of a `slot_id`; InvalidInput when it is not one of ours."""
    moment, _, rest = value.partition(".")
    service, _, resource = rest.partition(".")
    try:
        if not moment.startswith(_SLOT_ID_PREFIX) or bool(service) != bool(resource):
            raise ValueError(value)
        parsed = datetime.strptime(moment[len(_SLOT_ID_PREFIX) :], "%Y%m%dT%H%MZ")
    except ValueError:
        raise InvalidInput(
            "That slot id is not one I gave out; please pick a slot from the list."
        ) from None
    return parsed.replace(tzinfo=UTC), service or None, resource or None

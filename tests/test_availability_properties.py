"""Property tests of free_slots: random rules, zones, clocks and bookings.

The invariants (DESIGN §4/§5): a free slot never overlaps a confirmed booking widened by the buffer,
lies inside an opening range of its own local day (judged on the wall clock, independently of the
engine's own conversion), never starts before now + notice or at/after now + horizon, is never
offered twice, and the list is in time order. Bookings only ever remove the slots they conflict
with.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicebook.scheduling.availability import (
    AvailabilityRules,
    Interval,
    check_bookable,
    free_slots,
    label,
    parse_slot_id,
    search_window,
    slot_id,
)
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.hours import TimeRange

UTC = timezone.utc
ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "UTC"]
# DST transition days of 2027 (local dates), so that clocks just before them are tried often.
TRANSITIONS = [
    ("America/New_York", date(2027, 3, 14)),
    ("America/New_York", date(2027, 11, 7)),
    ("Europe/London", date(2027, 3, 28)),
    ("Europe/London", date(2027, 10, 31)),
    ("Australia/Sydney", date(2027, 4, 4)),
    ("Australia/Sydney", date(2027, 10, 3)),
]
PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@st.composite
def day_ranges(draw: st.DrawFn) -> tuple[TimeRange, ...]:
    """Sorted, non-overlapping ranges on a 5-minute grid (0..1440); touching ranges allowed."""
    points = draw(st.lists(st.integers(0, 288), min_size=0, max_size=6, unique=True))
    points.sort()
    ranges = []
    for i in range(0, len(points) - 1, 2):
        ranges.append(TimeRange(points[i] * 5, points[i + 1] * 5))
    if len(ranges) >= 2 and draw(st.booleans()):
        # Make two neighbours touch (e.g. 09:00-12:00 12:00-13:00).
        first, second = ranges[0], ranges[1]
        ranges[1] = TimeRange(first.end, second.end)
    return tuple(ranges)


@st.composite
def weekly_hours(draw: st.DrawFn) -> dict[int, tuple[TimeRange, ...]]:
    weekly = {}
    for weekday in range(7):
        ranges = draw(day_ranges())
        if ranges:
            weekly[weekday] = ranges
    return weekly


@st.composite
def zone_and_clock(draw: st.DrawFn, horizon: int) -> tuple[ZoneInfo, datetime]:
    """A zone and `now`: anywhere in 2026-2028 (to the second), or shortly before one of that
    zone's DST transition days, close enough for the horizon to reach it."""
    if draw(st.booleans()):
        base = datetime(2026, 1, 1, tzinfo=UTC)
        now = base + timedelta(seconds=draw(st.integers(0, 3 * 365 * 86400)))
        return ZoneInfo(draw(st.sampled_from(ZONES))), now
    name, day = draw(st.sampled_from(TRANSITIONS))
    zone = ZoneInfo(name)
    midnight = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    return zone, midnight - timedelta(minutes=draw(st.integers(-600, horizon * 1440 - 1)))


def _keep_disjoint(intervals: list[Interval]) -> list[Interval]:
    kept: list[Interval] = []
    for interval in sorted(intervals):
        if not kept or interval.start >= kept[-1].end:
            kept.append(interval)
    return kept


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[AvailabilityRules, datetime, list[Interval]]:
    horizon = draw(st.integers(1, 14))
    zone, now = draw(zone_and_clock(horizon))
    local_today = now.astimezone(zone).date()
    rules = AvailabilityRules(
        zone=zone,
        weekly=draw(weekly_hours()),
        slot_minutes=draw(st.sampled_from([5, 10, 15, 20, 30, 45, 60, 90, 120])),
        buffer_minutes=draw(st.sampled_from([0, 0, 5, 10, 15, 30])),
        min_notice_minutes=draw(st.sampled_from([0, 0, 30, 60, 120, 24 * 60])),
        horizon_days=horizon,
        closed_dates=frozenset(
            draw(
                st.lists(
                    st.integers(-1, horizon + 1).map(lambda n: local_today + timedelta(days=n)),
                    max_size=3,
                )
            )
        ),
    )
    # Bookings on real slots, exactly or nudged a little (the edges are where bugs hide) ...
    offered = free_slots(rules, now, [])
    near: list[Interval] = []
    if offered:
        for slot in draw(st.lists(st.sampled_from(offered), max_size=8, unique=True)):
            shift = timedelta(minutes=draw(st.sampled_from([0, 0, 0, -10, -5, 5, 10])))
            stretch = timedelta(minutes=draw(st.sampled_from([0, 0, 0, -5, 5, 30])))
            near.append(Interval(slot.start + shift, slot.end + shift + stretch))
    # ... and bookings anywhere (made by hand, before the rules changed, ...), laid out one after
    # another. Confirmed bookings never overlap each other.
    anywhere = []
    cursor = now - timedelta(hours=draw(st.integers(0, 48)))
    for _ in range(draw(st.integers(0, 20))):
        cursor += timedelta(minutes=5 * draw(st.integers(0, 200)))
        length = timedelta(minutes=5 * draw(st.integers(1, 36)))
        anywhere.append(Interval(cursor, cursor + length))
        cursor += length
    near = _keep_disjoint(near)
    bookings = near + [b for b in anywhere if not any(overlaps(b, n, timedelta(0)) for n in near)]
    order = draw(st.permutations(range(len(bookings))))
    return rules, now, [bookings[i] for i in order]


@lru_cache(maxsize=4096)
def wall_clock_instant(zone: ZoneInfo, day: date, minutes: int) -> datetime:
    """The first instant at which the wall clock of `day` in `zone` shows `minutes` or later.

    Worked out without the engine's own rule for gaps: if the wall time exists, its first
    occurrence; if it falls in a DST gap, the moment the clock jumps over it (found by bisection).
    """
    naive = datetime.combine(day, time()) + timedelta(minutes=minutes)
    one = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    two = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(one, two), max(one, two)
    if low.astimezone(zone).replace(tzinfo=None) == naive:
        return low
    # In a gap: the wall clock shows less than `naive` at `low` and more at `high`.
    while high - low > timedelta(microseconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            high = mid
        else:
            low = mid
    return high


def overlaps(a: Interval, b: Interval, margin: timedelta) -> bool:
    return a.start < b.end + margin and b.start < a.end + margin


@PROPERTY_SETTINGS
@given(scenarios())
def test_free_slots_invariants(
    scenario: tuple[AvailabilityRules, datetime, list[Interval]],
) -> None:
    rules, now, bookings = scenario
    zone = rules.zone
    slots = free_slots(rules, now, bookings)
    starts = [slot.start for slot in slots]
    earliest = now + timedelta(minutes=rules.min_notice_minutes)
    latest = now + timedelta(days=rules.horizon_days)
    margin = timedelta(minutes=rules.buffer_minutes)
    length = timedelta(minutes=rules.slot_minutes)

    opening_of: dict[datetime, tuple[date, TimeRange]] = {}
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    assert len({label(rules, start) for start in starts}) == len(starts)
    for slot in slots:
        assert slot.start.utcoffset() == timedelta(0)
        assert slot.end - slot.start == length
        assert slot.start >= earliest
        assert slot.start >= now
        assert slot.start < latest
        for booking in bookings:
            # Busy spans are blocked spans (buffers included), as the store keeps them.
            assert not overlaps(rules.blocked(slot), booking, timedelta(0)), (slot, booking)
        local_day = slot.start.astimezone(zone).date()
        assert local_day not in rules.closed_dates
        inside = [
            opening
            for opening in rules.weekly.get(local_day.weekday(), ())
            if wall_clock_instant(zone, local_day, opening.start)
            <= slot.start
            < slot.end
            <= wall_clock_instant(zone, local_day, opening.end)
        ]
        assert inside, (slot, local_day, rules.weekly.get(local_day.weekday()))
        assert parse_slot_id(slot_id(slot.start)) == (slot.start, None, None)
        opening_of[slot.start] = (local_day, inside[0])
    # What is offered can be booked; one minute off the grid cannot (a sample, for speed).
    for slot in slots[:: max(1, len(slots) // 40)]:
        assert check_bookable(rules, now, slot.start) == slot
        with pytest.raises(DomainError):
            check_bookable(rules, now, slot.start + timedelta(minutes=1))
    # Within one opening range, starts are at least slot length + buffer apart.
    step = length + margin
    for a, b in pairwise(slots):
        if opening_of[a.start] == opening_of[b.start]:
            assert b.start - a.start >= step, (a, b)


@PROPERTY_SETTINGS
@given(scenarios())
def test_bookings_remove_exactly_the_conflicting_slots(
    scenario: tuple[AvailabilityRules, datetime, list[Interval]],
) -> None:
    rules, now, bookings = scenario
    open_slots = free_slots(rules, now, [])
    none = timedelta(0)
    expected = [
        s for s in open_slots if not any(overlaps(rules.blocked(s), b, none) for b in bookings)
    ]
    assert free_slots(rules, now, bookings) == expected
    # Only the bookings inside the search window matter (what a store needs to fetch).
    window = search_window(rules, now)
    relevant = [b for b in bookings if b.start < window.end and b.end > window.start]
    assert free_slots(rules, now, relevant) == expected


@PROPERTY_SETTINGS
@given(scenarios(), st.integers(1, 10))
def test_per_day_and_limited_queries_agree_with_the_full_list(
    scenario: tuple[AvailabilityRules, datetime, list[Interval]], limit: int
) -> None:
    rules, now, bookings = scenario
    everything = free_slots(rules, now, bookings)
    assert free_slots(rules, now, bookings, limit=limit) == everything[:limit]
    days = sorted({slot.start.astimezone(rules.zone).date() for slot in everything})
    by_day = [slot for day in days for slot in free_slots(rules, now, bookings, on=day)]
    assert by_day == everything

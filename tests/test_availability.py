"""The availability engine (scheduling/availability.py) and the domain errors it raises.

Every expected value here is worked out by hand from the rules and the zone's UTC offset (written
next to it), never copied from a run of the code.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from voicebook.scheduling.availability import (
    AvailabilityRules,
    BusyIndex,
    Interval,
    check_bookable,
    day_grid,
    free_slots,
    iter_free_slots,
    label,
    parse_slot_id,
    search_window,
    slot_id,
    time_label,
)
from voicebook.scheduling.errors import (
    ERROR_CLASSES,
    Closed,
    DomainError,
    InPast,
    InvalidInput,
    NotOnGrid,
    OutsideHours,
    SlotTaken,
    TooFar,
    TooSoon,
    error_from_dict,
)
from voicebook.scheduling.hours import parse_hours

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
SYDNEY = ZoneInfo("Australia/Sydney")

# Dates used below, with their weekdays (checked in test_reference_weekdays).
MON_MAR_1 = date(2027, 3, 1)  # New York on EST (UTC-5): 09:00 local = 14:00Z
SAT_MAR_6 = date(2027, 3, 6)
SUN_MAR_7 = date(2027, 3, 7)
NY_SPRING_FORWARD = date(2027, 3, 14)  # second Sunday of March: 02:00 EST -> 03:00 EDT
NY_FALL_BACK = date(2027, 11, 7)  # first Sunday of November: 02:00 EDT -> 01:00 EST
SYDNEY_FALL_BACK = date(2027, 4, 4)  # first Sunday of April: 03:00 AEDT -> 02:00 AEST
SYDNEY_SPRING_FORWARD = date(2027, 10, 3)  # first Sunday of October: 02:00 AEST -> 03:00 AEDT


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_rules(hours: str, zone: ZoneInfo = NEW_YORK, **kwargs: object) -> AvailabilityRules:
    options: dict[str, object] = {
        "slot_minutes": 30,
        "buffer_minutes": 0,
        "min_notice_minutes": 0,
        "horizon_days": 60,
    }
    options.update(kwargs)
    return AvailabilityRules(zone=zone, weekly=parse_hours(hours), **options)  # type: ignore[arg-type]


def wall(rules: AvailabilityRules, slots: list[Interval]) -> list[str]:
    """Local HH:MM of each slot start in the business zone."""
    return [slot.start.astimezone(rules.zone).strftime("%H:%M") for slot in slots]


def half_hours(first: str, last: str) -> list[str]:
    """'09:00'..'11:30' in 30-minute steps, both ends included."""
    h, m = map(int, first.split(":"))
    minutes, end = h * 60 + m, int(last[:2]) * 60 + int(last[3:])
    out = []
    while minutes <= end:
        out.append(f"{minutes // 60:02d}:{minutes % 60:02d}")
        minutes += 30
    return out


STANDARD = "mon-fri 09:00-17:00, sat 10:00-14:00"
SUNDAY_BEFORE = utc(2027, 2, 28, 12)  # Sunday 07:00 EST, well before Monday's opening


def test_reference_weekdays() -> None:
    assert MON_MAR_1.weekday() == 0
    assert SAT_MAR_6.weekday() == 5
    assert SUN_MAR_7.weekday() == 6
    for day in (NY_SPRING_FORWARD, NY_FALL_BACK, SYDNEY_FALL_BACK, SYDNEY_SPRING_FORWARD):
        assert day.weekday() == 6, day
    # First Sunday of April / October, second Sunday of March, first Sunday of November.
    assert SYDNEY_FALL_BACK.day <= 7
    assert SYDNEY_SPRING_FORWARD.day <= 7
    assert 8 <= NY_SPRING_FORWARD.day <= 14
    assert NY_FALL_BACK.day <= 7


# --- weekly rules ------------------------------------------------------------------------------


def test_weekday_slots_follow_the_weekly_hours() -> None:
    rules = make_rules(STANDARD)
    monday = free_slots(rules, SUNDAY_BEFORE, [], on=MON_MAR_1)
    assert wall(rules, monday) == half_hours("09:00", "16:30")
    assert len(monday) == 16
    assert monday[0] == Interval(utc(2027, 3, 1, 14, 0), utc(2027, 3, 1, 14, 30))
    assert monday[-1] == Interval(utc(2027, 3, 1, 21, 30), utc(2027, 3, 1, 22, 0))


def test_saturday_has_its_own_hours_and_sunday_none() -> None:
    rules = make_rules(STANDARD)
    saturday = free_slots(rules, SUNDAY_BEFORE, [], on=SAT_MAR_6)
    assert wall(rules, saturday) == half_hours("10:00", "13:30")
    assert saturday[0].start == utc(2027, 3, 6, 15, 0)
    assert free_slots(rules, SUNDAY_BEFORE, [], on=SUN_MAR_7) == []
    assert day_grid(rules, SUN_MAR_7) == []


def test_several_ranges_per_day_leave_the_gap_empty() -> None:
    rules = make_rules("mon 09:00-12:00 13:00-17:00")
    slots = free_slots(rules, SUNDAY_BEFORE, [], on=MON_MAR_1)
    assert wall(rules, slots) == half_hours("09:00", "11:30") + half_hours("13:00", "16:30")
    assert "12:00" not in wall(rules, slots)
    assert "12:30" not in wall(rules, slots)
    # The last morning slot ends exactly at 12:00, the first afternoon one starts at 13:00.
    assert slots[5].end == utc(2027, 3, 1, 17, 0)
    assert slots[6].start == utc(2027, 3, 1, 18, 0)


def test_a_slot_that_does_not_fit_before_closing_is_not_offered() -> None:
    rules = make_rules("mon 09:00-10:45")
    assert wall(rules, day_grid(rules, MON_MAR_1)) == ["09:00", "09:30", "10:00"]


def test_every_slot_has_the_configured_length() -> None:
    rules = make_rules("mon 09:00-12:00", slot_minutes=45)
    slots = free_slots(rules, SUNDAY_BEFORE, [], on=MON_MAR_1)
    assert wall(rules, slots) == ["09:00", "09:45", "10:30", "11:15"]
    assert all(slot.end - slot.start == timedelta(minutes=45) for slot in slots)


# --- buffer ------------------------------------------------------------------------------------


def test_buffer_spaces_slot_starts_by_length_plus_buffer() -> None:
    rules = make_rules("mon 09:00-12:00", slot_minutes=30, buffer_minutes=10)
    slots = free_slots(rules, SUNDAY_BEFORE, [], on=MON_MAR_1)
    # 09:00, 09:40, 10:20, 11:00 (ends 11:30); 11:40 would end 12:10, after closing.
    assert wall(rules, slots) == ["09:00", "09:40", "10:20", "11:00"]
    assert {b.start - a.start for a, b in pairwise(slots)} == {timedelta(minutes=40)}
    assert all(slot.end - slot.start == timedelta(minutes=30) for slot in slots)


def test_a_booking_on_the_grid_leaves_its_buffered_neighbours_free() -> None:
    rules = make_rules("mon 09:00-12:00", slot_minutes=30, buffer_minutes=10)
    booking = Interval(utc(2027, 3, 1, 15, 20), utc(2027, 3, 1, 15, 50))  # 10:20-10:50 EST
    slots = free_slots(rules, SUNDAY_BEFORE, [booking], on=MON_MAR_1)
    assert wall(rules, slots) == ["09:00", "09:40", "11:00"]


def test_a_booking_blocks_neighbours_within_the_buffer() -> None:
    rules = make_rules("mon 09:00-12:00", slot_minutes=30, buffer_minutes=10)
    # 10:15-10:55 EST: 5 minutes after the 09:40 slot ends, 5 minutes before the 11:00 one starts.
    # Busy spans are what a booking blocks: itself and its buffer after (until 11:05).
    booking = Interval(utc(2027, 3, 1, 15, 15), utc(2027, 3, 1, 15, 55))
    slots = free_slots(rules, SUNDAY_BEFORE, [rules.blocked(booking)], on=MON_MAR_1)
    assert wall(rules, slots) == ["09:00"]


# --- notice, horizon, past, closed dates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("notice", "first_start"),
    [
        (0, utc(2027, 3, 1, 14, 0)),  # now 08:00 EST: 09:00 is the first opening
        (60, utc(2027, 3, 1, 14, 0)),  # earliest 09:00 exactly: allowed
        (90, utc(2027, 3, 1, 14, 30)),  # earliest 09:30
        (91, utc(2027, 3, 1, 15, 0)),  # earliest 09:31 -> 10:00
        (9 * 60, utc(2027, 3, 2, 14, 0)),  # earliest 17:00, closing -> Tuesday 09:00
    ],
)
def test_minimum_notice(notice: int, first_start: datetime) -> None:
    rules = make_rules(STANDARD, min_notice_minutes=notice)
    now = utc(2027, 3, 1, 13, 0)  # Monday 08:00 EST
    slots = free_slots(rules, now, [], limit=1)
    assert [slot.start for slot in slots] == [first_start]


def test_horizon_stops_offering_slots() -> None:
    rules = make_rules(STANDARD, horizon_days=1)
    now = utc(2027, 3, 1, 17, 0)  # Monday 12:00 EST -> horizon ends Tuesday 12:00 EST (17:00Z)
    slots = free_slots(rules, now, [])
    assert len(slots) == 10 + 6  # Monday 12:00..16:30, Tuesday 09:00..11:30
    assert slots[0].start == utc(2027, 3, 1, 17, 0)
    assert slots[-1].start == utc(2027, 3, 2, 16, 30)
    assert all(slot.start < utc(2027, 3, 2, 17, 0) for slot in slots)
    # Asking for a day beyond the horizon gives nothing.
    assert free_slots(rules, now, [], on=date(2027, 3, 3)) == []


def test_slots_are_never_in_the_past() -> None:
    rules = make_rules(STANDARD)
    now = utc(2027, 3, 1, 17, 10)  # Monday 12:10 EST: the 12:00 slot has started
    slots = free_slots(rules, now, [], on=MON_MAR_1)
    assert wall(rules, slots) == half_hours("12:30", "16:30")
    assert all(slot.start >= now for slot in slots)
    # A whole past day yields nothing.
    assert free_slots(rules, utc(2027, 3, 3, 12), [], on=MON_MAR_1) == []


def test_not_before_moves_the_start_later_but_never_earlier() -> None:
    rules = make_rules(STANDARD, min_notice_minutes=60)
    now = utc(2027, 3, 1, 13, 0)
    later = free_slots(rules, now, [], not_before=utc(2027, 3, 1, 19, 0), limit=1)
    assert [slot.start for slot in later] == [utc(2027, 3, 1, 19, 0)]
    earlier = free_slots(rules, now, [], not_before=utc(2027, 3, 1, 0, 0), limit=1)
    assert [slot.start for slot in earlier] == [utc(2027, 3, 1, 14, 0)]


def test_closed_dates_have_no_slots() -> None:
    rules = make_rules(STANDARD, horizon_days=3, closed_dates=frozenset({date(2027, 3, 2)}))
    now = utc(2027, 3, 1, 22, 0)  # Monday 17:00 EST, after closing; horizon to Thursday 17:00
    slots = free_slots(rules, now, [])
    days = sorted({slot.start.astimezone(NEW_YORK).date() for slot in slots})
    assert days == [date(2027, 3, 3), date(2027, 3, 4)]
    assert len(slots) == 32
    assert free_slots(rules, now, [], on=date(2027, 3, 2)) == []


# --- part of day and limit ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("morning", ["08:00", "09:00", "10:00", "11:00"]),
        ("afternoon", ["12:00", "13:00", "14:00", "15:00", "16:00"]),
        ("evening", ["17:00", "18:00", "19:00"]),
    ],
)
def test_part_of_day_filter(part: str, expected: list[str]) -> None:
    rules = make_rules("mon 08:00-20:00", slot_minutes=60)
    slots = free_slots(rules, SUNDAY_BEFORE, [], on=MON_MAR_1, part_of_day=part)
    assert wall(rules, slots) == expected


def test_unknown_part_of_day_is_invalid_input() -> None:
    rules = make_rules(STANDARD)
    with pytest.raises(InvalidInput) as info:
        free_slots(rules, SUNDAY_BEFORE, [], part_of_day="night")
    assert info.value.code == "invalid_input"
    assert "morning" in info.value.message


def test_limit_returns_the_earliest_slots() -> None:
    rules = make_rules(STANDARD)
    slots = free_slots(rules, SUNDAY_BEFORE, [], limit=3)
    assert [slot.start for slot in slots] == [
        utc(2027, 3, 1, 14, 0),
        utc(2027, 3, 1, 14, 30),
        utc(2027, 3, 1, 15, 0),
    ]
    # A limit above what the day has returns the whole day.
    assert len(free_slots(rules, SUNDAY_BEFORE, [], on=SAT_MAR_6, limit=50)) == 8


def test_iter_free_slots_is_lazy_and_ordered() -> None:
    rules = make_rules("mon-sun 00:00-24:00", horizon_days=365)
    iterator = iter_free_slots(rules, SUNDAY_BEFORE, [])
    first = [next(iterator) for _ in range(3)]
    assert [slot.start for slot in first] == [
        utc(2027, 2, 28, 12, 0),
        utc(2027, 2, 28, 12, 30),
        utc(2027, 2, 28, 13, 0),
    ]


def test_limit_zero_returns_nothing() -> None:
    rules = make_rules(STANDARD)
    assert free_slots(rules, SUNDAY_BEFORE, [], limit=0) == []


# --- bookings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("booking_local", "removed"),
    [
        (("10:00", "11:00"), ["10:00", "10:30"]),  # two whole slots; 09:30 and 11:00 touch it
        (("10:15", "10:45"), ["10:00", "10:30"]),  # off the grid: both overlapped slots go
        (("10:00", "10:30"), ["10:00"]),  # exactly one slot
        (("16:59", "17:30"), ["16:30"]),  # runs past closing
        (("07:00", "08:59"), []),  # before opening
        (("09:00", "17:00"), half_hours("09:00", "16:30")),  # the whole day
    ],
)
def test_a_booking_removes_exactly_the_overlapping_slots(
    booking_local: tuple[str, str], removed: list[str]
) -> None:
    rules = make_rules(STANDARD)

    def at(hhmm: str) -> datetime:
        h, m = map(int, hhmm.split(":"))
        return utc(2027, 3, 1, h + 5, m)  # EST = UTC-5

    booking = Interval(at(booking_local[0]), at(booking_local[1]))
    slots = free_slots(rules, SUNDAY_BEFORE, [booking], on=MON_MAR_1)
    expected = [t for t in half_hours("09:00", "16:30") if t not in removed]
    assert wall(rules, slots) == expected


def test_back_to_back_bookings_leave_adjacent_slots_free() -> None:
    rules = make_rules(STANDARD)
    bookings = [
        Interval(utc(2027, 3, 1, 15, 0), utc(2027, 3, 1, 15, 30)),  # 10:00-10:30
        Interval(utc(2027, 3, 1, 15, 30), utc(2027, 3, 1, 16, 0)),  # 10:30-11:00
    ]
    slots = free_slots(rules, SUNDAY_BEFORE, bookings, on=MON_MAR_1)
    assert "09:30" in wall(rules, slots)
    assert "11:00" in wall(rules, slots)
    assert len(slots) == 14


def test_busy_index_overlap_rules() -> None:
    index = BusyIndex([Interval(utc(2027, 3, 1, 15), utc(2027, 3, 1, 16))])
    before = Interval(utc(2027, 3, 1, 14, 30), utc(2027, 3, 1, 15))
    after = Interval(utc(2027, 3, 1, 16), utc(2027, 3, 1, 16, 30))
    inside = Interval(utc(2027, 3, 1, 15, 10), utc(2027, 3, 1, 15, 20))
    assert not index.conflicts(before, timedelta(0))
    assert not index.conflicts(after, timedelta(0))
    assert index.conflicts(inside, timedelta(0))
    assert index.conflicts(before, timedelta(minutes=1))
    assert index.conflicts(after, timedelta(minutes=1))
    assert not BusyIndex([]).conflicts(inside, timedelta(hours=5))


def test_busy_index_finds_a_long_booking_that_started_earlier() -> None:
    # A long booking containing a short one (and unsorted input): the short one's end must not
    # hide the long one.
    long = Interval(utc(2027, 3, 1, 14), utc(2027, 3, 1, 22))
    short = Interval(utc(2027, 3, 1, 15), utc(2027, 3, 1, 15, 30))
    index = BusyIndex([short, long])
    assert index.conflicts(Interval(utc(2027, 3, 1, 20), utc(2027, 3, 1, 20, 30)), timedelta(0))
    assert not index.conflicts(Interval(utc(2027, 3, 1, 22), utc(2027, 3, 1, 22, 30)), timedelta(0))


# --- DST and zones -----------------------------------------------------------------------------

ALL_DAY = "mon-sun 00:00-24:00"
JAN_1 = utc(2027, 1, 1)


def test_new_york_normal_day_has_48_half_hours() -> None:
    rules = make_rules(ALL_DAY, horizon_days=400)
    assert len(free_slots(rules, JAN_1, [], on=date(2027, 3, 13))) == 48


def test_new_york_spring_forward_day() -> None:
    rules = make_rules(ALL_DAY, horizon_days=400)
    slots = free_slots(rules, JAN_1, [], on=NY_SPRING_FORWARD)
    assert len(slots) == 46
    assert all(slot.start.astimezone(NEW_YORK).hour != 2 for slot in slots)
    assert slots[0].start == utc(2027, 3, 14, 5, 0)  # 00:00 EST
    assert slots[3].start == utc(2027, 3, 14, 6, 30)  # 01:30 EST
    assert slots[4].start == utc(2027, 3, 14, 7, 0)  # 03:00 EDT
    assert slots[-1].start == utc(2027, 3, 15, 3, 30)  # 23:30 EDT
    assert {b.start - a.start for a, b in pairwise(slots)} == {timedelta(minutes=30)}
    assert label(rules, slots[4].start) == "Sunday, March 14 at 3:00 AM"


def test_new_york_fall_back_day_offers_the_repeated_hour_twice() -> None:
    rules = make_rules(ALL_DAY, horizon_days=400)
    slots = free_slots(rules, JAN_1, [], on=NY_FALL_BACK)
    starts = [slot.start for slot in slots]
    assert len(starts) == 50
    assert len(set(starts)) == 50
    assert starts[0] == utc(2027, 11, 7, 4, 0)  # 00:00 EDT
    assert starts[-1] == utc(2027, 11, 8, 4, 30)  # 23:30 EST
    assert {b - a for a, b in pairwise(starts)} == {timedelta(minutes=30)}
    labels = [label(rules, start) for start in starts]
    assert len(set(labels)) == 50
    one_oclock = [label(rules, s) for s in starts if s.astimezone(NEW_YORK).hour == 1]
    assert one_oclock == [
        "Sunday, November 7 at 1:00 AM EDT",
        "Sunday, November 7 at 1:30 AM EDT",
        "Sunday, November 7 at 1:00 AM EST",
        "Sunday, November 7 at 1:30 AM EST",
    ]
    assert label(rules, utc(2027, 11, 7, 4, 0)) == "Sunday, November 7 at 12:00 AM"
    assert label(rules, utc(2027, 11, 7, 7, 0)) == "Sunday, November 7 at 2:00 AM"


def test_both_occurrences_of_a_repeated_time_are_bookable() -> None:
    rules = make_rules(ALL_DAY, horizon_days=400)
    first = check_bookable(rules, JAN_1, utc(2027, 11, 7, 5, 30))  # 01:30 EDT
    second = check_bookable(rules, JAN_1, utc(2027, 11, 7, 6, 30))  # 01:30 EST
    assert first == Interval(utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 6, 0))
    assert second == Interval(utc(2027, 11, 7, 6, 30), utc(2027, 11, 7, 7, 0))


def test_kolkata_half_hour_offset() -> None:
    rules = make_rules("mon-fri 09:00-17:00", zone=KOLKATA)
    slots = free_slots(rules, SUNDAY_BEFORE, [], on=MON_MAR_1)
    assert len(slots) == 16
    assert slots[0] == Interval(utc(2027, 3, 1, 3, 30), utc(2027, 3, 1, 4, 0))  # 09:00 IST
    assert slots[-1].start == utc(2027, 3, 1, 11, 0)  # 16:30 IST
    assert label(rules, slots[0].start) == "Monday, March 1 at 9:00 AM"
    assert slot_id(slots[0].start) == "slot_20270301T0330Z"
    assert check_bookable(rules, SUNDAY_BEFORE, utc(2027, 3, 1, 3, 30)) == slots[0]
    with pytest.raises(OutsideHours):
        check_bookable(rules, SUNDAY_BEFORE, utc(2027, 3, 1, 3, 0))  # 08:30 IST


def test_kolkata_local_day_starts_the_previous_utc_evening() -> None:
    rules = make_rules(ALL_DAY, zone=KOLKATA)
    slots = free_slots(rules, SUNDAY_BEFORE, [], on=date(2027, 3, 2))
    assert len(slots) == 48
    assert slots[0].start == utc(2027, 3, 1, 18, 30)  # Tuesday 00:00 IST
    assert label(rules, slots[0].start) == "Tuesday, March 2 at 12:00 AM"


def test_sydney_fall_back_in_april() -> None:
    rules = make_rules(ALL_DAY, zone=SYDNEY, horizon_days=400)
    slots = free_slots(rules, JAN_1, [], on=SYDNEY_FALL_BACK)
    starts = [slot.start for slot in slots]
    assert len(starts) == 50
    assert len(set(starts)) == 50
    assert starts[0] == utc(2027, 4, 3, 13, 0)  # 00:00 AEDT (UTC+11)
    assert starts[-1] == utc(2027, 4, 4, 13, 30)  # 23:30 AEST (UTC+10)
    two_oclock = [label(rules, s) for s in starts if s.astimezone(SYDNEY).hour == 2]
    assert two_oclock == [
        "Sunday, April 4 at 2:00 AM AEDT",
        "Sunday, April 4 at 2:30 AM AEDT",
        "Sunday, April 4 at 2:00 AM AEST",
        "Sunday, April 4 at 2:30 AM AEST",
    ]


def test_sydney_spring_forward_in_october() -> None:
    rules = make_rules(ALL_DAY, zone=SYDNEY, horizon_days=400)
    slots = free_slots(rules, JAN_1, [], on=SYDNEY_SPRING_FORWARD)
    assert len(slots) == 46
    assert all(slot.start.astimezone(SYDNEY).hour != 2 for slot in slots)
    assert slots[0].start == utc(2027, 10, 2, 14, 0)  # 00:00 AEST (UTC+10)
    assert slots[-1].start == utc(2027, 10, 3, 12, 30)  # 23:30 AEDT (UTC+11)
    assert len(free_slots(rules, JAN_1, [], on=date(2027, 10, 10))) == 48


def test_range_ending_inside_the_spring_forward_gap_closes_when_the_clock_passes_it() -> None:
    # Open until 02:30, which does not exist on 2027-03-14: at 07:00Z the clock jumps from 01:59 EST
    # to 03:00 EDT, already past closing. A 03:00 EDT slot is after the stated hours.
    rules = make_rules("sun 00:00-02:30", horizon_days=400)
    starts = [slot.start for slot in free_slots(rules, JAN_1, [], on=NY_SPRING_FORWARD)]
    assert starts == [utc(2027, 3, 14, 5, 0), utc(2027, 3, 14, 5, 30), utc(2027, 3, 14, 6, 0),
                      utc(2027, 3, 14, 6, 30)]  # fmt: skip


def test_ranges_around_the_spring_forward_gap_never_offer_an_instant_twice() -> None:
    rules = make_rules("sun 00:00-02:30 03:00-05:00", horizon_days=400)
    starts = [slot.start for slot in free_slots(rules, JAN_1, [], on=NY_SPRING_FORWARD)]
    assert len(starts) == len(set(starts))
    # 00:00-01:30 EST (05:00Z-06:30Z) and 03:00-04:30 EDT (07:00Z-08:30Z).
    assert starts == [utc(2027, 3, 14, 5, 0) + timedelta(minutes=30 * i) for i in range(8)]


def test_range_starting_inside_the_spring_forward_gap_opens_when_the_clock_passes_it() -> None:
    # Open from 02:30, which does not exist on 2027-03-14: the clock shows 03:00 EDT (07:00Z) right
    # after 01:59:59 EST, so the business is open from then until 05:00 EDT (09:00Z).
    rules = make_rules("sun 02:30-05:00", horizon_days=400)
    starts = [slot.start for slot in free_slots(rules, JAN_1, [], on=NY_SPRING_FORWARD)]
    assert starts == [utc(2027, 3, 14, 7, 0) + timedelta(minutes=30 * i) for i in range(4)]
    # A week later the same rule opens at 02:30 EDT (06:30Z) and gives five slots.
    later = free_slots(rules, JAN_1, [], on=NY_SPRING_FORWARD + timedelta(days=7))
    assert [slot.start for slot in later] == [
        utc(2027, 3, 21, 6, 30) + timedelta(minutes=30 * i) for i in range(5)
    ]


# --- check_bookable ----------------------------------------------------------------------------

MONDAY_8AM = utc(2027, 3, 1, 13, 0)  # Monday 08:00 EST


@pytest.fixture
def standard_rules() -> AvailabilityRules:
    return make_rules(
        STANDARD,
        min_notice_minutes=60,
        horizon_days=30,
        closed_dates=frozenset({date(2027, 3, 3)}),
    )


def test_check_bookable_returns_the_slot(standard_rules: AvailabilityRules) -> None:
    # Exactly now + notice is allowed.
    slot = check_bookable(standard_rules, MONDAY_8AM, utc(2027, 3, 1, 14, 0))
    assert slot == Interval(utc(2027, 3, 1, 14, 0), utc(2027, 3, 1, 14, 30))
    # The last slot inside the horizon (Tuesday March 30, 16:30 EDT = 20:30Z).
    last = check_bookable(standard_rules, MONDAY_8AM, utc(2027, 3, 30, 20, 30))
    assert last.end == utc(2027, 3, 30, 21, 0)
    # A start given in another zone is the same instant.
    same = check_bookable(standard_rules, MONDAY_8AM, datetime(2027, 3, 1, 9, 30, tzinfo=NEW_YORK))
    assert same.start == utc(2027, 3, 1, 14, 30)


@pytest.mark.parametrize(
    ("now", "start", "error", "code"),
    [
        (MONDAY_8AM, utc(2027, 3, 1, 12, 30), InPast, "in_past"),
        (utc(2027, 3, 1, 13, 30), utc(2027, 3, 1, 14, 0), TooSoon, "too_soon"),
        (utc(2027, 3, 1, 13, 0, 1), utc(2027, 3, 1, 14, 0), TooSoon, "too_soon"),  # 1 s short
        (MONDAY_8AM, utc(2027, 3, 31, 13, 0), TooFar, "too_far"),  # exactly now + 30 days
        (MONDAY_8AM, utc(2027, 3, 3, 14, 0), Closed, "closed"),
        (MONDAY_8AM, utc(2027, 3, 7, 15, 0), OutsideHours, "outside_hours"),  # Sunday
        (MONDAY_8AM, utc(2027, 3, 1, 22, 0), OutsideHours, "outside_hours"),  # 17:00, closing
        (MONDAY_8AM, utc(2027, 3, 2, 13, 30), OutsideHours, "outside_hours"),  # 08:30
        (MONDAY_8AM, utc(2027, 3, 1, 14, 10), NotOnGrid, "not_on_grid"),
        (MONDAY_8AM, datetime(2027, 3, 1, 14, 0, 30, tzinfo=UTC), NotOnGrid, "not_on_grid"),
    ],
)
def test_check_bookable_errors(
    standard_rules: AvailabilityRules,
    now: datetime,
    start: datetime,
    error: type[DomainError],
    code: str,
) -> None:
    with pytest.raises(error) as info:
        check_bookable(standard_rules, now, start)
    assert type(info.value) is error
    assert info.value.code == code
    assert info.value.to_dict()["code"] == code
    message = info.value.message
    assert message.strip()
    assert message.endswith(".")
    assert str(info.value) == message
    assert info.value.status == 422


def test_check_bookable_messages_are_speakable(standard_rules: AvailabilityRules) -> None:
    def message(now: datetime, start: datetime) -> str:
        with pytest.raises(DomainError) as info:
            check_bookable(standard_rules, now, start)
        return info.value.message

    assert message(MONDAY_8AM, utc(2027, 3, 1, 12, 30)) == (
        "Monday, March 1 at 7:30 AM has already passed."
    )
    assert "1 hour notice" in message(utc(2027, 3, 1, 13, 30), utc(2027, 3, 1, 14, 0))
    assert message(MONDAY_8AM, utc(2027, 3, 31, 13, 0)) == "We only book up to 30 days ahead."
    assert message(MONDAY_8AM, utc(2027, 3, 3, 14, 0)) == "We're closed on Wednesday, March 3."
    assert message(MONDAY_8AM, utc(2027, 3, 7, 15, 0)) == (
        "Sunday, March 7 at 10:00 AM is outside our opening hours."
    )
    assert message(MONDAY_8AM, utc(2027, 3, 1, 14, 10)) == (
        "Appointments start every 30 minutes; the nearest times are 9:00 AM or 9:30 AM."
    )


# --- labels and slot ids -----------------------------------------------------------------------


def test_label_format() -> None:
    rules = make_rules(STANDARD)
    assert date(2025, 12, 2).weekday() == 1  # a Tuesday
    assert label(rules, utc(2025, 12, 2, 20, 0)) == "Tuesday, December 2 at 3:00 PM"  # EST
    # The business zone's date, not UTC's: 03:00Z Tuesday is 22:00 Monday in New York.
    assert label(rules, utc(2027, 3, 2, 3, 0)) == "Monday, March 1 at 10:00 PM"
    # Summer time (EDT = UTC-4).
    assert date(2027, 7, 4).weekday() == 6
    assert label(rules, utc(2027, 7, 4, 13, 5)) == "Sunday, July 4 at 9:05 AM"


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2027, 3, 1, 5, 0), "12:00 AM"),
        (utc(2027, 3, 1, 5, 30), "12:30 AM"),
        (utc(2027, 3, 1, 14, 5), "9:05 AM"),
        (utc(2027, 3, 1, 16, 59), "11:59 AM"),
        (utc(2027, 3, 1, 17, 0), "12:00 PM"),
        (utc(2027, 3, 1, 20, 0), "3:00 PM"),
        (utc(2027, 3, 2, 4, 59), "11:59 PM"),
    ],
)
def test_time_label(instant: datetime, expected: str) -> None:
    assert time_label(make_rules(STANDARD), instant) == expected


def test_slot_id_round_trips() -> None:
    start = utc(2027, 3, 1, 14, 0)
    assert slot_id(start) == "slot_20270301T1400Z"
    assert slot_id(datetime(2027, 3, 1, 9, 0, tzinfo=NEW_YORK)) == "slot_20270301T1400Z"
    assert parse_slot_id("slot_20270301T1400Z") == (start, None, None)
    assert parse_slot_id(slot_id(start))[0].tzinfo is not None
    for instant in (utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 6, 30), utc(2027, 12, 31, 23, 59)):
        assert parse_slot_id(slot_id(instant))[0] == instant
    # With several services and staff, the id also names them.
    assert slot_id(start, "colour", "dr-lee") == "slot_20270301T1400Z.colour.dr-lee"
    assert parse_slot_id("slot_20270301T1400Z.colour.dr-lee") == (start, "colour", "dr-lee")
    for broken in ("slot_20270301T1400Z.colour", "slot_20270301T1400Z..x", "slot_x.a.b"):
        with pytest.raises(InvalidInput):
            parse_slot_id(broken)
    # The two 01:30s of the fall-back day are different ids.
    assert slot_id(utc(2027, 11, 7, 5, 30)) != slot_id(utc(2027, 11, 7, 6, 30))


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "slot_",
        "hello",
        "20270301T1400Z",
        "apt_20270301T1400Z",
        "slot_20271301T1400Z",  # month 13
        "slot_20270230T1400Z",  # February 30
        "slot_20270301T2500Z",
        "slot_2027-03-01T14:00Z",
        "slot_20270301T1400Zjunk",
    ],
)
def test_garbage_slot_id_is_invalid_input(garbage: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_slot_id(garbage)
    assert info.value.code == "invalid_input"
    assert info.value.message.endswith(".")


# --- search window -----------------------------------------------------------------------------


def test_search_window_across_the_horizon() -> None:
    rules = make_rules(
        STANDARD, slot_minutes=30, buffer_minutes=10, min_notice_minutes=60, horizon_days=2
    )
    # earliest 14:00Z (busy spans already hold their own buffers, and this service has none
    # before); latest Wed 13:00Z + 30 min slot + 10 min buffer after.
    assert search_window(rules, MONDAY_8AM) == Interval(
        utc(2027, 3, 1, 14, 0), utc(2027, 3, 3, 13, 40)
    )


@pytest.mark.parametrize(
    ("day", "window"),
    [
        (MON_MAR_1, Interval(utc(2027, 3, 1, 5, 0), utc(2027, 3, 2, 5, 10))),
        (NY_SPRING_FORWARD, Interval(utc(2027, 3, 14, 5, 0), utc(2027, 3, 15, 4, 10))),
        (NY_FALL_BACK, Interval(utc(2027, 11, 7, 4, 0), utc(2027, 11, 8, 5, 10))),
    ],
)
def test_search_window_for_one_local_day(day: date, window: Interval) -> None:
    rules = make_rules(ALL_DAY, buffer_minutes=10)
    assert search_window(rules, JAN_1, on=day) == window


def test_bookings_outside_the_search_window_do_not_matter() -> None:
    rules = make_rules(STANDARD, buffer_minutes=10, min_notice_minutes=60, horizon_days=2)
    window = search_window(rules, MONDAY_8AM)
    # Ending exactly where the window starts, and starting exactly where it ends.
    outside = [
        Interval(window.start - timedelta(hours=1), window.start),
        Interval(window.end, window.end + timedelta(hours=1)),
    ]
    assert free_slots(rules, MONDAY_8AM, outside) == free_slots(rules, MONDAY_8AM, [])


# --- domain errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "cls"), sorted(ERROR_CLASSES.items()))
def test_error_classes_have_stable_codes_and_speakable_defaults(
    code: str, cls: type[DomainError]
) -> None:
    assert cls.code == code
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code)
    error = cls()
    assert error.message == cls.default_message
    assert error.message[0].isupper()
    assert error.message.endswith((".", "?"))
    assert cls.status in (401, 403, 404, 409, 422, 429, 503)
    again = error_from_dict(error.to_dict())
    assert type(again) is cls
    assert again.message == error.message


def test_error_codes_and_statuses() -> None:
    expected = {
        "invalid_phone": 422,
        "invalid_input": 422,
        "not_identified": 409,
        "in_past": 422,
        "too_soon": 422,
        "too_far": 422,
        "closed": 422,
        "outside_hours": 422,
        "not_on_grid": 422,
        "slot_taken": 409,
        "not_found": 404,
        "store_unavailable": 503,
    }
    for code, status in expected.items():
        assert ERROR_CLASSES[code].status == status, code


def test_error_extra_fields_travel_in_the_wire_form() -> None:
    alternatives = [{"slot_id": "slot_20270301T1430Z"}]
    error = SlotTaken(alternatives=alternatives)
    assert error.to_dict() == {
        "code": "slot_taken",
        "message": "Sorry, that time was just taken.",
        "alternatives": alternatives,
    }
    again = error_from_dict(error.to_dict())
    assert isinstance(again, SlotTaken)
    assert again.extra == {"alternatives": alternatives}
    unknown = error_from_dict({"code": "no_such_code", "message": "Something odd happened."})
    assert type(unknown) is DomainError
    assert unknown.message == "Something odd happened."

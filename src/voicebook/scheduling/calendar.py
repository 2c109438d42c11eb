"""What a calendar of local days draws, in the business zone. Pure, no I/O.

A local day is not 24 hours on a DST change (23 or 25), so its bounds are each midnight's own
UTC instant, and a position in a day is its wall-clock minute (what the business's clock shows),
never hours elapsed since midnight: 9:00 is on one row every day of a week.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

from voicebook.scheduling import availability as av
from voicebook.scheduling.business import Business, Resource

MINUTES_A_DAY = 24 * 60


def days_window(rules: av.AvailabilityRules, first: date, days: int) -> av.Interval:
    """From local midnight of `first` to local midnight `days` days later, as UTC instants."""
    return av.Interval(av.to_utc(rules, first, 0), av.to_utc(rules, first + timedelta(days), 0))


def opening_spans(business: Business, resource: Resource, day: date) -> list[av.Interval]:
    """The resource's opening ranges on local `day` as instants; none on a closed date (its own
    or the business's)."""
    rules = business.rules
    if day in rules.closed_dates or day in resource.closed_dates:
        return []
    return [av.range_bounds(rules, day, r) for r in resource.weekly.get(day.weekday(), ())]


def wall_minute(rules: av.AvailabilityRules, day: date, instant: datetime) -> int:
    """The minute the business's clock shows at `instant`, counted on local `day`: 0 before
    that day, 1440 after it."""
    local = instant.astimezone(rules.zone)
    if local.date() < day:
        return 0
    if local.date() > day:
        return MINUTES_A_DAY
    return local.hour * 60 + local.minute


def wall_span(
    rules: av.AvailabilityRules, day: date, start: datetime, end: datetime
) -> tuple[int, int]:
    """Where a calendar draws `start`–`end` on local `day`: its wall-clock minutes, unless the
    clock went back in between (DST ends) so far that its end shows no later than its start (1:30
    AM EDT to 1:00 AM EST): then it is drawn to its real length, beside the appointment at 1:30
    AM EST rather than gone under it."""
    first, last = wall_minute(rules, day, start), wall_minute(rules, day, end)
    if last > first:
        return first, last
    return first, min(MINUTES_A_DAY, first + math.ceil((end - start).total_seconds() / 60))

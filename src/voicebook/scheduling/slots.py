"""Free slots of a service across the staff (and rooms) who can give it, read from one transaction.

`SlotFinder` asks the store for the blocked spans of exactly the resources and the span it needs,
then runs the pure availability engine once per staff member. For "anyone" the slots of all staff
are merged by start time and each start goes to one of the free staff members by this rule: the
one with the fewest bookings that local day, then the one listed first in the business file. A
service that a room offers too needs one of those rooms free (and open) for the same blocked span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from voicebook.scheduling import availability as av
from voicebook.scheduling.business import Business, Resource, Service
from voicebook.scheduling.errors import Closed, DomainError, InPast, TooFar
from voicebook.store.base import StoreTransaction

FIRST_SPAN = timedelta(days=2)
"""How far ahead a search first looks before widening (see `SlotFinder.find`)."""


@dataclass(frozen=True)
class Offer:
    """A free slot of `service` and the staff member (and room) it would be booked with."""

    service: Service
    resource: Resource
    slot: av.Interval
    blocked: av.Interval
    room: Resource | None = None


class SlotFinder:
    """Slot searches for one request: `now`, one open transaction, busy spans read once."""

    def __init__(self, business: Business, tx: StoreTransaction, now: datetime) -> None:
        self.business = business
        self.tx = tx
        self.now = now
        self.rules = business.rules
        self._counts: dict[tuple[str, date], int] = {}

    async def _busy(
        self, resources: Sequence[Resource], window: av.Interval
    ) -> dict[str, av.BusyIndex]:
        found = await self.tx.busy_for([r.id for r in resources], window)
        return {r.id: av.BusyIndex(found.get(r.id, [])) for r in resources}

    def _window(self, service: Service, start: datetime, end: datetime) -> av.Interval:
        """Bookings that can touch slots starting in [start, end): whole local days, so the
        least-booked rule counts a day's bookings, widened by the service's buffers."""
        first = av.to_utc(self.rules, av.local_date(self.rules, start), 0)
        length = timedelta(minutes=service.minutes + service.buffer_after)
        return av.Interval(
            first - timedelta(minutes=service.buffer_before), max(end, start) + length
        )

    def _count(self, resource: str, busy: av.BusyIndex, day: date) -> int:
        """Bookings of `resource` that day (the least-booked rule), worked out once per day."""
        known = self._counts.get((resource, day))
        if known is None:
            known = busy.count_starting(
                av.to_utc(self.rules, day, 0), av.to_utc(self.rules, day, 24 * 60)
            )
            self._counts[(resource, day)] = known
        return known

    def _room(
        self,
        service: Service,
        slot: av.Interval,
        blocked: av.Interval,
        rooms: Sequence[Resource],
        busy: dict[str, av.BusyIndex],
    ) -> Resource | None:
        """A room offering `service` that is open for `slot` and free for `blocked`: the least
        booked that day, then the first listed."""
        day = av.local_date(self.rules, slot.start)
        free = [
            room
            for room in rooms
            if av.is_open(self.business.rules_for(room, service), slot)
            and not busy[room.id].conflicts(blocked, timedelta(0))
        ]
        return min(free, key=lambda room: self._count(room.id, busy[room.id], day), default=None)

    def _offer(
        self,
        service: Service,
        person: Resource,
        rules: av.AvailabilityRules,
        slot: av.Interval,
        rooms: Sequence[Resource],
        busy: dict[str, av.BusyIndex],
    ) -> Offer | None:
        """`slot` with `person` if they are free for its blocked span, with a room when the
        service needs one; None when either is taken."""
        blocked = rules.blocked(slot)
        if busy[person.id].conflicts(blocked, timedelta(0)):
            return None
        room = self._room(service, slot, blocked, rooms, busy) if rooms else None
        if rooms and room is None:
            return None
        return Offer(service, person, slot, blocked, room)

    def _pick(self, offers: Sequence[Offer], busy: dict[str, av.BusyIndex]) -> Offer:
        if len(offers) == 1:
            return offers[0]
        day = av.local_date(self.rules, offers[0].slot.start)
        return min(
            offers, key=lambda offer: self._count(offer.resource.id, busy[offer.resource.id], day)
        )

    async def find(
        self,
        service: Service,
        staff: Sequence[Resource],
        limit: int,
        *,
        on: date | None = None,
        part_of_day: str | None = None,
        not_before: datetime | None = None,
    ) -> list[Offer]:
        """Up to `limit` free slots of `service` with any of `staff`, in time order, one offer
        per start time.

        Across the horizon it looks a couple of days ahead first and widens the span only when
        that does not yield `limit` slots, so the cost follows the answer, not the calendar.
        """
        if on is not None:
            self.check_day(service, staff, on)
            start = av.to_utc(self.rules, on, 0)
            return await self._find_in(
                service, staff, limit, start, av.to_utc(self.rules, on, 24 * 60), on=on,
                part_of_day=part_of_day, not_before=not_before,
            )  # fmt: skip
        start = max(self.rules.earliest(self.now), not_before or self.rules.earliest(self.now))
        latest, span = self.rules.latest(self.now), FIRST_SPAN
        while True:
            before = min(start + span, latest)
            offers = await self._find_in(
                service, staff, limit, start, before, part_of_day=part_of_day, not_before=start
            )
            if len(offers) >= limit or before >= latest:
                return offers
            span *= 4

    async def _find_in(
        self,
        service: Service,
        staff: Sequence[Resource],
        limit: int,
        start: datetime,
        before: datetime,
        *,
        on: date | None = None,
        part_of_day: str | None = None,
        not_before: datetime | None = None,
    ) -> list[Offer]:
        rooms = self.business.rooms_for(service)
        busy = await self._busy([*staff, *rooms], self._window(service, start, before))
        self._counts.clear()  # counts belong to the busy spans just read
        by_start: dict[datetime, list[Offer]] = {}
        for person in staff:
            rules = self.business.rules_for(person, service)
            found = 0
            for slot in av.iter_free_slots(
                rules, self.now, [], on=on, part_of_day=part_of_day, not_before=not_before,
                before=None if on is not None else before,
            ):  # fmt: skip
                if found >= limit:
                    break
                offer = self._offer(service, person, rules, slot, rooms, busy)
                if offer is not None:
                    by_start.setdefault(slot.start, []).append(offer)
                    found += 1
        starts = sorted(by_start)[:limit]
        return [self._pick(by_start[moment], busy) for moment in starts]

    async def offer_at(
        self, service: Service, staff: Sequence[Resource], start: datetime
    ) -> Offer | None:
        """The offer for a booking at `start` with one of `staff` (the rule picks among several),
        or None when every one of them is taken then. Raises the domain error that explains
        why `start` cannot be booked at all (outside hours, too soon, …)."""
        rooms = self.business.rooms_for(service)
        window = self._window(service, start, start)
        busy = await self._busy([*staff, *rooms], window)
        self._counts.clear()
        offers: list[Offer] = []
        refusals: list[DomainError] = []
        for person in staff:
            rules = self.business.rules_for(person, service)
            try:
                slot = av.check_bookable(rules, self.now, start)
            except DomainError as error:  # not bookable with this person at all
                refusals.append(error)
                continue
            offer = self._offer(service, person, rules, slot, rooms, busy)
            if offer is not None:
                offers.append(offer)
        if offers:
            return self._pick(offers, busy)
        if staff and len(refusals) == len(staff):  # nobody could ever take it: say why
            raise refusals[0]
        return None

    def check_day(self, service: Service, staff: Sequence[Resource], day: date) -> None:
        """Refuse a day that has passed, lies beyond the horizon, or on which none of `staff`
        works."""
        rules = self.rules
        if day < av.local_date(rules, self.now):
            raise InPast(f"{av.day_label(day)} has already passed.")
        if day > av.local_date(rules, rules.latest(self.now)):
            raise TooFar(f"We only book up to {rules.horizon_days} days ahead.")
        if not any(
            day not in r.closed_dates and r.weekly.get(day.weekday())
            for r in (self.business.rules_for(person, service) for person in staff)
        ):
            raise Closed(f"We're closed on {av.day_label(day)}.")

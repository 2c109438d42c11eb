"""The business: its services, staff and rooms, as the scheduling rules see them. No I/O.

A *service* has a length and buffers before and after; a *resource* (a staff member or a room) has
its own weekly hours and closed dates and offers some services. A booking of a service takes one
staff member who offers it and, when a room offers it too, one such room as well: both for the
same blocked span, both or neither. Without a business file there is one service and one
resource, built from the single-calendar environment settings, so everything works as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal, TypeVar

from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.errors import InvalidInput
from voicebook.scheduling.hours import WeeklyHours

ResourceKind = Literal["staff", "room"]
DEFAULT_SERVICE = "appointment"


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    minutes: int
    buffer_before: int = 0
    buffer_after: int = 0
    price: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Resource:
    id: str
    name: str
    kind: ResourceKind
    services: frozenset[str]
    weekly: WeeklyHours
    closed_dates: frozenset[date] = field(default_factory=frozenset)


@dataclass(frozen=True)
class FaqEntry:
    question: str
    answer: str


@dataclass(frozen=True)
class Business:
    """What the receptionist books for and knows about (DESIGN §6 business file)."""

    rules: AvailabilityRules
    """Zone, notice, horizon and the business-wide closed dates (the default grid too)."""
    services: tuple[Service, ...]
    resources: tuple[Resource, ...]
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    website: str | None = None
    greeting: str | None = None
    cancellation_notice_hours: float | None = None
    faq: tuple[FaqEntry, ...] = ()

    @property
    def single(self) -> bool:
        """One service on one calendar: labels need not say with whom or what."""
        return len(self.services) == 1 and len(self.staff) == 1

    @property
    def staff(self) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if r.kind == "staff")

    def service(self, wanted: str | None) -> Service:
        """The service called `wanted` (id or name, any case); the first one when not given."""
        if wanted is None:
            return self.services[0]
        found = _match(self.services, wanted)
        if found is None:
            names = _names(s.name for s in self.services)
            raise InvalidInput(f"We don't offer {wanted!r}; we offer {names}.", field="service")
        return found

    def resource(self, wanted: str) -> Resource | None:
        return _match(self.resources, wanted)

    def staff_for(self, service: Service, wanted: str | None = None) -> list[Resource]:
        """The staff who offer `service`; only the one named `wanted` (id or name) when given."""
        offering = [r for r in self.staff if service.id in r.services]
        if wanted is None or wanted.strip().lower() in ("anyone", "any", "whoever"):
            return offering
        person = _match(self.staff, wanted)
        if person is None:
            names = _names(r.name for r in offering)
            raise InvalidInput(
                f"There is nobody called {wanted!r} here; {service.name} is with {names}.",
                field="staff",
            )
        if person not in offering:
            names = _names(r.name for r in offering)
            raise InvalidInput(
                f"{person.name} doesn't do {service.name}; {names} does.", field="staff"
            )
        return [person]

    def rooms_for(self, service: Service) -> list[Resource]:
        """The rooms a booking of `service` also needs one of (none: it needs no room)."""
        return [r for r in self.resources if r.kind == "room" and service.id in r.services]

    def rules_for(self, resource: Resource, service: Service) -> AvailabilityRules:
        """The slot rules of `service` on `resource`: its hours, its and the business's closed
        dates, the service's length and buffers."""
        return replace(
            self.rules,
            weekly=resource.weekly,
            closed_dates=self.rules.closed_dates | resource.closed_dates,
            slot_minutes=service.minutes,
            buffer_before_minutes=service.buffer_before,
            buffer_minutes=service.buffer_after,
        )


Named = TypeVar("Named", Service, Resource)


def _match(items: Sequence[Named], wanted: str) -> Named | None:
    key = wanted.strip().lower()
    for item in items:
        if key in (item.id.lower(), item.name.lower()):
            return item
    # "Lee" finds "Dr. Lee": a unique word match is what a caller says.
    words = [item for item in items if key in item.name.lower().replace(".", " ").split()]
    return words[0] if len(words) == 1 else None


def _names(names: Iterable[str]) -> str:
    listed = list(names)
    if not listed:
        return "nobody"
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]


def single_calendar(rules: AvailabilityRules, resource: str) -> Business:
    """The business the environment settings describe: one service on one calendar."""
    service = Service(
        DEFAULT_SERVICE, "Appointment", rules.slot_minutes, buffer_after=rules.buffer_minutes
    )
    calendar = Resource(resource, resource, "staff", frozenset({DEFAULT_SERVICE}), rules.weekly)
    return Business(rules=rules, services=(service,), resources=(calendar,))

"""The business file (`voicebook.toml`): the schema of its tables, and where a bad value sits.

`Settings` (config.py) reads the file through pydantic-settings' TOML source, below the
environment and `.env`, so `VOICEBOOK_TIMEZONE=…` still overrides its `timezone`. Its top-level
keys are ordinary settings (`timezone`, `min_notice_minutes`, `horizon_days`, `closed_dates`);
the tables below describe what the environment cannot: the business, its services, staff, rooms
and a short FAQ. `to_business` turns them into the scheduling domain's `Business`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.business import Business, FaqEntry, Resource, Service
from voicebook.scheduling.hours import parse_closed_dates, parse_hours

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
"""Lower-case letters, digits and dashes: ids travel inside slot ids and URLs."""
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusinessInfo(_Table):
    name: Text
    phone: Text | None = None
    address: Text | None = None
    website: Text | None = None
    greeting: Annotated[str, StringConstraints(max_length=500)] | None = None
    cancellation_notice_hours: float | None = Field(default=None, ge=0, le=24 * 30)


class ServiceConfig(_Table):
    id: Id
    name: Text
    minutes: int = Field(ge=5, le=24 * 60)
    buffer_before: int = Field(default=0, ge=0, le=240)
    buffer_after: int = Field(default=0, ge=0, le=240)
    price: float | None = Field(default=None, ge=0, le=1_000_000)
    description: Annotated[str, StringConstraints(max_length=200)] = ""


class ResourceConfig(_Table):
    id: Id
    name: Text
    services: list[Id] = Field(min_length=1)
    hours: str = Field(description="Weekly hours, e.g. 'mon-fri 09:00-17:00, sat 10:00-14:00'.")
    closed_dates: list[str] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        parse_hours(value)
        return value

    @field_validator("closed_dates")
    @classmethod
    def _closed(cls, value: list[str]) -> list[str]:
        parse_closed_dates(",".join(value))
        return value


class FaqConfig(_Table):
    question: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    answer: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=600)]


def check_references(
    services: list[ServiceConfig], staff: list[ResourceConfig], rooms: list[ResourceConfig]
) -> None:
    """Every id unique, every service a resource names exists, every service has someone."""
    seen: set[str] = set()
    for item in [*services, *staff, *rooms]:
        if item.id in seen:
            raise ValueError(f"the id {item.id!r} is used twice (ids must be unique)")
        seen.add(item.id)
    known = {s.id for s in services}
    for resource in [*staff, *rooms]:
        unknown = sorted(set(resource.services) - known)
        if unknown:
            raise ValueError(f"{resource.id} offers unknown services: {', '.join(unknown)}")
    if services and not staff:
        raise ValueError("a business file with services needs at least one [[staff]] entry")
    for service in services:
        if not any(service.id in person.services for person in staff):
            raise ValueError(f"nobody in [[staff]] offers the service {service.id!r}")


def to_business(
    rules: AvailabilityRules,
    info: BusinessInfo | None,
    services: list[ServiceConfig],
    staff: list[ResourceConfig],
    rooms: list[ResourceConfig],
    faq: list[FaqConfig],
) -> Business:
    """The scheduling domain's business from the file's tables (validated already)."""

    def resource(config: ResourceConfig, kind: str) -> Resource:
        return Resource(
            id=config.id,
            name=config.name,
            kind=kind,  # type: ignore[arg-type]
            services=frozenset(config.services),
            weekly=parse_hours(config.hours),
            closed_dates=parse_closed_dates(",".join(config.closed_dates)),
        )

    return Business(
        rules=rules,
        services=tuple(
            Service(
                id=s.id,
                name=s.name,
                minutes=s.minutes,
                buffer_before=s.buffer_before,
                buffer_after=s.buffer_after,
                price=s.price,
                description=s.description,
            )
            for s in services
        ),
        resources=(
            *(resource(r, "staff") for r in staff),
            *(resource(r, "room") for r in rooms),
        ),
        name=info.name if info else None,
        phone=info.phone if info else None,
        address=info.address if info else None,
        website=info.website if info else None,
        greeting=info.greeting if info else None,
        cancellation_notice_hours=info.cancellation_notice_hours if info else None,
        faq=tuple(FaqEntry(f.question, f.answer) for f in faq),
    )


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")


def locate(path: Path, loc: tuple[Any, ...]) -> int | None:
    """The line number of the value at pydantic location `loc` (e.g. `("services", 1,
    "minutes")`), found in the file's text: the index-th `[[services]]` table, then its key."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if not loc:
        return None
    table, rest = str(loc[0]), list(loc[1:])
    index = rest.pop(0) if rest and isinstance(rest[0], int) else None
    key = str(rest[0]) if rest else None
    start, count = None, -1
    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header and header[1] == table:
            count += 1
            if index is None or count == index:
                start = number
                break
    if start is None:  # a top-level key
        pattern = re.compile(rf"^\s*{re.escape(table)}\s*=")
        return next((n for n, line in enumerate(lines, 1) if pattern.match(line)), None)
    if key is None:
        return start
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number in range(start, len(lines)):
        line = lines[number]
        if _HEADER.match(line):
            break
        if pattern.match(line):
            return number + 1
    return start

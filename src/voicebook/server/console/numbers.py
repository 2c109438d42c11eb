"""The console's Numbers tab: `/console/api/numbers?days=14`, the last days at a glance.

Days are the business's local days (its zone, as the owner lives them: a DST day has 23 or 25
hours), the last one today. Each day counts the calls started, what the ended ones cost (the
cost their summary priced: an open call has none yet, so the average is over `priced_calls`), the
bookings made, the moves and the cancellations; the window adds the failed tool calls by error
code and the costliest calls. The database does the counting (`store/aggregates.py`), so an
answer costs the same however many rows the tables hold beyond the window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from voicebook.models import ErrorBody
from voicebook.scheduling import availability as av
from voicebook.scheduling.errors import InvalidInput
from voicebook.scheduling.phone import mask_phone
from voicebook.server.console.auth import Operator
from voicebook.server.dependencies import Ctx
from voicebook.store.aggregates import CostlyCall, DayFigures, FailureCount

router = APIRouter(prefix="/console/api", tags=["console"], include_in_schema=False)
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not signed in to the console."},
    422: {"model": ErrorBody, "description": "`days` is not a whole number from 1 to 90."},
    503: {"model": ErrorBody, "description": "The store is unavailable."},
}
MAX_DAYS = 90
"""The longest window: the retention default, and a chart that still reads at 375 px."""
DEFAULT_DAYS = 14
COSTLIEST = 5
FAILURE_GROUPS = 200
"""At most this many (code, tool) pairs are counted: codes are a fixed, small set."""


class NumbersDay(BaseModel):
    date: date
    calls: int
    priced_calls: int = Field(description="Calls of the day that ended, and so have a cost.")
    cost: float = Field(description="USD: what the day's ended calls cost.")
    cost_per_call: float | None = Field(description="cost / priced_calls; null without any.")
    bookings: int = Field(description="Appointments made that day (not counting moves).")
    moves: int
    cancellations: int


class NumbersTotals(BaseModel):
    calls: int
    priced_calls: int
    cost: float
    cost_per_call: float | None
    bookings: int
    moves: int
    cancellations: int
    failures: int


class ToolCount(BaseModel):
    name: str
    count: int


class ToolFailure(BaseModel):
    code: str
    count: int
    tools: list[ToolCount] = Field(description="Which tools failed with this code, most first.")


class CostlyCallView(BaseModel):
    session_id: str
    started_at: datetime
    duration_s: float | None
    cost: float
    caller: str | None = Field(description="The caller's phone, masked.")


class Numbers(BaseModel):
    days: int
    timezone: str
    first: date
    last: date
    currency: str = "USD"
    totals: NumbersTotals
    per_day: list[NumbersDay]
    failures: list[ToolFailure]
    costliest: list[CostlyCallView]


def window_days(
    days: Annotated[str | None, Query(description=f"1 to {MAX_DAYS} days, ending today.")] = None,
) -> int:
    """`days` as a whole number of days in range, or a refusal that says what to give (the
    generic validation sentence would name a Python type)."""
    if days is None:
        return DEFAULT_DAYS
    if re.fullmatch(r"[0-9]{1,3}", days.strip()) is None or not 1 <= int(days) <= MAX_DAYS:
        raise InvalidInput(
            f"The numbers cover 1 to {MAX_DAYS} days: give days as a whole number in that range.",
            field="days",
        )
    return int(days)


def local_days(rules: av.AvailabilityRules, last: date, count: int) -> list[av.Interval]:
    """The UTC bounds of the `count` local days ending with `last`: midnight to midnight on the
    business clock, so each lasts what that day lasts there (23, 24 or 25 hours)."""
    days = [last - timedelta(days=n) for n in range(count - 1, -1, -1)]
    return [av.Interval(av.to_utc(rules, d, 0), av.to_utc(rules, d, 24 * 60)) for d in days]


def _per_call(cost: float, priced: int) -> float | None:
    return round(cost / priced, 4) if priced else None


def _day(day: date, figures: DayFigures) -> NumbersDay:
    return NumbersDay(
        date=day,
        calls=figures.calls,
        priced_calls=figures.priced_calls,
        cost=round(figures.cost, 4),
        cost_per_call=_per_call(figures.cost, figures.priced_calls),
        bookings=figures.bookings,
        moves=figures.moves,
        cancellations=figures.cancellations,
    )


def _failures(counts: Sequence[FailureCount]) -> list[ToolFailure]:
    """(code, tool) counts folded by code, the most frequent code first."""
    by_code: dict[str, list[ToolCount]] = {}
    for count in counts:
        by_code.setdefault(count.code, []).append(ToolCount(name=count.tool, count=count.count))
    failures = [
        ToolFailure(code=code, count=sum(t.count for t in tools), tools=tools)
        for code, tools in by_code.items()
    ]
    return sorted(failures, key=lambda f: (-f.count, f.code))


def _costly(call: CostlyCall) -> CostlyCallView:
    ended = call.ended_at
    return CostlyCallView(
        session_id=call.session_id,
        started_at=call.created_at,
        duration_s=round((ended - call.created_at).total_seconds(), 3) if ended else None,
        cost=round(call.cost, 4),
        caller=mask_phone(call.phone) if call.phone else None,
    )


@router.get("/numbers", response_model=Numbers, responses=ERRORS)
async def numbers(
    _: Operator,
    ctx: Ctx,
    days: Annotated[int, Depends(window_days)],
) -> Numbers:
    rules = ctx.service.rules
    last = av.local_date(rules, ctx.service.clock())
    bounds = local_days(rules, last, days)
    window = av.Interval(bounds[0].start, bounds[-1].end)
    async with ctx.store.transaction(write=False) as tx:
        figures = await tx.day_figures(bounds)
        failures = _failures(await tx.tool_failures(window, FAILURE_GROUPS))
        costliest = [_costly(c) for c in await tx.costliest_calls(window, COSTLIEST)]
    per_day = [_day(last - timedelta(days=days - 1 - n), f) for n, f in enumerate(figures)]
    cost = sum(f.cost for f in figures)
    priced = sum(d.priced_calls for d in per_day)
    totals = NumbersTotals(
        calls=sum(d.calls for d in per_day),
        priced_calls=priced,
        cost=round(cost, 4),
        cost_per_call=_per_call(cost, priced),
        bookings=sum(d.bookings for d in per_day),
        moves=sum(d.moves for d in per_day),
        cancellations=sum(d.cancellations for d in per_day),
        failures=sum(f.count for f in failures),
    )
    return Numbers(
        days=days,
        timezone=rules.zone.key,
        first=per_day[0].date,
        last=last,
        totals=totals,
        per_day=per_day,
        failures=failures,
        costliest=costliest,
    )

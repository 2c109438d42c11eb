"""The console's numbers, counted by the database: calls, bookings and cost per local day, tool
failures by error code, and the costliest calls of a window.

Days are passed in as UTC bounds the caller computed in the business zone (so DST days are 23 or
25 hours long and SQLite, which knows no zones, counts them the same as Postgres). Every figure is
an aggregate over index range scans (sessions by start 0008, appointments by creation and
cancellation and failed tool calls by time 0009); no row is loaded into Python except the few
costliest calls. The SQL is the common subset of both dialects (`VALUES` columns are named
`column1`… in both); JSON is read through `Dialect.json_text`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from voicebook.scheduling.availability import Interval

if TYPE_CHECKING:
    from voicebook.store.sql import Dialect

MAX_DAYS = 366
"""How many days one `day_figures` call may count (each is one row of the `VALUES` list)."""


@dataclass
class DayFigures:
    """One local day: calls started, the cost of those that ended (`priced_calls`), bookings
    made (a move counts apart, as `moves`) and appointments cancelled."""

    calls: int
    priced_calls: int
    cost: float
    bookings: int
    moves: int
    cancellations: int


@dataclass
class FailureCount:
    """Failed calls of one tool with one error code."""

    code: str
    tool: str
    count: int


@dataclass
class CostlyCall:
    """A priced call: its session, when it started and ended, its cost, its caller's phone."""

    session_id: str
    created_at: datetime
    ended_at: datetime | None
    cost: float
    phone: str | None


class AggregateQueries:
    """The aggregate reads of `SqlTransaction` (which provides `_fetch` and `_dialect`)."""

    if TYPE_CHECKING:
        _dialect: Dialect

        async def _fetch(self, sql: str, **params: Any) -> list[dict[str, Any]]: ...

    def _cost(self) -> str:
        """A session's (`s`) cost in USD, as its summary priced it at the end (NULL while the
        call is open)."""
        return f"CAST({self._dialect.json_text('s.summary', 'cost', 'total')} AS DOUBLE PRECISION)"

    def _failed(self) -> str:
        """A refused or failed tool call: the very predicate of the partial index of 0009."""
        return f"type = 'tool_call' AND {self._dialect.json_text('payload', 'status')} = 'failed'"

    async def day_figures(self, days: Sequence[Interval]) -> list[DayFigures]:
        """The figures of each day in `days` (UTC bounds of local days), in order; a day with
        nothing is all zeros. One query: the days are a `VALUES` list joined to sessions, and
        each appointment figure is a correlated count over its index."""
        if not 0 < len(days) <= MAX_DAYS:
            raise ValueError(f"between 1 and {MAX_DAYS} days, not {len(days)}")
        params: dict[str, Any] = {}
        rows = []
        for n, day in enumerate(days):
            params[f"lo_{n}"], params[f"hi_{n}"] = day.start, day.end
            rows.append(f"({n}, :lo_{n}, :hi_{n})")
        within = "{column} >= d.column2 AND {column} < d.column3"
        created = within.format(column="a.created_at")
        cancelled = within.format(column="a.cancelled_at")
        cost = self._cost()
        found = await self._fetch(
            "SELECT d.column1 AS day, COUNT(s.id) AS calls,"
            f" COUNT({cost}) AS priced_calls, COALESCE(SUM({cost}), 0) AS cost,"
            " (SELECT COUNT(*) - COUNT(a.rescheduled_from) FROM appointments AS a"
            f" WHERE {created}) AS bookings,"
            f" (SELECT COUNT(a.rescheduled_from) FROM appointments AS a WHERE {created}) AS moves,"
            " (SELECT COUNT(*) FROM appointments AS a"
            f" WHERE a.status = 'cancelled' AND {cancelled}) AS cancellations"
            f" FROM (VALUES {', '.join(rows)}) AS d"
            " LEFT JOIN sessions AS s ON s.created_at >= d.column2 AND s.created_at < d.column3"
            " GROUP BY d.column1, d.column2, d.column3 ORDER BY d.column1",
            **params,
        )
        return [
            DayFigures(
                calls=int(row["calls"]),
                priced_calls=int(row["priced_calls"]),
                cost=float(row["cost"]),
                bookings=int(row["bookings"]),
                moves=int(row["moves"]),
                cancellations=int(row["cancellations"]),
            )
            for row in found
        ]

    async def tool_failures(self, window: Interval, limit: int = 100) -> list[FailureCount]:
        """Failed tool calls in `window`, counted by error code and tool, most frequent first
        (at most `limit` groups)."""
        code = self._dialect.json_text("payload", "error", "code")
        tool = self._dialect.json_text("payload", "name")
        found = await self._fetch(
            f"SELECT COALESCE({code}, 'unknown') AS code, COALESCE({tool}, 'unknown') AS tool,"
            f" COUNT(*) AS n FROM session_events WHERE {self._failed()}"
            " AND created_at >= :start AND created_at < :end"
            " GROUP BY 1, 2 ORDER BY n DESC, code, tool LIMIT :limit",
            start=window.start,
            end=window.end,
            limit=limit,
        )
        return [FailureCount(str(r["code"]), str(r["tool"]), int(r["n"])) for r in found]

    async def costliest_calls(self, window: Interval, limit: int = 5) -> list[CostlyCall]:
        """The `limit` priced calls started in `window` that cost most, dearest first."""
        cost = self._cost()
        found = await self._fetch(
            f"SELECT s.id, s.created_at, s.ended_at, users.phone, {cost} AS cost"
            " FROM sessions AS s LEFT JOIN users ON users.id = s.user_id"
            " WHERE s.created_at >= :start AND s.created_at < :end"
            f" AND {cost} IS NOT NULL ORDER BY cost DESC, s.id LIMIT :limit",
            start=window.start,
            end=window.end,
            limit=limit,
        )
        decode = self._dialect.decode
        return [
            CostlyCall(
                session_id=row["id"],
                created_at=decode("created_at", row["created_at"]),
                ended_at=decode("ended_at", row["ended_at"]),
                cost=float(row["cost"]),
                phone=row["phone"],
            )
            for row in found
        ]

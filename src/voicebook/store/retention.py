"""Retention (DESIGN §5): ended sessions, their events and transcripts are deleted after
VOICEBOOK_RETENTION_DAYS; appointments stay.

Used by the server's housekeeping (a few batches a round) and `voicebook db prune` (until done).
Each batch is its own short transaction, so pruning a large backlog never holds a long lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from voicebook.store.base import Store

BATCH = 200
"""Sessions deleted per transaction."""


def retention_cutoff(now: datetime, days: int) -> datetime:
    """Sessions that ended before this instant are past retention."""
    return now - timedelta(days=days)


async def prune_ended(
    store: Store, before: datetime, *, batch: int = BATCH, max_batches: int | None = None
) -> int:
    """Delete the sessions that ended before `before`, `batch` at a time, stopping after
    `max_batches` batches when given; returns how many sessions were deleted."""
    removed = batches = 0
    while max_batches is None or batches < max_batches:
        async with store.transaction() as tx:
            count = await tx.prune_ended_sessions(before, batch)
        removed += count
        batches += 1
        if count < batch:
            break
    return removed

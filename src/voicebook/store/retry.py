"""Re-running a transaction that the database rolled back to break a deadlock or a serialization
conflict, or whose connection broke under it: the whole body again, a bounded number of times,
after a short random pause.

    async for attempt in retrying():
        async with attempt, store.transaction() as tx:
            ...  # every statement of the transaction, so a second try starts from scratch

`attempt` lets a `TransactionConflict` from its block pass as "try again" while tries remain; any
other outcome — success, a refusal, another error — ends the loop as it would without it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from types import TracebackType

from voicebook.scheduling.errors import StoreUnavailable

log = logging.getLogger(__name__)

TRIES = 5
"""Tries in all. A deadlock costs Postgres `deadlock_timeout` (1 s) to find, so a few suffice."""
BASE_DELAY_S = 0.02
"""The pause before the second try is up to this long (random), doubling for each later one."""


class TransactionConflict(StoreUnavailable):
    """The database rolled the transaction back to resolve a conflict with a concurrent one
    (deadlock, serialization failure); running it again is expected to succeed. Left over after
    the last try it is a 503, like any other store failure."""

    default_message = "The booking system is busy; please try again in a moment."


class ConnectionLost(TransactionConflict):
    """The connection broke while the transaction ran on it (Postgres restarted or failed over,
    a pooler or the network dropped it) while Postgres itself answers: run it again on a fresh
    connection. Nothing of it committed, unless the break came after Postgres had taken the
    COMMIT; a tool call run again then finds its idempotency key stored with that answer and
    gives it, so it still happens once."""


class _Attempt:
    def __init__(self, attempts: Attempts) -> None:
        self._attempts = attempts

    async def __aenter__(self) -> _Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        attempts = self._attempts
        if isinstance(exc, TransactionConflict) and attempts.number < attempts.tries:
            why = "its connection broke" if isinstance(exc, ConnectionLost) else "a conflict"
            log.info("transaction ended by %s (try %d): running it again", why, attempts.number)
            return True  # swallowed: the loop makes another attempt
        attempts.finished = True
        return False


class Attempts:
    """The attempts of `retrying()`: iterate, and run the transaction inside each."""

    def __init__(self, tries: int = TRIES, base_delay: float = BASE_DELAY_S) -> None:
        self.tries = tries
        self.base_delay = base_delay
        self.number = 0
        self.finished = False

    def __aiter__(self) -> Attempts:
        return self

    async def __anext__(self) -> _Attempt:
        if self.finished:
            raise StopAsyncIteration
        if self.number:
            # Full jitter: two transactions that just collided do not collide again in step.
            await asyncio.sleep(random.uniform(0, self.base_delay * 2 ** (self.number - 1)))
        self.number += 1
        return _Attempt(self)


def retrying(tries: int = TRIES) -> Attempts:
    """Attempts for one transaction; see the module's docstring."""
    return Attempts(tries)

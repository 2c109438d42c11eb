"""Retries: exponential backoff with jitter, honouring Retry-After, bounded in attempts and time.

Pure (no I/O, no sleeping): the clients ask a `Budget` how long to wait and do the waiting
themselves, so the sync and the async client retry exactly alike.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["NO_RETRY", "Budget", "RetryPolicy", "backoff_delay", "parse_retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries a call that failed for a passing reason.

    Retried: connection failures, 429 and 503 (and 502/504 for requests that are safe to repeat).
    Every attempt of one logical call carries the same idempotency key, so a retried tool call
    is done at most once.

    - `max_attempts`: attempts per call, the first included (1 turns retries off).
    - `max_total_s`: no retry starts later than this many seconds after the first attempt, and no
      wait is begun that would end after it; a wait the server asks for (Retry-After) that does
      not fit makes the call fail at once with the server's error.
    - `base_delay_s`, `max_delay_s`: the n-th retry waits up to `base_delay_s * 2**(n-1)`, capped
      at `max_delay_s` — but never less than the server's Retry-After.
    - `jitter`: the fraction of that delay drawn at random (0 none, 1 "full jitter"), so clients
      that failed together do not retry together.
    """

    max_attempts: int = 5
    max_total_s: float = 30.0
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_total_s < 0 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry times cannot be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")


NO_RETRY = RetryPolicy(max_attempts=1)
"""One attempt per call: every failure is raised at once."""


def backoff_delay(
    policy: RetryPolicy,
    retry: int,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `retry` (1 is the first retry).

    Exponential with jitter: uniform in `[(1 - jitter) * d, d]` with
    `d = min(max_delay_s, base_delay_s * 2**(retry-1))`; at least `retry_after` when given.
    """
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2 ** max(0, retry - 1))
    delay = ceiling * (1 - policy.jitter * rand())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """The Retry-After header in seconds: delta-seconds or an HTTP date; None when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


class Budget:
    """The attempts of one logical call (or of one event stream's reconnections)."""

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.attempts = 0
        self._clock = clock
        self._rand = rand
        self._started = clock()

    def attempt(self) -> None:
        """Count an attempt about to be made."""
        self.attempts += 1

    def elapsed(self) -> float:
        return self._clock() - self._started

    def next_wait(self, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when the budget is spent."""
        if self.attempts >= self.policy.max_attempts:
            return None
        wait = backoff_delay(self.policy, self.attempts, retry_after, self._rand)
        if self.elapsed() + wait > self.policy.max_total_s:
            return None
        return wait

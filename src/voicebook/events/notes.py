"""Log lines about the bus that cannot flood the log: a dead Redis or a stream of junk messages
is one line per interval, with how many were left out."""

from __future__ import annotations

import logging
import time

INTERVAL_S = 10.0


class Throttled:
    """At most one `warning` per `interval` seconds; the next one counts those left out."""

    def __init__(self, log: logging.Logger, interval: float = INTERVAL_S) -> None:
        self._log = log
        self._interval = interval
        self._last = -interval
        self._left_out = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._left_out += 1
            return
        if self._left_out:
            message += f" (and {self._left_out} more like it since the last line)"
        self._log.warning(message, *args)
        self._last, self._left_out = now, 0

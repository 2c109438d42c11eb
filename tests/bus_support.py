"""Helpers for the bus fault tests: a proxy that can half-open its links, and waiting for things."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tcp_proxy import TcpProxy

T = TypeVar("T")


class FreezableProxy(TcpProxy):
    """A `TcpProxy` that can also half-open the links it has: `freeze()` makes every connection
    open now swallow what is sent on it, both ways, without closing it (a peer that vanished, a
    NAT that forgot the flow), while new connections are forwarded as usual."""

    def freeze(self) -> None:
        self._call(self._freeze())

    async def _freeze(self) -> None:
        for writer in self._links:
            writer.write = lambda data: None  # type: ignore[method-assign]


async def eventually(
    check: Callable[[], T | None], within: float, what: str, every: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy (returned); fail naming `what`."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(every)


async def eventually_async(
    check: Callable[[], Awaitable[T | None]], within: float, what: str, every: float = 0.2
) -> T:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(every)

"""Running the worker through livekit-agents' public lifecycle: `AgentServer.run`, `drain`
and `aclose`.

Why not livekit's own CLI: `livekit.agents.cli.run_app` parses `sys.argv` with its own
(deprecated) commands, and the function behind it is private, free to change in any release.
The lifecycle here is what an orchestrator expects: the first SIGTERM or SIGINT stops taking
calls, lets the running ones end (production; development closes at once), then closes the
worker; a second signal, once draining, takes the default action and ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from livekit.agents import AgentServer

logger = logging.getLogger("voicebook.agent")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve(server: AgentServer, *, dev: bool) -> None:
    """Run `server` until it fails or a stop signal arrives; then drain (unless `dev`) and
    close it. Raises what `server.run` raised."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(server.run(devmode=dev), name="voicebook-worker")
    stopping = asyncio.create_task(stop.wait(), name="voicebook-worker-stop")
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        stopping.cancel()
    if running.done():
        await server.aclose()
        running.result()
        return
    if not dev:
        try:
            await server.drain()
        except asyncio.TimeoutError:
            logger.warning("the running calls did not end in time; closing the worker anyway")
    await server.aclose()
    # Stopped while still starting, `run` has no close to wait for: it is cancelled instead.
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running

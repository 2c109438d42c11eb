"""The app `voicebook serve` runs: the server's app with the receptionist attached to the
console's Try-it tab (DESIGN §2: the CLI attaches the agent, the server never imports it).

uvicorn imports this module in every worker (`create_app_from_env`, a factory), so it imports
nothing heavy itself: livekit-agents is loaded when the first conversation starts, in a
thread, while the event loop serves everybody else.
"""

from __future__ import annotations

import asyncio
import functools
import importlib

from fastapi import FastAPI
from starlette.types import ASGIApp

from voicebook.config import Settings
from voicebook.server.app import create_app
from voicebook.server.console.conversation import (
    Conversation,
    Receptionist,
    Unavailable,
    attach,
)


@functools.cache
def _extra_missing() -> tuple[str, ...]:
    """The agent extra's missing distributions (installed packages do not change while the
    server runs, and the console asks on every page load)."""
    from voicebook.agent import agent_extra_missing

    return tuple(agent_extra_missing())


def why_not(settings: Settings) -> Unavailable | None:
    """None when a conversation can start: the agent extra is installed and an LLM configured."""
    missing = _extra_missing()
    if missing:
        from voicebook.agent import INSTALL_COMMAND

        return Unavailable(
            "agent_extra_missing",
            f"Try it needs the agent extra ({', '.join(missing)} not installed): run "
            f"{INSTALL_COMMAND} where the server runs, then restart it.",
        )
    from voicebook.agent.providers import LLM_VARIABLES, missing_variables

    if missing_variables(settings, voice=False):
        return Unavailable(
            "llm_not_configured",
            f"Try it needs a language model: set {LLM_VARIABLES} for the server "
            "(in its environment or .env), then restart it.",
        )
    return None


async def open_conversation(app: ASGIApp, settings: Settings, client_host: str) -> Conversation:
    """A new conversation (not started yet); the agent's modules imported in a thread first."""
    module = await asyncio.to_thread(importlib.import_module, "voicebook.agent.conversation")
    conversation: Conversation = module.Conversation(app, settings, client_host)
    return conversation


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn (`voicebook serve`, any number of workers)."""
    app = create_app()
    attach(app, Receptionist(open=open_conversation, unavailable=why_not))
    return app

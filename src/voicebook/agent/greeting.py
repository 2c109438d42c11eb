"""What the receptionist says first, in a module that imports nothing of livekit-agents, so
`voicebook call --text` can show it while the agent is still loading (DESIGN §2: the CLI
imports lazily; the greeting is the one thing the caller reads before the agent can answer).
"""

from __future__ import annotations

from voicebook.scheduling.business import Business

DEFAULT_GREETING = "Hello, thanks for calling! To get started, may I have your phone number?"
LINE_GREETING = "Hello, thanks for calling! How can I help you today?"
"""The default greeting when the line already gave the caller's number."""


def greeting_for(configured: str | None, business: Business | None, *, known_line: bool) -> str:
    """AGENT_GREETING, else the business file's greeting, else the default (one that does not
    ask for the number when the line already gave it)."""
    return (
        configured
        or (business.greeting if business is not None else None)
        or (LINE_GREETING if known_line else DEFAULT_GREETING)
    )

"""What the Try-it tab needs of a receptionist, and where it is attached.

The server package never imports the agent (DESIGN §2): `voicebook serve` attaches one to the
app (`attach`, from `voicebook.cli.served_app`), as `voicebook call --text` runs it in a
terminal. An app nobody attached one to (built by `create_app` alone) serves the console all
the same; its Try-it tab says how to get one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import ASGIApp

from voicebook.config import Settings


class Conversation(Protocol):
    """One text conversation with the receptionist, its turns as the page's JSON messages."""

    @property
    def session_id(self) -> str: ...

    @property
    def ending(self) -> bool:
        """The receptionist ended the call (it said goodbye)."""
        ...

    async def start(self) -> dict[str, Any]:
        """Start the session and the agent: the greeting turn."""
        ...

    async def say(self, text: str) -> dict[str, Any]:
        """One operator line and the receptionist's answer, with its tool calls."""
        ...

    async def close(self) -> dict[str, Any] | None:
        """End the call: its summary with the cost (None when it never started)."""
        ...


@dataclass(frozen=True)
class Unavailable:
    """Why this server cannot hold a conversation, as a stable code and a sentence."""

    code: str
    message: str


@dataclass(frozen=True)
class Receptionist:
    """How to open a conversation against an app, and why one cannot be opened (None: it can).

    `open(app, settings, client_host)`: `client_host` is the operator's address, which the
    conversation's session start is counted against, as a page's would be.
    """

    open: Callable[[ASGIApp, Settings, str], Awaitable[Conversation]]
    unavailable: Callable[[Settings], Unavailable | None]


NOT_ATTACHED = Unavailable(
    "try_it_not_attached",
    "Try it runs when the console is served by `voicebook serve`, which brings the "
    "receptionist; this server was started without it.",
)


class ConversationFailed(Exception):
    """The conversation could not start or go on; `code` and `message` are for the page."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def attach(app: Any, receptionist: Receptionist) -> None:
    """Give the app's Try-it tab its receptionist."""
    app.state.try_it_receptionist = receptionist


def receptionist_for(app: Any, settings: Settings) -> Receptionist | Unavailable:
    """The app's receptionist when a conversation can start, else why not."""
    receptionist: Receptionist | None = getattr(app.state, "try_it_receptionist", None)
    if receptionist is None:
        return NOT_ATTACHED
    return receptionist.unavailable(settings) or receptionist

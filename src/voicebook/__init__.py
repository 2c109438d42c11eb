"""voicebook: the backend of an AI voice receptionist.

The package root stays import-light on purpose: `voicebook --help` and the SDK must not pull in
FastAPI, database drivers or LiveKit. `Client` and `AsyncClient` are exported lazily, so
`import voicebook` does not import httpx either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "__version__"]

if TYPE_CHECKING:
    from voicebook.sdk import AsyncClient, Client


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from voicebook import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'voicebook' has no attribute {name!r}")

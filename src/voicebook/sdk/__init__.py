"""The voicebook SDK: `Client` and `AsyncClient` for the server's HTTP API and event stream.

    from voicebook import Client

    with Client("http://127.0.0.1:8000", api_key="...") as vb:
        session = vb.start_session()
        vb.identify_user(session.session_id, phone="415 555 0123")

- One method per endpoint, named after it; results are the wire models of `voicebook.models`;
  failures raise the typed errors of `voicebook.errors`.
- Retries (connection failures, 429, 503) with exponential backoff and jitter, honouring
  Retry-After, bounded by a `RetryPolicy`; one idempotency key per logical tool call.
- `stream_events(session_id, after=None)` follows a session's events over the WebSocket and
  resumes by itself; `session_events(...)` is the same log as one HTTP answer.

The SDK depends on httpx, websockets and pydantic only: it never imports FastAPI, a database
driver or LiveKit. It is also shipped alone as `voicebook-sdk` (sdk/): this package with
`voicebook.models`, `voicebook.errors` and the package root, nothing else of voicebook, so an
import of any other voicebook module from here breaks that distribution (its test says which).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from voicebook.sdk.retry import NO_RETRY, RetryPolicy

if TYPE_CHECKING:
    from voicebook.sdk.async_client import AsyncClient, AsyncEventStream
    from voicebook.sdk.client import Client, EventStream

__all__ = ["NO_RETRY", "AsyncClient", "AsyncEventStream", "Client", "EventStream", "RetryPolicy"]
_LAZY = {
    "Client": "voicebook.sdk.client",
    "EventStream": "voicebook.sdk.client",
    "AsyncClient": "voicebook.sdk.async_client",
    "AsyncEventStream": "voicebook.sdk.async_client",
}


def __getattr__(name: str) -> Any:
    """Load each client on first use: a sync caller (the CLI) never pays for the async one."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

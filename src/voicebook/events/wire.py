"""What travels on Redis: per deployment, one channel per session, carrying only news.

A message is `{"id": <the session's newest committed event id>, "published_at": <unix time>}` on
`<prefix><session id>`. It holds no event: subscribers read the log, so whoever can publish on the
Redis server can at most wake a reader. The prefix keeps deployments that share a Redis server
apart (pub/sub ignores db numbers): by default it is derived from the database, since workers of
one deployment share their database and two deployments never do.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from voicebook.events.base import ANY_EVENT

SESSION_ID_MAX = 64
"""Longest session id (the server's own rule): a longer channel suffix is not ours."""


def default_prefix(database_url: str) -> str:
    """`voicebook:<12 hex>:`, the same for every URL of one database (user, password, options and
    the postgres/postgresql spelling aside), different for another database or SQLite file."""
    parts = urlsplit(database_url)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    default_port = 5432 if scheme == "postgresql" else None
    where = f"{scheme}://{(parts.hostname or '').lower()}:{parts.port or default_port}{parts.path}"
    return f"voicebook:{hashlib.sha256(where.encode()).hexdigest()[:12]}:"


@dataclass(frozen=True)
class News:
    session_id: str
    event_id: int
    published_at: float


class Malformed(ValueError):
    """A message on our channels that we did not write (or cannot read)."""


def encode(event_id: int) -> str:
    return json.dumps({"id": event_id, "published_at": time.time()}, separators=(",", ":"))


def decode(prefix: str, channel: str | bytes, data: str | bytes) -> News:
    """The news in a message, or `Malformed` saying what is wrong with it."""
    if isinstance(channel, bytes):
        channel = channel.decode("utf-8", "replace")
    session_id = channel.removeprefix(prefix)
    if not 0 < len(session_id) <= SESSION_ID_MAX or session_id == channel:
        raise Malformed(f"unexpected channel {channel[:80]!r}")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    if not isinstance(raw, dict):
        raise Malformed("not a JSON object")
    event_id, published_at = raw.get("id"), raw.get("published_at")
    if type(event_id) is not int or not 0 < event_id < ANY_EVENT:
        raise Malformed("no valid event id")
    if type(published_at) not in (int, float) or not math.isfinite(published_at):
        raise Malformed("no valid publish time")
    return News(session_id, event_id, float(published_at))

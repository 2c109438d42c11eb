"""Refuse JSON bodies nested deeper than any request needs, before anything parses them.

Python's JSON parser recurses once per level: 60 KB of `[` exhausts the stack (a RecursionError,
which surfaced as a 500), and every later walk over a parsed value would recurse as well. No
voicebook request nests more than three levels, so a body nested beyond `MAX_DEPTH` is answered
422 `invalid_input` here, with the body already bounded by `BodySizeLimit` outside.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicebook.scheduling.errors import InvalidInput
from voicebook.server.errors import domain_error_response

MAX_DEPTH = 16
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')
"""A JSON string (skipped whole, so brackets inside it do not count) or a bracket. Possessive,
so an unterminated string costs one linear scan."""


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """True when `body` (JSON text) opens more than `limit` arrays/objects inside each other."""
    depth = 0
    for token in _TOKENS.finditer(body):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


def _is_json(scope: Scope) -> bool:
    """Bodies FastAPI would parse as JSON: a JSON content type, or none at all."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
    return not content_type or b"json" in content_type.lower()


class NestingLimit:
    """ASGI middleware: reads a JSON body whole, refuses it if nested too deeply, else hands the
    same bytes on to the app."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body: nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if nesting_exceeds(body, self.max_depth):
            refusal = InvalidInput(
                f"The request body is nested more than {self.max_depth} levels deep."
            )
            await domain_error_response(refusal)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

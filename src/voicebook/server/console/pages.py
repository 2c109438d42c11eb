"""The console's page and its assets: plain HTML, CSS and ES modules shipped inside the package
(no build step), served at `/` and `/console/static/`.

The page is one document; each tab is a module loaded when first opened. The Content Security
Policy allows nothing but this server's own scripts, styles, fetches and WebSockets, so even an
injected string could not run or send anything elsewhere.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from voicebook.server.console.auth import ensure_csrf_cookie

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
"""`connect-src 'self'` covers the page's WebSockets to this server (CSP Level 3)."""

router = APIRouter(include_in_schema=False)


@functools.cache
def _page() -> str:
    """The page, read from the package once per process (it changes only with the package)."""
    return (STATIC / "index.html").read_text()


@router.get("/", response_class=HTMLResponse)
async def console_page(request: Request) -> HTMLResponse:
    """The console; its CSRF cookie is set with the page, before any script runs."""
    response = HTMLResponse(_page(), headers=SECURITY_HEADERS)
    ensure_csrf_cookie(response, request)
    return response


class ConsoleAssets(StaticFiles):
    """The assets, with the page's security headers on each."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k != "Cache-Control"})
        return response


assets = ConsoleAssets(directory=STATIC)

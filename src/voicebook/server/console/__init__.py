"""The operator's console at `/`: calls, calendar, numbers and a text conversation to try.

Each tab is a router here (its JSON under `/console/api/`) and an ES module in `static/`; the
sign-in and CSRF rules are in `auth`, and every console route uses them.
"""

from __future__ import annotations

from fastapi import FastAPI

from voicebook.server.console import account, calendar, calls, numbers, pages, tryit

ROUTERS = [
    account.router,
    pages.router,
    calls.router,
    numbers.router,
    tryit.router,
    calendar.router,
]


def install(app: FastAPI) -> None:
    """Add the console's routes and assets to the app."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/console/static", pages.assets, name="console-static")

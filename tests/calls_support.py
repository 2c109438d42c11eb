"""What the Calls tab's tests need from a running server: calls made as the agent makes them.

`Agent` speaks the service-facing API over real HTTP (the service key, an idempotency key per
tool call), so every event the console shows was committed by the same path a real call takes.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

API_KEY = "calls-tab-service-key-0123456789"
PHONE = "(415) 555-0188"
RAW_PHONE_FORMS = ("555-0188", "5550188", "4155550188", "+14155550188")
SERVER_ENV = {
    "VOICEBOOK_API_KEY": API_KEY,
    "VOICEBOOK_HOURS": "mon-sun 00:00-24:00",
    "VOICEBOOK_MIN_NOTICE_MINUTES": "0",
    "VOICEBOOK_SESSION_RATE_LIMIT": "10000",
}
"""Open every hour of every day, so a slot is always free to book whenever the test runs; and
the tests start more calls a minute than one address may by default."""

_keys = itertools.count(1)


class Agent:
    """The agent's side of calls, against one server."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(
            base_url=url, timeout=15, headers={"Authorization": f"Bearer {API_KEY}"}
        )

    def start(self, phone: str | None = None, name: str | None = None) -> str:
        """A new session: trusted with `phone` (as a signed-in back-end starts it), else
        anonymous as a page starts it."""
        body = {"phone": phone, "name": name} if phone else {}
        answer = self.http.post("/session/start", json=body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["session_id"])

    def tool(self, tool: str, session_id: str, /, **args: Any) -> httpx.Response:
        """One tool call with a fresh idempotency key; the answer as the server gave it."""
        return self.http.post(
            f"/tools/{tool}",
            json={"session_id": session_id, **args},
            headers={"Idempotency-Key": f"calls_tab_{next(_keys)}"},
        )

    def first_slot(self, session_id: str) -> str:
        answer = self.tool("fetch_slots", session_id, limit=3)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["slots"][0]["slot_id"])

    def book(self, session_id: str, slot_id: str) -> httpx.Response:
        return self.tool("book_appointment", session_id, slot_id=slot_id)

    def say(
        self, session_id: str, role: str, text: str, usage: dict[str, float] | None = None
    ) -> None:
        """A transcript line (and the running usage) as the agent reports them."""
        report: dict[str, Any] = {
            "session_id": session_id,
            "transcript": [{"role": role, "text": text}],
        }
        if usage is not None:
            report["usage"] = usage
        answer = self.http.post(
            "/agent/report",
            json=report,
            headers={"Idempotency-Key": f"calls_tab_{next(_keys)}"},
        )
        assert answer.status_code == 200, answer.text

    def end(self, session_id: str) -> None:
        answer = self.tool("end_conversation", session_id)
        assert answer.status_code == 200, answer.text

    def close(self) -> None:
        self.http.close()

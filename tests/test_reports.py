"""The agent's reports: transcript events, usage running totals, recap, hang-up; the priced cost."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import call, identified
from voicebook.scheduling.cost import Prices, merge_usage, price
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.service import SchedulingService

PRICES = Prices(
    llm_input_per_1m=1.0,
    llm_output_per_1m=4.0,
    llm_models={"cheap/model": (0.1, 0.2)},
    stt_per_minute=0.01,
    tts_per_1k_chars=0.05,
    avatar_per_minute=0.10,
)


def test_price_itemises_usage() -> None:
    usage = {
        "llm_input_tokens": 2_000_000,
        "llm_output_tokens": 500_000,
        "stt_seconds": 120,
        "tts_characters": 3000,
        "avatar_seconds": 30,
    }
    cost = price(usage, PRICES)
    assert cost["items"] == {"llm": 4.0, "stt": 0.02, "tts": 0.15, "avatar": 0.05}
    assert cost["total"] == 4.22
    assert cost["currency"] == "USD"
    assert price({**usage, "llm_model": "cheap/model"}, PRICES)["items"]["llm"] == 0.3


def test_usage_is_a_running_total() -> None:
    stored = {"llm_input_tokens": 100, "stt_seconds": 10.0}
    merged = merge_usage(stored, {"llm_input_tokens": 90, "stt_seconds": 12.5, "llm_model": "m"})
    assert merged == {"llm_input_tokens": 100, "stt_seconds": 12.5, "llm_model": "m"}


@pytest.fixture
def priced(service: SchedulingService) -> SchedulingService:
    service.prices = PRICES
    return service


async def test_reports_append_transcript_and_hangup_summarises(priced: SchedulingService) -> None:
    session = await identified(priced)
    await call(priced, "book_appointment", session, start="2027-03-02T09:00:00-05:00")
    batch = {
        "session_id": session,
        "transcript": [
            {"role": "user", "text": "Book me Tuesday at nine"},
            {"role": "agent", "text": "Done: Tuesday, March 2 at 9:00 AM."},
        ],
        "usage": {"llm_input_tokens": 1_000_000, "llm_output_tokens": 0, "stt_seconds": 60},
    }
    first = await priced.report(batch, "report-1")
    assert (first.state, first.events) == ("active", 2)
    assert await priced.report(dict(batch), "report-1") == first  # a retry appends nothing
    with pytest.raises(DomainError) as reused:
        await priced.report({"session_id": session, "recap": "other"}, "report-1")
    assert reused.value.code == "idempotency_conflict"

    final = await priced.report(
        {
            "session_id": session,
            "usage": {"llm_input_tokens": 2_000_000, "stt_seconds": 30, "tts_characters": 1000},
            "recap": "Booked a cleaning.",
            "hangup": True,
        },
        "report-2",
    )
    assert final.state == "ended"
    events = await priced.session_events(session)
    assert [e.type for e in events][-5:] == [
        "transcript",
        "transcript",
        "status",
        "summary",
        "session_closed",
    ]
    summary = events[-2].payload
    assert summary["summary"].startswith("Booked a cleaning.")
    # Running totals: llm 2M in (raised), stt stays at 60 s (a smaller figure never lowers it).
    assert summary["cost"]["items"] == {"llm": 2.0, "stt": 0.01, "tts": 0.05, "avatar": 0.0}
    assert summary["cost"]["total"] == 2.06
    with pytest.raises(DomainError) as late:
        await priced.report({"session_id": session, "recap": "late"}, "report-3")
    assert late.value.code == "session_ended"


async def test_summary_without_reports_has_zero_cost(priced: SchedulingService) -> None:
    session = await identified(priced)
    summary = await priced.end_session(session, reason="page")
    assert summary.cost is not None
    assert summary.cost["total"] == 0.0
    assert summary.duration_s is not None


async def test_bad_report_is_invalid_input(priced: SchedulingService) -> None:
    session = await identified(priced)
    bad: dict[str, Any] = {"session_id": session, "transcript": [{"role": "robot", "text": "x"}]}
    with pytest.raises(DomainError) as caught:
        await priced.report(bad, "report-bad")
    assert caught.value.code == "invalid_input"
    assert "transcript" in caught.value.message


CACHED_PRICES = Prices(
    llm_input_per_1m=1.0,
    llm_output_per_1m=4.0,
    llm_cached_per_1m=0.25,
    llm_models={"cached/model": (2.0, 8.0, 0.5), "plain/model": (2.0, 8.0)},
)


def test_cached_prompt_tokens_are_priced_at_the_cached_price() -> None:
    usage = {"llm_input_tokens": 2_000_000, "llm_cached_tokens": 1_000_000}
    # 1M uncached at 1.00 + 1M cached at 0.25 (the full rate would be 2.00)
    assert price(usage, CACHED_PRICES)["items"]["llm"] == 1.25
    assert price({**usage, "llm_model": "cached/model"}, CACHED_PRICES)["items"]["llm"] == 2.5
    # a listed model without a cached price: its cached tokens at its own input price
    assert price({**usage, "llm_model": "plain/model"}, CACHED_PRICES)["items"]["llm"] == 4.0
    # never more cached tokens than input tokens
    assert price({"llm_input_tokens": 10, "llm_cached_tokens": 10**6}, CACHED_PRICES)["items"][
        "llm"
    ] == pytest.approx(0.0, abs=1e-4)


def test_cached_tokens_are_a_running_total_too() -> None:
    merged = merge_usage({"llm_cached_tokens": 500}, {"llm_cached_tokens": 400})
    assert merged["llm_cached_tokens"] == 500
    assert merge_usage({}, {"llm_cached_tokens": 400})["llm_cached_tokens"] == 400


def test_the_cached_price_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicebook.config import Settings

    monkeypatch.setenv("VOICEBOOK_PRICE_LLM_CACHED_PER_1M", "0.01")
    monkeypatch.setenv("VOICEBOOK_PRICE_LLM_MODELS", '{"m": [1, 2, 0.5], "n": [1, 2]}')
    prices = Settings().prices
    assert prices.llm_cached_per_1m == 0.01
    assert prices.llm_models == {"m": (1.0, 2.0, 0.5), "n": (1.0, 2.0)}


def test_cached_tokens_priced_through_the_server(tmp_path: Any) -> None:
    """POST /agent/report with cached tokens and hang-up, on SQLite: the summary's cost
    prices the cached ones at the cached price."""
    import httpx

    from servers import running_server

    key = "cost-test-key-0123456789"
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path}/vb.db",
        "VOICEBOOK_API_KEY": key,
        "VOICEBOOK_PRICE_LLM_INPUT_PER_1M": "1.0",
        "VOICEBOOK_PRICE_LLM_OUTPUT_PER_1M": "4.0",
        "VOICEBOOK_PRICE_LLM_CACHED_PER_1M": "0.25",
        "VOICEBOOK_PRICE_LLM_MODELS": "{}",
    }
    with (
        running_server(env, tmp_path) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        session_id = http.post("/session/start").json()["session_id"]
        usage = {"llm_input_tokens": 2_000_000, "llm_cached_tokens": 1_000_000}
        answer = http.post(
            "/agent/report",
            json={"session_id": session_id, "usage": usage, "hangup": True},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "report-cached"},
        )
        assert answer.status_code == 200, answer.text
        summary = http.get(f"/session/{session_id}").json()["summary"]
    assert summary["cost"]["items"]["llm"] == 1.25
    assert summary["cost"]["usage"]["llm_cached_tokens"] == 1_000_000

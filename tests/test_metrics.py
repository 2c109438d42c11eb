"""`/metrics` covers every worker of `voicebook serve --workers N`, and has process, pool, bus,
WebSocket and rate-limit series."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from servers import Server, running_server

REQUESTS = 60


def samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape, on a fresh connection (so any worker may answer it)."""
    with httpx.Client(base_url=server.url) as http:
        text = http.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in scrape.items() if n == name and set(labels.items()) <= set(ls))


def pids(scrape: dict, name: str) -> set[str]:
    return {dict(ls).get("pid", "") for (n, ls), _ in scrape.items() if n == name}


@pytest.mark.postgres
def test_metrics_add_up_every_worker(pg_url: str, tmp_path: Path) -> None:
    env = {"VOICEBOOK_DATABASE_URL": pg_url}
    with running_server(env, tmp_path, args=("--workers", "2")) as server:
        deadline = time.monotonic() + 60
        while value(samples(server), "voicebook_workers") != 2:  # both sampled themselves
            assert time.monotonic() < deadline, "the second worker never reported"
            time.sleep(0.1)
        healthz = "voicebook_http_request_duration_seconds_count"
        before = value(samples(server), healthz, route="/healthz")  # the start-up probes
        for _ in range(REQUESTS):  # a connection each: the workers share them out
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        scrapes = [samples(server) for _ in range(10)]
        for scrape in scrapes:  # whichever worker answered, it reports both workers' requests
            assert value(scrape, healthz, route="/healthz") == before + REQUESTS
        last = scrapes[-1]
        assert len(pids(last, "voicebook_process_resident_memory_bytes") - {""}) == 2
        assert value(last, "voicebook_db_pool_size") >= 2  # each worker's pool has opened
        for series in (
            "voicebook_websockets_open",
            "voicebook_bus_events_published_total",
            "voicebook_rate_limit_storage_errors_total",
            "voicebook_process_cpu_seconds",
            "voicebook_db_pool_available",
            "voicebook_db_requests_waiting",
        ):
            assert any(n == series for n, _ in last), series


def test_one_worker_reports_its_own_series(tmp_path: Path) -> None:
    env = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'voicebook.db'}"}
    with running_server(env, tmp_path) as server:
        session_id = httpx.post(f"{server.url}/session/start").json()["session_id"]
        assert httpx.get(f"{server.url}/session/{session_id}").status_code == 200
        scrape = samples(server)
        route = "/session/{session_id}"
        assert value(scrape, "voicebook_http_request_duration_seconds_count", route=route) == 1
        assert value(scrape, "voicebook_workers") == 1
        assert value(scrape, "voicebook_process_resident_memory_bytes") > 0
        assert value(scrape, "voicebook_db_pool_size") >= 1

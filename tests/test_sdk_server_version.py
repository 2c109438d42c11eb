"""The server's version (DESIGN §3): a header on every HTTP answer, errors too, and in /healthz;
the SDK shows the version it saw. Over HTTP against a real `voicebook serve`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from servers import Server, running_server
from voicebook import AsyncClient, Client, __version__
from voicebook.errors import NotFound, Unauthorized
from voicebook.sdk import NO_RETRY

API_KEY = "version-key"
HEADER = "X-Voicebook-Version"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server-version")
    env = {
        "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp / 'x.db'}",
        "VOICEBOOK_API_KEY": API_KEY,
        "VOICEBOOK_CORS_ORIGINS": "http://page.example",
    }
    with running_server(env, tmp) as running:
        yield running


def test_healthz_says_the_version(server: Server) -> None:
    answer = httpx.get(f"{server.url}/healthz", timeout=10)
    assert answer.json() == {"status": "ok", "version": __version__}
    assert answer.headers[HEADER] == __version__


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/session/nosuchsession", 404),
        ("POST", "/tools/fetch_slots", 401),
        ("POST", "/session/start", 200),
        ("GET", "/nowhere", 404),
    ],
)
def test_every_answer_carries_the_version(
    server: Server, method: str, path: str, status: int
) -> None:
    answer = httpx.request(method, f"{server.url}{path}", timeout=10)
    assert answer.status_code == status
    assert answer.headers[HEADER] == __version__


def test_a_page_can_read_the_version_header(server: Server) -> None:
    origin = {"Origin": "http://page.example"}
    preflight = httpx.options(
        f"{server.url}/session/start",
        headers={**origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.headers[HEADER] == __version__
    answer = httpx.post(f"{server.url}/session/start", headers=origin, timeout=10)
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert HEADER.lower() in exposed


def test_the_client_shows_the_version_it_saw(server: Server) -> None:
    with Client(server.url, API_KEY, retry=NO_RETRY) as vb:
        assert vb.server_version is None
        assert vb.health().version == __version__
        assert vb.server_version == __version__
    with Client(server.url, "wrong", retry=NO_RETRY) as vb:
        with pytest.raises(Unauthorized):
            vb.fetch_slots("anything")
        assert vb.server_version == __version__


async def test_the_async_client_shows_the_version_it_saw(server: Server) -> None:
    async with AsyncClient(server.url, API_KEY, retry=NO_RETRY) as vb:
        assert vb.server_version is None
        with pytest.raises(NotFound):
            await vb.get_session("nosuchsession")
        assert vb.server_version == __version__

"""One configuration for every command (DESIGN §6): the SDK and the CLI's remote commands read the
server's `.env` (VOICEBOOK_URL / BACKEND_BASE_URL, VOICEBOOK_API_KEY), the environment winning.

Against a real `voicebook serve` that requires a service key, the commands run as subprocesses in a
temporary working directory holding only a `.env`, with a clean environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from commands import voicebook
from servers import Server, keyed_server
from voicebook.sdk.dotenv import read_env_file
from voicebook.sdk.protocol import resolve_api_key, resolve_base_url

API_KEY = "dotenv-key"
UNREACHABLE = "http://127.0.0.1:1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with keyed_server(tmp_path_factory, "sdk-dotenv", API_KEY) as running:
        yield running


def write_env(folder: Path, **values: str) -> None:
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def new_session(server: Server) -> str:
    answer = httpx.post(f"{server.url}/session/start", timeout=10)
    answer.raise_for_status()
    return answer.json()["session_id"]


def test_tool_uses_the_key_and_url_of_the_env_file(server: Server, tmp_path: Path) -> None:
    write_env(tmp_path, VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY=API_KEY)
    session = new_session(server)
    done = voicebook("tool", "fetch_slots", "--session", session, "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["slots"]


def test_session_start_uses_the_url_of_the_env_file(server: Server, tmp_path: Path) -> None:
    write_env(tmp_path, VOICEBOOK_URL=server.url)
    done = voicebook("session", "start", "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    session = json.loads(done.stdout)["session_id"]
    assert httpx.get(f"{server.url}/session/{session}", timeout=10).status_code == 200


def test_backend_base_url_in_the_env_file_is_the_fallback(server: Server, tmp_path: Path) -> None:
    write_env(tmp_path, BACKEND_BASE_URL=server.url)
    done = voicebook("session", "start", "--json", cwd=tmp_path)
    assert done.code == 0, done.stderr


def test_the_environment_wins_over_the_env_file(server: Server, tmp_path: Path) -> None:
    write_env(tmp_path, VOICEBOOK_URL=UNREACHABLE, VOICEBOOK_API_KEY="wrong")
    session = new_session(server)
    done = voicebook(
        "tool",
        "fetch_slots",
        "--session",
        session,
        "--json",
        cwd=tmp_path,
        VOICEBOOK_URL=server.url,
        VOICEBOOK_API_KEY=API_KEY,
    )
    assert done.code == 0, done.stderr


def test_a_wrong_key_in_the_env_file_is_refused(server: Server, tmp_path: Path) -> None:
    """The key really comes from the file: a wrong one there is the server's 401 (exit 2)."""
    write_env(tmp_path, VOICEBOOK_URL=server.url, VOICEBOOK_API_KEY="wrong")
    session = new_session(server)
    done = voicebook("tool", "fetch_slots", "--session", session, cwd=tmp_path)
    assert done.code == 2, done.stderr
    assert "VOICEBOOK_API_KEY" in done.stderr
    assert ".env" in done.stderr


def test_the_env_file_syntax_the_server_accepts(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# voicebook\n"
        "export VOICEBOOK_URL=http://vb.example:9000  # the server\n"
        "VOICEBOOK_API_KEY='s3cret # not a comment'\n"
        'BACKEND_BASE_URL="http://backend"\n'
        "not a variable\n"
        "EMPTY=\n"
    )
    assert read_env_file(tmp_path / ".env") == {
        "VOICEBOOK_URL": "http://vb.example:9000",
        "VOICEBOOK_API_KEY": "s3cret # not a comment",
        "BACKEND_BASE_URL": "http://backend",
        "EMPTY": "",
    }
    assert read_env_file(tmp_path / "missing.env") == {}


def test_resolution_reads_the_working_directory_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("VOICEBOOK_URL", "BACKEND_BASE_URL", "VOICEBOOK_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    write_env(tmp_path, VOICEBOOK_URL="http://from-file:1", VOICEBOOK_API_KEY="file-key")
    assert resolve_base_url(None) == "http://from-file:1"
    assert resolve_api_key(None) == "file-key"
    monkeypatch.setenv("VOICEBOOK_API_KEY", "env-key")
    assert resolve_api_key(None) == "env-key"


def test_an_empty_variable_does_not_hide_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for the server, `VAR=` is the same as leaving the variable out."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOICEBOOK_URL", "")
    write_env(tmp_path, VOICEBOOK_URL="http://from-file:1")
    assert resolve_base_url(None) == "http://from-file:1"

"""The console's sign-in and CSRF guard, over real HTTP against `voicebook serve`.

The console is the business's: with a password (or service key) set, nothing of it answers
before a sign-in; the sign-in cookie is HttpOnly, SameSite=Strict and signed, so it cannot be
read by a script, sent by another site or forged; and every write carries the CSRF token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import Server, running_server
from voicebook.config import Settings
from voicebook.server.console.auth import CSRF_HEADER, CookieClaim, issue_cookie, read_cookie

PASSWORD = "correct horse battery staple"
SERVICE_KEY = "service-key-for-console-tests"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-auth")
    env = {"VOICEBOOK_CONSOLE_PASSWORD": PASSWORD, "VOICEBOOK_API_KEY": SERVICE_KEY}
    with running_server(env, tmp) as running:
        yield running


def opened(server: Server) -> tuple[httpx.Client, str]:
    """A browser-like client that loaded the page: it holds the CSRF cookie and its token."""
    client = httpx.Client(base_url=server.url, timeout=10)
    page = client.get("/")
    assert page.status_code == 200
    token = client.get("/console/api/me").json()["csrf_token"]
    return client, token


def test_the_page_is_html_with_a_strict_policy_and_gives_a_csrf_cookie(server: Server) -> None:
    page = httpx.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "voicebook_csrf=" in page.headers["set-cookie"]
    asset = httpx.get(f"{server.url}/console/static/app.js", timeout=10)
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]


def test_nothing_of_the_business_before_sign_in(server: Server) -> None:
    client, _ = opened(server)
    me = client.get("/console/api/me").json()
    assert me["signed_in"] is False and me["login_required"] is True
    assert me["business"] is None


def test_sign_in_with_the_password_sets_a_strict_httponly_cookie(server: Server) -> None:
    client, token = opened(server)
    answer = client.post(
        "/console/api/login", json={"password": PASSWORD}, headers={CSRF_HEADER: token}
    )
    assert answer.status_code == 204, answer.text
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "voicebook_console=" in c)
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert client.get("/console/api/me").json()["signed_in"] is True
    out = client.post("/console/api/logout", headers={CSRF_HEADER: token})
    assert out.status_code == 204
    assert client.get("/console/api/me").json()["signed_in"] is False


def test_the_service_key_signs_in_too(server: Server) -> None:
    client, token = opened(server)
    answer = client.post(
        "/console/api/login", json={"password": SERVICE_KEY}, headers={CSRF_HEADER: token}
    )
    assert answer.status_code == 204


def test_a_wrong_password_is_refused_with_a_sentence(server: Server) -> None:
    client, token = opened(server)
    answer = client.post(
        "/console/api/login", json={"password": "guess"}, headers={CSRF_HEADER: token}
    )
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "wrong_password"
    assert "VOICEBOOK_CONSOLE_PASSWORD" in error["message"]
    assert "voicebook_console=" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    ("with_token", "headers"),
    [
        (False, {}),
        (False, {CSRF_HEADER: "not-the-token"}),
        (True, {"Origin": "https://evil.example"}),
        (True, {"Sec-Fetch-Site": "cross-site"}),
    ],
    ids=["no-token", "wrong-token", "foreign-origin", "cross-site"],
)
def test_a_write_without_the_pages_token_or_from_elsewhere_is_refused(
    server: Server, with_token: bool, headers: dict[str, str]
) -> None:
    client, token = opened(server)
    sent = {CSRF_HEADER: token, **headers} if with_token else headers
    answer = client.post("/console/api/login", json={"password": PASSWORD}, headers=sent)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "csrf_refused"
    assert client.get("/console/api/me").json()["signed_in"] is False


def test_a_forged_or_expired_cookie_is_not_a_sign_in(server: Server) -> None:
    settings = Settings(console_password=PASSWORD)
    value, lifetime = issue_cookie(settings, "password", now=1_000_000)
    assert read_cookie(settings, value, now=1_000_000 + lifetime - 1) == CookieClaim("password")
    assert read_cookie(settings, value, now=1_000_000 + lifetime + 1) is None
    assert read_cookie(Settings(console_password="another password"), value, now=1_000_000) is None
    body, _, signature = value.rpartition(".")
    far_future = body.split(".")
    far_future[1] = str(10**12)
    forged = ".".join(far_future) + "." + signature
    assert read_cookie(settings, forged, now=1_000_000) is None
    # An account's cookie names its account last; another name under its signature is no sign-in.
    mine, _ = issue_cookie(settings, "account", ("maria", "$argon2id$hash"), now=1_000_000)
    claim = read_cookie(settings, mine, now=1_000_000)
    assert claim is not None and (claim.via, claim.account) == ("account", "maria")
    body, _, signature = mine.rpartition(".")
    assert read_cookie(settings, f"{body[: -len('maria')]}admin.{signature}", now=1_000_000) is None
    promoted = body.replace(".account.", ".service_key.", 1)
    assert read_cookie(settings, f"{promoted}.{signature}", now=1_000_000) is None
    client = httpx.Client(base_url=server.url, cookies={"voicebook_console": forged}, timeout=10)
    assert client.get("/console/api/me").json()["signed_in"] is False


def test_sign_in_attempts_are_limited_per_address(tmp_path: Path) -> None:
    with running_server({"VOICEBOOK_CONSOLE_PASSWORD": PASSWORD}, tmp_path) as fresh:
        client, token = opened(fresh)
        codes = [
            client.post(
                "/console/api/login", json={"password": "nope"}, headers={CSRF_HEADER: token}
            ).status_code
            for _ in range(11)
        ]
        assert codes[:10] == [401] * 10
        assert codes[10] == 429
        # Even the right password waits: guessing must not be able to continue.
        right = client.post(
            "/console/api/login", json={"password": PASSWORD}, headers={CSRF_HEADER: token}
        )
        assert right.status_code == 429 and "retry-after" in right.headers


@pytest.mark.parametrize("blank", ["", "   "])
def test_without_any_secret_the_console_is_open_as_the_api_is(tmp_path: Path, blank: str) -> None:
    with running_server({"VOICEBOOK_CONSOLE_PASSWORD": blank}, tmp_path) as fresh:
        client, _ = opened(fresh)
        me = client.get("/console/api/me").json()
        assert me["signed_in"] is True and me["login_required"] is False

"""A real browser for the console's tests: Debian's Chromium (`/usr/bin/chromium`, installed by
.ci/run) driven by Playwright for Python, which is pointed at that executable (no browser
download). Without Chromium the test skips with one line (a failure under
VOICEBOOK_REQUIRE_SERVICES, as for Postgres and Redis).

Set VOICEBOOK_SCREENSHOT_DIR to keep a screenshot of every `snap()` for a person to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from conftest import service_missing

CHROMIUM = Path(os.environ.get("VOICEBOOK_TEST_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "console-test-password"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (each test opens its own context)."""
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} is missing; apt-get install chromium")
    with sync_playwright() as playwright:
        # The sandbox needs user namespaces, which a container running as root does not give.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


def snap(page: Page, name: str) -> None:
    """Keep a screenshot when VOICEBOOK_SCREENSHOT_DIR is set (for looking, not asserting)."""
    folder = os.environ.get("VOICEBOOK_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        page.screenshot(path=str(Path(folder) / f"{safe}.png"), full_page=True)


def sign_in(page: Page, url: str, password: str = PASSWORD) -> None:
    """Open the console and sign in through its form, as an operator would."""
    page.goto(url)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Console sections").wait_for()

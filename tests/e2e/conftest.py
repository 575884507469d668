"""Fixtures of the console tests: one real ``aip up`` for the directory, and for the browser
tests headless Debian Chromium (``/usr/bin/chromium``) driven by Playwright, signed in once.

Browser tests skip cleanly where Chromium or Playwright is missing (``make browser`` installs
Chromium; ``pip install -e '.[dev]'`` installs Playwright). Nothing of AIP is mocked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aip.testing.server import AipServer, free_port

CHROMIUM = os.environ.get("AIP_CHROMIUM", "/usr/bin/chromium")
# The README's screenshots are refreshed on purpose, like the OpenAPI snapshot:
# AIP_UPDATE_SCREENSHOTS=1 pytest tests/e2e. Otherwise they go to a temporary directory, so
# a test run leaves the checkout as it found it.
SCREENSHOTS = (Path(__file__).resolve().parents[2] / "docs" / "img"
               if os.environ.get("AIP_UPDATE_SCREENSHOTS") == "1"
               else Path(tempfile.gettempdir()) / "aip-console-screenshots")
VIEWPORT = {"width": 1280, "height": 800}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if "browser" in getattr(item, "fixturenames", ()) or "page" in getattr(
                    item, "fixturenames", ()):
                item.add_marker(pytest.mark.e2e)


# Package scope: both end with the last test here. Playwright's sync API keeps an asyncio
# loop marked running in the main thread while it is open, which would break every later
# test that calls asyncio.run().
@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AipServer]:
    """The default test node (8 cpu, 16Gi, 4×T4, 4 tpu), and a small queue for quota tests.
    The router gets a free port too, so a test run beside a real ``aip up`` (8480) works."""
    with AipServer(tmp_path_factory.mktemp("aip-console"),
                   server={"router_port": free_port()}) as running:
        running.client.create_queue({"name": "tiny", "quota": {"cpu": 1},
                                     "description": "one CPU, for quota tests"})
        yield running


@pytest.fixture
def anonymous(server: AipServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        yield client


@pytest.fixture
def signed_in(server: AipServer) -> Iterator[httpx.Client]:
    """An httpx client holding a console session cookie, sending this server's Origin."""
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10,
                      headers={"Origin": server.url}) as client:
        answer = client.post("/login", data={"token": server.token, "next": "/"})
        assert answer.status_code == 303, answer.text
        yield client


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Any, server: AipServer) -> Iterator[Any]:
    """A page signed in through the login form, as a person does."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    context.set_default_timeout(15_000)
    opened = context.new_page()
    opened.goto(server.url + "/")
    assert "/login" in opened.url
    opened.fill("input[name=token]", server.token)
    opened.click("button[type=submit]")
    opened.wait_for_url(server.url + "/")
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> None:
    """<name>.png at 1280x800 in SCREENSHOTS: what the README shows."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)

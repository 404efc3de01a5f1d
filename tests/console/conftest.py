"""Console tests: Debian's chromium driven by Playwright against a real gateway process of the
test module's own and the fake upstream.

Chromium comes from Debian (``apt-get install -y chromium``), never from ``playwright install``.
Without it these tests skip, unless ``MODELGATE_REQUIRE_SERVICES=1`` (CI), where it is a failure.
Every browser context refuses requests that leave 127.0.0.1 and records them (``Console.outside``),
and collects JavaScript errors (``Console.js_errors``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.harness import REPO, GatewayProcess

ARTIFACTS = REPO / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = frozenset({"127.0.0.1"})


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    message = "Debian's chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("MODELGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and MODELGATE_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{message} (set MODELGATE_REQUIRE_SERVICES=1 to make this a failure)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway of this test module's own, so modules never see each other's data."""
    gateway = GatewayProcess(tmp_path_factory.mktemp("console")).start()
    try:
        yield gateway
    finally:
        gateway.stop()


class Console:
    """One person's browser (its own cookies) on the console."""

    def __init__(self, browser: Any, gw: GatewayProcess, width: int = 1280, height: int = 900) -> None:
        self.gw = gw
        self.context = browser.new_context(base_url=gw.base_url, viewport={"width": width, "height": height})
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gw.base_url)
        self.outside: list[str] = []
        self.js_errors: list[str] = []
        self.context.route("**/*", self._guard)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)  # a loaded 2-core machine can be slow
        self.page.set_default_navigation_timeout(60_000)
        self.page.on("pageerror", lambda exc: self.js_errors.append(str(exc)))
        self.page.on("console", lambda msg: msg.type == "error" and self.js_errors.append(msg.text))

    def _guard(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def goto(self, path: str) -> Any:
        response = self.page.goto(path)
        self.page.wait_for_load_state("load")
        return response

    def login(self, username: str, password: str) -> Console:
        self.goto("/console/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r".*/console/?$"))
        return self

    def csrf(self) -> str:
        return str(self.page.locator("input[name=csrf_token]").first.get_attribute("value"))

    def flash(self) -> str:
        return str(self.page.locator(".alert-success").first.inner_text())

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"console-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console_of(browser: Any, gw: GatewayProcess) -> Iterator[Any]:
    """``console_of()`` opens a fresh browser context; all are closed after the test."""
    opened: list[Console] = []

    def open_console(width: int = 1280, height: int = 900) -> Console:
        c = Console(browser, gw, width, height)
        opened.append(c)
        return c

    yield open_console
    for c in opened:
        c.close()

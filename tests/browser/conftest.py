"""Browser fixtures: the dev stack with its demo page on free loopback ports, and Debian's Chromium.

- ``demo_stack``: one stack for the module, the API and the demo page on two origins (so every call the page
  makes is a real CORS request), always on the Twilio sandbox; ``demo_stack.gateway_log`` holds the gateway's
  log lines (``"OPTIONS /start-verify 204 1.2ms"``), the requests that really reached it.
- ``browser``: Chromium through Playwright, launched once per session. Without ``/usr/bin/chromium`` (or
  without Playwright) the browser tests are skipped, except when ``CI`` is set: CI installs both, so there
  their absence is a failure.
- ``page``: a fresh browser context and page per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from devserver.stack import Stack, start_stack
from devserver.twilio_sandbox import TwilioSandbox
from tests.support import CONTRACT_DEFAULTS

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # per Playwright action or expectation: a stuck page fails the test, not the run

ENV = CONTRACT_DEFAULTS


@dataclass
class DemoStack:
    stack: Stack
    gateway_log: list[str] = field(default_factory=list)
    announcements: list[str] = field(default_factory=list)

    @property
    def demo_url(self) -> str:
        assert self.stack.demo_url is not None
        return self.stack.demo_url

    @property
    def sandbox(self) -> TwilioSandbox:
        assert self.stack.sandbox is not None
        return self.stack.sandbox

    def last_code(self, to: str) -> str:
        codes = [m["code"] for m in self.sandbox.outbox if m["to"] == to]
        assert codes, f"the sandbox sent nothing to {to[:2]}…{to[-4:]}"
        return str(codes[-1])


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (apt-get install -y chromium; pip install -r requirements-test.txt)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def demo_stack() -> Iterator[DemoStack]:
    announcements: list[str] = []
    stack = start_stack(
        REPO, api_port=0, sandbox_port=0, dynamodb_port=0, demo_port=0, env=ENV, announce=announcements.append
    )
    try:
        demo = DemoStack(stack, announcements=announcements)
        assert stack.gateway is not None and stack.demo_url is not None
        forward = stack.gateway.log

        def record(line: str) -> None:
            demo.gateway_log.append(line)
            forward(line)

        stack.gateway.log = record
        yield demo
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -r requirements-test.txt)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 760, "height": 720})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def expect(browser: Any) -> Any:
    """Playwright's auto-waiting ``expect`` (imported here: Playwright may be absent outside CI)."""
    from playwright.sync_api import expect

    return expect

"""The demo page with AGENT_AUTH=none: what it says is true (no agent is identified, no customer is shown)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devserver.stack import Stack, start_stack
from tests.browser.conftest import ENV, REPO

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def none_stack() -> Iterator[Stack]:
    env = {**ENV, "AGENT_AUTH": "none"}
    stack = start_stack(
        REPO, api_port=0, sandbox_port=0, dynamodb_port=0, demo_port=0, env=env, announce=lambda _: None
    )
    try:
        yield stack
    finally:
        stack.stop()


def test_the_banner_names_no_agent_and_the_customer_stays_off(page: Any, expect: Any, none_stack: Stack) -> None:
    # Given the page of a stack in AGENT_AUTH=none (config.json still hands out a sandbox token)
    page.goto(f"{none_stack.demo_url}/")
    status = page.locator("#status")
    expect(status).to_have_text("Ready. Send a code to the caller.")

    # Then it says no agent is identified, and why customer data stays off
    expect(page.locator("#agent")).to_have_text("no identified agent (AGENT_AUTH=none)")
    expect(page.locator("#mode")).to_be_visible()
    expect(page.locator("#mode")).to_contain_text("never releases customer data")
    assert "dev-agent" not in page.locator("main").inner_text()

    # When the agent verifies a caller, as with the unmodified plugin
    page.get_by_role("button", name="Send code").click()
    expect(status).to_contain_text("Code sent")
    assert none_stack.sandbox is not None
    code = [m["code"] for m in none_stack.sandbox.outbox if m["to"] == "+12025550100"][-1]
    page.get_by_label("Code the caller read back").fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(status).to_contain_text("Verification success.")

    # Then the customer button stays off, as the banner said
    expect(page.get_by_role("button", name="Show customer")).to_be_disabled()

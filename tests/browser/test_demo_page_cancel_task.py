"""The demo page's cancel, task SID and code hint, in Chromium against the local stack (AGENT_AUTH=flex)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

pytestmark = pytest.mark.browser

TO = "+12025550100"


def _requests(page: Any) -> list[Any]:
    seen: list[Any] = []
    page.on("request", lambda request: seen.append(request) if request.method != "OPTIONS" else None)
    return seen


def _fields(request: Any) -> dict[str, str]:
    raw = request.post_data if request.method == "POST" else urlsplit(request.url).query
    return {k: v[0] for k, v in parse_qs(raw or "").items()}


def test_every_call_names_the_task_and_cancel_revokes_the_approval(page: Any, expect: Any, demo_stack: Any) -> None:
    # Given the page, which made up a task SID of its own as Flex would have one
    seen = _requests(page)
    page.goto(demo_stack.demo_url + "/")
    status = page.locator("#status")
    expect(status).to_contain_text("Ready")
    task = page.get_by_label("Task SID").input_value()
    assert task.startswith("WT") and len(task) == 34
    cancel = page.get_by_role("button", name="Cancel")
    expect(cancel).to_be_disabled()  # nothing to cancel yet

    # When the agent sends, verifies, shows the customer, then cancels
    page.get_by_role("button", name="Send code").click()
    expect(status).to_contain_text("Code sent")
    expect(cancel).to_be_enabled()
    page.get_by_label("Code the caller read back").fill(demo_stack.last_code(TO))
    page.get_by_role("button", name="Verify").click()
    expect(status).to_contain_text("Verification success.")
    page.get_by_role("button", name="Show customer").click()
    expect(page.locator('dd[data-field="name"]')).to_have_text("Ada Lovelace")
    cancel.click()

    # Then the approval is gone: the page says so, hides the record, and the server refuses it now
    expect(status).to_have_text("Verification cancelled: the code no longer works and the approval is revoked.")
    expect(page.locator("#customer")).to_be_hidden()
    expect(page.get_by_role("button", name="Show customer")).to_be_disabled()
    page.evaluate("document.getElementById('show').disabled = false")
    page.get_by_role("button", name="Show customer").click()
    expect(status).to_have_text("This caller has not been verified by this agent, or it has expired.")

    # And every call named the task
    calls = [(urlsplit(r.url).path, _fields(r)) for r in seen if r.url.startswith(demo_stack.stack.api_url)]
    paths = [path for path, _ in calls]
    assert paths == ["/start-verify", "/check-verify", "/customer-info", "/cancel-verify", "/customer-info"]
    assert all(fields.get("taskSid") == task and fields.get("to") == TO for _, fields in calls)


def test_the_approval_is_bound_to_the_task(page: Any, expect: Any, demo_stack: Any) -> None:
    # Given a caller verified for one task
    to = "+12025550101"
    page.goto(demo_stack.demo_url + "/")
    status = page.locator("#status")
    expect(status).to_contain_text("Ready")
    page.get_by_label("Customer phone number").fill(to)
    page.get_by_label("Task SID").fill("WT" + "a" * 32)
    page.get_by_role("button", name="Send code").click()
    expect(status).to_contain_text("Code sent")
    page.get_by_label("Code the caller read back").fill(demo_stack.last_code(to))
    page.get_by_role("button", name="Verify").click()
    expect(status).to_contain_text("Verification success.")

    # When the agent asks for the customer in another task
    page.get_by_label("Task SID").fill("WT" + "b" * 32)
    page.get_by_role("button", name="Show customer").click()

    # Then the server refuses
    expect(status).to_have_text("This caller has not been verified by this agent, or it has expired.")


def test_the_page_says_where_the_sandbox_s_code_can_be_read(page: Any, expect: Any, demo_stack: Any) -> None:
    page.goto(demo_stack.demo_url + "/")
    expect(page.locator("#status")).to_contain_text("Ready")

    hint = page.locator("#code-hint")
    expect(hint).to_contain_text("the Twilio sandbox prints each code in make dev's terminal")
    link = page.get_by_role("link", name="its outbox")
    expect(link).to_have_attribute("href", f"{demo_stack.stack.outbox_url}?to=%2B12025550100")
    page.get_by_label("Customer phone number").fill("+12025550101")
    expect(link).to_have_attribute("href", f"{demo_stack.stack.outbox_url}?to=%2B12025550101")
    expect(page.locator("#mode")).to_be_hidden()  # AGENT_AUTH=flex: nothing to warn about


@pytest.mark.browser
def test_the_dev_token_never_goes_to_another_api(page: Any, expect: Any, demo_stack: Any) -> None:
    # Given the page pointed at another API than the stack's (here: the sandbox's address), with no token given
    other = str(demo_stack.stack.sandbox_url)
    sent: list[Any] = []
    page.on("request", lambda request: sent.append(request) if request.url.startswith(other) else None)
    page.goto(f"{demo_stack.demo_url}/?{urlencode({'api': other})}")
    expect(page.locator("#status")).to_contain_text("Ready, without an agent token")

    # When the agent sends a code
    page.get_by_label("Customer phone number").fill("+12025550102")
    page.get_by_role("button", name="Send code").click()
    expect(page.locator("#status")).not_to_contain_text("Ready")

    # Then the other API was called without config.json's dev token
    assert sent, "the page called no API"
    assert all("x-flex-token" not in request.all_headers() for request in sent)

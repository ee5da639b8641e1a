"""The demo page with TaskRouter checks on (TASKROUTER_WORKSPACE_SID), in Chromium: it works on the stack's
ready task, and the record stops being dev-agent's once the task moves to someone else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devserver.samples import SANDBOX_WORKSPACE_SID
from devserver.stack import start_stack
from tests.browser.conftest import ENV, REPO, DemoStack

pytestmark = pytest.mark.browser

TO = "+12025550100"


@pytest.fixture(scope="module")
def demo_stack() -> Iterator[DemoStack]:
    announcements: list[str] = []
    env = {**ENV, "TASKROUTER_WORKSPACE_SID": SANDBOX_WORKSPACE_SID}
    stack = start_stack(
        REPO, api_port=0, sandbox_port=0, dynamodb_port=0, demo_port=0, env=env, announce=announcements.append
    )
    try:
        yield DemoStack(stack, announcements=announcements)
    finally:
        stack.stop()


def test_the_page_works_on_the_ready_task_until_it_is_transferred(page: Any, expect: Any, demo_stack: Any) -> None:
    # Given the page, on the task make dev printed (caller TO, held by dev-agent)
    page.goto(demo_stack.demo_url + "/")
    status = page.locator("#status")
    expect(status).to_contain_text("Ready")
    assert page.get_by_label("Task SID").input_value() == demo_stack.stack.ready_task

    # When dev-agent sends, verifies and shows the customer
    page.get_by_role("button", name="Send code").click()
    expect(status).to_contain_text("Code sent")
    page.get_by_label("Code the caller read back").fill(demo_stack.last_code(TO))
    page.get_by_role("button", name="Verify").click()
    expect(status).to_contain_text("Verification success.")
    page.get_by_role("button", name="Show customer").click()

    # Then the record is shown
    expect(page.locator('dd[data-field="name"]')).to_have_text("Ada Lovelace")

    # And once the task is transferred and its new holder reads the record (no second code), dev-agent is
    # refused with TaskRouter's reason (the new holder's fresh look ends what the stack had seen of dev-agent)
    task = demo_stack.stack.ready_task
    demo_stack.sandbox.taskrouter.transfer(task, "other-agent")
    other = requests.get(
        f"{demo_stack.stack.api_url}/customer-info",
        params={"to": TO, "taskSid": task},
        headers={"X-Flex-Token": demo_stack.sandbox.issue_token("other-agent", ["agent"])},
        timeout=10,
    )
    assert other.status_code == 200, other.text
    page.evaluate("document.getElementById('show').disabled = false")
    page.get_by_role("button", name="Show customer").click()
    expect(status).to_have_text("You are not handling this task now (it was transferred, completed or canceled).")


def test_the_banner_prints_the_ready_task_and_names_it_in_every_request(demo_stack: Any) -> None:
    from devserver.__main__ import banner

    text = banner(demo_stack.stack, "flex")
    task = demo_stack.stack.ready_task
    assert f"export TASK={task}" in text
    assert f"Ready task     {task}" in text
    assert text.count('--data-urlencode "taskSid=$TASK"') == 2  # start and check
    assert "&taskSid=$TASK" in text  # customer-info

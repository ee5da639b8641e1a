"""TASKROUTER_WORKSPACE_SID set, over HTTP against the dev stack: tasks made and moved through the sandbox's own
endpoints (``POST /sandbox/tasks``, ``/transfer``, ``/complete``), the API asked as the patched plugin asks it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from callerauth.privacy import mask

from devserver.samples import SANDBOX_WORKSPACE_SID
from devserver.sandbox_taskrouter import worker_sid
from tests.contract.conftest import TIMEOUT, LocalStack
from tests.support import ACCOUNT_SID, TASK, TO

pytestmark = pytest.mark.stack

# Sample customers (devserver/sample_customers.json), one per test: the sandbox allows 5 sends per number.
HOLDER, CALLER, STRANGER, COMPLETED, DOWN = (
    "+12025550101",
    "+12025550102",
    "+12025550103",
    "+447400123456",
    "+12025550100",
)


@pytest.fixture(scope="module")
def stack(local_stack: Callable[..., Any]) -> Iterator[LocalStack]:
    with local_stack(TASKROUTER_WORKSPACE_SID=SANDBOX_WORKSPACE_SID, SEND_COOLDOWN_SECONDS="0") as running:
        yield running


def new_task(stack: LocalStack, caller: str, worker: str) -> str:
    response = requests.post(
        f"{stack.stack.sandbox_url}/sandbox/tasks", json={"from": caller, "worker": worker}, timeout=TIMEOUT
    )
    assert response.status_code == 201, response.text
    return str(response.json()["taskSid"])


def steer(stack: LocalStack, task: str, change: str, **body: str) -> None:
    url = f"{stack.stack.sandbox_url}/sandbox/tasks/{task}/{change}"
    response = requests.post(url, json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text


class Agent:
    """An agent of the patched plugin: every request carries the Flex token and the task."""

    def __init__(self, stack: LocalStack, identity: str, task: str, roles: tuple[str, ...] = ("agent",)) -> None:
        self.stack, self.identity, self.task, self.token = stack, identity, task, stack.token(identity, roles)

    def post(self, path: str, to: str, **fields: str) -> requests.Response:
        return self.stack.post(path, {"to": to, "taskSid": self.task, **fields}, token=self.token)

    def start(self, to: str) -> requests.Response:
        return self.post("/start-verify", to)

    def check(self, to: str) -> requests.Response:
        return self.post("/check-verify", to, verification_code=self.stack.last_code(to))

    def customer_info(self, to: str) -> requests.Response:
        headers = {"X-Flex-Token": self.token}
        query = {"to": to, "taskSid": self.task}
        return requests.get(f"{self.stack.api}/customer-info", params=query, headers=headers, timeout=TIMEOUT)


def trail(stack: LocalStack, number: str) -> list[tuple[str, str, str, str | None]]:
    """The audit events of ``number``, oldest first: (action, outcome, agent, task)."""
    items = [i for i in stack.state_items() if str(i["sk"]).startswith("AUDIT#") and i["to"] == mask(number)]
    return [(i["action"], i["outcome"], i["agent"], i.get("task_sid")) for i in sorted(items, key=lambda i: i["sk"])]


def test_the_holder_verifies_and_reads_and_after_a_transfer_only_the_new_holder_reads(
    stack: LocalStack, failure: Callable[..., Any]
) -> None:
    # Given a task for HOLDER's call, held by alice, who verifies the caller and reads the record
    task = new_task(stack, HOLDER, "alice")
    alice, bob = Agent(stack, "alice", task), Agent(stack, "bob", task)
    assert alice.start(HOLDER).status_code == 200
    assert alice.check(HOLDER).status_code == 200
    assert alice.customer_info(HOLDER).status_code == 200

    # When the task is transferred to bob, and both ask for the record
    steer(stack, task, "transfer", worker="bob")
    by_bob, by_alice = bob.customer_info(HOLDER), alice.customer_info(HOLDER)

    # Then bob reads it without a second code, alice is refused, and the trail says who read it on which task
    assert by_bob.status_code == 200, by_bob.text
    assert by_bob.json()["customer"]["accountNumber"]
    assert len(stack.outbox(HOLDER)) == 1
    failure(by_alice, 403, "task_not_held")
    assert trail(stack, HOLDER) == [
        ("start", "sent", "alice", task),
        ("check", "approved", "alice", task),
        ("customer_info", "served", "alice", task),
        ("customer_info", "served", "bob", task),
        ("customer_info", "task_not_held", "alice", task),
    ]


def test_a_number_that_is_not_the_tasks_caller_is_refused(stack: LocalStack, failure: Callable[..., Any]) -> None:
    # Given alice holds the task of CALLER's call / When she asks for a code to another number on it
    alice = Agent(stack, "alice", new_task(stack, CALLER, "alice"))
    answer = alice.start(STRANGER)

    # Then 403 not_task_caller, nothing sent, audited under that number
    failure(answer, 403, "not_task_caller")
    assert stack.outbox(STRANGER) == []
    assert trail(stack, STRANGER) == [("start", "not_task_caller", "alice", alice.task)]


def test_an_agent_who_does_not_hold_the_task_is_refused(stack: LocalStack, failure: Callable[..., Any]) -> None:
    # Given alice holds the task of CALLER's call / When carol asks for a code on it
    task = new_task(stack, CALLER, "alice")
    answer = Agent(stack, "carol", task).start(CALLER)

    # Then 403 task_not_held, nothing sent, audited with carol
    failure(answer, 403, "task_not_held")
    assert stack.outbox(CALLER) == []
    assert ("start", "task_not_held", "carol", task) in trail(stack, CALLER)


def test_after_completion_nobody_reads(stack: LocalStack, failure: Callable[..., Any]) -> None:
    # Given alice verified COMPLETED on her task
    task = new_task(stack, COMPLETED, "alice")
    alice = Agent(stack, "alice", task)
    assert alice.start(COMPLETED).status_code == 200
    assert alice.check(COMPLETED).status_code == 200

    # When the task is completed, and alice and a supervisor ask for the record
    steer(stack, task, "complete")
    answers = [alice.customer_info(COMPLETED), Agent(stack, "sam", task, ("supervisor",)).customer_info(COMPLETED)]

    # Then neither gets it, and both refusals are audited
    for answer in answers:
        failure(answer, 403, "task_not_held")
    assert trail(stack, COMPLETED)[-2:] == [
        ("customer_info", "task_not_held", "alice", task),
        ("customer_info", "task_not_held", "sam", task),
    ]


def test_an_unknown_task_is_refused(stack: LocalStack, failure: Callable[..., Any]) -> None:
    answer = Agent(stack, "alice", TASK).start(CALLER)
    failure(answer, 403, "task_not_found")
    assert ("start", "task_not_found", "alice", TASK) in trail(stack, CALLER)


def test_taskrouter_down_is_503_and_nothing_is_sent(stack: LocalStack, failure: Callable[..., Any]) -> None:
    # Given a fresh task (no look at it is remembered), and TaskRouter answering 503 next
    task = new_task(stack, DOWN, "alice")
    url = f"{stack.stack.sandbox_url}/sandbox/taskrouter/fail-next"
    assert requests.post(url, json={"status": 503}, timeout=TIMEOUT).status_code == 200

    # When alice asks for a code / Then 503 with Retry-After, nothing sent, audited
    failure(Agent(stack, "alice", task).start(DOWN), 503, "upstream_unavailable")
    assert stack.outbox(DOWN) == []
    assert trail(stack, DOWN) == [("start", "upstream_unavailable", "alice", task)]


def test_the_ready_task_is_dev_agents_for_the_sample_customer(stack: LocalStack) -> None:
    # Given the task the stack made at start (make dev prints it) / When dev-agent verifies and reads on it
    assert stack.stack.ready_task
    agent = Agent(stack, "dev-agent", stack.stack.ready_task)
    answers = [agent.start(TO), agent.check(TO), agent.customer_info(TO)]
    # Then all succeed
    assert [a.status_code for a in answers] == [200, 200, 200], answers[-1].text


def test_every_identity_has_a_stable_worker_sid_in_its_token(stack: LocalStack) -> None:
    sandbox = stack.stack.sandbox_url
    seen = set()
    for _ in range(2):
        token = requests.post(f"{sandbox}/agent-tokens", data={"identity": "alice"}, timeout=TIMEOUT).json()["token"]
        answer = requests.post(
            f"{sandbox}/v1/Accounts/{ACCOUNT_SID}/Tokens/validate",
            json={"token": token},
            auth=(ACCOUNT_SID, stack.env.get("AUTH_TOKEN") or stack.sandbox.auth_token),
            timeout=TIMEOUT,
        ).json()
        seen.add(answer["worker_sid"])
    assert seen == {worker_sid(ACCOUNT_SID, "alice")}

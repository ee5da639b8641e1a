"""TASKROUTER_WORKSPACE_SID set: the task's holder verifies the task's caller, and the approval follows the task.

Through the handlers, against moto and the Twilio sandbox's TaskRouter (devserver/sandbox_taskrouter.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devserver.samples import SANDBOX_WORKSPACE_SID
from devserver.sandbox_taskrouter import worker_sid
from tests.support import ACCOUNT_SID, MASKED, TASK, TO, VISIBLE, free_port

OTHER = "+12025550199"  # a real number, but not the task's caller
MASKED_OTHER = "+1******0199"

REQUESTS: dict[str, Callable[..., Any]] = {
    "start": lambda c, to, **f: c.start(to, **f),
    "check": lambda c, to, **f: c.check(to, code="123456", **f),
    "cancel": lambda c, to, **f: c.cancel(to, **f),
    "customer_info": lambda c, to, **f: c.customer_info(to, **f),
}


@pytest.fixture
def tr(api: Callable[..., Any]) -> Callable[..., Any]:
    """An Api with AgentAuth=flex and TaskRouter checks on (the sandbox's workspace)."""

    def make(**env: str) -> Any:
        return api(AGENT_AUTH="flex", TASKROUTER_WORKSPACE_SID=SANDBOX_WORKSPACE_SID, **env)

    return make


@pytest.fixture
def as_agent(sandbox: Any) -> Callable[..., dict[str, str]]:
    """``as_agent("alice", task)``: the fields that make a request alice's, on that task."""

    def fields(identity: str, task: str | None = None, roles: tuple[str, ...] = ("agent",)) -> dict[str, str]:
        named = {"Token": str(sandbox.issue_token(identity, list(roles)))}
        return named | ({"taskSid": task} if task else {})

    return fields


def _audited(audit: Any, answer: Any, action: str, outcome: str, agent: str, task: str | None, to: str = MASKED):
    event = audit.of(answer)
    seen = (event["action"], event["outcome"], event["agent"], event.get("task_sid"), event["to"])
    assert seen == (action, outcome, agent, task, to), event
    assert event["worker_sid"] == worker_sid(ACCOUNT_SID, agent)


# ----------------------------------------------------------------------------------- the holder verifies


def test_the_holder_verifies_the_tasks_caller_and_reads_the_record(
    tr: Callable[..., Any], sandbox: Any, as_agent: Callable[..., dict[str, str]], audit: Any
) -> None:
    # Given a task for TO's call, held by alice
    task = sandbox.taskrouter.create_task(TO, "alice")
    client, alice = tr(), as_agent("alice", task)

    # When alice sends the code, checks it and asks for the customer, naming the task
    started = client.start(TO, **alice)
    checked = client.check(TO, **alice)
    served = client.customer_info(TO, **alice)

    # Then each is allowed, the record is released, and each is audited with alice and the task
    assert (started.status, checked.status, served.status) == (200, 200, 200), served.body
    assert served.body["customer"] == VISIBLE
    for answer, action, outcome in ((started, "start", "sent"), (checked, "check", "approved")):
        _audited(audit, answer, action, outcome, "alice", task)
    _audited(audit, served, "customer_info", "served", "alice", task)


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_a_number_that_is_not_the_tasks_caller_is_refused(
    action: str,
    tr: Callable[..., Any],
    sandbox: Any,
    as_agent: Callable[..., dict[str, str]],
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given alice holds the task of TO's call
    task = sandbox.taskrouter.create_task(TO, "alice")

    # When she names another number on it
    answer = REQUESTS[action](tr(), OTHER, **as_agent("alice", task))

    # Then 403 not_task_caller, nothing sent, audited under that number
    error = assert_error(answer, 403, "not_task_caller")
    assert "caller" in error["message"]
    assert sandbox.outbox == []
    _audited(audit, answer, action, "not_task_caller", "alice", task, MASKED_OTHER)


def test_a_supervisor_holding_the_task_may_verify_another_number(
    tr: Callable[..., Any], sandbox: Any, as_agent: Callable[..., dict[str, str]]
) -> None:
    # Given a supervisor who holds the task of TO's call
    task = sandbox.taskrouter.create_task(TO, "sam")

    # When the supervisor sends a code to another number (say, the account holder's) on that task
    answer = tr().start(OTHER, **as_agent("sam", task, roles=("supervisor",)))

    # Then it is sent: SupervisorRoles may verify a number that is not the task's caller
    assert answer.status == 200, answer.body
    assert [m["to"] for m in sandbox.outbox] == [OTHER]


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_an_agent_who_does_not_hold_the_task_is_refused(
    action: str,
    tr: Callable[..., Any],
    sandbox: Any,
    as_agent: Callable[..., dict[str, str]],
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given alice holds the task of TO's call
    task = sandbox.taskrouter.create_task(TO, "alice")

    # When bob (even a supervisor) calls with that task
    answer = REQUESTS[action](tr(), TO, **as_agent("bob", task, roles=("agent", "supervisor")))

    # Then 403 task_not_held, nothing sent, audited with bob and the task
    assert_error(answer, 403, "task_not_held")
    assert sandbox.outbox == []
    _audited(audit, answer, action, "task_not_held", "bob", task)


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_without_a_task_sid_every_endpoint_is_refused(
    action: str, tr: Callable[..., Any], as_agent: Callable[..., dict[str, str]], assert_error: Callable[..., Any]
) -> None:
    # Given TaskRouter checks on / When a request names no task
    answer = REQUESTS[action](tr(), TO, **as_agent("alice"))

    # Then 403 task_not_held, saying what to send
    error = assert_error(answer, 403, "task_not_held")
    assert "taskSid" in error["message"]


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_an_unknown_task_is_refused(
    action: str,
    tr: Callable[..., Any],
    sandbox: Any,
    as_agent: Callable[..., dict[str, str]],
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given a task SID TaskRouter does not know (404)
    answer = REQUESTS[action](tr(), TO, **as_agent("alice", TASK))

    # Then 403 task_not_found, audited
    assert_error(answer, 403, "task_not_found")
    assert sandbox.outbox == []
    _audited(audit, answer, action, "task_not_found", "alice", TASK)


# ------------------------------------------------------------------------------- the approval is the task's


def test_after_a_transfer_the_new_holder_reads_without_a_second_code_and_the_old_one_cannot(
    tr: Callable[..., Any],
    sandbox: Any,
    as_agent: Callable[..., dict[str, str]],
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given alice verified TO on her task and read the record
    task = sandbox.taskrouter.create_task(TO, "alice")
    client = tr()
    client.verify(TO, **as_agent("alice", task))
    assert client.customer_info(TO, **as_agent("alice", task)).status == 200

    # When the task is transferred to bob (a warm transfer) and both ask for the record
    sandbox.taskrouter.transfer(task, "bob")
    bob = client.customer_info(TO, **as_agent("bob", task))
    alice = client.customer_info(TO, **as_agent("alice", task))

    # Then bob reads it with no second code, alice no longer can, and the trail says who read it on which task
    assert bob.status == 200, bob.body
    assert bob.body["customer"] == VISIBLE
    assert len(sandbox.outbox) == 1
    _audited(audit, bob, "customer_info", "served", "bob", task)
    assert_error(alice, 403, "task_not_held")
    _audited(audit, alice, "customer_info", "task_not_held", "alice", task)


def test_after_a_transfer_the_new_holder_may_cancel(
    tr: Callable[..., Any], sandbox: Any, as_agent: Callable[..., dict[str, str]], assert_error: Callable[..., Any]
) -> None:
    # Given alice verified TO on her task, which then went to bob
    task = sandbox.taskrouter.create_task(TO, "alice")
    client = tr()
    client.verify(TO, **as_agent("alice", task))
    sandbox.taskrouter.transfer(task, "bob")

    # When bob cancels (the verification is the task's, not alice's)
    canceled = client.cancel(TO, **as_agent("bob", task))

    # Then it is canceled, and the record is no longer served
    assert canceled.status == 200, canceled.body
    assert_error(client.customer_info(TO, **as_agent("bob", task)), 403, "not_verified")


def test_after_completion_nobody_reads(
    tr: Callable[..., Any],
    sandbox: Any,
    as_agent: Callable[..., dict[str, str]],
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given alice verified TO on her task
    task = sandbox.taskrouter.create_task(TO, "alice")
    client = tr()
    client.verify(TO, **as_agent("alice", task))

    # When the task is completed, and alice, then a supervisor, ask for the record
    sandbox.taskrouter.complete(task)
    alice = client.customer_info(TO, **as_agent("alice", task))
    sam = client.customer_info(TO, **as_agent("sam", task, roles=("supervisor",)))

    # Then neither gets it, and both are audited
    for answer, agent in ((alice, "alice"), (sam, "sam")):
        assert_error(answer, 403, "task_not_held")
        _audited(audit, answer, "customer_info", "task_not_held", agent, task)


def test_a_look_that_saw_the_holder_lasts_at_most_30_seconds_after_a_completion(
    tr: Callable[..., Any],
    sandbox: Any,
    as_agent: Callable[..., dict[str, str]],
    assert_error: Callable[..., Any],
    clock: Any,
) -> None:
    # Given alice verified TO and read the record (this container has seen her holding the task)
    task = sandbox.taskrouter.create_task(TO, "alice")
    client = tr()
    client.verify(TO, **as_agent("alice", task))
    assert client.customer_info(TO, **as_agent("alice", task)).status == 200
    reads = sandbox.taskrouter.reads

    # When the task is completed and 30 s pass (the look's life) without anyone's fresh look at it
    sandbox.taskrouter.complete(task)
    clock.advance(30)
    answer = client.customer_info(TO, **as_agent("alice", task))

    # Then TaskRouter is asked again and alice is refused
    assert_error(answer, 403, "task_not_held")
    assert sandbox.taskrouter.reads == reads + 1  # the task only: a completed task has no reservation to read


def test_the_holder_may_still_read_while_wrapping_up(
    tr: Callable[..., Any], sandbox: Any, as_agent: Callable[..., dict[str, str]]
) -> None:
    # Given alice verified TO on her task, and the call ended: she is wrapping up
    task = sandbox.taskrouter.create_task(TO, "alice")
    client = tr()
    client.verify(TO, **as_agent("alice", task))
    sandbox.taskrouter.wrap(task)

    # When she asks for the record (a container that has not looked at the task yet)
    answer = tr().customer_info(TO, **as_agent("alice", task))

    # Then she gets it: a wrapping task is still hers
    assert answer.status == 200, answer.body


def test_an_approval_on_one_task_is_not_released_on_another(
    tr: Callable[..., Any], sandbox: Any, as_agent: Callable[..., dict[str, str]], assert_error: Callable[..., Any]
) -> None:
    # Given alice verified TO on one task, and holds a second task for the same caller
    first = sandbox.taskrouter.create_task(TO, "alice")
    second = sandbox.taskrouter.create_task(TO, "alice")
    client = tr()
    client.verify(TO, **as_agent("alice", first))

    # When she asks for the record on the second task
    answer = client.customer_info(TO, **as_agent("alice", second))

    # Then not_verified: the approval belongs to the task it was made on
    assert_error(answer, 403, "not_verified")


# ------------------------------------------------------------------------------------ TaskRouter down


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_taskrouter_answering_5xx_is_upstream_unavailable(
    action: str,
    tr: Callable[..., Any],
    sandbox: Any,
    as_agent: Callable[..., dict[str, str]],
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given alice's task, and TaskRouter failing
    task = sandbox.taskrouter.create_task(TO, "alice")
    sandbox.taskrouter.fail_next(503)

    # When she calls
    answer = REQUESTS[action](tr(), TO, **as_agent("alice", task))

    # Then 503 with Retry-After, never "let it through": nothing sent, audited
    assert_error(answer, 503, "upstream_unavailable")
    assert int(answer.headers["Retry-After"]) >= 1
    assert sandbox.outbox == []
    _audited(audit, answer, action, "upstream_unavailable", "alice", task)


def test_taskrouter_unreachable_is_upstream_unavailable(
    tr: Callable[..., Any], sandbox: Any, as_agent: Callable[..., dict[str, str]], assert_error: Callable[..., Any]
) -> None:
    # Given TaskRouter at an address where nothing listens
    task = sandbox.taskrouter.create_task(TO, "alice")
    client = tr(TWILIO_TASKROUTER_BASE_URL=f"http://127.0.0.1:{free_port()}")

    # When alice asks for a code / Then 503, and nothing is sent
    assert_error(client.start(TO, **as_agent("alice", task)), 503, "upstream_unavailable")
    assert sandbox.outbox == []


# ----------------------------------------------------------------------------------------------- cost


def test_a_container_asks_taskrouter_at_most_once_per_task_and_worker_in_30_seconds(
    tr: Callable[..., Any], sandbox: Any, as_agent: Callable[..., dict[str, str]], clock: Any
) -> None:
    # Given alice's task and one warm start_verify container that has looked at it once (task + reservation)
    task = sandbox.taskrouter.create_task(TO, "alice")
    client = tr(SEND_COOLDOWN_SECONDS="0")
    assert client.start(TO, **as_agent("alice", task)).status == 200
    assert sandbox.taskrouter.reads == 2

    # When she resends and cancels within 30 s, then resends once 30 s have passed
    client.start(TO, **as_agent("alice", task))
    client.cancel(TO, **as_agent("alice", task))
    within = sandbox.taskrouter.reads
    clock.advance(30)
    client.start(TO, **as_agent("alice", task))

    # Then TaskRouter was asked again only after the 30 s
    assert within == 2
    assert sandbox.taskrouter.reads == 4


def test_without_a_workspace_taskrouter_is_never_asked(
    api: Callable[..., Any], sandbox: Any, as_agent: Callable[..., dict[str, str]]
) -> None:
    # Given TaskRouter checks off (the setting empty), and a task SID the client declares
    client = api(AGENT_AUTH="flex")

    # When an agent who holds no task verifies and reads on it
    client.verify(TO, **as_agent("alice", TASK))
    answer = client.customer_info(TO, **as_agent("alice", TASK))

    # Then today's binding stands (the approving agent, the declared task), and TaskRouter was not asked
    assert answer.status == 200, answer.body
    assert sandbox.taskrouter.reads == 0

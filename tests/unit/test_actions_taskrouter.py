"""The core's TaskRouter decisions (actions._hold_task and the task-bound approval), over a scripted TaskRouter:
what is refused, before what, and who the approval serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from callerauth.refusals import Refusal, unavailable
from callerauth.taskrouter import TaskView

from tests.support import EMAIL, TASK, TO
from tests.unit.actions_helpers import AGENT_A, AGENT_B, cancel, check_right, info, send

WORKSPACE = "WS" + "0123456789abcdef" * 2
WORKER_A, WORKER_B = "WK" + "a" * 32, "WK" + "b" * 32  # the fake IAM's workers of AGENT_A and AGENT_B
OTHER = "+12025550111"


@dataclass
class Tasks:
    """TaskRouter as the test scripts it: per task, its status, holder and caller; or a refusal."""

    status: str = "assigned"
    holder: str | None = WORKER_A
    caller: str = TO
    failure: Refusal | None = None
    looks: int = 0

    def look(self, task_sid: str, worker_sid: str) -> TaskView:
        self.looks += 1
        if self.failure is not None:
            raise self.failure
        if task_sid != TASK:
            raise Refusal("task_not_found")
        return TaskView(task_sid, self.status, worker_sid == self.holder, self.caller)


def approve(world: Any, to: str, token: str, **extra: str) -> None:
    assert send(world, to, token, **extra).status == 200
    assert check_right(world, to, token, **extra).status == 200


@pytest.fixture
def tasks() -> Tasks:
    return Tasks()


@pytest.fixture
def tr_world(world_factory: Any, tasks: Tasks) -> Any:
    world = world_factory(approval_ttl_seconds=300, taskrouter_workspace_sid=WORKSPACE)
    world.services = world.services._replace(taskrouter=tasks)
    world.seed_customer(TO, name="Jane Doe")
    return world


def test_a_task_not_held_is_refused_before_dynamodb_and_twilio(tr_world: Any, tasks: Tasks) -> None:
    # Given TaskRouter says agent B does not hold the task / When B asks for a code
    answer = send(tr_world, token=AGENT_B, task_sid=TASK)
    # Then task_not_held, Verify never asked, and the one write is the audit event
    assert (answer.status, answer.code, answer.audits) == (403, "task_not_held", 1)
    assert answer.error is not None and answer.error.reason == "assigned"  # TaskRouter's word, not a missing SID
    assert tasks.looks == 1
    assert tr_world.verify.calls == []
    assert tr_world.state(TO) is None


def test_the_callers_number_is_the_tasks(tr_world: Any, tasks: Tasks) -> None:
    assert send(tr_world, OTHER, task_sid=TASK).code == "not_task_caller"
    tasks.caller = "whatsapp:" + TO  # the channel's prefix does not matter
    assert send(tr_world, TO, task_sid=TASK).status == 200


def test_an_email_task_matches_its_mailbox(tr_world: Any, tasks: Tasks) -> None:
    tasks.caller = "Jane+Orders@Example.com"
    assert send(tr_world, EMAIL, channel="email", task_sid=TASK).status == 200


def test_the_approval_follows_the_task_to_its_new_holder(tr_world: Any, tasks: Tasks) -> None:
    # Given A verified TO on the task
    approve(tr_world, TO, AGENT_A, task_sid=TASK)
    assert info(tr_world, task_sid=TASK).status == 200

    # When the task moves to B
    tasks.holder = WORKER_B

    # Then B is served without a code of his own, and A is refused
    assert info(tr_world, token=AGENT_B, task_sid=TASK).status == 200
    assert info(tr_world, token=AGENT_A, task_sid=TASK).code == "task_not_held"


def test_an_approval_made_without_the_task_is_not_the_tasks(tr_world: Any, world_factory: Any, tasks: Tasks) -> None:
    # Given an approval recorded with no task (before the workspace was set), in the same tables
    plain = tr_world.services._replace(settings=tr_world.settings._replace(taskrouter_workspace_sid=""))
    tr_world.services, with_task = plain, tr_world.services
    approve(tr_world, TO, AGENT_A)
    tr_world.services = with_task

    # When the holder asks for the record on the task / Then not_verified
    assert info(tr_world, task_sid=TASK).code == "not_verified"


def test_the_holder_may_cancel_a_code_someone_else_sent(tr_world: Any, tasks: Tasks) -> None:
    assert send(tr_world, task_sid=TASK).status == 200
    tasks.holder = WORKER_B
    assert cancel(tr_world, token=AGENT_B, task_sid=TASK).status == 200


def test_taskrouter_down_is_503_and_nothing_but_the_audit_is_written(tr_world: Any, tasks: Tasks) -> None:
    tasks.failure = unavailable("taskrouter_unreachable")
    answer = send(tr_world, task_sid=TASK)
    assert (answer.status, answer.code, answer.audits) == (503, "upstream_unavailable", 1)
    assert answer.retry_after == 5
    assert tr_world.verify.calls == []


def test_without_a_workspace_the_task_is_the_clients_word(world: Any, tasks: Tasks) -> None:
    # Given no workspace, even with an adapter at hand / Then it is never asked, and today's binding holds
    world.services = world.services._replace(taskrouter=tasks)
    world.seed_customer(TO, name="Jane Doe")
    approve(world, TO, AGENT_A, task_sid=TASK)
    assert info(world, task_sid=TASK).status == 200
    assert info(world, token=AGENT_B, task_sid=TASK).code == "not_verified"
    assert tasks.looks == 0

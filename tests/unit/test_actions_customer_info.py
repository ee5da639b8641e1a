"""The core's decisions on customer-info: what is served, and to whom.

The world, its limits and the shared steps: tests/unit/actions_helpers.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import OTHER_TASK, TASK, TO, iso
from tests.unit.actions_helpers import AGENT_A, AGENT_B, START, approve, info, send

# ------------------------------------------------------------------------------------------ customer info


def test_customer_info_serves_the_visible_fields_to_the_approving_agent(world: Any) -> None:
    # Given a customer approved by agent A for a task
    world.seed_customer(TO, name="Jane Doe", tier="gold", accountNumber="AC-1", internalNotes="never shown")
    approve(world, task_sid=TASK)
    world.clock.advance(10)

    # When (the world's requests carry fields by their canonical names)
    out = info(world, task_sid=TASK)

    # Then
    assert out.status == 200
    assert out.body == {
        "success": True,
        "verifiedAt": iso(START),
        "verifiedUntil": iso(START + 300),
        "customer": {"name": "Jane Doe", "tier": "gold", "accountNumber": "AC-1"},
        # the world's Lookup is off: nothing about the number was weighed
        "assurance": {
            "channel": "sms",
            "method": "agent",
            "verifiedAt": iso(START),
            "riskCheck": {"verdict": "not_checked"},
        },
    }
    assert out.audits == 1
    assert world.audits()[-1]["outcome"] == "served"


@pytest.mark.parametrize(
    ("approved_task", "token", "asked_task", "status"),
    [
        (TASK, AGENT_A, {"task_sid": TASK}, 200),
        (TASK, AGENT_A, {}, 403),  # an approval bound to a task is released only to a request naming it
        (None, AGENT_A, {"task_sid": OTHER_TASK}, 200),
        (TASK, AGENT_A, {"task_sid": OTHER_TASK}, 403),
        (TASK, AGENT_B, {"task_sid": TASK}, 403),
        (None, AGENT_B, {}, 403),
    ],
)
def test_an_approval_is_bound_to_its_agent_and_task(
    world: Any, approved_task: str | None, token: str, asked_task: dict[str, str], status: int
) -> None:
    # Given agent A's approval (for a task, or not)
    world.seed_customer(TO, name="Jane Doe")
    approve(world, **({"task_sid": approved_task} if approved_task else {}))

    # When
    out = info(world, token=token, **asked_task)

    # Then
    assert out.status == status
    if status == 403:
        assert out.code == "not_verified"
        assert "customer" not in out.body
    assert out.audits == 1


def test_an_approval_expires_with_the_clock(world: Any) -> None:
    # Given an approval for 300 s
    world.seed_customer(TO, name="Jane Doe")
    approve(world)

    # When
    world.clock.advance(299)
    last_second = info(world)
    world.clock.advance(1)
    expired = info(world)

    # Then
    assert last_second.status == 200
    assert (expired.status, expired.code) == (403, "not_verified")


def test_customer_info_without_an_approval_is_not_verified(world: Any) -> None:
    # Given a customer, a code sent but never checked
    world.seed_customer(TO, name="Jane Doe")
    send(world)

    # When
    out = info(world)

    # Then
    assert (out.status, out.code, out.audits) == (403, "not_verified", 1)


def test_customer_info_for_an_approved_number_without_a_record_is_customer_not_found(world: Any) -> None:
    # Given an approval, but no customer record
    approve(world)

    # When
    out = info(world)

    # Then
    assert (out.status, out.code, out.audits) == (404, "customer_not_found", 1)

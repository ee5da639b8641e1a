"""The core's decisions on the audit trail, invalid fields, and DynamoDB outages.

The world, its limits and the shared steps: tests/unit/actions_helpers.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from callerauth.actions import cancel_verify, check_verify, customer_info, start_verify
from callerauth.twilio_verify import error_for

from tests.support import TO, refused
from tests.unit.actions_helpers import (
    AGENT_B,
    OTHER,
    FailingClient,
    approve,
    cancel,
    check,
    check_right,
    check_wrong,
    closed_port_client,
    info,
    send,
)

# ------------------------------------------------------------------------------------------ audit


def test_every_request_writes_exactly_one_audit_event_whatever_its_path(world_factory: Callable[..., Any]) -> None:
    # Given a deployment that lets every path happen
    world = world_factory(max_failed_checks=2, lockout_seconds=120, allowed_countries=frozenset({"US"}))
    world.seed_customer(TO, name="Jane Doe")
    before = world.audit_count()
    outcomes: list[tuple[str, Any]] = []

    expected: dict[str, tuple[int, str | None]] = {}

    def record(label: str, outcome: Any, status: int, code: str | None = None) -> None:
        outcomes.append((label, outcome))
        expected[label] = (status, code)

    # When: every answer each action can give
    record("start: no token", send(world, token=None), 403, "agent_auth_required")
    record("start: bad token", send(world, token="forged"), 403, "agent_auth_invalid")
    record("start: blocked country", send(world, "+447400123456"), 403, "destination_blocked")
    world.verify.fail("start", error_for(429, 20429))
    record("start: twilio busy", send(world), 503, "upstream_unavailable")
    record("start: sent", send(world), 200)
    record("start: cooldown", send(world), 429, "rate_limited")
    record("check: no token", check(world, "123456", token=None), 403, "agent_auth_required")
    record("check: wrong", check_wrong(world), 401, "incorrect_code")
    world.verify.fail("check", error_for(503, None))
    record("check: twilio down", check_wrong(world), 503, "upstream_unavailable")
    record("check: locked now", check_wrong(world), 429, "too_many_attempts")
    record("check: locked", check_right(world), 429, "too_many_attempts")
    record("start: locked", send(world), 429, "too_many_attempts")
    record("info: not verified", info(world), 403, "not_verified")
    world.clock.advance(120)
    record("check: approved", check_right(world), 200)
    record("check: spent", check(world, "123456"), 404, "verification_not_found")
    record("info: served", info(world), 200)
    record("info: other agent", info(world, token=AGENT_B), 403, "not_verified")
    record("info: no token", info(world, token=None), 403, "agent_auth_required")
    record("start: other number", send(world, OTHER), 200)
    record("check: other number", check_right(world, OTHER), 200)
    record("info: no customer", info(world, OTHER), 404, "customer_not_found")
    record("cancel: nothing pending", cancel(world), 200)
    world.clock.advance(30)
    send(world)
    world.verify.fail("cancel", error_for(503, None))
    record("cancel: twilio down", cancel(world), 503, "upstream_unavailable")
    record("cancel: canceled", cancel(world), 200)
    record("cancel: no token", cancel(world, token=None), 403, "agent_auth_required")

    # Then: one audit event each, under the number, or under the source for requests nobody was identified in
    unidentified = {label for label, _ in outcomes if label.endswith(("no token", "bad token"))}
    assert {label: o.audits for label, o in outcomes} == {
        label: int(label not in unidentified) for label, _ in outcomes
    }
    assert world.source_audit_count() == len(unidentified) == 5
    assert world.audit_count() - before == len(outcomes) + 1  # and the unrecorded send
    assert {label: (o.status, o.code) for label, o in outcomes} == expected


# ------------------------------------------------------------------------------------------ DynamoDB down


@pytest.mark.parametrize(
    ("action", "fields", "named"),
    [
        (start_verify, {"to": "+1" + "5" * 5000}, "'to'"),
        (start_verify, {"to": "x" * 300 + "@example.com", "channel": "email"}, "'to'"),
        (start_verify, {"to": TO, "locale": "en-" + "A" * 5000}, "'locale'"),
        (start_verify, {"to": TO, "channel": "pigeon"}, "'channel'"),
        (start_verify, {"to": TO, "task_sid": "WT" + "0" * 5000}, "'taskSid'"),
        (check_verify, {"to": TO, "verification_code": "1" * 5000}, "'verification_code'"),
        (cancel_verify, {"to": "+" + "1" * 100}, "'to'"),
        (customer_info, {"to": TO, "task_sid": "nope"}, "'taskSid'"),
    ],
)
def test_invalid_fields_are_refused_before_any_network_call(
    world: Any, action: Callable[..., Any], fields: dict[str, str], named: str
) -> None:
    # Given DynamoDB unreachable, so that any call to it would answer 503
    services = world.with_store_client(closed_port_client())

    # When
    out = world.call(action, fields, services=services)

    # Then: a 400 naming the field, and neither Twilio nor DynamoDB was asked anything
    assert (out.status, out.code) == (400, "invalid_parameter")
    assert named in out.body["error"]["message"]
    assert world.verify.calls == []
    assert world.iam.calls == 0


@pytest.mark.parametrize(
    "act",
    [
        lambda world, services: world.call(start_verify, {"to": TO}, services=services),
        lambda world, services: world.call(check_verify, {"to": TO, "verification_code": "123456"}, services=services),
        lambda world, services: world.call(cancel_verify, {"to": TO}, services=services),
        lambda world, services: world.call(customer_info, {"to": TO}, services=services),
    ],
    ids=["start", "check", "cancel", "customer_info"],
)
def test_dynamodb_unreachable_answers_503_and_sends_nothing(world: Any, act: Callable[..., Any]) -> None:
    # Given DynamoDB unreachable (connection refused)
    services = world.with_store_client(closed_port_client())

    # When
    out = act(world, services)

    # Then
    assert (out.status, out.code) == (503, "upstream_unavailable")
    assert out.retry_after is not None and out.retry_after > 0
    assert world.verify.count("start") == world.verify.count("check") == 0
    assert world.items() == []


def test_a_failed_reservation_leaves_nothing_written_and_sends_nothing(world: Any) -> None:
    # Given a number with some history, and DynamoDB throttling every transaction
    send(world)
    world.clock.advance(30)
    snapshot = world.items()
    services = world.with_store_client(FailingClient(world.client, lambda name, _: name == "transact_write_items"))

    # When
    out = world.call(start_verify, {"to": TO}, services=services)

    # Then: nothing sent, nothing held; only the audit event of the refusal (a plain put, not a transaction)
    assert (out.status, out.code) == (503, "upstream_unavailable")
    assert world.verify.count("start") == 1
    added = [item for item in world.items() if item not in snapshot]
    assert [item["sk"]["S"].startswith("AUDIT#") for item in added] == [True]
    assert added[0]["outcome"]["S"] == "upstream_unavailable"
    assert [item for item in world.items() if not item["sk"]["S"].startswith("AUDIT#")] == [
        item for item in snapshot if not item["sk"]["S"].startswith("AUDIT#")
    ]


def test_a_failed_approval_write_records_no_approval_and_no_failure(world: Any) -> None:
    # Given a pending code, and DynamoDB failing the transaction that records the approval
    world.seed_customer(TO, name="Jane Doe")
    send(world)
    services = world.with_store_client(
        FailingClient(
            world.client,
            lambda name, kw: (
                name == "transact_write_items"
                and any(
                    "approved_by" in item.get("Update", {}).get("UpdateExpression", "") for item in kw["TransactItems"]
                )
            ),
        )
    )

    # When
    out = world.call(check_verify, {"to": TO, "verification_code": world.verify.code_for(TO)}, services=services)

    # Then: an answer the agent can act on, no half of the approval, the right code not counted as a
    # failure, and one audit event saying what happened
    assert (out.status, out.code, out.audits) == (503, "upstream_unavailable", 1)
    assert all(a["outcome"] != "approved" for a in world.audits())
    refused = info(world)
    assert (refused.status, refused.code) == (403, "not_verified")
    # and the right code was not a failure: with a new code, two wrong tries do not lock (a third failure would)
    world.clock.advance(30)
    assert send(world).status == 200
    assert [check_wrong(world).status for _ in range(2)] == [401, 401]


def test_missing_tables_answer_503(world: Any) -> None:
    # Given a deployment whose state table is gone
    world.client.delete_table(TableName=world.settings.state_table)

    # When
    with refused() as answer:
        start_verify(world.request("/start-verify", {"to": TO}), world.services)

    # Then
    assert (answer.value.status, answer.value.code) == (503, "upstream_unavailable")
    assert world.verify.calls == []


def test_cancel_revokes_the_approval_even_when_twilio_is_down(world: Any) -> None:
    # Given an approval, and Twilio down when the agent presses cancel
    world.seed_customer(TO, name="Jane Doe")
    approve(world)
    world.verify.fail("cancel", error_for(503, None))

    # When
    out = cancel(world)

    # Then: the outage is reported and audited, but the approval (ours to revoke) is gone
    assert (out.status, out.code, out.audits) == (503, "upstream_unavailable", 1)
    assert (info(world).status, info(world).code) == (403, "not_verified")

"""The core's decisions (actions.py over store.py): real actions, moto tables from template.yaml, fake Twilio/IAM.

The ``world`` fixture (tests/unit/conftest.py) uses small limits: cooldown 30 s, 5 sends an hour per number,
30 per agent, 60 a minute, lock after 3 consecutive failed checks for 120 s, approvals for 300 s.
``world.call`` answers an Outcome: status, body, the ApiError if any, and how many audit items it wrote.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from callerauth import errors
from callerauth.actions import cancel_verify, check_verify, customer_info, start_verify
from callerauth.agents import AnonymousAgents
from callerauth.twilio_verify import error_for

from tests.support import OTHER_TASK, TASK, TO, iso

OTHER = "+12025550111"
START = 1_700_000_000
HOUR_END = START + 2800
AGENT_A, AGENT_B, GUEST = "token-agent-a", "token-agent-b", "token-guest"
IDENTITY_A, IDENTITY_B = "agent-a@example.com", "agent-b@example.com"


def send(world: Any, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return world.call(start_verify, {"to": to, **extra}, token=token)


def check(world: Any, code: str, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return world.call(check_verify, {"to": to, "verification_code": code, **extra}, token=token)


def check_right(world: Any, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return check(world, world.verify.code_for(to), to, token, **extra)


def check_wrong(world: Any, to: str = TO, token: str | None = AGENT_A) -> Any:
    pending = world.verify.code_for(to) if world.verify.is_pending(to) else ""
    return check(world, "000000" if pending != "000000" else "111111", to, token)


def cancel(world: Any, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return world.call(cancel_verify, {"to": to, **extra}, token=token)


def info(world: Any, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return world.call(customer_info, {"to": to, **extra}, token=token)


def approve(world: Any, to: str = TO, token: str = AGENT_A, **extra: str) -> None:
    assert send(world, to, token).status == 200
    assert check_right(world, to, token, **extra).status == 200


def closed_port_client() -> Any:
    """A DynamoDB client whose endpoint refuses every connection."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "max_attempts": 1}),
    )


class FailingClient:
    """The moto client, except that the operations named in ``fail`` raise a throttling ClientError."""

    def __init__(self, real: Any, fail: Callable[[str, dict[str, Any]], bool]) -> None:
        self._real, self._fail = real, fail

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if not callable(attribute) or name.startswith("_") or name in ("exceptions", "get_paginator"):
            return attribute

        def call(**kwargs: Any) -> Any:
            if self._fail(name, kwargs):
                raise ClientError(
                    {
                        "Error": {
                            "Code": "ProvisionedThroughputExceededException",
                            "Message": "Rate of requests exceeds the allowed throughput.",
                        }
                    },
                    name,
                )
            return attribute(**kwargs)

        return call


# ------------------------------------------------------------------------------------------ start


def test_start_sends_a_code_and_answers_like_the_reference_backend(world: Any) -> None:
    # Given an agent and a customer's number
    # When
    out = send(world)

    # Then
    assert (out.status, out.body) == (200, {"success": True, "status": "pending", "channel": "sms", "resendAfter": 30})
    assert world.verify.calls == [("start", TO)]
    assert out.audits == 1
    [audit] = world.audits()
    assert audit["action"] == "start"
    assert audit["outcome"] == "sent"
    assert audit["agent"] == IDENTITY_A
    assert audit["worker_sid"] == "WK" + "a" * 32
    assert audit["to"] == "+1******0100"
    assert audit["channel"] == "sms"
    assert audit["twilio_sid"].startswith("VE")


def test_the_state_table_never_holds_the_number_the_code_or_the_token(world: Any) -> None:
    # Given a full verification
    approve(world, task_sid=TASK)
    code = "314159"  # the fake's first code
    cancel(world)

    # When
    everything = repr(world.items())

    # Then
    assert TO not in everything
    assert TO[2:] not in everything
    assert code not in everything
    assert AGENT_A not in everything
    assert "+1******0100" in everything  # only ever masked


def test_start_reserves_the_send_before_calling_twilio(world: Any) -> None:
    # Given a Twilio fake that looks at the state table while it is "sending"
    seen: dict[str, Any] = {}

    def look(to: str) -> None:
        seen["state"] = world.state(to)
        seen["sends"] = world.counter(world.pk(to), f"SENDS#H#{START // 3600}")

    world.verify.on_start = look

    # When
    out = send(world)

    # Then: the cooldown and the count were already claimed
    assert out.status == 200
    assert seen["state"]["last_send"] == START
    assert seen["sends"] == 1


def test_a_double_click_sends_one_message(world: Any) -> None:
    # Given two starts in the same second
    first, second = send(world), send(world)

    # Then
    assert first.status == 200
    assert (second.status, second.code, second.retry_after) == (429, "rate_limited", 30)
    assert world.verify.count("start") == 1
    assert (first.audits, second.audits) == (1, 1)


def test_the_cooldown_ends_exactly_after_send_cooldown_seconds(world: Any) -> None:
    # Given a send
    send(world)

    # When
    world.clock.advance(29)
    early = send(world)
    world.clock.advance(1)
    on_time = send(world)

    # Then
    assert (early.status, early.code, early.retry_after) == (429, "rate_limited", 1)
    assert on_time.status == 200


@pytest.mark.parametrize(
    ("twilio_error", "status", "code"),
    [
        (error_for(503, None), 503, "upstream_unavailable"),
        (error_for(429, 20429), 503, "upstream_unavailable"),
        (error_for(429, 60203), 429, "max_send_attempts"),
        (error_for(403, 60605), 403, "destination_blocked"),
        (error_for(400, 60205), 403, "destination_blocked"),
        (error_for(400, 60200), 400, "invalid_parameter"),
        (error_for(400, 21608), 502, "upstream_error"),
    ],
)
def test_a_twilio_failure_on_start_releases_the_reservation(
    world: Any, twilio_error: errors.ApiError, status: int, code: str
) -> None:
    # Given Twilio failing the send
    world.verify.fail("start", twilio_error)

    # When
    out = send(world)

    # Then: Twilio's answer in the contract's terms, and nothing left claimed
    assert (out.status, out.code) == (status, code)
    assert out.audits == 1
    assert world.audits()[0]["outcome"] == code
    assert "last_send" not in (world.state(TO) or {})
    assert world.counter(world.pk(TO), f"SENDS#H#{START // 3600}") == 0
    assert world.counter(f"A#{IDENTITY_A}", f"SENDS#H#{START // 3600}") == 0
    assert world.counter("DEPLOYMENT", f"SENDS#M#{START // 60}") == 0
    # and an immediate retry is not held back by a cooldown for a message that never went out
    assert send(world).status == 200


def test_twilio_20404_on_start_is_an_upstream_error_not_a_missing_verification(world: Any) -> None:
    # Given a Verify service that does not exist (Twilio answers 20404 to a send)
    world.verify.fail("start", error_for(404, 20404))

    # When
    out = send(world)

    # Then
    assert (out.status, out.code) == (502, "upstream_error")
    assert out.body["error"]["twilioCode"] == 20404
    assert out.audits == 1
    assert "last_send" not in (world.state(TO) or {})
    assert send(world).status == 200


def test_a_release_never_removes_a_later_reservation(world_factory: Callable[..., Any]) -> None:
    # Given no cooldown, and a second start that reserves and sends while the first is still at Twilio
    world = world_factory(send_cooldown_seconds=0)
    answers: dict[str, Any] = {}

    def interleave(to: str) -> None:
        world.verify.on_start = None
        answers["second"] = send(world)
        world.verify.fail("start", error_for(503, None))  # then the first one fails

    world.verify.on_start = interleave

    # When
    first = send(world)

    # Then: the second send keeps its mark and its count
    assert (first.status, answers["second"].status) == (503, 200)
    sent = next(a for a in world.audits() if a["outcome"] == "sent")
    assert world.state(TO)["reservation"] == sent["request_id"]
    assert world.state(TO)["last_send"] == START
    assert world.counter(world.pk(TO), f"SENDS#H#{START // 3600}") == 1
    assert world.audit_count() == 2


def test_five_sends_an_hour_per_number_then_rate_limited_until_the_hour_ends(world: Any) -> None:
    # Given five sends, 30 s apart
    for _ in range(5):
        assert send(world).status == 200
        world.clock.advance(30)

    # When
    sixth = send(world)

    # Then
    assert (sixth.status, sixth.code) == (429, "rate_limited")
    assert sixth.retry_after == HOUR_END - (START + 150)
    assert "this number (5 an hour)" in sixth.body["message"]
    assert world.verify.count("start") == 5
    world.clock.now = HOUR_END
    assert send(world).status == 200


def test_the_per_agent_cap_holds_back_only_that_agent(world_factory: Callable[..., Any]) -> None:
    # Given an agent allowed two sends an hour, who has used them
    world = world_factory(max_sends_per_agent_per_hour=2)
    assert send(world, "+12025550101").status == 200
    assert send(world, "+12025550102").status == 200

    # When
    third = send(world, "+12025550103")
    colleague = send(world, "+12025550103", token=AGENT_B)

    # Then
    assert (third.status, third.code, third.retry_after) == (429, "rate_limited", 2800)
    assert "You have sent too many codes (2 an hour)" in third.body["message"]
    assert colleague.status == 200


def test_the_deployment_breaker_pauses_every_send_until_the_minute_ends(world_factory: Callable[..., Any]) -> None:
    # Given a deployment allowed two sends a minute, used by two agents
    world = world_factory(max_sends_per_minute=2)
    assert send(world, "+12025550101").status == 200
    assert send(world, "+12025550102", token=AGENT_B).status == 200

    # When
    third = send(world, "+12025550103")
    world.clock.advance(40)
    next_minute = send(world, "+12025550103")

    # Then
    assert (third.status, third.code, third.retry_after) == (429, "rate_limited", 40)
    assert "contact centre" in third.body["message"]
    assert next_minute.status == 200


def test_the_country_allow_list_blocks_other_numbers_but_not_email(world_factory: Callable[..., Any]) -> None:
    # Given only UK numbers allowed
    world = world_factory(allowed_country_codes=("+44",))

    # When
    us = send(world)
    uk = send(world, "+447700900123")
    email = send(world, "jane@example.com", channel="email")

    # Then
    assert (us.status, us.code, us.audits) == (403, "destination_blocked", 1)
    assert uk.status == 200
    assert email.status == 200
    assert world.verify.calls == [("start", "+447700900123"), ("start", "jane@example.com")]


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "agent_auth_required"),
        ("", "agent_auth_required"),
        ("forged", "agent_auth_invalid"),
        (GUEST, "agent_auth_invalid"),
    ],
)
def test_start_needs_a_valid_flex_token_with_an_allowed_role(world: Any, token: str | None, code: str) -> None:
    # Given / When
    out = send(world, token=token)

    # Then
    assert (out.status, out.code) == (403, code)
    assert world.verify.calls == []
    assert out.audits == 1
    assert world.audits()[0]["agent"] == "unidentified"


def test_with_agent_auth_none_anyone_may_send_and_is_known_by_source_ip(world_factory: Callable[..., Any]) -> None:
    # Given AgentAuth=none
    world = world_factory(agent_auth="none")
    anonymous = replace(world.services, agents=AnonymousAgents())

    # When
    out = world.call(start_verify, {"to": TO}, token=None, services=anonymous)
    read = world.call(customer_info, {"to": TO}, token=None, services=anonymous)

    # Then: sends work, customer data is refused to everyone
    assert out.status == 200
    assert world.audits()[0]["agent"] == "anonymous:203.0.113.7"
    assert (read.status, read.code, read.audits) == (403, "agent_auth_required", 1)


# ------------------------------------------------------------------------------------------ check


def test_the_right_code_approves(world: Any) -> None:
    # Given a code sent
    send(world)
    world.clock.advance(45)

    # When
    out = check_right(world, task_sid=TASK)

    # Then
    assert (out.status, out.body) == (
        200,
        {"success": True, "message": "Verification success.", "verifiedUntil": iso(START + 45 + 300)},
    )
    state = world.state(TO)
    assert (state["approved_by"], state["approved_task"]) == (IDENTITY_A, TASK)
    assert (state["approved_at"], state["approved_until"]) == (START + 45, START + 345)
    assert out.audits == 1
    assert world.audits()[-1]["outcome"] == "approved"


def test_a_wrong_code_answers_incorrect_token_and_counts(world: Any) -> None:
    # Given a code sent
    send(world)

    # When
    out = check_wrong(world)

    # Then: the reference backend's answer, in the contract's shape
    assert out.status == 401
    assert out.body == {
        "success": False,
        "message": "Incorrect token.",
        "error": {"code": "incorrect_code", "message": "Incorrect token.", "moreInfo": errors.VERIFY_DOCS},
    }
    assert world.state(TO)["failed"] == 1
    assert out.audits == 1


def test_max_failed_checks_locks_the_number_even_for_the_right_code(world: Any) -> None:
    # Given a code sent, and two wrong tries
    send(world)
    assert [check_wrong(world).status for _ in range(2)] == [401, 401]

    # When: the third consecutive failure
    third = check_wrong(world)
    right_while_locked = check_right(world)

    # Then
    assert (third.status, third.code, third.retry_after) == (429, "too_many_attempts", 120)
    assert "2 minutes" in third.body["message"]
    assert (right_while_locked.status, right_while_locked.code) == (429, "too_many_attempts")
    assert world.verify.count("check") == 3  # a locked number's code never reaches Twilio
    assert world.audits()[-1]["outcome"] == "too_many_attempts"


def test_the_lock_survives_a_new_send_and_ends_after_lockout_seconds(world: Any) -> None:
    # Given a locked number
    send(world)
    for _ in range(3):
        check_wrong(world)
    world.clock.advance(60)

    # When
    resend = send(world)
    world.clock.advance(59)
    still_locked = check_right(world)
    world.clock.advance(1)
    unlocked = check_right(world)

    # Then
    assert (resend.status, resend.code, resend.retry_after) == (429, "too_many_attempts", 60)
    assert (still_locked.status, still_locked.retry_after) == (429, 1)
    assert unlocked.status == 200
    assert world.verify.count("start") == 1


def test_a_resend_does_not_reset_the_failure_count(world: Any) -> None:
    # Given two failures, then a new code
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.clock.advance(30)
    assert send(world).status == 200

    # When
    third = check_wrong(world)

    # Then
    assert (third.status, third.code) == (429, "too_many_attempts")


@pytest.mark.parametrize("gap", [3601, 2 * 86400], ids=["over an hour", "past the item's expiry"])
def test_old_failures_do_not_count_towards_a_lock(world: Any, gap: int) -> None:
    # Given two failures (the limit is three), then a long quiet time and a new code
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.clock.advance(gap)
    assert send(world).status == 200

    # When
    out = check_wrong(world)

    # Then: a first failure of a new series, not a lock
    assert (out.status, out.code) == (401, "incorrect_code")


@pytest.mark.parametrize("no_failure", ["nothing pending", "twilio down"])
def test_a_check_that_is_no_failure_does_not_keep_old_failures_alive(world: Any, no_failure: str) -> None:
    # Given two failures (the limit is three), and 50 minutes later a check that Twilio could not judge
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.clock.advance(3000)  # the code has expired at Twilio
    if no_failure == "twilio down":
        send(world)
        world.verify.fail("check", error_for(503, None))
    assert check(world, "123456").status in (404, 503)
    world.clock.advance(700)  # over an hour since the last failure
    assert send(world).status == 200

    # When
    out = check_wrong(world)

    # Then: the two old failures are over an hour old; this is the first of a new series
    assert (out.status, out.code) == (401, "incorrect_code")


def test_a_success_resets_the_failure_count(world: Any) -> None:
    # Given two failures, then the right code
    send(world)
    check_wrong(world)
    check_wrong(world)
    assert check_right(world).status == 200
    world.clock.advance(30)
    send(world)

    # When
    answers = [check_wrong(world).status for _ in range(2)]

    # Then
    assert answers == [401, 401]
    assert world.state(TO)["failed"] == 2


@pytest.mark.parametrize(
    ("twilio_error", "status", "code"),
    [
        (error_for(503, None), 503, "upstream_unavailable"),
        (error_for(429, 60202), 429, "too_many_attempts"),
        (error_for(400, 60200), 400, "invalid_parameter"),
        (error_for(400, 99999), 502, "upstream_error"),
    ],
)
def test_a_twilio_error_on_check_is_not_a_failed_check(
    world: Any, twilio_error: errors.ApiError, status: int, code: str
) -> None:
    # Given two failures already, then Twilio failing three checks
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.verify.fail("check", twilio_error, times=3)

    # When
    failed = [check_wrong(world) for _ in range(3)]

    # Then: none of them counted, so the right code still passes
    assert {(o.status, o.code, o.audits) for o in failed} == {(status, code, 1)}
    assert world.state(TO)["failed"] == 2
    assert check_right(world).status == 200


def test_a_check_with_nothing_pending_is_not_found_and_never_counts(world: Any) -> None:
    # Given no code ever sent
    # When
    answers = [check(world, "123456") for _ in range(5)]

    # Then
    assert {(o.status, o.code, o.audits) for o in answers} == {(404, "verification_not_found", 1)}
    assert answers[0].body["error"]["twilioCode"] == 20404
    assert world.state(TO)["failed"] == 0


def test_a_code_is_single_use_and_expires_with_twilio(world: Any) -> None:
    # Given one approved code and one left to expire
    approve(world)
    code_used = "314159"
    send(world, OTHER)
    world.clock.advance(600)

    # When
    reuse = check(world, code_used)
    expired = check(world, world.verify.pending[OTHER].code, OTHER)

    # Then
    assert (reuse.status, reuse.code) == (404, "verification_not_found")
    assert (expired.status, expired.code) == (404, "verification_not_found")


# ------------------------------------------------------------------------------------------ customer info


def test_customer_info_serves_the_visible_fields_to_the_approving_agent(world: Any) -> None:
    # Given a customer approved by agent A for a task
    world.seed_customer(TO, name="Jane Doe", tier="gold", accountNumber="AC-1", internalNotes="never shown")
    approve(world, task_sid=TASK)
    world.clock.advance(10)

    # When
    out = info(world, taskSid=TASK)

    # Then
    assert out.status == 200
    assert out.body == {
        "success": True,
        "verifiedAt": iso(START),
        "verifiedUntil": iso(START + 300),
        "customer": {"name": "Jane Doe", "tier": "gold", "accountNumber": "AC-1"},
    }
    assert out.audits == 1
    assert world.audits()[-1]["outcome"] == "served"


@pytest.mark.parametrize(
    ("approved_task", "token", "asked_task", "status"),
    [
        (TASK, AGENT_A, {"task_sid": TASK}, 200),
        (TASK, AGENT_A, {}, 200),  # only one side names a task
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


# ------------------------------------------------------------------------------------------ cancel


def test_cancel_clears_the_approval_even_when_twilio_has_nothing_pending(world: Any) -> None:
    # Given an approval (Twilio's verification is spent: a cancel there answers 20404)
    world.seed_customer(TO, name="Jane Doe")
    approve(world)

    # When
    out = cancel(world)

    # Then
    assert (out.status, out.body) == (200, {"success": True, "status": "canceled"})
    assert out.audits == 1
    assert world.audits()[-1]["outcome"] == "canceled"
    assert (info(world).status, info(world).code) == (403, "not_verified")


def test_cancel_cancels_the_pending_code_at_twilio(world: Any) -> None:
    # Given a pending code
    send(world)
    code = world.verify.code_for(TO)

    # When
    out = cancel(world)
    late = check(world, code)

    # Then
    assert out.status == 200
    assert (late.status, late.code) == (404, "verification_not_found")


def test_cancel_answers_a_twilio_outage_and_audits_it(world: Any) -> None:
    # Given Twilio down
    send(world)
    world.verify.fail("cancel", error_for(503, None))

    # When
    out = cancel(world)

    # Then
    assert (out.status, out.code, out.retry_after, out.audits) == (503, "upstream_unavailable", 5, 1)
    assert world.audits()[-1]["outcome"] == "upstream_unavailable"


# ------------------------------------------------------------------------------------------ audit


def test_every_request_writes_exactly_one_audit_event_whatever_its_path(world_factory: Callable[..., Any]) -> None:
    # Given a deployment that lets every path happen
    world = world_factory(max_failed_checks=2, lockout_seconds=120, allowed_country_codes=("+1",))
    world.seed_customer(TO, name="Jane Doe")
    before = world.audit_count()
    outcomes: list[tuple[str, Any]] = []

    def record(label: str, outcome: Any) -> None:
        outcomes.append((label, outcome))

    # When: every answer each action can give
    record("start: no token", send(world, token=None))
    record("start: bad token", send(world, token="forged"))
    record("start: blocked country", send(world, "+447700900123"))
    world.verify.fail("start", error_for(503, None))
    record("start: twilio down", send(world))
    record("start: sent", send(world))
    record("start: cooldown", send(world))
    record("check: no token", check(world, "123456", token=None))
    record("check: wrong", check_wrong(world))
    world.verify.fail("check", error_for(503, None))
    record("check: twilio down", check_wrong(world))
    record("check: locked now", check_wrong(world))
    record("check: locked", check_right(world))
    record("start: locked", send(world))
    record("info: not verified", info(world))
    world.clock.advance(120)
    record("check: approved", check_right(world))
    record("check: spent", check(world, "123456"))
    record("info: served", info(world))
    record("info: other agent", info(world, token=AGENT_B))
    record("info: no token", info(world, token=None))
    record("start: other number", send(world, OTHER))
    record("check: other number", check_right(world, OTHER))
    record("info: no customer", info(world, OTHER))
    record("cancel: nothing pending", cancel(world))
    world.clock.advance(30)
    send(world)
    world.verify.fail("cancel", error_for(503, None))
    record("cancel: twilio down", cancel(world))
    record("cancel: canceled", cancel(world))
    record("cancel: no token", cancel(world, token=None))

    # Then
    assert {label: o.audits for label, o in outcomes} == {label: 1 for label, _ in outcomes}
    assert world.audit_count() - before == len(outcomes) + 1  # and the unrecorded send
    assert {label: (o.status, o.code) for label, o in outcomes} == {
        "start: no token": (403, "agent_auth_required"),
        "start: bad token": (403, "agent_auth_invalid"),
        "start: blocked country": (403, "destination_blocked"),
        "start: twilio down": (503, "upstream_unavailable"),
        "start: sent": (200, None),
        "start: cooldown": (429, "rate_limited"),
        "check: no token": (403, "agent_auth_required"),
        "check: wrong": (401, "incorrect_code"),
        "check: twilio down": (503, "upstream_unavailable"),
        "check: locked now": (429, "too_many_attempts"),
        "check: locked": (429, "too_many_attempts"),
        "start: locked": (429, "too_many_attempts"),
        "info: not verified": (403, "not_verified"),
        "check: approved": (200, None),
        "check: spent": (404, "verification_not_found"),
        "info: served": (200, None),
        "info: other agent": (403, "not_verified"),
        "info: no token": (403, "agent_auth_required"),
        "start: other number": (200, None),
        "check: other number": (200, None),
        "info: no customer": (404, "customer_not_found"),
        "cancel: nothing pending": (200, None),
        "cancel: twilio down": (503, "upstream_unavailable"),
        "cancel: canceled": (200, None),
        "cancel: no token": (403, "agent_auth_required"),
    }


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
    with pytest.raises(errors.ApiError) as refused:
        action(world.request("/", fields), services)

    # Then: a 400 naming the field, and neither Twilio nor DynamoDB was asked anything
    assert (refused.value.status, refused.value.code) == (400, "invalid_parameter")
    assert named in refused.value.message
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
    assert out.body["message"] == "Service unavailable; try again in a moment."
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
    assert "approved_by" not in world.state(TO)
    assert world.state(TO)["failed"] == 0
    assert all(a["outcome"] != "approved" for a in world.audits())
    assert (info(world).status, info(world).code) == (403, "not_verified")


def test_missing_tables_answer_503(world: Any) -> None:
    # Given a deployment whose state table is gone
    world.client.delete_table(TableName=world.settings.state_table)

    # When
    with pytest.raises(errors.ApiError) as refused:
        start_verify(world.request("/start-verify", {"to": TO}), world.services)

    # Then
    assert (refused.value.status, refused.value.code) == (503, "upstream_unavailable")
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

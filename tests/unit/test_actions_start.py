"""The core's decisions on start-verify: sending, the cooldown, the caps, Twilio failing a send.

The world, its limits and the shared steps: tests/unit/actions_helpers.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from callerauth import errors
from callerauth.actions import customer_info, start_verify
from callerauth.agents import AnonymousAgents
from callerauth.twilio_verify import error_for

from tests.support import TASK, TO
from tests.unit.actions_helpers import AGENT_A, AGENT_B, GUEST, HOUR_END, IDENTITY_A, START, approve, cancel, send

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


@pytest.mark.parametrize(
    ("limits", "retry_after"),
    [
        pytest.param({}, 30, id="the-cooldown"),
        pytest.param(
            {"send_cooldown_seconds": 0, "max_sends_per_destination_per_hour": 1}, HOUR_END - START, id="the-count"
        ),
    ],
)
def test_start_reserves_the_send_before_calling_twilio(
    world_factory: Callable[..., Any], limits: dict[str, int], retry_after: int
) -> None:
    # Given a Twilio fake that, while it is "sending", lets a second start for the same number in
    world = world_factory(**limits)
    seen: dict[str, Any] = {}

    def second_start(to: str) -> None:
        world.verify.on_start = None
        seen["second"] = send(world, to)

    world.verify.on_start = second_start

    # When
    out = send(world)

    # Then: the cooldown (or the hour's count) was already claimed: the second start is refused, one send
    assert out.status == 200
    assert (seen["second"].status, seen["second"].code, seen["second"].retry_after) == (
        429,
        "rate_limited",
        retry_after,
    )
    assert world.verify.count("start") == 1


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
    world_factory: Callable[..., Any], twilio_error: errors.ApiError, status: int, code: str
) -> None:
    # Given one send allowed an hour per number and per agent, and one a minute, and Twilio failing the send
    world = world_factory(max_sends_per_destination_per_hour=1, max_sends_per_agent_per_hour=1, max_sends_per_minute=1)
    world.verify.fail("start", twilio_error)

    # When
    out = send(world)

    # Then: Twilio's answer in the contract's terms, and nothing left claimed
    assert (out.status, out.code) == (status, code)
    assert out.audits == 1
    assert world.audits()[0]["outcome"] == code
    # and an immediate retry is held back neither by a cooldown nor by a cap for a message that never went out
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
    # and no cooldown holds back a retry
    assert send(world).status == 200


def test_a_release_never_removes_a_later_reservation(world_factory: Callable[..., Any]) -> None:
    # Given no cooldown, two sends an hour per number, and a second start that reserves and sends while the
    # first is still at Twilio
    world = world_factory(send_cooldown_seconds=0, max_sends_per_destination_per_hour=2)
    answers: dict[str, Any] = {}

    def interleave(to: str) -> None:
        world.verify.on_start = None
        answers["second"] = send(world)
        world.verify.fail("start", error_for(503, None))  # then the first one fails

    world.verify.on_start = interleave

    # When
    first = send(world)

    # Then: the first is given back, the second keeps its count: one more send this hour, not two
    assert (first.status, answers["second"].status) == (503, 200)
    assert world.audit_count() == 2
    assert send(world).status == 200
    over_the_cap = send(world)
    assert (over_the_cap.status, over_the_cap.code) == (429, "rate_limited")


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

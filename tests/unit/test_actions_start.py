"""The core's decisions on start-verify: sending, the cooldown, the caps, Twilio failing a send.

The world, its limits and the shared steps: tests/unit/actions_helpers.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from callerauth import errors
from callerauth.actions import customer_info, start_verify
from callerauth.agents import AnonymousAgents
from callerauth.store import StateStore
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


def test_start_reserves_the_send_before_calling_twilio(world: Any) -> None:
    # Given a Twilio fake that, while it is "sending", sees another agent ask for the same number
    seen: list[Any] = []

    def meanwhile(to: str) -> None:
        if not seen:
            seen.append(send(world, to, token=AGENT_B))

    world.verify.on_start = meanwhile

    # When
    out = send(world)

    # Then: the send was already claimed: the concurrent one is refused and never reaches Twilio
    assert out.status == 200
    assert (seen[0].status, seen[0].code) == (429, "rate_limited")
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
        (error_for(429, 20429), 503, "upstream_unavailable"),
        (error_for(429, 60203), 429, "max_send_attempts"),
        (error_for(403, 60605), 403, "destination_blocked"),
        (error_for(400, 60205), 403, "destination_blocked"),
        (error_for(400, 60200), 400, "invalid_parameter"),
        (error_for(400, 21608), 502, "upstream_error"),
    ],
)
def test_a_definite_twilio_refusal_on_start_releases_the_reservation(
    world: Any, twilio_error: errors.ApiError, status: int, code: str
) -> None:
    # Given Twilio refusing the send
    world.verify.fail("start", twilio_error)

    # When
    out = send(world)

    # Then: Twilio's answer in the contract's terms, audited
    assert (out.status, out.code) == (status, code)
    assert out.audits == 1
    assert world.audits()[0]["outcome"] == code
    # and nothing is left claimed: no cooldown, and the whole hourly cap of 5 is still there
    for _ in range(5):
        assert send(world).status == 200
        world.clock.advance(30)
    assert send(world).code == "rate_limited"


@pytest.mark.parametrize("twilio_error", [error_for(503, None), error_for(500, 20500)], ids=["503", "500"])
def test_a_send_whose_outcome_is_unknown_keeps_its_reservation(world: Any, twilio_error: Any) -> None:
    # Given Twilio failing in a way that does not say whether it sent the message
    world.verify.fail("start", twilio_error)

    # When
    out = send(world)

    # Then: an outage for the agent, but the send counts as made: cooldown, and one of the 5 an hour
    assert (out.status, out.code) == (503, "upstream_unavailable")
    assert send(world).code == "rate_limited"  # the cooldown stands
    for _ in range(4):
        world.clock.advance(30)
        assert send(world).status == 200
    world.clock.advance(30)
    assert send(world).code == "rate_limited"


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
    # Given no cooldown, and a second start that reserves and sends while the first is still at Twilio
    world = world_factory(send_cooldown_seconds=0)
    answers: dict[str, Any] = {}

    def interleave(to: str) -> None:
        world.verify.on_start = None
        answers["second"] = send(world)
        world.verify.fail("start", error_for(400, 21608))  # then Twilio refuses the first one

    world.verify.on_start = interleave

    # When
    first = send(world)

    # Then: the second send keeps its mark: with a cooldown back in force, a third is still held back by it
    assert (first.status, answers["second"].status) == (502, 200)
    assert world.audit_count() == 2
    cooling = world.settings._replace(send_cooldown_seconds=30)
    held = world.call(
        start_verify, {"to": TO}, services=world.services._replace(store=StateStore(world.client, cooling))
    )
    assert held.code == "rate_limited"


def test_five_sends_an_hour_per_number_then_rate_limited_until_no_hour_would_hold_six(world: Any) -> None:
    # Given five sends, 30 s apart, all in one clock hour
    for _ in range(5):
        assert send(world).status == 200
        world.clock.advance(30)

    # When
    sixth = send(world)

    # Then: refused until the end of the next clock hour (before then, an hour-long span would hold six)
    assert (sixth.status, sixth.code) == (429, "rate_limited")
    assert sixth.error.retry_after == HOUR_END + 3600 - (START + 150)
    assert "this number (5 an hour)" in sixth.body["message"]
    assert world.verify.count("start") == 5
    world.clock.now = HOUR_END
    assert send(world).code == "rate_limited"
    world.clock.now = HOUR_END + 3600
    assert send(world).status == 200


def test_no_span_of_an_hour_holds_more_sends_than_the_cap_across_a_window_edge(world: Any) -> None:
    # Given five sends in the last minutes of a clock hour
    world.clock.now = HOUR_END - 200
    for _ in range(5):
        assert send(world).status == 200
        world.clock.advance(30)

    # When the next clock hour starts (a fixed window would let five more through at once)
    world.clock.now = HOUR_END + 1
    answers = [send(world).code for _ in range(1)]
    world.clock.advance(30)
    answers.append(send(world).code)

    # Then nothing more is sent until those five are over an hour old
    assert answers == ["rate_limited", "rate_limited"]
    assert world.verify.count("start") == 5


def test_the_per_agent_cap_holds_back_only_that_agent(world_factory: Callable[..., Any]) -> None:
    # Given an agent allowed two sends an hour, who has used them
    world = world_factory(max_sends_per_agent_per_hour=2)
    assert send(world, "+12025550101").status == 200
    assert send(world, "+12025550102").status == 200

    # When
    third = send(world, "+12025550103")
    colleague = send(world, "+12025550103", token=AGENT_B)

    # Then
    assert (third.status, third.code, third.error.retry_after) == (429, "rate_limited", 2800 + 3600)
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
    world.clock.advance(60)
    minute_after = send(world, "+12025550103")

    # Then: paused until no minute-long span would hold three
    assert (third.status, third.code, third.error.retry_after) == (429, "rate_limited", 100)
    assert "contact centre (2 a minute)" in third.body["message"]
    assert next_minute.code == "rate_limited"
    assert minute_after.status == 200


def test_the_country_allow_list_blocks_other_numbers_but_not_email(world_factory: Callable[..., Any]) -> None:
    # Given only UK numbers allowed
    world = world_factory(allowed_countries=frozenset({"GB"}))

    # When
    us = send(world)
    uk = send(world, "+447400123456")
    email = send(world, "jane@example.com", channel="email")

    # Then
    assert (us.status, us.code, us.audits) == (403, "destination_blocked", 1)
    assert uk.status == 200
    assert email.status == 200
    assert world.verify.calls == [("start", "+447400123456"), ("start", "jane@example.com")]


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

    # Then: refused, audited under the source (never in the trail of the number it named)
    assert (out.status, out.code) == (403, code)
    assert world.verify.calls == []
    assert (out.audits, world.source_audit_count()) == (0, 1)
    assert world.audits()[0]["agent"] == "unidentified"


def test_with_agent_auth_none_anyone_may_send_and_is_known_by_source_ip(world_factory: Callable[..., Any]) -> None:
    # Given AgentAuth=none
    world = world_factory(agent_auth="none")
    anonymous = world.services._replace(agents=AnonymousAgents())

    # When
    out = world.call(start_verify, {"to": TO}, token=None, services=anonymous)
    read = world.call(customer_info, {"to": TO}, token=None, services=anonymous)

    # Then: sends work, customer data is refused to everyone
    assert out.status == 200
    assert world.audits()[0]["agent"] == "anonymous:203.0.113.7"
    assert (read.status, read.code, read.audits) == (403, "agent_auth_required", 1)

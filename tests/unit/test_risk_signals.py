"""The core's decisions on a number's own risk (Twilio Lookup v2) before a code is sent.

Lookup is the world's fake (tests/unit/conftest.py: every number an ordinary mobile unless told otherwise);
these worlds turn it on. The world, its limits and the shared steps: tests/unit/actions_helpers.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from callerauth.actions import start_verify
from callerauth.config import LOOKUP_FIELDS
from callerauth.refusals import unavailable

from tests.support import EMAIL, TO, iso
from tests.unit.actions_helpers import START, approve, check_right, info, send

ALL = LOOKUP_FIELDS
DAY = 86400
FRESH = "+12025557301"


@pytest.fixture
def risky_world(world_factory: Callable[..., Any]) -> Any:
    """Every package asked; SMS and voice allowed (as a deployment that lets landlines hear their code)."""
    return world_factory(lookup_fields=ALL, allowed_channels=("sms", "call", "email"), approval_ttl_seconds=300)


def start_audit(world: Any) -> dict[str, Any]:
    starts = [event for event in world.audits() if event["action"] == "start"]
    return {**starts[-1], "risk": json.loads(starts[-1]["risk"])}


# ------------------------------------------------------------------------------------------ the policy

ROWS = [
    # (what Lookup says, the channel asked, status, reason refused or the channel used)
    ({}, "sms", 200, "sms"),
    ({"line_type": "landline"}, "sms", 200, "call"),
    ({"line_type": "landline", "call_forwarding": True}, "sms", 403, "call_forwarding"),
    ({"line_type": "nonFixedVoip"}, "sms", 403, "line_type"),
    ({"line_type": "tollFree"}, "call", 403, "line_type"),
    ({"line_type": "fixedVoip"}, "sms", 200, "sms"),  # not blocked by default
    ({"sim_swapped_in_period": True}, "sms", 403, "sim_swap"),
    ({"sim_swapped_at": START - 3 * DAY}, "sms", 403, "sim_swap"),  # within SIM_SWAP_WINDOW_DAYS (7)
    ({"sim_swapped_at": START - 30 * DAY, "sim_swapped_in_period": None}, "sms", 200, "sms"),
    ({"call_forwarding": True}, "call", 403, "call_forwarding"),
    ({"call_forwarding": True}, "sms", 200, "sms"),  # a text is not forwarded
    ({"sms_pumping_risk_score": 80}, "sms", 403, "sms_pumping_risk"),  # at the threshold
    ({"sms_pumping_risk_score": 79}, "sms", 200, "sms"),
    ({"number_blocked": True}, "sms", 403, "sms_pumping_risk"),
]


@pytest.mark.parametrize(("signals", "channel", "status", "decided"), ROWS)
def test_each_signal_decides_as_the_policy_says(
    risky_world: Any, signals: dict[str, Any], channel: str, status: int, decided: str
) -> None:
    # Given Lookup's answer for the number
    risky_world.lookup.answers[TO] = signals

    # When
    out = send(risky_world, channel=channel)

    # Then
    assert out.status == status
    if status == 200:
        assert out.body["channel"] == decided
        assert risky_world.verify.pending[TO].channel == decided
        assert start_audit(risky_world)["risk"]["verdict"] == "passed"
    else:
        assert out.code == "destination_risky"
        assert out.error.reason == decided
        assert "another way" in out.body["message"]  # the agent is told what to do instead
        assert risky_world.verify.calls == []
        audit = start_audit(risky_world)
        assert (audit["outcome"], audit["risk"]["verdict"], audit["risk"]["reason"]) == (
            "destination_risky",
            "refused",
            decided,
        )


def test_a_landline_is_refused_when_voice_is_not_allowed(world_factory: Callable[..., Any]) -> None:
    world = world_factory(lookup_fields=("line_type_intelligence",), allowed_channels=("sms",))
    world.lookup.answers[TO] = {"line_type": "landline"}

    out = send(world)

    assert (out.status, out.code, out.error.reason) == (403, "destination_risky", "landline")
    assert world.verify.calls == []


def test_blocked_line_types_and_the_threshold_are_settings(world_factory: Callable[..., Any]) -> None:
    world = world_factory(lookup_fields=ALL, blocked_line_types=frozenset({"fixedVoip"}), sms_pumping_risk_threshold=95)
    world.lookup.answers[TO] = {"line_type": "nonFixedVoip", "sms_pumping_risk_score": 90}
    world.lookup.answers[FRESH] = {"line_type": "fixedVoip"}

    assert send(world).status == 200
    assert send(world, FRESH).error.reason == "line_type"


def test_an_email_is_not_looked_up(risky_world: Any) -> None:
    assert send(risky_world, EMAIL, channel="email").status == 200
    assert risky_world.lookup.calls == []
    assert start_audit(risky_world)["risk"] == {"verdict": "not_checked"}


def test_lookup_off_asks_nothing(world_factory: Callable[..., Any]) -> None:
    world = world_factory(lookup_fields=())
    world.lookup.answers[TO] = {"sim_swapped_in_period": True}

    assert send(world).status == 200
    assert world.lookup.calls == []


# ------------------------------------------------------------------------------------------ what Lookup cannot answer


@pytest.mark.parametrize("failure", ["unreachable", "package_error"])
def test_lookup_failure_allow_sends_and_says_so(risky_world: Any, failure: str) -> None:
    # Given Lookup cannot answer (at all, or one package answers an error code); LOOKUP_FAILURE is allow
    if failure == "unreachable":
        risky_world.lookup.answers[TO] = unavailable("lookup_unavailable")
    else:
        risky_world.lookup.answers[TO] = {"unanswered": ("sim_swap",), "sim_swapped_in_period": None}

    # When
    out = send(risky_world)

    # Then the code goes, and the audit trail says what was not known
    assert out.status == 200
    risk = start_audit(risky_world)["risk"]
    assert risk["verdict"] == "incomplete"
    assert "sim_swap" in risk["unanswered"]


def test_lookup_failure_refuse_sends_nothing(world_factory: Callable[..., Any]) -> None:
    world = world_factory(lookup_fields=ALL, lookup_failure="refuse")
    world.lookup.answers[TO] = unavailable("lookup_unavailable")
    world.lookup.answers[FRESH] = {"unanswered": ("call_forwarding",), "call_forwarding": None}

    for number in (TO, FRESH):
        out = send(world, number)
        assert (out.status, out.code, out.error.reason) == (403, "destination_risky", "risk_unknown")
    assert world.verify.calls == []


def test_a_failed_lookup_is_not_remembered(risky_world: Any) -> None:
    risky_world.lookup.answers[TO] = unavailable("lookup_unavailable")
    assert send(risky_world).status == 200
    risky_world.clock.advance(31)  # past the cooldown
    del risky_world.lookup.answers[TO]

    assert send(risky_world).status == 200
    assert risky_world.lookup.calls == [TO, TO]
    assert start_audit(risky_world)["risk"]["verdict"] == "passed"


# ------------------------------------------------------------------------------------------ cost


def test_a_number_costs_one_lookup_within_the_cache_lifetime(world_factory: Callable[..., Any]) -> None:
    world = world_factory(lookup_fields=ALL, lookup_cache_hours=2, send_cooldown_seconds=0)

    # Two starts within the cache's lifetime: one Lookup, two Verify sends
    assert send(world).status == 200
    world.clock.advance(2 * 3600 - 1)
    assert send(world).status == 200
    assert (world.lookup.calls, world.verify.count("start")) == ([TO], 2)

    # Once it has expired (TTL deletes late: the store compares times itself), the number is looked up again
    world.clock.advance(1)
    assert send(world).status == 200
    assert world.lookup.calls == [TO, TO]


def test_a_cache_without_a_package_now_asked_is_asked_again(world_factory: Callable[..., Any]) -> None:
    # Given a number looked up for its line type only
    world = world_factory(lookup_fields=("line_type_intelligence",), send_cooldown_seconds=0)
    assert send(world).status == 200

    # When the deployment now asks every package
    settings = world.settings._replace(lookup_fields=ALL)
    wider = world.services._replace(settings=settings)
    assert world.call(start_verify, {"to": TO}, services=wider).status == 200

    # Then the cached answer does not do
    assert world.lookup.calls == [TO, TO]


def test_a_known_risky_number_is_refused_without_taking_a_send(world_factory: Callable[..., Any]) -> None:
    # Given an agent who may send 2 codes an hour, and a number Lookup says was just swapped
    world = world_factory(lookup_fields=ALL, max_sends_per_agent_per_hour=2)
    world.lookup.answers[TO] = {"sim_swapped_in_period": True}

    # When the agent tries it three times: the first Lookup is paid inside the limits, and takes a send;
    # the next two are refused from the cache, before any limit is touched
    for _ in range(3):
        world.clock.advance(31)
        assert send(world).error.reason == "sim_swap"

    # Then the agent still has one send left, and only one Lookup was made
    assert send(world, FRESH).status == 200
    assert world.lookup.calls == [TO, FRESH]


@pytest.mark.parametrize(
    ("twilio_status", "twilio_code", "given_back"),
    [
        pytest.param(400, 60605, False, id="geo-permissions"),
        pytest.param(403, 60410, False, id="fraud-guard"),
        pytest.param(429, 60203, False, id="max-send-attempts"),
        pytest.param(429, 20429, True, id="twilio-busy"),
        pytest.param(400, 60200, True, id="invalid-parameter"),
    ],
)
def test_a_send_twilio_refuses_for_its_number_keeps_the_lookup_it_paid_for(
    risky_world: Any, twilio_status: int, twilio_code: int, given_back: bool
) -> None:
    from callerauth.twilio_verify import error_for

    # Given Twilio refuses the send for good, after the number was looked up
    risky_world.verify.fail("start", error_for(twilio_status, twilio_code))
    assert send(risky_world).status >= 400

    # Then a refusal of the number itself still counts (its cooldown holds), so that a stream of numbers
    # Twilio refuses cannot buy Lookups for free; a failure on Twilio's side is given back as before
    retried = send(risky_world)
    assert retried.status == (200 if given_back else 429)
    assert risky_world.lookup.calls == [TO] * (2 if given_back else 1)


def test_start_makes_two_twilio_calls_uncached_and_one_cached(risky_world: Any) -> None:
    assert send(risky_world).status == 200
    assert len(risky_world.lookup.calls) + risky_world.verify.count("start") == 2
    risky_world.clock.advance(31)

    assert send(risky_world).status == 200
    assert len(risky_world.lookup.calls) + risky_world.verify.count("start") == 3


# ------------------------------------------------------------------------------------------ evidence


def test_the_audit_records_the_signals_and_nothing_that_names_the_number(risky_world: Any) -> None:
    risky_world.lookup.answers[TO] = {"line_type": "mobile", "sms_pumping_risk_score": 12}

    assert send(risky_world).status == 200

    audit = start_audit(risky_world)
    assert audit["risk"] == {
        "verdict": "passed",
        "checkedAt": iso(START),
        "lineType": "mobile",
        "simSwapped": False,
        "callForwarding": False,
        "smsPumpingRiskScore": 12,
        "numberBlocked": False,
    }
    assert TO not in str(audit)
    assert not any(TO in json.dumps(item) for item in risky_world.items())  # the cache is keyed by HMAC too


def test_customer_info_says_how_strong_the_verification_was(risky_world: Any) -> None:
    # Given a landline verified by voice
    risky_world.seed_customer(TO, name="Jane Doe")
    risky_world.lookup.answers[TO] = {"line_type": "landline"}
    assert send(risky_world).body["channel"] == "call"
    risky_world.clock.advance(5)
    assert check_right(risky_world).status == 200

    # When
    out = info(risky_world)

    # Then
    assert out.status == 200
    assert out.body["assurance"] == {
        "channel": "call",
        "method": "agent",
        "verifiedAt": iso(START + 5),
        "riskCheck": {
            "verdict": "passed",
            "checkedAt": iso(START),
            "lineType": "landline",
            "simSwapped": False,
            "callForwarding": False,
            "smsPumpingRiskScore": 3,
            "numberBlocked": False,
        },
    }


def test_assurance_says_what_was_not_known(risky_world: Any) -> None:
    risky_world.seed_customer(TO, name="Jane Doe")
    risky_world.lookup.answers[TO] = unavailable("lookup_unavailable")
    approve(risky_world)

    risk = info(risky_world).body["assurance"]["riskCheck"]

    assert risk == {"verdict": "incomplete", "unanswered": list(ALL)}

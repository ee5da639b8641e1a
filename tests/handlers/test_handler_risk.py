"""The number's risk through the Lambda handlers (their events, the sandbox's Lookup): what is published for
operators, and the Twilio calls a start makes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from devserver.sandbox_lookup import RISK_NUMBERS

MOBILE, LANDLINE, VOIP, SWAPPED, FORWARDED, PUMPING = RISK_NUMBERS


def published(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The EMF metric names the handlers printed since the last call."""
    names = []
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' in line:
            document = json.loads(line)
            names += [m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    return names


def test_a_lookup_that_cannot_answer_is_counted_for_the_alarm(
    api: Callable[..., Any], sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given LookupFailure=allow (the default), and Lookup failing the next request
    client = api(AGENT_AUTH="none")
    sandbox.fail_next(503, 20503, api="lookup")
    capsys.readouterr()

    # When a code is asked for
    assert client.start(MOBILE).status == 200

    # Then the code went, and LookupFailures (the LookupFailuresAlarm's metric) was published
    assert published(capsys) == ["CodesSent", "LookupFailures"]


def test_a_risky_number_is_counted(api: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    client = api(AGENT_AUTH="none")
    capsys.readouterr()

    assert client.start(VOIP).status == 403

    assert published(capsys) == ["RiskyNumbersRefused"]


def test_a_start_asks_twilio_twice_then_once(api: Callable[..., Any], sandbox: Any) -> None:
    # Given no cooldown
    client = api(AGENT_AUTH="none", SEND_COOLDOWN_SECONDS="0")

    # When a number is verified twice
    for _ in range(2):
        assert client.start(MOBILE).status == 200

    # Then one Lookup (the second start read it from the cache) and two Verify sends
    assert (sandbox.lookups.count(MOBILE), len(sandbox.outbox)) == (1, 2)


@pytest.mark.parametrize(
    ("number", "channel", "status", "decided"),
    [
        (MOBILE, "sms", 200, "sms"),
        (LANDLINE, "sms", 200, "call"),
        (VOIP, "sms", 403, "line_type"),
        (SWAPPED, "sms", 403, "sim_swap"),
        (FORWARDED, "call", 403, "call_forwarding"),
        (FORWARDED, "sms", 200, "sms"),
        (PUMPING, "sms", 403, "sms_pumping_risk"),
    ],
)
def test_each_risk_number_through_the_handler(
    api: Callable[..., Any],
    sandbox: Any,
    audit: Any,
    assert_error: Callable[..., Any],
    number: str,
    channel: str,
    status: int,
    decided: str,
) -> None:
    # Given every Lookup package, and codes by SMS or voice
    client = api(
        AGENT_AUTH="none",
        LOOKUP_FIELDS="line_type_intelligence,sim_swap,call_forwarding,sms_pumping_risk",
        ALLOWED_CHANNELS="sms,call",
    )

    # When a code is asked for one of the sandbox's risk numbers
    answer = client.start(number, channel=channel)

    # Then the policy's answer, and the start's audit event holds the evidence
    risk = json.loads(audit.of(answer)["risk"])
    if status == 200:
        assert answer.status == 200 and answer.body["channel"] == decided
        assert sandbox.outbox[-1]["channel"] == decided
        assert risk["verdict"] == "passed"
    else:
        assert_error(answer, 403, "destination_risky")
        assert sandbox.outbox == []
        assert (risk["verdict"], risk["reason"]) == ("refused", decided)

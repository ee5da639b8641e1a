"""The number's own risk, over real HTTP against the dev stack: the sandbox's Lookup risk numbers
(devserver/sandbox_lookup.py, +1 202 555 0180-0185), the cache, LookupFailure both ways, the audit and the
agent's `assurance`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devserver.sandbox_lookup import RISK_NUMBERS

pytestmark = pytest.mark.stack

MOBILE, LANDLINE, VOIP, SWAPPED, FORWARDED, PUMPING = RISK_NUMBERS
EVERY_PACKAGE = "line_type_intelligence,sim_swap,call_forwarding,sms_pumping_risk"


@pytest.fixture(scope="class")
def risk_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """Every Lookup package, SMS and voice allowed, no cooldown."""
    with local_stack(LOOKUP_FIELDS=EVERY_PACKAGE, ALLOWED_CHANNELS="sms,call", SEND_COOLDOWN_SECONDS="0") as stack:
        yield stack


def start_audits(stack: Any, masked_tail: str) -> list[dict[str, Any]]:
    events = [
        item
        for item in stack.state_items()
        if item["sk"].startswith("AUDIT#") and item["action"] == "start" and item["to"].endswith(masked_tail)
    ]
    return sorted(events, key=lambda item: item["sk"])


class TestRiskNumbers:
    @pytest.mark.parametrize(
        ("number", "channel", "status", "sent_by", "says"),
        [
            (MOBILE, "sms", 200, "sms", None),
            (LANDLINE, "sms", 200, "call", None),  # a landline hears its code
            (VOIP, "sms", 403, None, "cannot prove who holds it"),
            (SWAPPED, "sms", 403, None, "SIM changed recently"),
            (FORWARDED, "call", 403, None, "forwarded elsewhere"),
            (FORWARDED, "sms", 200, "sms", None),  # a text is not forwarded
            (PUMPING, "sms", 403, None, "SMS fraud"),
        ],
    )
    def test_each_risk_number_gets_what_the_policy_says(
        self, risk_stack: Any, failure: Any, number: str, channel: str, status: int, sent_by: str, says: str
    ) -> None:
        # Given / When a code is asked for one of the sandbox's risk numbers
        answer = risk_stack.post(
            "/start-verify", {"to": number, "channel": channel}, token=risk_stack.token(f"risk-{number[-2:]}")
        )

        # Then it goes by the channel the policy chose, or is refused with a message the agent can act on
        if status == 200:
            assert answer.status_code == 200, answer.text
            assert answer.json()["channel"] == sent_by
            assert risk_stack.outbox(number)[-1]["channel"] == sent_by
        else:
            error = failure(answer, 403, "destination_risky")
            assert says in error["message"]
            assert risk_stack.outbox(number) == []

    def test_a_number_is_looked_up_once_and_then_served_from_the_cache(self, risk_stack: Any) -> None:
        # Given the mobile was looked up by the test above (or is now)
        token = risk_stack.token("risk-cache")
        assert risk_stack.post("/start-verify", {"to": MOBILE}, token=token).status_code == 200
        looked_up = risk_stack.sandbox.lookups.count(MOBILE)

        # When it is verified again
        assert risk_stack.post("/start-verify", {"to": MOBILE}, token=token).status_code == 200

        # Then no second Lookup: one a number within LookupCacheHours
        assert looked_up == 1
        assert risk_stack.sandbox.lookups.count(MOBILE) == 1

    def test_a_known_risky_number_is_refused_from_the_cache(self, risk_stack: Any, failure: Any) -> None:
        token = risk_stack.token("risk-known")
        for _ in range(2):
            failure(risk_stack.post("/start-verify", {"to": SWAPPED}, token=token), 403, "destination_risky")
        assert risk_stack.sandbox.lookups.count(SWAPPED) == 1

    def test_the_audit_records_the_signals_and_the_agent_sees_them(self, risk_stack: Any) -> None:
        # Given the landline verified by voice
        token = risk_stack.token("risk-evidence")
        assert risk_stack.post("/start-verify", {"to": LANDLINE}, token=token).json()["channel"] == "call"
        code = risk_stack.last_code(LANDLINE)
        assert risk_stack.post("/check-verify", {"to": LANDLINE, "code": code}, token=token).status_code == 200

        # When the agent asks for the record (no customer at this number: the record is 404, so look at the
        # audit), and the start's audit event is read
        risk = json.loads(start_audits(risk_stack, LANDLINE[-4:])[-1]["risk"])

        # Then the signals that decided it, and nothing that names the number or its carrier
        assert risk["verdict"] == "passed"
        assert (risk["lineType"], risk["simSwapped"], risk["callForwarding"]) == ("landline", False, False)
        assert risk["smsPumpingRiskScore"] == 4
        text = json.dumps(risk)
        assert LANDLINE not in text and "Sandbox Wireless" not in text


@pytest.fixture(scope="class")
def customer_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """The defaults (Lookup of the line type only), LookupFailure=refuse."""
    with local_stack(LOOKUP_FAILURE="refuse") as stack:
        yield stack


class TestAssuranceAndFailure:
    def test_customer_info_carries_the_assurance(self, customer_stack: Any) -> None:
        # Given the sample customer verified
        to, token = "+12025550100", customer_stack.token("assured")
        assert customer_stack.post("/start-verify", {"to": to}, token=token).status_code == 200
        code = customer_stack.last_code(to)
        assert customer_stack.post("/check-verify", {"to": to, "code": code}, token=token).status_code == 200

        # When the record is asked for
        body = customer_stack.customer_info(to, token).json()

        # Then the agent sees how the code went and what was checked first
        assurance = body["assurance"]
        assert assurance["channel"] == "sms"
        assert assurance["riskCheck"]["verdict"] == "passed"
        assert assurance["riskCheck"]["lineType"] == "mobile"
        assert set(assurance["riskCheck"]) == {"verdict", "checkedAt", "lineType"}  # only the package asked

    def test_lookup_failure_refuse_sends_nothing(self, customer_stack: Any, failure: Any) -> None:
        # Given Lookup fails the next request (a 503)
        customer_stack.sandbox.fail_next(503, 20503, api="lookup")

        # When a code is asked for
        answer = customer_stack.post("/start-verify", {"to": "+12025557901"}, token=customer_stack.token("f1"))

        # Then refused, and nothing sent
        error = failure(answer, 403, "destination_risky")
        assert "could not be checked" in error["message"]
        assert customer_stack.outbox("+12025557901") == []


@pytest.fixture(scope="class")
def lenient_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """The defaults: Lookup of the line type, LookupFailure=allow."""
    with local_stack() as stack:
        yield stack


class TestLookupFailureAllow:
    def test_a_lookup_that_fails_lets_the_code_go_and_is_audited(self, lenient_stack: Any) -> None:
        # Given Lookup fails the next request
        to, token = "+12025557902", lenient_stack.token("f2")
        lenient_stack.sandbox.fail_next(500, api="lookup")

        # When a code is asked for
        assert lenient_stack.post("/start-verify", {"to": to}, token=token).status_code == 200

        # Then it was sent, and the audit says the check was incomplete
        assert len(lenient_stack.outbox(to)) == 1
        risk = json.loads(start_audits(lenient_stack, to[-4:])[-1]["risk"])
        assert risk == {"verdict": "incomplete", "unanswered": ["line_type_intelligence"]}

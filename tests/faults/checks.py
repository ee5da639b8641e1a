"""What the faults tests promise, each: the contract's error (status, ``error.code``, ``Retry-After`` where
promised, CORS), and nothing half-written: no send reservation left held, no approval without Twilio's, exactly
one audit event per request (except where DynamoDB itself refuses the writes: then the answer is 503 and no
audit can be expected), and nothing sent twice. Through the real handlers: moto, the Twilio sandbox, the real
twilio client. These are the checks the test files share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.faults.conftest import (
    Desk,
    Rig,
    assert_refused,
)
from tests.support import VISIBLE

CUSTOMER_NAME = VISIBLE["name"]  # the seeded customer at TO
# Every send cap at one: a send that then succeeds shows that a failed one before it holds none of them.
ONE_SEND_EACH = {
    "MAX_SENDS_PER_DESTINATION_PER_HOUR": "1",
    "MAX_SENDS_PER_AGENT_PER_HOUR": "1",
    "MAX_SENDS_PER_MINUTE": "1",
}
FAILS_TO_LOCK = "2"  # MAX_FAILED_CHECKS where a test asks whether a check was counted as failed
SHORT_TIMEOUT = "0.5"  # TWILIO_TIMEOUT_SECONDS for the timeout tests
HANG_SECONDS = 5.0  # how long the sandbox hangs in "timeout" mode (the tests wake it sooner)


def one_event(audit: Any, answer: Any, outcome: str, action: str) -> dict[str, Any]:
    event = audit.of(answer)  # asserts exactly one AUDIT# item for the request id
    assert (event["action"], event["outcome"]) == (action, outcome), event
    return event


def no_event_or(audit: Any, answer: Any, outcome: str) -> None:
    """DynamoDB refused the request's writes: no audit event can be required; if one was written, it is right."""
    events = [item for item in audit.all() if item["request_id"] == answer.request_id]
    assert len(events) <= 1, events
    assert all(event["outcome"] == outcome for event in events), events


def not_served(answer: Any) -> None:
    assert "customer" not in answer.body
    assert CUSTOMER_NAME not in str(answer.body)


def unapproved(desk: Desk) -> None:
    """No approval: customer-info refuses, and serves nothing."""
    refused = desk.customer_info()
    assert_refused(refused, 403, "not_verified")
    not_served(refused)


def not_counted_as_failed(agent: Desk) -> None:
    """No failed check is counted for TO: under MAX_FAILED_CHECKS=FAILS_TO_LOCK one wrong code is 401, not the lock.

    Needs a pending code; that wrong code then counts as one failure (the right code resets the count).
    """
    wrong = agent.check(code="111111" if agent.code() != "111111" else "222222")
    assert_refused(wrong, 401, "incorrect_code")


def counted_as_failed(agent: Desk) -> None:
    """One failed check is counted for TO: under MAX_FAILED_CHECKS=FAILS_TO_LOCK one more wrong code locks it."""
    wrong = agent.check(code="111111" if agent.code() != "111111" else "222222")
    assert_refused(wrong, 429, "too_many_attempts")


def without_audit(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (item for item in items if not str(item["sk"]).startswith("AUDIT#")), key=lambda i: (i["pk"], i["sk"])
    )


def prepare(healthy: Desk, endpoint: str) -> None:
    """What the endpoint needs to succeed: a pending code for a check, an approval for customer-info."""
    if endpoint in ("check", "customer_info"):
        assert healthy.start().status == 200
    if endpoint == "customer_info":
        assert healthy.check().status == 200


def call_endpoint(agent: Desk, endpoint: str, code: str | None) -> Any:
    if endpoint == "start":
        return agent.start()
    if endpoint == "check":
        return agent.check(code=code)
    return agent.customer_info()


ENDPOINTS = ["start", "check", "customer_info"]  # the audit trail names the actions alike


@dataclass(frozen=True)
class Untouched:
    """The state table (audit events aside) and Twilio Verify's request count, taken before a request."""

    items: list[dict[str, Any]]
    verify_calls: int

    @classmethod
    def now(cls, rig: Rig) -> Untouched:
        return cls(without_audit(rig.state.items()), rig.twilio.verify_calls)

    def assert_unavailable_and_untouched(self, rig: Rig, answer: Any) -> None:
        """503 with Retry-After, nothing served, Twilio Verify not asked, no state written."""
        assert_refused(answer, 503, "upstream_unavailable")
        not_served(answer)
        assert rig.twilio.verify_calls == self.verify_calls
        assert without_audit(rig.state.items()) == self.items

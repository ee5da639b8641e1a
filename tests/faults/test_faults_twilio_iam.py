"""Faults of Twilio IAM, through the real handlers (moto, the Twilio sandbox, the real twilio client).

For each fault: the contract's error (status, ``error.code``, ``Retry-After`` where promised, CORS), and
nothing half-written: no send reservation left held, no approval without Twilio's, exactly one audit event
per request (except where DynamoDB itself refuses the writes: then the answer is 503 and no audit can be
expected), and nothing sent twice.
Shared checks are in tests/faults/checks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.checks import ENDPOINTS, call_endpoint, not_served, one_event, prepare, without_audit
from tests.faults.conftest import (
    Desk,
    StateView,
    TwilioTraffic,
    assert_refused,
)

# ============================================================================================ Twilio IAM


@pytest.mark.parametrize("iam", ["refuse_iam", "closed_port"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_iam_unavailable_is_503_and_never_lets_anyone_through(
    iam: str,
    endpoint: str,
    desk: Callable[..., Desk],
    closed_url: str,
    sandbox: Any,
    twilio: TwilioTraffic,
    state: StateView,
    audit: Any,
) -> None:
    # Given a healthy container set did what the endpoint needs, and a cold one (no cached token) cannot
    # reach IAM: IAM answers 503, or its URL refuses connections
    healthy = desk()
    prepare(healthy, endpoint)
    code = healthy.code() if endpoint != "start" else None
    cold = desk(TWILIO_IAM_BASE_URL=closed_url) if iam == "closed_port" else desk()
    if iam == "refuse_iam":
        sandbox.set_mode("refuse_iam")
    before, verify_calls = without_audit(state.items()), twilio.verify_calls

    # When the agent calls the endpoint there
    answer = call_endpoint(cold, endpoint, code)

    # Then 503 with Retry-After: not let through, Twilio Verify not called, no state touched, audited
    assert_refused(answer, 503, "upstream_unavailable")
    not_served(answer)
    assert twilio.verify_calls == verify_calls
    assert without_audit(state.items()) == before
    event = one_event(audit, answer, "upstream_unavailable", endpoint)
    assert event["agent"] == "unidentified"
    # and, IAM back, the same request succeeds (no reservation held, the code not consumed)
    sandbox.set_mode("normal")
    assert call_endpoint(healthy, endpoint, code).status == 200
    assert len(sandbox.outbox) == 1

"""Twilio IAM (token validation) unreachable or refusing: nobody is let through, nothing is touched.

What every fault test promises: tests/faults/checks.py.
"""

from __future__ import annotations

import pytest

from tests.faults.checks import ENDPOINTS, Untouched, call_endpoint, one_event, prepare
from tests.faults.conftest import (
    Rig,
)

# ============================================================================================ Twilio IAM


@pytest.mark.parametrize("iam", ["refuse_iam", "closed_port"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_iam_unavailable_is_503_and_never_lets_anyone_through(
    iam: str, endpoint: str, rig: Rig, closed_url: str
) -> None:
    # Given a healthy container set did what the endpoint needs, and a cold one (no cached token) cannot
    # reach IAM: IAM answers 503, or its URL refuses connections
    healthy = rig.desk()
    prepare(healthy, endpoint)
    code = healthy.code() if endpoint != "start" else None
    cold = rig.desk(TWILIO_IAM_BASE_URL=closed_url) if iam == "closed_port" else rig.desk()
    if iam == "refuse_iam":
        rig.sandbox.set_mode("refuse_iam")
    before = Untouched.now(rig)

    # When the agent calls the endpoint there
    answer = call_endpoint(cold, endpoint, code)

    # Then 503 with Retry-After: not let through, Twilio Verify not called, no state touched, audited
    before.assert_unavailable_and_untouched(rig, answer)
    event = one_event(rig.audit, answer, "upstream_unavailable", endpoint)
    assert event["agent"] == "unidentified"
    # and, IAM back, the same request succeeds (no reservation held, the code not consumed)
    rig.sandbox.set_mode("normal")
    assert call_endpoint(healthy, endpoint, code).status == 200
    assert len(rig.sandbox.outbox) == 1

"""Twilio Verify failing a send or a check: 5xx, malformed answers, 20429, refused connections, timeouts.

What every fault test promises: tests/faults/checks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.checks import (
    CUSTOMER_NAME,
    FAILS_TO_LOCK,
    HANG_SECONDS,
    ONE_SEND_EACH,
    SHORT_TIMEOUT,
    not_counted_as_failed,
    one_event,
    unapproved,
)
from tests.faults.conftest import (
    Rig,
    assert_refused,
)

# ====================================================================================== Twilio Verify


def _twilio_500(sandbox: Any) -> None:
    sandbox.fail_next(500)


def _twilio_malformed(sandbox: Any) -> None:
    sandbox.set_mode("malformed")


def _twilio_20429(sandbox: Any) -> None:
    sandbox.fail_next(429, 20429)


TWILIO_FAULTS = [
    pytest.param(_twilio_500, 503, "upstream_unavailable", id="twilio-500"),
    pytest.param(_twilio_malformed, 502, "upstream_error", id="twilio-malformed-json"),
    pytest.param(_twilio_20429, 503, "upstream_unavailable", id="twilio-429-20429"),
]


@pytest.mark.parametrize(("inject", "status", "code"), TWILIO_FAULTS)
def test_a_send_twilio_fails_releases_its_reservation(
    inject: Callable[[Any], None], status: int, code: str, rig: Rig
) -> None:
    # Given the default 30 s cooldown, one send allowed by each cap, and Twilio failing the next request
    agent = rig.desk(**ONE_SEND_EACH)
    inject(rig.sandbox)

    # When a code is asked for
    failed = agent.start()

    # Then the contract's error, audited, with nothing sent and the reservation given back
    assert_refused(failed, status, code)
    if inject is _twilio_20429:
        assert failed.headers["Retry-After"] == "1"
    one_event(rig.audit, failed, code, "start")
    assert rig.sandbox.outbox == []

    # and a retry right after (within the cooldown, with every cap at one) sends exactly one code
    rig.sandbox.set_mode("normal")
    retried = agent.start()
    assert retried.status == 200, retried.body
    assert len(rig.sandbox.outbox) == 1


@pytest.mark.parametrize(("inject", "status", "code"), TWILIO_FAULTS)
def test_a_check_twilio_fails_is_neither_an_approval_nor_a_failure(
    inject: Callable[[Any], None], status: int, code: str, rig: Rig
) -> None:
    # Given a code was sent, and Twilio fails the next request
    agent = rig.desk(MAX_FAILED_CHECKS=FAILS_TO_LOCK)
    assert agent.start().status == 200
    right = agent.code()
    inject(rig.sandbox)

    # When the right code is checked
    failed = agent.check(code=right)

    # Then the contract's error, audited; no approval, and the check is not counted as failed
    assert_refused(failed, status, code)
    one_event(rig.audit, failed, code, "check")
    unapproved(agent)

    # and, Twilio back, the check had not counted as failed, and the same code is still good (Twilio never
    # judged it): approved once, nothing re-sent
    rig.sandbox.set_mode("normal")
    not_counted_as_failed(agent)
    retried = agent.check(code=right)
    assert retried.status == 200, retried.body
    assert agent.customer_info().body["customer"]["name"] == CUSTOMER_NAME
    assert len(rig.sandbox.outbox) == 1


def test_a_send_when_twilio_refuses_connections_is_503_and_releases_its_reservation(rig: Rig, closed_url: str) -> None:
    # Given one container set whose Twilio Verify URL refuses connections (IAM still answers)
    broken = rig.desk(TWILIO_VERIFY_BASE_URL=closed_url, **ONE_SEND_EACH)

    # When a code is asked for
    failed = broken.start()

    # Then 503 with Retry-After, audited, nothing sent, the reservation given back
    assert_refused(failed, 503, "upstream_unavailable")
    one_event(rig.audit, failed, "upstream_unavailable", "start")
    assert rig.sandbox.outbox == []
    # and a healthy container sends at once (the failed send holds no cooldown, and counts against no cap)
    assert rig.desk(**ONE_SEND_EACH).start().status == 200
    assert len(rig.sandbox.outbox) == 1


def test_a_check_when_twilio_refuses_connections_is_503_and_not_a_failure(rig: Rig, closed_url: str) -> None:
    # Given a code was sent, and one container set whose Twilio Verify URL refuses connections
    healthy = rig.desk(MAX_FAILED_CHECKS=FAILS_TO_LOCK)
    broken = rig.desk(MAX_FAILED_CHECKS=FAILS_TO_LOCK, TWILIO_VERIFY_BASE_URL=closed_url)
    assert healthy.start().status == 200
    right = healthy.code()

    # When the right code is checked there
    failed = broken.check(code=right)

    # Then 503, audited, not a failed check, no approval; the code still works through a healthy container
    assert_refused(failed, 503, "upstream_unavailable")
    one_event(rig.audit, failed, "upstream_unavailable", "check")
    unapproved(healthy)
    not_counted_as_failed(healthy)
    assert healthy.check(code=right).status == 200
    assert len(rig.sandbox.outbox) == 1


def test_a_send_when_twilio_times_out_is_503_and_a_retry_resends_the_same_code(rig: Rig) -> None:
    # Given Twilio hangs longer than our 0.5 s timeout
    agent = rig.desk(TWILIO_TIMEOUT_SECONDS=SHORT_TIMEOUT, **ONE_SEND_EACH)
    rig.sandbox.timeout_seconds = HANG_SECONDS
    rig.sandbox.set_mode("timeout")

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After, audited, and the reservation given back (the retry below, every cap at one)
    assert_refused(failed, 503, "upstream_unavailable")
    one_event(rig.audit, failed, "upstream_unavailable", "start")

    # What a timeout means: the outcome is unknown to us, and here Twilio did send once it woke up.
    # We answered 503 and released the reservation, so the agent's retry is allowed at once and Twilio
    # re-sends the *same* pending code: the customer gets two messages with one valid code (bounded by
    # Twilio's own 5 sends per 10 minutes, 60203), and our counters count one send, not two. Keeping the
    # reservation on a timeout would avoid the second message but block a legitimate retry for the cooldown.
    assert rig.sandbox.outbox == []
    rig.sandbox.set_mode("normal")
    rig.twilio.settle()
    assert len(rig.sandbox.outbox) == 1
    retried = agent.start()
    assert retried.status == 200, retried.body
    assert len(rig.sandbox.outbox) == 2
    assert rig.sandbox.outbox[0]["code"] == rig.sandbox.outbox[1]["code"]
    assert rig.sandbox.outbox[0]["verificationSid"] == rig.sandbox.outbox[1]["verificationSid"]
    assert agent.check().status == 200


def test_a_check_when_twilio_times_out_records_no_approval_even_if_twilio_approved(rig: Rig, clock: Any) -> None:
    # Given a code was sent, then Twilio hangs longer than our 0.5 s timeout
    agent = rig.desk(TWILIO_TIMEOUT_SECONDS=SHORT_TIMEOUT, MAX_FAILED_CHECKS=FAILS_TO_LOCK)
    assert agent.start().status == 200
    right = agent.code()
    rig.sandbox.timeout_seconds = HANG_SECONDS
    rig.sandbox.set_mode("timeout")

    # When the right code is checked
    failed = agent.check(code=right)

    # Then 503, audited, not a failed check, and no approval recorded
    assert_refused(failed, 503, "upstream_unavailable")
    one_event(rig.audit, failed, "upstream_unavailable", "check")

    # What a timeout means here: Twilio approved the code once it woke up (the verification is consumed),
    # but we answered 503 and recorded nothing. Safe: customer-info stays refused; a retry of the same code
    # is 404 verification_not_found (Twilio: already approved), and the agent must send a new code.
    rig.sandbox.set_mode("normal")
    rig.twilio.settle()
    assert rig.twilio.started["check"] == 1
    unapproved(agent)
    again = agent.check(code=right)
    assert_refused(again, 404, "verification_not_found")
    one_event(rig.audit, again, "verification_not_found", "check")
    clock.advance(30)  # the cooldown of the first send
    assert agent.start().status == 200
    not_counted_as_failed(agent)  # neither the timed-out check nor the 404 was a failed check
    assert agent.check().status == 200
    assert agent.customer_info().status == 200
    assert len(rig.sandbox.outbox) == 2

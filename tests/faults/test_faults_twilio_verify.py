"""Twilio Verify failing a send or a check: 5xx, malformed answers, 20429, refused connections, timeouts.

A failure that says Twilio did not act (20429, a refused connection) gives the send's reservation back and
is no failed check. One that leaves the outcome unknown (5xx, an unreadable answer, a timeout) is taken as
the attacker's worse case: the send counts as made (cooldown, caps) and the check as failed.
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
    counted_as_failed,
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


TWILIO_FAULTS = [  # the fault, the contract's answer, and whether Twilio may have acted
    pytest.param(_twilio_500, 503, "upstream_unavailable", True, id="twilio-500"),
    pytest.param(_twilio_malformed, 502, "upstream_error", True, id="twilio-malformed-json"),
    pytest.param(_twilio_20429, 503, "upstream_unavailable", False, id="twilio-429-20429"),
]


@pytest.mark.parametrize(("inject", "status", "code", "maybe_sent"), TWILIO_FAULTS)
def test_a_send_twilio_fails_keeps_its_reservation_only_when_it_may_have_gone(
    inject: Callable[[Any], None], status: int, code: str, maybe_sent: bool, rig: Rig
) -> None:
    # Given the default 30 s cooldown, one send allowed by each cap, and Twilio failing the next request
    agent = rig.desk(**ONE_SEND_EACH)
    inject(rig.sandbox)

    # When a code is asked for
    failed = agent.start()

    # Then the contract's error, audited, with nothing sent
    assert_refused(failed, status, code)
    if inject is _twilio_20429:
        assert failed.headers["Retry-After"] == "1"
    one_event(rig.audit, failed, code, "start")
    assert rig.sandbox.outbox == []

    # and a retry right after (within the cooldown, every cap at one): refused while the first may have gone,
    # else it sends exactly one code (the reservation was given back)
    rig.sandbox.set_mode("normal")
    retried = agent.start()
    if maybe_sent:
        assert_refused(retried, 429, "rate_limited")
    else:
        assert retried.status == 200, retried.body
        assert len(rig.sandbox.outbox) == 1


@pytest.mark.parametrize(("inject", "status", "code", "maybe_judged"), TWILIO_FAULTS)
def test_a_check_twilio_fails_counts_as_failed_only_when_it_may_have_been_judged(
    inject: Callable[[Any], None], status: int, code: str, maybe_judged: bool, rig: Rig
) -> None:
    # Given a code was sent, and Twilio fails the next check
    agent = rig.desk(MAX_FAILED_CHECKS=FAILS_TO_LOCK)
    assert agent.start().status == 200
    right = agent.code()
    inject(rig.sandbox)

    # When the right code is checked
    failed = agent.check(code=right)

    # Then the contract's error, audited, no approval; counted as failed only if Twilio may have judged it
    assert_refused(failed, status, code)
    one_event(rig.audit, failed, code, "check")
    unapproved(agent)
    rig.sandbox.set_mode("normal")
    if maybe_judged:
        counted_as_failed(agent)
        return
    # and a code Twilio never judged is still good: approved once, nothing re-sent
    not_counted_as_failed(agent)
    assert agent.check(code=right).status == 200
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


def test_a_send_when_twilio_times_out_keeps_its_reservation_so_no_second_message_goes(rig: Rig, clock: Any) -> None:
    # Given Twilio hangs longer than our 0.5 s timeout
    agent = rig.desk(TWILIO_TIMEOUT_SECONDS=SHORT_TIMEOUT, **ONE_SEND_EACH)
    rig.sandbox.timeout_seconds = HANG_SECONDS
    rig.sandbox.set_mode("timeout")

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After, audited
    assert_refused(failed, 503, "upstream_unavailable")
    one_event(rig.audit, failed, "upstream_unavailable", "start")

    # What a timeout means: the outcome is unknown to us, and here Twilio did send once it woke up. The
    # reservation stands, so the agent's retry within the cooldown is refused (no second message), and the
    # code that did arrive is good.
    rig.sandbox.set_mode("normal")
    rig.twilio.settle()
    assert len(rig.sandbox.outbox) == 1
    assert_refused(agent.start(), 429, "rate_limited")
    assert len(rig.sandbox.outbox) == 1
    assert agent.check().status == 200


def test_a_check_when_twilio_times_out_records_no_approval_and_counts_as_failed(rig: Rig, clock: Any) -> None:
    # Given a code was sent, then Twilio hangs longer than our 0.5 s timeout
    agent = rig.desk(TWILIO_TIMEOUT_SECONDS=SHORT_TIMEOUT, MAX_FAILED_CHECKS=FAILS_TO_LOCK)
    assert agent.start().status == 200
    right = agent.code()
    rig.sandbox.timeout_seconds = HANG_SECONDS
    rig.sandbox.set_mode("timeout")

    # When the right code is checked
    failed = agent.check(code=right)

    # Then 503, audited, and no approval recorded
    assert_refused(failed, 503, "upstream_unavailable")
    one_event(rig.audit, failed, "upstream_unavailable", "check")

    # What a timeout means here: Twilio approved the code once it woke up (the verification is consumed),
    # but we answered 503 and recorded nothing: customer-info stays refused, a retry of the same code is 404,
    # and the timed-out check counted as a failure (a guesser cannot hide guesses behind timeouts).
    rig.sandbox.set_mode("normal")
    rig.twilio.settle()
    assert rig.twilio.started["check"] == 1
    unapproved(agent)
    again = agent.check(code=right)
    assert_refused(again, 404, "verification_not_found")
    clock.advance(30)  # the cooldown of the first send
    assert agent.start().status == 200
    counted_as_failed(agent)

"""The core's decisions on check-verify and cancel-verify: approvals, failed checks, the lock.

The world, its limits and the shared steps: tests/unit/actions_helpers.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from callerauth import errors
from callerauth.twilio_verify import error_for

from tests.support import OTHER_TASK, TASK, TO, iso
from tests.unit.actions_helpers import (
    AGENT_B,
    OTHER,
    START,
    approve,
    cancel,
    check,
    check_right,
    check_wrong,
    info,
    send,
)

# ------------------------------------------------------------------------------------------ check


def test_the_right_code_approves(world: Any) -> None:
    # Given a customer, and a code sent
    world.seed_customer(TO, name="Jane Doe")
    send(world)
    world.clock.advance(45)

    # When
    out = check_right(world, task_sid=TASK)

    # Then
    assert (out.status, out.body) == (
        200,
        {"success": True, "message": "Verification success.", "verifiedUntil": iso(START + 45 + 300)},
    )
    assert out.audits == 1
    assert world.audits()[-1]["outcome"] == "approved"
    # and the approval is this agent's, for this task, from now for the approval window
    served = info(world, task_sid=TASK)
    assert (served.status, served.body["verifiedAt"], served.body["verifiedUntil"]) == (
        200,
        iso(START + 45),
        iso(START + 345),
    )
    assert (info(world, token=AGENT_B).status, info(world, task_sid=OTHER_TASK).status) == (403, 403)


def test_a_wrong_code_answers_incorrect_token_and_counts(world: Any) -> None:
    # Given a code sent
    send(world)

    # When
    out = check_wrong(world)

    # Then: the reference backend's answer, in the contract's shape
    assert out.status == 401
    assert out.body == {
        "success": False,
        "message": "Incorrect token.",
        "error": {"code": "incorrect_code", "message": "Incorrect token.", "moreInfo": errors.VERIFY_DOCS},
    }
    assert out.audits == 1
    # and it counted: two more failures make the third, which locks
    assert [check_wrong(world).code for _ in range(2)] == ["incorrect_code", "too_many_attempts"]


def test_max_failed_checks_locks_the_number_even_for_the_right_code(world: Any) -> None:
    # Given a code sent, and two wrong tries
    send(world)
    assert [check_wrong(world).status for _ in range(2)] == [401, 401]

    # When: the third consecutive failure
    third = check_wrong(world)
    right_while_locked = check_right(world)

    # Then
    assert (third.status, third.code, third.retry_after) == (429, "too_many_attempts", 120)
    assert (right_while_locked.status, right_while_locked.code) == (429, "too_many_attempts")
    assert world.verify.count("check") == 3  # a locked number's code never reaches Twilio
    assert world.audits()[-1]["outcome"] == "too_many_attempts"


def test_the_lock_survives_a_new_send_and_ends_after_lockout_seconds(world: Any) -> None:
    # Given a locked number
    send(world)
    for _ in range(3):
        check_wrong(world)
    world.clock.advance(60)

    # When
    resend = send(world)
    world.clock.advance(59)
    still_locked = check_right(world)
    world.clock.advance(1)
    unlocked = check_right(world)

    # Then
    assert (resend.status, resend.code, resend.retry_after) == (429, "too_many_attempts", 60)
    assert (still_locked.status, still_locked.retry_after) == (429, 1)
    assert unlocked.status == 200
    assert world.verify.count("start") == 1


def test_a_resend_does_not_reset_the_failure_count(world: Any) -> None:
    # Given two failures, then a new code
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.clock.advance(30)
    assert send(world).status == 200

    # When
    third = check_wrong(world)

    # Then
    assert (third.status, third.code) == (429, "too_many_attempts")


@pytest.mark.parametrize("gap", [3601, 2 * 86400], ids=["over an hour", "past the item's expiry"])
def test_old_failures_do_not_count_towards_a_lock(world: Any, gap: int) -> None:
    # Given two failures (the limit is three), then a long quiet time and a new code
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.clock.advance(gap)
    assert send(world).status == 200

    # When
    out = check_wrong(world)

    # Then: a first failure of a new series, not a lock
    assert (out.status, out.code) == (401, "incorrect_code")


@pytest.mark.parametrize("no_failure", ["nothing pending", "twilio refusing"])
def test_a_check_that_is_no_failure_does_not_keep_old_failures_alive(world: Any, no_failure: str) -> None:
    # Given two failures (the limit is three), and 50 minutes later a check that Twilio could not judge
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.clock.advance(3000)  # the code has expired at Twilio
    if no_failure == "twilio refusing":
        send(world)
        world.verify.fail("check", error_for(429, 20429))
    assert check(world, "123456").status in (404, 503)
    world.clock.advance(700)  # over an hour since the last failure
    assert send(world).status == 200

    # When
    out = check_wrong(world)

    # Then: the two old failures are over an hour old; this is the first of a new series
    assert (out.status, out.code) == (401, "incorrect_code")


def test_a_success_resets_the_failure_count(world: Any) -> None:
    # Given two failures, then the right code
    send(world)
    check_wrong(world)
    check_wrong(world)
    assert check_right(world).status == 200
    world.clock.advance(30)
    send(world)

    # When
    answers = [check_wrong(world).status for _ in range(3)]

    # Then: counted from zero again, so it is the third of these that locks
    assert answers == [401, 401, 429]


@pytest.mark.parametrize(
    ("twilio_error", "status", "code"),
    [
        (error_for(429, 20429), 503, "upstream_unavailable"),
        (error_for(429, 60202), 429, "too_many_attempts"),
        (error_for(400, 60200), 400, "invalid_parameter"),
        (error_for(400, 99999), 502, "upstream_error"),
    ],
)
def test_a_definite_twilio_refusal_on_check_is_not_a_failed_check(
    world: Any, twilio_error: errors.ApiError, status: int, code: str
) -> None:
    # Given two failures already, then Twilio failing three checks
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.verify.fail("check", twilio_error, times=3)

    # When
    failed = [check_wrong(world) for _ in range(3)]

    # Then: none of them counted, so the right code still passes
    assert {(o.status, o.code, o.audits) for o in failed} == {(status, code, 1)}
    assert world.state(TO)["failed"] == 2
    assert check_right(world).status == 200


@pytest.mark.parametrize("twilio_error", [error_for(503, None), error_for(502, None)], ids=["twilio-503", "twilio-502"])
def test_a_check_whose_outcome_is_unknown_counts_as_failed(world: Any, twilio_error: Any) -> None:
    # Given two failures already (the limit is three), then Twilio failing without saying whether it judged
    send(world)
    check_wrong(world)
    check_wrong(world)
    world.verify.fail("check", twilio_error)

    # When
    unknown = check_wrong(world)

    # Then: it is answered as an outage, and counted as the failure it may have been: the number is locked
    assert (unknown.status, unknown.code, unknown.audits) == (503, "upstream_unavailable", 1)
    locked = check_right(world)
    assert (locked.status, locked.code) == (429, "too_many_attempts")


def test_a_check_with_nothing_pending_is_not_found_and_never_counts(world: Any) -> None:
    # Given no code ever sent
    # When
    answers = [check(world, "123456") for _ in range(5)]

    # Then
    assert {(o.status, o.code, o.audits) for o in answers} == {(404, "verification_not_found", 1)}
    assert answers[0].body["error"]["twilioCode"] == 20404
    # and none counted: a code sent now takes two wrong tries without a lock
    assert send(world).status == 200
    assert [check_wrong(world).status for _ in range(2)] == [401, 401]


def test_a_code_is_single_use_and_expires_with_twilio(world: Any) -> None:
    # Given one approved code and one left to expire
    approve(world)
    code_used = "314159"
    send(world, OTHER)
    world.clock.advance(600)

    # When
    reuse = check(world, code_used)
    expired = check(world, world.verify.pending[OTHER].code, OTHER)

    # Then
    assert (reuse.status, reuse.code) == (404, "verification_not_found")
    assert (expired.status, expired.code) == (404, "verification_not_found")


# ------------------------------------------------------------------------------------------ cancel


def test_cancel_clears_the_approval_even_when_twilio_has_nothing_pending(world: Any) -> None:
    # Given an approval (Twilio's verification is spent: a cancel there answers 20404)
    world.seed_customer(TO, name="Jane Doe")
    approve(world)

    # When
    out = cancel(world)

    # Then
    assert (out.status, out.body) == (200, {"success": True, "status": "canceled"})
    assert out.audits == 1
    assert world.audits()[-1]["outcome"] == "canceled"
    assert (info(world).status, info(world).code) == (403, "not_verified")


def test_cancel_cancels_the_pending_code_at_twilio(world: Any) -> None:
    # Given a pending code
    send(world)
    code = world.verify.code_for(TO)

    # When
    out = cancel(world)
    late = check(world, code)

    # Then
    assert out.status == 200
    assert (late.status, late.code) == (404, "verification_not_found")


def test_cancel_answers_a_twilio_outage_and_audits_it(world: Any) -> None:
    # Given Twilio down
    send(world)
    world.verify.fail("cancel", error_for(503, None))

    # When
    out = cancel(world)

    # Then
    assert (out.status, out.code, out.retry_after, out.audits) == (503, "upstream_unavailable", 5, 1)
    assert world.audits()[-1]["outcome"] == "upstream_unavailable"

"""State that must not outlive its moment: a lockout's count, an old task binding, a held state item.

Each test here was written against a planted bug that the rest of the suite let through (issue 9):
a lockout that keeps its failure count after it ends, a re-approval that keeps an old task binding,
and a TransactionConflict on the state item answered 503 instead of 429. DynamoDB's transaction
conflicts cannot happen in moto (it serialises everything), so `ConflictingClient` models them.
"""

from __future__ import annotations

from typing import Any

import pytest
from callerauth.actions import check_verify, customer_info, start_verify

TO = "+12025550100"
TASK, OTHER_TASK = "WT" + "ab" * 16, "WT" + "cd" * 16


def start(world: Any, **extra: str) -> Any:
    return world.call(start_verify, {"to": TO, **extra})


def check(world: Any, right: bool, **extra: str) -> Any:
    code = world.verify.code_for(TO)
    return world.call(check_verify, {"to": TO, "verification_code": code if right else _wrong(code), **extra})


def info(world: Any, **extra: str) -> Any:
    return world.call(customer_info, {"to": TO, **extra})


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


# ------------------------------------------------------------------------------------------ lockout


def test_a_lockout_that_has_ended_starts_a_new_count(world: Any) -> None:
    # Given a number locked by MaxFailedChecks (3 here) wrong codes
    start(world)
    limit = world.settings.max_failed_checks
    outcomes = [check(world, right=False).code for _ in range(limit)]
    assert outcomes == ["incorrect_code"] * (limit - 1) + ["too_many_attempts"]

    # When the lockout has ended and the agent types one more wrong code
    world.clock.advance(world.settings.lockout_seconds + 1)
    after = check(world, right=False)

    # Then it is one wrong code, not a new lockout: the count began again at zero
    assert (after.status, after.code) == (401, "incorrect_code")
    # and it takes the full MaxFailedChecks again to lock
    more = [check(world, right=False).code for _ in range(limit - 1)]
    assert more == ["incorrect_code"] * (limit - 2) + ["too_many_attempts"]


# ------------------------------------------------------------------------------------------ approvals


def test_a_reapproval_for_another_task_replaces_the_old_binding(world: Any) -> None:
    # Given a caller verified on task A, then verified again on task B
    world.seed_customer(TO, name="Jane Doe")
    start(world, task_sid=TASK)
    assert check(world, right=True, task_sid=TASK).status == 200
    world.clock.advance(world.settings.send_cooldown_seconds)
    start(world, task_sid=OTHER_TASK)
    assert check(world, right=True, task_sid=OTHER_TASK).status == 200

    # When the agent asks on each task
    on_b, on_a = info(world, task_sid=OTHER_TASK), info(world, task_sid=TASK)

    # Then the record is served on B only
    assert on_b.status == 200
    assert (on_a.status, on_a.code) == (403, "not_verified")


def test_a_reapproval_without_a_task_drops_the_old_binding(world: Any) -> None:
    # Given a caller verified on task A, then verified again naming no task
    world.seed_customer(TO, name="Jane Doe")
    start(world, task_sid=TASK)
    assert check(world, right=True, task_sid=TASK).status == 200
    world.clock.advance(world.settings.send_cooldown_seconds)
    start(world)
    assert check(world, right=True).status == 200

    # When the agent asks on another task
    answer = info(world, task_sid=OTHER_TASK)

    # Then the old task binding is gone: the newest approval names no task
    assert answer.status == 200


# ------------------------------------------------------------------------------------------ conflicts


class ConflictingClient:
    """The moto client, except that the next transaction is cancelled with DynamoDB's reasons.

    DynamoDB cancels a transaction that touches an item another transaction is writing
    (`TransactionConflict`); moto never does. `reasons` is one code per item, in order (None: fine).
    """

    def __init__(self, client: Any, reasons: list[str | None]) -> None:
        self._client = client
        self._reasons = reasons
        self.cancelled = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.cancelled == 0:
            self.cancelled += 1
            reasons = [{"Code": code or "None"} for code in self._reasons]
            error = {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}}
            raise self._client.exceptions.TransactionCanceledException(
                {**error, "CancellationReasons": reasons}, "TransactWriteItems"
            )
        return self._client.transact_write_items(**kwargs)


@pytest.mark.parametrize(
    ("reasons", "status", "code", "retry_after"),
    [
        # a concurrent request for this number holds its state item: a code is on its way, so a cooldown
        pytest.param(["TransactionConflict", None, None, None], 429, "rate_limited", "30", id="state-item"),
        # a busy counter (another number's send): transient, not a limit
        pytest.param([None, None, None, "TransactionConflict"], 503, "upstream_unavailable", "1", id="counter"),
        # a limit and a conflict at once: the limit speaks
        pytest.param(
            ["ConditionalCheckFailed", None, None, "TransactionConflict"], 429, "rate_limited", None, id="both"
        ),
    ],
)
def test_a_conflicting_reservation_is_answered_for_what_it_is(
    world: Any, reasons: list[str | None], status: int, code: str, retry_after: str | None
) -> None:
    # Given DynamoDB cancelling the send's reservation for these reasons
    client = ConflictingClient(world.client, reasons)
    services = world.with_store_client(client)

    # When the agent sends a code
    answer = world.call(start_verify, {"to": TO}, services=services)

    # Then the answer says what happened, Twilio was not asked, and the refusal is audited
    assert (answer.status, answer.code) == (status, code)
    if retry_after is not None:
        assert answer.error.retry_after == int(retry_after)
    assert client.cancelled == 1
    assert world.verify.calls == []
    assert answer.audits == 1


# ------------------------------------------------------------------------------------------ checks in flight


def test_no_more_checks_than_may_fail_reach_twilio_even_all_at_once(world: Any) -> None:
    # Given a number with a code pending, and checks that arrive while earlier ones are still at Twilio:
    # each one the fake Twilio is judging lets the next one in (MaxFailedChecks is 3 here)
    start(world)
    limit = world.settings.max_failed_checks
    judge = world.verify.check
    answers: list[Any] = []

    def slow_check(to: str, code: str) -> bool:
        if len(answers) < limit + 2:
            answers.append(check(world, right=False))  # a concurrent check, arriving now
        return judge(to, code)

    world.verify.check = slow_check

    # When a wrong code is checked
    first = check(world, right=False)

    # Then only MaxFailedChecks checks reached Twilio: the others were refused before it, while in flight
    assert world.verify.count("check") == limit
    refused = [a for a in answers if a.code == "too_many_attempts"]
    assert refused and all(a.status == 429 for a in refused)
    assert first.status in (401, 429)

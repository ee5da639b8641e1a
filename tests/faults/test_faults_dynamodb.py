"""DynamoDB throttling, conflicting, unreachable: reservations, checks, approvals and reads stay whole.

What every fault test promises: tests/faults/checks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.checks import (
    CUSTOMER_NAME,
    ENDPOINTS,
    FAILS_TO_LOCK,
    Untouched,
    call_endpoint,
    no_event_or,
    not_counted_as_failed,
    not_served,
    one_event,
    prepare,
    unapproved,
    without_audit,
)
from tests.faults.conftest import (
    Desk,
    DynamoFaults,
    Rig,
    assert_refused,
    canceled,
    throttled,
    unprocessed,
    unreachable,
)

# ============================================================================================== DynamoDB


@pytest.mark.parametrize("error", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_a_throttled_send_reservation_is_503_and_sends_nothing(error: str, rig: Rig, dynamo: DynamoFaults) -> None:
    # Given DynamoDB throttles the reservation (the one write before Twilio)
    agent = rig.desk()
    dynamo.fail("TransactWriteItems", throttled(error))

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After; Twilio is not called; nothing is held. DynamoDB refused the request's
    # write, so no audit event can be required (the product does not try one after a DynamoDB error).
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert rig.twilio.verify_calls == 0
    assert rig.sandbox.outbox == []
    assert without_audit(rig.state.items()) == []
    no_event_or(rig.audit, failed, "upstream_unavailable")
    # and a retry right after sends one code
    assert agent.start().status == 200
    assert len(rig.sandbox.outbox) == 1
    assert rig.state.sends_counted() == {1}


# One reason per reservation item: the destination's STATE, its hourly counter, the agent's, the deployment's.


@pytest.mark.parametrize(
    "reasons",
    [
        pytest.param(("TransactionConflict", "None", "None", "None"), id="state-item"),
        pytest.param(
            ("None", "None", "None", "TransactionConflict"),
            id="deployment-counter",
        ),
        pytest.param(
            ("TransactionConflict",) * 4,
            id="every-item",
        ),
    ],
)
def test_a_send_reservation_in_conflict_is_transient_and_holds_nothing(
    reasons: tuple[str, ...], rig: Rig, dynamo: DynamoFaults
) -> None:
    # Given the reservation transaction is cancelled for a conflict with a concurrent transaction
    agent = rig.desk(SEND_COOLDOWN_SECONDS="30")
    dynamo.fail("TransactWriteItems", canceled(*reasons))

    # When a code is asked for
    answer = agent.start()

    # Then nothing is sent or held, the answer is audited, and a retry right after sends one code
    dynamo.assert_spent()
    assert rig.twilio.verify_calls == 0
    assert without_audit(rig.state.items()) == []
    one_event(rig.audit, answer, answer.body["error"]["code"], "start")
    assert agent.start().status == 200
    assert len(rig.sandbox.outbox) == 1
    # and the answer claims no limit: a conflict is transient. A conflict on the number's own STATE item
    # means a concurrent request for that number: "a code was just sent" with at most the cooldown is fair.
    if answer.status == 429:
        assert reasons[0] == "TransactionConflict", answer.body
        assert_refused(answer, 429, "rate_limited")
        assert int(answer.headers["Retry-After"]) <= 30, answer.headers
    else:
        assert_refused(answer, 503, "upstream_unavailable")


def test_the_release_after_a_twilio_failure_refused_by_dynamodb_keeps_the_cooldown(
    rig: Rig, dynamo: DynamoFaults, clock: Any
) -> None:
    # Given Twilio refuses the send (too busy), and DynamoDB throttles the release that should follow it
    agent = rig.desk()
    rig.sandbox.fail_next(429, 20429)  # a definite refusal: the reservation would be released
    dynamo.fail("TransactWriteItems", throttled(), skip=1)

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After, nothing sent. DynamoDB refused the release, so the reservation stays:
    # a retry within the cooldown is refused (nothing sent twice), and the counters keep one unsent send
    # until their window ends. No audit event can be required: the release carried it.
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert rig.sandbox.outbox == []
    no_event_or(rig.audit, failed, "upstream_unavailable")
    assert rig.state.sends_counted() == {1}
    assert_refused(agent.start(), 429, "rate_limited")
    clock.advance(30)
    assert agent.start().status == 200
    assert len(rig.sandbox.outbox) == 1


def test_the_audit_after_a_send_refused_by_dynamodb_keeps_the_reservation(rig: Rig, dynamo: DynamoFaults) -> None:
    # Given DynamoDB throttles the write that follows a successful send (its audit event, how it was sent and
    # what Lookup said: one transaction, after the reservation's)
    agent = rig.desk()
    dynamo.fail("TransactWriteItems", throttled(), skip=1)

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After although Twilio sent the code: the reservation (cooldown, counters) stays,
    # so the agent's retry is refused by the cooldown and nothing is sent twice; the code sent works.
    # The send has no audit event (its one write was the one refused): see the report.
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert len(rig.sandbox.outbox) == 1
    assert rig.state.sends_counted() == {1}
    retried = agent.start()
    assert_refused(retried, 429, "rate_limited")
    one_event(rig.audit, retried, "rate_limited", "start")
    assert len(rig.sandbox.outbox) == 1
    assert agent.check().status == 200


def test_a_throttled_check_is_503_before_twilio_and_the_code_still_works(rig: Rig, dynamo: DynamoFaults) -> None:
    # Given a code was sent, and DynamoDB throttles the check's first write (count the attempt, lock check)
    agent = rig.desk(MAX_FAILED_CHECKS=FAILS_TO_LOCK)
    assert agent.start().status == 200
    right = agent.code()
    dynamo.fail("UpdateItem", throttled())

    # When the right code is checked
    failed = agent.check(code=right)

    # Then 503 with Retry-After, Twilio not asked (the code not consumed), nothing counted, no approval
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert rig.twilio.started["check"] == 0
    no_event_or(rig.audit, failed, "upstream_unavailable")
    unapproved(agent)
    not_counted_as_failed(agent)
    # and a retry right after approves
    assert agent.check(code=right).status == 200


APPROVAL_WRITE_FAULTS = [
    pytest.param(canceled("TransactionConflict", "None"), id="transaction-conflict"),
    pytest.param(throttled(), id="throttled"),
    pytest.param(unreachable(), id="unreachable"),
]


@pytest.mark.parametrize("fault", APPROVAL_WRITE_FAULTS)
def test_an_approval_dynamodb_cannot_record_is_503_and_no_approval(
    fault: Any, rig: Rig, dynamo: DynamoFaults, clock: Any
) -> None:
    # Given a code was sent, and the transaction that records an approval (with its audit event) fails
    agent = rig.desk()
    assert agent.start().status == 200
    right = agent.code()
    dynamo.fail("TransactWriteItems", fault)

    # When the right code is checked
    failed = agent.check(code=right)

    # Then 503 with Retry-After, and no approval although Twilio approved the code
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert rig.twilio.started["check"] == 1
    unapproved(agent)
    # The verification is consumed at Twilio: retrying the code is 404, and a new code is needed.
    again = agent.check(code=right)
    assert_refused(again, 404, "verification_not_found")
    one_event(rig.audit, again, "verification_not_found", "check")
    clock.advance(30)
    assert agent.start().status == 200
    assert agent.check().status == 200
    assert agent.customer_info().body["customer"]["name"] == CUSTOMER_NAME
    assert len(rig.sandbox.outbox) == 2


def test_an_approval_write_in_conflict_gives_back_the_failed_check_count(
    desk: Callable[..., Desk], dynamo: DynamoFaults, clock: Any
) -> None:
    # Given a code was sent, and the approval transaction is cancelled for a conflict
    agent = desk(MAX_FAILED_CHECKS=FAILS_TO_LOCK)
    assert agent.start().status == 200
    dynamo.fail("TransactWriteItems", canceled("TransactionConflict", "None"))

    # When the right code is checked
    failed = agent.check()

    # Then 503, and the right code is not counted as a failed check (Twilio consumed it: a new code probes)
    assert_refused(failed, 503, "upstream_unavailable")
    clock.advance(30)
    assert agent.start().status == 200
    not_counted_as_failed(agent)


def test_an_approval_write_in_conflict_is_audited(rig: Rig, dynamo: DynamoFaults) -> None:
    # Given a code was sent, and the approval transaction is cancelled for a conflict
    agent = rig.desk()
    assert agent.start().status == 200
    dynamo.fail("TransactWriteItems", canceled("TransactionConflict", "None"))

    # When the right code is checked
    failed = agent.check()

    # Then 503, and the request has its one audit event
    assert_refused(failed, 503, "upstream_unavailable")
    one_event(rig.audit, failed, "upstream_unavailable", "check")


@pytest.mark.parametrize(
    ("fault", "audited"),
    [
        pytest.param(throttled(), False, id="throttled"),
        pytest.param(unreachable(), False, id="unreachable"),
        pytest.param(unprocessed(), True, id="unprocessed-keys"),
    ],
)
def test_a_customer_info_read_that_fails_is_503_and_serves_nothing(
    fault: Any, audited: bool, rig: Rig, dynamo: DynamoFaults
) -> None:
    # Given the caller was verified, and the one read (approval and customer record) fails
    agent = rig.desk()
    assert agent.start().status == 200
    assert agent.check().status == 200
    before = without_audit(rig.state.items())
    dynamo.fail("BatchGetItem", fault)

    # When the agent asks for the customer
    failed = agent.customer_info()

    # Then 503 with Retry-After and no customer data; the approval is untouched
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    not_served(failed)
    assert without_audit(rig.state.items()) == before
    if audited:  # DynamoDB answered (keys unprocessed): the refusal is audited
        one_event(rig.audit, failed, "upstream_unavailable", "customer_info")
    else:
        no_event_or(rig.audit, failed, "upstream_unavailable")
    # and a retry right after serves the record
    assert agent.customer_info().body["customer"]["name"] == CUSTOMER_NAME


def test_customer_data_is_not_served_when_its_read_cannot_be_audited(rig: Rig, dynamo: DynamoFaults) -> None:
    # Given the caller was verified, and DynamoDB throttles the audit write of the read
    agent = rig.desk()
    assert agent.start().status == 200
    assert agent.check().status == 200
    dynamo.fail("PutItem", throttled())

    # When the agent asks for the customer
    failed = agent.customer_info()

    # Then 503 and no customer data: no read of customer data goes unaudited
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    not_served(failed)
    no_event_or(rig.audit, failed, "upstream_unavailable")
    served = agent.customer_info()
    assert served.body["customer"]["name"] == CUSTOMER_NAME
    one_event(rig.audit, served, "served", "customer_info")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_dynamodb_unreachable_is_503_before_anything_else(
    endpoint: str, rig: Rig, closed_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a healthy container set did what the endpoint needs, and a second one whose DynamoDB endpoint
    # refuses connections (the real client, its real retries)
    healthy = rig.desk()
    prepare(healthy, endpoint)
    code = healthy.code() if endpoint != "start" else None
    broken = rig.desk(AWS_ENDPOINT_URL_DYNAMODB=closed_url)
    before = Untouched.now(rig)

    # When the agent calls the endpoint there
    answer = call_endpoint(broken, endpoint, code)

    # Then 503 with Retry-After and CORS, before Twilio is asked; nothing written, nothing served, and
    # no audit event (DynamoDB cannot take one)
    before.assert_unavailable_and_untouched(rig, answer)
    assert [item for item in rig.audit.all() if item["request_id"] == answer.request_id] == []
    # and once DynamoDB is back (a container that reaches it), the same request succeeds at once
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    assert call_endpoint(healthy, endpoint, code).status == 200
    assert len(rig.sandbox.outbox) == 1

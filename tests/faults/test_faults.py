"""Faults on every dependency, through the real handlers (moto, the Twilio sandbox, the real twilio client).

For each fault: the contract's error (status, ``error.code``, ``Retry-After`` where promised, CORS), and
nothing half-written: no send reservation left held, no approval without Twilio's, exactly one audit event
per request (except where DynamoDB itself refuses the writes: then the answer is 503 and no audit can be
expected), and nothing sent twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.conftest import (
    TO,
    Desk,
    DynamoFaults,
    StateView,
    TwilioTraffic,
    assert_refused,
    canceled,
    throttled,
    unprocessed,
    unreachable,
)

CUSTOMER_NAME = "Ada Lovelace"  # the seeded customer at TO
SHORT_TIMEOUT = "0.5"  # TWILIO_TIMEOUT_SECONDS for the timeout tests
HANG_SECONDS = 5.0  # how long the sandbox hangs in "timeout" mode (the tests wake it sooner)


def _one_event(audit: Any, answer: Any, outcome: str, action: str) -> dict[str, Any]:
    event = audit.of(answer)  # asserts exactly one AUDIT# item for the request id
    assert (event["action"], event["outcome"]) == (action, outcome), event
    return event


def _no_event_or(audit: Any, answer: Any, outcome: str) -> None:
    """DynamoDB refused the request's writes: no audit event can be required; if one was written, it is right."""
    events = [item for item in audit.all() if item["request_id"] == answer.request_id]
    assert len(events) <= 1, events
    assert all(event["outcome"] == outcome for event in events), events


def _not_served(answer: Any) -> None:
    assert "customer" not in answer.body
    assert CUSTOMER_NAME not in str(answer.body)


def _unapproved(desk: Desk, state: StateView) -> None:
    """No approval anywhere: none on the state item, and customer-info refuses."""
    assert "approved_by" not in state.state(TO, desk.hash_secret)
    refused = desk.customer_info()
    assert_refused(refused, 403, "not_verified")
    _not_served(refused)


def _without_audit(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (item for item in items if not str(item["sk"]).startswith("AUDIT#")), key=lambda i: (i["pk"], i["sk"])
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
    inject: Callable[[Any], None],
    status: int,
    code: str,
    desk: Callable[..., Desk],
    sandbox: Any,
    state: StateView,
    audit: Any,
) -> None:
    # Given the default 30 s cooldown, and Twilio failing the next request
    agent = desk()
    inject(sandbox)

    # When a code is asked for
    failed = agent.start()

    # Then the contract's error, audited, with nothing sent and the reservation given back
    assert_refused(failed, status, code)
    if inject is _twilio_20429:
        assert failed.headers["Retry-After"] == "1"
    _one_event(audit, failed, code, "start")
    assert sandbox.outbox == []
    state.assert_no_reservation(TO, agent.hash_secret)

    # and a retry right after (within the cooldown) sends exactly one code
    sandbox.set_mode("normal")
    retried = agent.start()
    assert retried.status == 200, retried.body
    assert len(sandbox.outbox) == 1
    assert state.sends_counted() == {1}


@pytest.mark.parametrize(("inject", "status", "code"), TWILIO_FAULTS)
def test_a_check_twilio_fails_is_neither_an_approval_nor_a_failure(
    inject: Callable[[Any], None],
    status: int,
    code: str,
    desk: Callable[..., Desk],
    sandbox: Any,
    state: StateView,
    audit: Any,
) -> None:
    # Given a code was sent, and Twilio fails the next request
    agent = desk()
    assert agent.start().status == 200
    right = agent.code()
    inject(sandbox)

    # When the right code is checked
    failed = agent.check(code=right)

    # Then the contract's error, audited; no approval, and the check is not counted as failed
    assert_refused(failed, status, code)
    _one_event(audit, failed, code, "check")
    assert state.state(TO, agent.hash_secret).get("failed", 0) == 0
    _unapproved(agent, state)

    # and, Twilio back, the same code is still good (Twilio never judged it): approved once, nothing re-sent
    sandbox.set_mode("normal")
    retried = agent.check(code=right)
    assert retried.status == 200, retried.body
    assert agent.customer_info().body["customer"]["name"] == CUSTOMER_NAME
    assert len(sandbox.outbox) == 1


def test_a_send_when_twilio_refuses_connections_is_503_and_releases_its_reservation(
    desk: Callable[..., Desk], closed_url: str, sandbox: Any, state: StateView, audit: Any
) -> None:
    # Given one container set whose Twilio Verify URL refuses connections (IAM still answers)
    broken = desk(TWILIO_VERIFY_BASE_URL=closed_url)

    # When a code is asked for
    failed = broken.start()

    # Then 503 with Retry-After, audited, nothing sent, the reservation given back
    assert_refused(failed, 503, "upstream_unavailable")
    _one_event(audit, failed, "upstream_unavailable", "start")
    assert sandbox.outbox == []
    state.assert_no_reservation(TO, broken.hash_secret)
    # and a healthy container sends at once (the failed send holds no cooldown)
    assert desk().start().status == 200
    assert len(sandbox.outbox) == 1


def test_a_check_when_twilio_refuses_connections_is_503_and_not_a_failure(
    desk: Callable[..., Desk], closed_url: str, sandbox: Any, state: StateView, audit: Any
) -> None:
    # Given a code was sent, and one container set whose Twilio Verify URL refuses connections
    healthy, broken = desk(), desk(TWILIO_VERIFY_BASE_URL=closed_url)
    assert healthy.start().status == 200
    right = healthy.code()

    # When the right code is checked there
    failed = broken.check(code=right)

    # Then 503, audited, not a failed check, no approval; the code still works through a healthy container
    assert_refused(failed, 503, "upstream_unavailable")
    _one_event(audit, failed, "upstream_unavailable", "check")
    assert state.state(TO, healthy.hash_secret).get("failed", 0) == 0
    _unapproved(healthy, state)
    assert healthy.check(code=right).status == 200
    assert len(sandbox.outbox) == 1


def test_a_send_when_twilio_times_out_is_503_and_a_retry_resends_the_same_code(
    desk: Callable[..., Desk], sandbox: Any, twilio: TwilioTraffic, state: StateView, audit: Any
) -> None:
    # Given Twilio hangs longer than our 0.5 s timeout
    agent = desk(TWILIO_TIMEOUT_SECONDS=SHORT_TIMEOUT)
    sandbox.timeout_seconds = HANG_SECONDS
    sandbox.set_mode("timeout")

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After, audited, and the reservation given back
    assert_refused(failed, 503, "upstream_unavailable")
    _one_event(audit, failed, "upstream_unavailable", "start")
    state.assert_no_reservation(TO, agent.hash_secret)

    # What a timeout means: the outcome is unknown to us, and here Twilio did send once it woke up.
    # We answered 503 and released the reservation, so the agent's retry is allowed at once and Twilio
    # re-sends the *same* pending code: the customer gets two messages with one valid code (bounded by
    # Twilio's own 5 sends per 10 minutes, 60203), and our counters count one send, not two. Keeping the
    # reservation on a timeout would avoid the second message but block a legitimate retry for the cooldown.
    assert sandbox.outbox == []
    sandbox.set_mode("normal")
    twilio.settle()
    assert len(sandbox.outbox) == 1
    retried = agent.start()
    assert retried.status == 200, retried.body
    assert len(sandbox.outbox) == 2
    assert sandbox.outbox[0]["code"] == sandbox.outbox[1]["code"]
    assert sandbox.outbox[0]["verificationSid"] == sandbox.outbox[1]["verificationSid"]
    assert state.sends_counted() == {1}
    assert agent.check().status == 200


def test_a_check_when_twilio_times_out_records_no_approval_even_if_twilio_approved(
    desk: Callable[..., Desk], sandbox: Any, twilio: TwilioTraffic, clock: Any, state: StateView, audit: Any
) -> None:
    # Given a code was sent, then Twilio hangs longer than our 0.5 s timeout
    agent = desk(TWILIO_TIMEOUT_SECONDS=SHORT_TIMEOUT)
    assert agent.start().status == 200
    right = agent.code()
    sandbox.timeout_seconds = HANG_SECONDS
    sandbox.set_mode("timeout")

    # When the right code is checked
    failed = agent.check(code=right)

    # Then 503, audited, not a failed check, and no approval recorded
    assert_refused(failed, 503, "upstream_unavailable")
    _one_event(audit, failed, "upstream_unavailable", "check")
    assert state.state(TO, agent.hash_secret).get("failed", 0) == 0

    # What a timeout means here: Twilio approved the code once it woke up (the verification is consumed),
    # but we answered 503 and recorded nothing. Safe: customer-info stays refused; a retry of the same code
    # is 404 verification_not_found (Twilio: already approved), and the agent must send a new code.
    sandbox.set_mode("normal")
    twilio.settle()
    assert twilio.started["check"] == 1
    _unapproved(agent, state)
    again = agent.check(code=right)
    assert_refused(again, 404, "verification_not_found")
    _one_event(audit, again, "verification_not_found", "check")
    assert state.state(TO, agent.hash_secret).get("failed", 0) == 0
    clock.advance(30)  # the cooldown of the first send
    assert agent.start().status == 200
    assert agent.check().status == 200
    assert agent.customer_info().status == 200
    assert len(sandbox.outbox) == 2


# ============================================================================================ Twilio IAM


def _prepare(healthy: Desk, endpoint: str) -> None:
    """What the endpoint needs to succeed: a pending code for a check, an approval for customer-info."""
    if endpoint in ("check", "customer_info"):
        assert healthy.start().status == 200
    if endpoint == "customer_info":
        assert healthy.check().status == 200


def _call(agent: Desk, endpoint: str, code: str | None) -> Any:
    if endpoint == "start":
        return agent.start()
    if endpoint == "check":
        return agent.check(code=code)
    return agent.customer_info()


ENDPOINTS = ["start", "check", "customer_info"]  # the audit trail names the actions alike


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
    _prepare(healthy, endpoint)
    code = healthy.code() if endpoint != "start" else None
    cold = desk(TWILIO_IAM_BASE_URL=closed_url) if iam == "closed_port" else desk()
    if iam == "refuse_iam":
        sandbox.set_mode("refuse_iam")
    before, verify_calls = _without_audit(state.items()), twilio.verify_calls

    # When the agent calls the endpoint there
    answer = _call(cold, endpoint, code)

    # Then 503 with Retry-After: not let through, Twilio Verify not called, no state touched, audited
    assert_refused(answer, 503, "upstream_unavailable")
    _not_served(answer)
    assert twilio.verify_calls == verify_calls
    assert _without_audit(state.items()) == before
    event = _one_event(audit, answer, "upstream_unavailable", endpoint)
    assert event["agent"] == "unidentified"
    # and, IAM back, the same request succeeds (no reservation held, the code not consumed)
    sandbox.set_mode("normal")
    assert _call(healthy, endpoint, code).status == 200
    assert len(sandbox.outbox) == 1


# ============================================================================================== DynamoDB


@pytest.mark.parametrize("error", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_a_throttled_send_reservation_is_503_and_sends_nothing(
    error: str,
    desk: Callable[..., Desk],
    dynamo: DynamoFaults,
    sandbox: Any,
    twilio: TwilioTraffic,
    state: StateView,
    audit: Any,
) -> None:
    # Given DynamoDB throttles the reservation (the one write before Twilio)
    agent = desk()
    dynamo.fail("TransactWriteItems", throttled(error))

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After; Twilio is not called; nothing is held. DynamoDB refused the request's
    # write, so no audit event can be required (the product does not try one after a DynamoDB error).
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert twilio.verify_calls == 0
    assert sandbox.outbox == []
    assert _without_audit(state.items()) == []
    _no_event_or(audit, failed, "upstream_unavailable")
    # and a retry right after sends one code
    assert agent.start().status == 200
    assert len(sandbox.outbox) == 1
    assert state.sends_counted() == {1}


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
    reasons: tuple[str, ...],
    desk: Callable[..., Desk],
    dynamo: DynamoFaults,
    sandbox: Any,
    twilio: TwilioTraffic,
    state: StateView,
    audit: Any,
) -> None:
    # Given the reservation transaction is cancelled for a conflict with a concurrent transaction
    agent = desk(SEND_COOLDOWN_SECONDS="30")
    dynamo.fail("TransactWriteItems", canceled(*reasons))

    # When a code is asked for
    answer = agent.start()

    # Then nothing is sent or held, the answer is audited, and a retry right after sends one code
    dynamo.assert_spent()
    assert twilio.verify_calls == 0
    assert _without_audit(state.items()) == []
    _one_event(audit, answer, answer.body["error"]["code"], "start")
    assert agent.start().status == 200
    assert len(sandbox.outbox) == 1
    # and the answer claims no limit: a conflict is transient. A conflict on the number's own STATE item
    # means a concurrent request for that number: "a code was just sent" with at most the cooldown is fair.
    if answer.status == 429:
        assert reasons[0] == "TransactionConflict", answer.body
        assert_refused(answer, 429, "rate_limited")
        assert int(answer.headers["Retry-After"]) <= 30, answer.headers
    else:
        assert_refused(answer, 503, "upstream_unavailable")


def test_the_release_after_a_twilio_failure_refused_by_dynamodb_keeps_the_cooldown(
    desk: Callable[..., Desk], dynamo: DynamoFaults, sandbox: Any, clock: Any, state: StateView, audit: Any
) -> None:
    # Given Twilio fails the send, and DynamoDB throttles the release that should follow it
    agent = desk()
    sandbox.fail_next(500)
    dynamo.fail("TransactWriteItems", throttled(), skip=1)

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After, nothing sent. DynamoDB refused the release, so the reservation stays:
    # a retry within the cooldown is refused (nothing sent twice), and the counters keep one unsent send
    # until their window ends. No audit event can be required: the release carried it.
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert sandbox.outbox == []
    _no_event_or(audit, failed, "upstream_unavailable")
    assert state.sends_counted() == {1}
    assert_refused(agent.start(), 429, "rate_limited")
    clock.advance(30)
    assert agent.start().status == 200
    assert len(sandbox.outbox) == 1


def test_the_audit_after_a_send_refused_by_dynamodb_keeps_the_reservation(
    desk: Callable[..., Desk], dynamo: DynamoFaults, sandbox: Any, state: StateView, audit: Any
) -> None:
    # Given DynamoDB throttles the audit write that follows a successful send
    agent = desk()
    dynamo.fail("PutItem", throttled())

    # When a code is asked for
    failed = agent.start()

    # Then 503 with Retry-After although Twilio sent the code: the reservation (cooldown, counters) stays,
    # so the agent's retry is refused by the cooldown and nothing is sent twice; the code sent works.
    # The send has no audit event (its one write was the one refused): see the report.
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert len(sandbox.outbox) == 1
    assert state.sends_counted() == {1}
    assert "last_send" in state.state(TO, agent.hash_secret)
    retried = agent.start()
    assert_refused(retried, 429, "rate_limited")
    _one_event(audit, retried, "rate_limited", "start")
    assert len(sandbox.outbox) == 1
    assert agent.check().status == 200


def test_a_throttled_check_is_503_before_twilio_and_the_code_still_works(
    desk: Callable[..., Desk],
    dynamo: DynamoFaults,
    sandbox: Any,
    twilio: TwilioTraffic,
    state: StateView,
    audit: Any,
) -> None:
    # Given a code was sent, and DynamoDB throttles the check's first write (count the attempt, lock check)
    agent = desk()
    assert agent.start().status == 200
    right = agent.code()
    dynamo.fail("UpdateItem", throttled())

    # When the right code is checked
    failed = agent.check(code=right)

    # Then 503 with Retry-After, Twilio not asked (the code not consumed), nothing counted, no approval
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert twilio.started["check"] == 0
    assert state.state(TO, agent.hash_secret).get("failed", 0) == 0
    _no_event_or(audit, failed, "upstream_unavailable")
    _unapproved(agent, state)
    # and a retry right after approves
    assert agent.check(code=right).status == 200


APPROVAL_WRITE_FAULTS = [
    pytest.param(canceled("TransactionConflict", "None"), id="transaction-conflict"),
    pytest.param(throttled(), id="throttled"),
    pytest.param(unreachable(), id="unreachable"),
]


@pytest.mark.parametrize("fault", APPROVAL_WRITE_FAULTS)
def test_an_approval_dynamodb_cannot_record_is_503_and_no_approval(
    fault: Any,
    desk: Callable[..., Desk],
    dynamo: DynamoFaults,
    sandbox: Any,
    twilio: TwilioTraffic,
    clock: Any,
    state: StateView,
    audit: Any,
) -> None:
    # Given a code was sent, and the transaction that records an approval (with its audit event) fails
    agent = desk()
    assert agent.start().status == 200
    right = agent.code()
    dynamo.fail("TransactWriteItems", fault)

    # When the right code is checked
    failed = agent.check(code=right)

    # Then 503 with Retry-After, and no approval although Twilio approved the code
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    assert twilio.started["check"] == 1
    _unapproved(agent, state)
    # The verification is consumed at Twilio: retrying the code is 404, and a new code is needed.
    again = agent.check(code=right)
    assert_refused(again, 404, "verification_not_found")
    _one_event(audit, again, "verification_not_found", "check")
    clock.advance(30)
    assert agent.start().status == 200
    assert agent.check().status == 200
    assert agent.customer_info().body["customer"]["name"] == CUSTOMER_NAME
    assert len(sandbox.outbox) == 2


def test_an_approval_write_in_conflict_gives_back_the_failed_check_count(
    desk: Callable[..., Desk], dynamo: DynamoFaults, state: StateView
) -> None:
    # Given a code was sent, and the approval transaction is cancelled for a conflict
    agent = desk()
    assert agent.start().status == 200
    dynamo.fail("TransactWriteItems", canceled("TransactionConflict", "None"))

    # When the right code is checked
    failed = agent.check()

    # Then 503, and the right code is not counted as a failed check
    assert_refused(failed, 503, "upstream_unavailable")
    assert state.state(TO, agent.hash_secret).get("failed", 0) == 0


def test_an_approval_write_in_conflict_is_audited(desk: Callable[..., Desk], dynamo: DynamoFaults, audit: Any) -> None:
    # Given a code was sent, and the approval transaction is cancelled for a conflict
    agent = desk()
    assert agent.start().status == 200
    dynamo.fail("TransactWriteItems", canceled("TransactionConflict", "None"))

    # When the right code is checked
    failed = agent.check()

    # Then 503, and the request has its one audit event
    assert_refused(failed, 503, "upstream_unavailable")
    _one_event(audit, failed, "upstream_unavailable", "check")


@pytest.mark.parametrize(
    ("fault", "audited"),
    [
        pytest.param(throttled(), False, id="throttled"),
        pytest.param(unreachable(), False, id="unreachable"),
        pytest.param(unprocessed(), True, id="unprocessed-keys"),
    ],
)
def test_a_customer_info_read_that_fails_is_503_and_serves_nothing(
    fault: Any,
    audited: bool,
    desk: Callable[..., Desk],
    dynamo: DynamoFaults,
    state: StateView,
    audit: Any,
) -> None:
    # Given the caller was verified, and the one read (approval and customer record) fails
    agent = desk()
    assert agent.start().status == 200
    assert agent.check().status == 200
    before = _without_audit(state.items())
    dynamo.fail("BatchGetItem", fault)

    # When the agent asks for the customer
    failed = agent.customer_info()

    # Then 503 with Retry-After and no customer data; the approval is untouched
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    _not_served(failed)
    assert _without_audit(state.items()) == before
    if audited:  # DynamoDB answered (keys unprocessed): the refusal is audited
        _one_event(audit, failed, "upstream_unavailable", "customer_info")
    else:
        _no_event_or(audit, failed, "upstream_unavailable")
    # and a retry right after serves the record
    assert agent.customer_info().body["customer"]["name"] == CUSTOMER_NAME


def test_customer_data_is_not_served_when_its_read_cannot_be_audited(
    desk: Callable[..., Desk], dynamo: DynamoFaults, audit: Any
) -> None:
    # Given the caller was verified, and DynamoDB throttles the audit write of the read
    agent = desk()
    assert agent.start().status == 200
    assert agent.check().status == 200
    dynamo.fail("PutItem", throttled())

    # When the agent asks for the customer
    failed = agent.customer_info()

    # Then 503 and no customer data: no read of customer data goes unaudited
    dynamo.assert_spent()
    assert_refused(failed, 503, "upstream_unavailable")
    _not_served(failed)
    _no_event_or(audit, failed, "upstream_unavailable")
    served = agent.customer_info()
    assert served.body["customer"]["name"] == CUSTOMER_NAME
    _one_event(audit, served, "served", "customer_info")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_dynamodb_unreachable_is_503_before_anything_else(
    endpoint: str,
    desk: Callable[..., Desk],
    closed_url: str,
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Any,
    twilio: TwilioTraffic,
    state: StateView,
    audit: Any,
) -> None:
    # Given a healthy container set did what the endpoint needs, and a second one whose DynamoDB endpoint
    # refuses connections (the real client, its real retries)
    healthy = desk()
    _prepare(healthy, endpoint)
    code = healthy.code() if endpoint != "start" else None
    broken = desk(AWS_ENDPOINT_URL_DYNAMODB=closed_url)
    before, verify_calls = _without_audit(state.items()), twilio.verify_calls

    # When the agent calls the endpoint there
    answer = _call(broken, endpoint, code)

    # Then 503 with Retry-After and CORS, before Twilio is asked; nothing written, nothing served, and
    # no audit event (DynamoDB cannot take one)
    assert_refused(answer, 503, "upstream_unavailable")
    _not_served(answer)
    assert twilio.verify_calls == verify_calls
    assert _without_audit(state.items()) == before
    assert [item for item in audit.all() if item["request_id"] == answer.request_id] == []
    # and once DynamoDB is back (a container that reaches it), the same request succeeds at once
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    assert _call(healthy, endpoint, code).status == 200
    assert len(sandbox.outbox) == 1

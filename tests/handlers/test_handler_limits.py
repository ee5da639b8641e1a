"""Send limits, check lockouts, Twilio's failures and the country allow-list, through the handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import TO

NUMBERS = ("+12025550100", "+12025550101", "+12025550102", "+12025550103")
UK = "+447400123456"  # a valid UK mobile number


@pytest.fixture
def agents(sandbox: Any) -> dict[str, str]:
    return {name: str(sandbox.issue_token(name, ["agent"])) for name in ("alice", "bob", "carol")}


def _outcome(audit: Any, answer: Any) -> tuple[str, str]:
    event = audit.of(answer)
    return event["action"], event["outcome"]


# ----------------------------------------------------------------------------------------------- sends


def test_start_success_tells_when_a_resend_is_allowed(api: Callable[..., Any]) -> None:
    # Given a 45-second cooldown / When a code is sent
    answer = api(AGENT_AUTH="none", SEND_COOLDOWN_SECONDS="45").start()

    # Then the answer says so
    assert answer.status == 200
    assert answer.body["resendAfter"] == 45


def test_a_resend_within_the_cooldown_is_rate_limited_until_it_ends(
    api: Callable[..., Any], sandbox: Any, clock: Any, assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given a code was just sent, with a 30-second cooldown
    client = api(AGENT_AUTH="none", SEND_COOLDOWN_SECONDS="30")
    assert client.start().status == 200

    # When the agent clicks again at once, then 10 s later, then when the cooldown is over
    at_once = client.start()
    clock.advance(10)
    later = client.start()
    clock.advance(20)
    over = client.start()

    # Then the first two are refused with the time left, the last one re-sends; one code per accepted send
    assert_error(at_once, 429, "rate_limited")
    assert at_once.headers["Retry-After"] == "30"
    assert_error(later, 429, "rate_limited")
    assert later.headers["Retry-After"] == "20"
    assert "20 s" in later.body["message"]
    assert over.status == 200, over.body
    assert len(sandbox.outbox) == 2
    assert _outcome(audit, at_once) == ("start", "rate_limited")


def test_sends_to_one_number_are_capped_per_hour(
    api: Callable[..., Any], clock: Any, assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given at most 2 sends an hour to a number (and no cooldown)
    client = api(AGENT_AUTH="none", SEND_COOLDOWN_SECONDS="0", MAX_SENDS_PER_DESTINATION_PER_HOUR="2")
    assert [client.start().status for _ in range(2)] == [200, 200]

    # When a third is asked for that number, and one for another number
    third = client.start()
    other = client.start(NUMBERS[1])

    # Then only that number is capped, until no hour-long span would hold three: the end of the next hour
    assert_error(third, 429, "rate_limited")
    assert "this number" in third.body["message"]
    assert third.headers["Retry-After"] == "7200"  # the clock starts on an hour boundary
    assert other.status == 200
    assert _outcome(audit, third) == ("start", "rate_limited")
    clock.advance(3600)
    assert client.start().status == 429
    clock.advance(3600)
    assert client.start().status == 200


def test_sends_by_one_agent_are_capped_per_hour_across_numbers(
    api: Callable[..., Any], agents: dict[str, str], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given an agent may send 2 codes an hour, and alice has sent 2 (to different numbers)
    client = api(AGENT_AUTH="flex", MAX_SENDS_PER_AGENT_PER_HOUR="2")
    assert [client.start(n, Token=agents["alice"]).status for n in NUMBERS[:2]] == [200, 200]

    # When alice sends to a third number, and bob to that same number
    alice = client.start(NUMBERS[2], Token=agents["alice"])
    bob = client.start(NUMBERS[2], Token=agents["bob"])

    # Then alice is capped, bob is not
    assert_error(alice, 429, "rate_limited")
    assert "You have sent too many codes" in alice.body["message"]
    assert int(alice.headers["Retry-After"]) > 0
    assert bob.status == 200, bob.body
    assert audit.of(alice)["outcome"] == "rate_limited"
    assert audit.of(alice)["agent"] == "alice"


def test_the_deployment_breaker_caps_sends_per_minute_across_agents_and_numbers(
    api: Callable[..., Any],
    agents: dict[str, str],
    clock: Any,
    assert_error: Callable[..., Any],
    audit: Any,
    sandbox: Any,
) -> None:
    # Given the whole deployment may send 2 codes a minute, and two agents sent one each to two numbers
    client = api(AGENT_AUTH="flex", MAX_SENDS_PER_MINUTE="2")
    assert client.start(NUMBERS[0], Token=agents["alice"]).status == 200
    assert client.start(NUMBERS[1], Token=agents["bob"]).status == 200

    # When a third agent sends to a third number, now and in the next minute
    paused = client.start(NUMBERS[2], Token=agents["carol"])
    clock.advance(60)
    resumed = client.start(NUMBERS[2], Token=agents["carol"])

    # Then the first is refused until no minute-long span would hold three (the end of the next minute)
    assert_error(paused, 429, "rate_limited")
    assert "across the contact centre" in paused.body["message"]
    assert paused.headers["Retry-After"] == "120"
    assert _outcome(audit, paused) == ("start", "rate_limited")
    assert resumed.status == 429
    clock.advance(60)
    resumed = client.start(NUMBERS[2], Token=agents["carol"])
    assert resumed.status == 200, resumed.body
    assert [m["to"] for m in sandbox.outbox] == [NUMBERS[0], NUMBERS[1], NUMBERS[2]]


@pytest.mark.parametrize(
    ("allowed", "to", "sent"),
    [
        ("GB", TO, False),
        ("GB", UK, True),
        ("US,GB", TO, True),
        ("us", UK, False),
        ("US,CA", "+18765550100", False),  # Jamaica shares +1 with the US: the region decides, not the prefix
    ],
)
def test_the_country_allow_list(
    allowed: str,
    to: str,
    sent: bool,
    api: Callable[..., Any],
    sandbox: Any,
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given ALLOWED_COUNTRIES / When a code is asked for a number
    answer = api(AGENT_AUTH="none", ALLOWED_COUNTRIES=allowed).start(to)

    # Then only numbers in the listed countries get one; a refusal is audited
    if sent:
        assert answer.status == 200, answer.body
        assert [m["to"] for m in sandbox.outbox] == [to]
    else:
        assert_error(answer, 403, "destination_blocked")
        assert sandbox.outbox == []
        assert _outcome(audit, answer) == ("start", "destination_blocked")


# ---------------------------------------------------------------------------------------------- checks


def test_wrong_codes_across_resends_lock_the_number_until_the_lockout_ends(
    api: Callable[..., Any], clock: Any, assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given 3 failed checks lock a number for 120 s; a code was sent, checked wrong twice, then re-sent
    client = api(AGENT_AUTH="none", MAX_FAILED_CHECKS="3", LOCKOUT_SECONDS="120", SEND_COOLDOWN_SECONDS="30")
    assert client.start().status == 200
    wrong = client.wrong_code()
    assert [client.check(code=wrong).status for _ in range(2)] == [401, 401]
    clock.advance(30)
    assert client.start().status == 200  # a resend does not reset the count

    # When a third wrong code comes, then the right one, then a resend, while locked
    locking = client.check(code=wrong)
    clock.advance(20)
    right_while_locked = client.check()
    resend_while_locked = client.start()

    # Then the number is locked, the right code included, with the time left
    assert_error(locking, 429, "too_many_attempts")
    assert locking.headers["Retry-After"] == "120"
    assert _outcome(audit, locking) == ("check", "locked")
    assert_error(right_while_locked, 429, "too_many_attempts")
    assert right_while_locked.headers["Retry-After"] == "100"
    assert _outcome(audit, right_while_locked) == ("check", "too_many_attempts")
    assert_error(resend_while_locked, 429, "too_many_attempts")
    assert resend_while_locked.headers["Retry-After"] == "100"

    # When the lockout is over / Then the right code (still pending at Twilio) approves
    clock.advance(100)
    unlocked = client.check()
    assert unlocked.status == 200, unlocked.body
    assert _outcome(audit, unlocked) == ("check", "approved")


def test_a_success_resets_the_failed_check_count(api: Callable[..., Any], clock: Any) -> None:
    # Given 2 failed checks lock a number; one wrong code, then the right one
    client = api(AGENT_AUTH="none", MAX_FAILED_CHECKS="2", SEND_COOLDOWN_SECONDS="0")
    assert client.start().status == 200
    assert client.check(code=client.wrong_code()).status == 401
    assert client.check().status == 200

    # When a new code is sent and checked wrong once
    assert client.start().status == 200
    answer = client.check(code=client.wrong_code())

    # Then that is a first failure again, not a lock
    assert answer.status == 401, answer.body


def test_twilio_max_check_attempts_is_too_many_attempts(
    api: Callable[..., Any], sandbox: Any, assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given our own lockout is higher than Twilio's 5 checks per code, and 5 wrong checks were made
    client = api(AGENT_AUTH="none", MAX_FAILED_CHECKS="10")
    assert client.start().status == 200
    wrong = client.wrong_code()
    assert [client.check(code=wrong).status for _ in range(5)] == [401] * 5

    # When the sixth check comes
    answer = client.check()

    # Then Twilio's 60202 is too_many_attempts with a Retry-After
    error = assert_error(answer, 429, "too_many_attempts")
    assert error["twilioCode"] == 60202
    assert int(answer.headers["Retry-After"]) > 0
    assert _outcome(audit, answer) == ("check", "too_many_attempts")


def test_a_check_twilio_refused_to_judge_is_not_a_failed_check(
    api: Callable[..., Any], sandbox: Any, assert_error: Callable[..., Any]
) -> None:
    # Given 2 failed checks lock a number, a code was sent, and Twilio refuses the next request (too busy)
    client = api(AGENT_AUTH="none", MAX_FAILED_CHECKS="2")
    assert client.start().status == 200
    sandbox.fail_next(429, 20429)
    assert_error(client.check(code=client.wrong_code()), 503, "upstream_unavailable")

    # When a wrong code is checked
    answer = client.check(code=client.wrong_code())

    # Then it is the first failure, not the second (no lock)
    assert_error(answer, 401, "incorrect_code")


def test_a_check_whose_outcome_is_unknown_counts_as_failed(
    api: Callable[..., Any], sandbox: Any, assert_error: Callable[..., Any]
) -> None:
    # Given 2 failed checks lock a number, a code was sent, and Twilio fails the next check with a 503
    client = api(AGENT_AUTH="none", MAX_FAILED_CHECKS="2")
    assert client.start().status == 200
    sandbox.fail_next(503)
    assert_error(client.check(code=client.wrong_code()), 503, "upstream_unavailable")

    # When a wrong code is checked
    answer = client.check(code=client.wrong_code())

    # Then the unknown one counted: this is the second failure, and the number is locked
    assert_error(answer, 429, "too_many_attempts")


# ------------------------------------------------------------------------------------- Twilio failures


@pytest.mark.parametrize(
    ("twilio_status", "twilio_code", "status", "code"),
    [
        pytest.param(429, 20429, 503, "upstream_unavailable", id="twilio-20429"),
        pytest.param(429, 60203, 429, "max_send_attempts", id="max-send-attempts"),
        pytest.param(400, 60605, 403, "destination_blocked", id="geo-permissions"),
        pytest.param(400, 60205, 403, "destination_blocked", id="landline"),
        pytest.param(403, 60410, 403, "destination_blocked", id="fraud-guard"),
        pytest.param(400, 60200, 400, "invalid_parameter", id="invalid-parameter"),
        pytest.param(404, 20404, 502, "upstream_error", id="service-missing"),
        pytest.param(400, 12345, 502, "upstream_error", id="unexpected"),
    ],
)
def test_a_refused_send_releases_its_reservation_and_is_audited(
    twilio_status: int,
    twilio_code: int | None,
    status: int,
    code: str,
    api: Callable[..., Any],
    sandbox: Any,
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given the tightest limits: one send an hour to the number, one by the agent, one a minute overall,
    # a long cooldown; and Twilio fails the next request
    client = api(
        AGENT_AUTH="none",
        SEND_COOLDOWN_SECONDS="600",
        MAX_SENDS_PER_DESTINATION_PER_HOUR="1",
        MAX_SENDS_PER_AGENT_PER_HOUR="1",
        MAX_SENDS_PER_MINUTE="1",
        LOOKUP_FIELDS="",  # a send that paid for a Lookup: tests/unit/test_risk_signals.py
    )
    sandbox.fail_next(twilio_status, twilio_code)

    # When a code is asked for, then asked for again at once
    failed = client.start()
    retried = client.start()

    # Then the failure is answered in the contract's terms, the retry is not refused,
    error = assert_error(failed, status, code)
    if twilio_code in (60203, 60605, 60205, 60410, 60200):
        assert error["twilioCode"] == twilio_code
    if status in (429, 503):
        assert int(failed.headers["Retry-After"]) > 0
    assert retried.status == 200, retried.body
    assert len(sandbox.outbox) == 1
    assert sandbox.lookups == []  # Lookup off here (a refusal of the number keeps the Lookup it paid for)
    # and the audit trail records the answer the agent got
    assert _outcome(audit, failed) == ("start", code)


@pytest.mark.parametrize(("twilio_status", "twilio_code"), [(500, None), (503, 20503)], ids=["500", "503"])
def test_a_send_whose_outcome_is_unknown_keeps_its_reservation(
    twilio_status: int, twilio_code: int | None, api: Callable[..., Any], sandbox: Any, assert_error: Callable[..., Any]
) -> None:
    # Given Twilio failing a send without saying whether it went out
    client = api(AGENT_AUTH="none")
    sandbox.fail_next(twilio_status, twilio_code)

    # When a code is asked for, then asked for again at once
    failed, retried = client.start(), client.start()

    # Then the outage is reported, and the retry is held back by the cooldown: the first may have been sent
    assert_error(failed, 503, "upstream_unavailable")
    assert_error(retried, 429, "rate_limited")


def test_an_unreadable_twilio_answer_is_upstream_error(
    api: Callable[..., Any], sandbox: Any, assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given Twilio answers something that is not JSON
    client = api(AGENT_AUTH="none")
    sandbox.set_mode("malformed")

    # When a code is asked for
    answer = client.start()

    # Then 502 upstream_error, audited; Twilio may have sent it, so the cooldown stands
    assert_error(answer, 502, "upstream_error")
    assert _outcome(audit, answer) == ("start", "upstream_error")
    sandbox.set_mode("normal")
    assert client.start().status == 429


# ------------------------------------------------------------------------------------ DynamoDB failures


def test_state_table_unavailable_is_upstream_unavailable_and_nothing_is_sent(
    api: Callable[..., Any], aws: Any, sandbox: Any, assert_error: Callable[..., Any]
) -> None:
    # Given the state table cannot be written (gone)
    client = api(AGENT_AUTH="none")
    aws.client.delete_table(TableName=aws.state)

    # When a code is asked for
    answer = client.start()

    # Then 503 with Retry-After, and no message went out unrecorded
    assert_error(answer, 503, "upstream_unavailable")
    assert int(answer.headers["Retry-After"]) > 0
    assert sandbox.outbox == []


def test_customers_table_unavailable_is_upstream_unavailable(
    api: Callable[..., Any], aws: Any, sandbox: Any, assert_error: Callable[..., Any]
) -> None:
    # Given alice verified the caller, then the customers table became unreadable
    client = api(AGENT_AUTH="flex")
    alice = str(sandbox.issue_token("alice", ["agent"]))
    client.verify(Token=alice)
    aws.client.delete_table(TableName=aws.customers)

    # When alice reads the record / Then 503, not a crash and not a "not found"
    assert_error(client.customer_info(Token=alice), 503, "upstream_unavailable")

"""AgentAuth=flex: who the agent is, and customer data only for the agent who verified the caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import MASKED, OTHER_TASK, TASK, TO, VISIBLE, iso

NO_RECORD = "+12025550199"  # fictional, not among the sample customers


@pytest.fixture
def flex(api: Callable[..., Any]) -> Callable[..., Any]:
    """An Api with AgentAuth=flex and the given extra settings."""

    def make(**env: str) -> Any:
        return api(AGENT_AUTH="flex", **env)

    return make


@pytest.fixture
def token(sandbox: Any) -> Callable[..., str]:
    """``token("alice")``: a Flex token the sandbox's IAM accepts (role ``agent`` unless told)."""

    def issue(identity: str, roles: tuple[str, ...] = ("agent",), ttl_seconds: int = 3600) -> str:
        return str(sandbox.issue_token(identity, list(roles), ttl_seconds))

    return issue


def _is_audited(audit: Any, answer: Any, action: str, outcome: str, agent: str) -> None:
    event = audit.of(answer)
    assert (event["action"], event["outcome"], event["agent"], event["to"]) == (action, outcome, agent, MASKED)


# ------------------------------------------------------------------------------------ agent identity

REQUESTS: dict[str, Callable[[Any, dict[str, str]], Any]] = {
    "start": lambda c, t: c.start(**t),
    "check": lambda c, t: c.check(code="123456", **t),
    "cancel": lambda c, t: c.cancel(**t),
    "customer_info": lambda c, t: c.customer_info(**t),
}


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_without_a_token_every_endpoint_is_agent_auth_required(
    action: str, flex: Callable[..., Any], assert_error: Callable[..., Any], audit: Any, sandbox: Any
) -> None:
    # Given AgentAuth=flex / When the unmodified plugin (no Token) calls
    answer = REQUESTS[action](flex(), {})

    # Then 403 with a message the agent can act on, audited, and nothing sent
    error = assert_error(answer, 403, "agent_auth_required")
    assert "Token" in error["message"]
    _is_audited(audit, answer, action, "agent_auth_required", "unidentified")
    assert sandbox.outbox == []


@pytest.mark.parametrize("bad", ["not-a-token", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJBQyJ9.Zm9yZ2Vk"])
@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_an_invalid_token_is_agent_auth_invalid(
    action: str, bad: str, flex: Callable[..., Any], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given AgentAuth=flex / When the token is not one IAM accepts
    answer = REQUESTS[action](flex(), {"Token": bad})

    # Then 403 agent_auth_invalid, audited; the token itself is never echoed
    assert_error(answer, 403, "agent_auth_invalid")
    assert bad not in str(answer.body)
    _is_audited(audit, answer, action, "agent_auth_invalid", "unidentified")


def test_an_oversized_token_header_is_refused_without_asking_iam(
    flex: Callable[..., Any], sandbox: Any, assert_error: Callable[..., Any]
) -> None:
    # Given IAM is down (so asking it would answer 503)
    client = flex()
    sandbox.set_mode("refuse_iam")

    # When a token longer than any Flex token arrives in the header
    answer = client.post("/start-verify", {"to": TO}, headers={"X-Flex-Token": "x" * 9000})

    # Then it is refused as invalid, without a call to IAM
    assert_error(answer, 403, "agent_auth_invalid")


def test_a_token_past_its_expiration_is_refused_even_when_recently_accepted(
    flex: Callable[..., Any], token: Callable[..., str], clock: Any, assert_error: Callable[..., Any]
) -> None:
    # Given a token that expires in 30 s, accepted once
    client = flex(SEND_COOLDOWN_SECONDS="0")
    short = token("alice", ttl_seconds=30)
    assert client.start(Token=short).status == 200

    # When it is used again after it expired (within the 60 s that a positive answer may be cached)
    clock.advance(31)
    answer = client.start(Token=short)

    # Then it is refused
    assert_error(answer, 403, "agent_auth_invalid")


def test_a_positive_iam_answer_is_cached_for_at_most_a_minute(
    flex: Callable[..., Any], token: Callable[..., str], sandbox: Any, clock: Any, assert_error: Callable[..., Any]
) -> None:
    # Given an agent's token accepted once, then IAM goes down
    client = flex(SEND_COOLDOWN_SECONDS="0")
    alice = token("alice")
    assert client.start(Token=alice).status == 200
    sandbox.set_mode("refuse_iam")

    # When the agent calls again within the minute, and again after it
    clock.advance(59)
    cached = client.start(Token=alice)
    clock.advance(2)
    asked = client.start(Token=alice)

    # Then the first is served from the cache, the second had to ask IAM
    assert cached.status == 200, cached.body
    assert_error(asked, 503, "upstream_unavailable")


@pytest.mark.parametrize(
    ("allowed", "roles", "accepted"),
    [
        ("agent,supervisor,admin", ("agent",), True),
        ("agent,supervisor,admin", ("wfo.full_access",), False),
        ("supervisor", ("agent",), False),
        ("supervisor", ("agent", "supervisor"), True),
    ],
)
def test_only_allowed_roles_may_call(
    allowed: str,
    roles: tuple[str, ...],
    accepted: bool,
    flex: Callable[..., Any],
    token: Callable[..., str],
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given ALLOWED_ROLES / When an agent with these roles starts a verification
    answer = flex(ALLOWED_ROLES=allowed).start(Token=token("alice", roles))

    # Then only an agent holding an allowed role is let through; the refusal is audited
    if accepted:
        assert answer.status == 200, answer.body
        _is_audited(audit, answer, "start", "sent", "alice")
    else:
        error = assert_error(answer, 403, "agent_auth_invalid")
        assert "role" in error["message"]
        _is_audited(audit, answer, "start", "agent_auth_invalid", "unidentified")


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_iam_unreachable_is_upstream_unavailable_with_retry_after(
    action: str,
    flex: Callable[..., Any],
    token: Callable[..., str],
    sandbox: Any,
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given IAM answers 503
    client = flex()
    alice = token("alice")
    sandbox.set_mode("refuse_iam")

    # When an agent calls
    answer = REQUESTS[action](client, {"Token": alice})

    # Then 503 with Retry-After, audited, and no code sent
    assert_error(answer, 503, "upstream_unavailable")
    assert int(answer.headers["Retry-After"]) > 0
    _is_audited(audit, answer, action, "upstream_unavailable", "unidentified")
    assert sandbox.outbox == []


def test_the_audit_trail_names_the_agent_worker_and_task(
    flex: Callable[..., Any], token: Callable[..., str], audit: Any
) -> None:
    # Given an identified agent / When they start a verification for a task
    answer = flex().start(Token=token("alice"), taskSid=TASK)

    # Then the audit event records who, for which task, on which channel, with Twilio's SID
    event = audit.of(answer)
    assert event["agent"] == "alice"
    assert str(event["worker_sid"]).startswith("WK")
    assert event["task_sid"] == TASK
    assert event["channel"] == "sms"
    assert str(event["twilio_sid"]).startswith("VE")
    assert event["to"] == MASKED


# ------------------------------------------------------------------------------------- customer-info


def test_the_approving_agent_gets_only_the_visible_fields(
    flex: Callable[..., Any], token: Callable[..., str], audit: Any, clock: Any
) -> None:
    # Given alice verified the caller (approvals last 30 minutes by default), a minute ago
    client = flex()
    alice = token("alice")
    verified_at = clock.now
    client.verify(Token=alice)
    clock.advance(60)

    # When alice asks for the customer's record
    answer = client.customer_info(Token=alice)

    # Then she gets the configured fields only (no notes, no key), with the approval's window, audited
    assert answer.status == 200, answer.body
    assert answer.body == {
        "success": True,
        "verifiedAt": iso(verified_at),
        "verifiedUntil": iso(verified_at + 1800),
        "customer": VISIBLE,
        # how the code went, and what Lookup said first (the default package: the line type)
        "assurance": {
            "channel": "sms",
            "method": "agent",
            "verifiedAt": iso(verified_at),
            "riskCheck": {"verdict": "passed", "checkedAt": iso(verified_at), "lineType": "mobile"},
        },
    }
    _is_audited(audit, answer, "customer_info", "served", "alice")


def test_customer_info_by_get_with_the_token_header(flex: Callable[..., Any], token: Callable[..., str]) -> None:
    # Given alice verified the caller
    client = flex()
    alice = token("alice")
    client.verify(Token=alice)

    # When her client reads the record with GET, the number in the query and the token in a header
    answer = client.get("/customer-info", {"to": TO}, headers={"X-Flex-Token": alice})

    # Then she gets it
    assert answer.status == 200, answer.body
    assert answer.body["customer"] == VISIBLE


def test_customer_fields_setting_limits_what_is_released(flex: Callable[..., Any], token: Callable[..., str]) -> None:
    # Given CUSTOMER_FIELDS names two fields, and alice verified the caller
    client = flex(CUSTOMER_FIELDS="name,tier")
    alice = token("alice")
    client.verify(Token=alice)

    # When alice reads the record / Then only those two fields come back
    assert client.customer_info(Token=alice).body["customer"] == {"name": "Ada Lovelace", "tier": "gold"}


def test_without_an_approval_customer_info_is_not_verified(
    flex: Callable[..., Any], token: Callable[..., str], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given a code was sent but never checked
    client = flex()
    alice = token("alice")
    assert client.start(Token=alice).status == 200

    # When alice asks for the record
    answer = client.customer_info(Token=alice)

    # Then 403 not_verified, audited
    assert_error(answer, 403, "not_verified")
    _is_audited(audit, answer, "customer_info", "not_verified", "alice")


def test_another_agent_cannot_read_a_caller_someone_else_verified(
    flex: Callable[..., Any], token: Callable[..., str], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given alice verified the caller
    client = flex()
    client.verify(Token=token("alice"))

    # When bob asks for the record
    answer = client.customer_info(Token=token("bob"))

    # Then 403 not_verified, audited under bob
    assert_error(answer, 403, "not_verified")
    _is_audited(audit, answer, "customer_info", "not_verified", "bob")


def test_after_cancel_customer_info_is_not_verified(
    flex: Callable[..., Any], token: Callable[..., str], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given alice verified the caller, then cancelled
    client = flex()
    alice = token("alice")
    client.verify(Token=alice)
    cancelled = client.cancel(Token=alice)
    assert cancelled.status == 200
    assert cancelled.body == {"success": True, "status": "canceled"}

    # When alice asks for the record
    answer = client.customer_info(Token=alice)

    # Then 403 not_verified; both steps are audited
    assert_error(answer, 403, "not_verified")
    _is_audited(audit, cancelled, "cancel", "canceled", "alice")
    _is_audited(audit, answer, "customer_info", "not_verified", "alice")


def test_cancel_of_a_pending_code_stops_it_at_twilio(
    flex: Callable[..., Any], token: Callable[..., str], assert_error: Callable[..., Any]
) -> None:
    # Given a code was sent
    client = flex()
    alice = token("alice")
    assert client.start(Token=alice).status == 200
    code = client.code()

    # When the agent cancels, then the caller reads the code back anyway
    assert client.cancel(Token=alice).status == 200
    answer = client.check(code=code, Token=alice)

    # Then there is nothing left to check
    assert_error(answer, 404, "verification_not_found")


def test_the_approval_expires_after_its_ttl(
    flex: Callable[..., Any], token: Callable[..., str], clock: Any, assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given a 5-minute approval window, and alice verified the caller
    client = flex(APPROVAL_TTL_SECONDS="300")
    alice = token("alice")
    client.verify(Token=alice)

    # When alice reads the record just before, and at, the end of the window
    clock.advance(299)
    before = client.customer_info(Token=alice)
    clock.advance(1)
    after = client.customer_info(Token=alice)

    # Then the first is served and the second is refused
    assert before.status == 200, before.body
    assert_error(after, 403, "not_verified")
    _is_audited(audit, after, "customer_info", "not_verified", "alice")


@pytest.mark.parametrize(
    ("approved_for", "asked_for", "served"),
    [
        (TASK, TASK, True),
        (TASK, OTHER_TASK, False),
        (TASK, None, False),  # a task-bound approval is released only to a request naming that task
        (None, OTHER_TASK, True),
    ],
)
def test_a_task_bound_approval_serves_only_that_task(
    approved_for: str | None,
    asked_for: str | None,
    served: bool,
    flex: Callable[..., Any],
    token: Callable[..., str],
    assert_error: Callable[..., Any],
    audit: Any,
) -> None:
    # Given alice verified the caller, for a task or not
    client = flex()
    alice = token("alice")
    client.verify(Token=alice, **({"taskSid": approved_for} if approved_for else {}))

    # When alice asks for the record, naming a task or not
    answer = client.customer_info(Token=alice, **({"TaskSid": asked_for} if asked_for else {}))

    # Then a task-bound approval serves only requests on that task
    if served:
        assert answer.status == 200, answer.body
        _is_audited(audit, answer, "customer_info", "served", "alice")
    else:
        assert_error(answer, 403, "not_verified")
        _is_audited(audit, answer, "customer_info", "not_verified", "alice")


def test_a_verified_number_without_a_record_is_customer_not_found(
    flex: Callable[..., Any], token: Callable[..., str], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given alice verified a caller who is not a customer
    client = flex()
    alice = token("alice")
    client.verify(NO_RECORD, Token=alice)

    # When she asks for the record
    answer = client.customer_info(NO_RECORD, Token=alice)

    # Then 404 customer_not_found, audited
    assert_error(answer, 404, "customer_not_found")
    event = audit.of(answer)
    assert (event["action"], event["outcome"], event["agent"], event["to"]) == (
        "customer_info",
        "customer_not_found",
        "alice",
        "+1******0199",
    )


def test_with_agent_auth_none_customer_info_is_always_refused(
    api: Callable[..., Any], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given AgentAuth=none, and the plugin verified the caller
    client = api(AGENT_AUTH="none")
    client.verify()

    # When anyone asks for the record, with or without something that looks like a token
    bare = client.customer_info()
    with_token = client.customer_info(Token="anything")

    # Then nobody unidentified gets customer data
    for answer in (bare, with_token):
        assert_error(answer, 403, "agent_auth_required")
        _is_audited(audit, answer, "customer_info", "agent_auth_required", "anonymous:203.0.113.10")


def _every_kind_of_state(client: Any, token: Callable[..., str]) -> None:
    """Sends, counters, wrong codes, a lock, an approval, reads, a cancel and refusals, for TO and NO_RECORD."""
    alice, bob = token("alice"), token("bob")
    client.verify(Token=alice, taskSid=TASK)
    client.customer_info(Token=alice)
    client.customer_info(Token=bob)
    client.cancel(Token=alice)
    client.start(NO_RECORD, Token=bob)
    client.check(NO_RECORD, code=client.wrong_code(NO_RECORD), Token=bob)
    client.check(NO_RECORD, code=client.wrong_code(NO_RECORD), Token=bob)
    client.start(NO_RECORD, Token=bob)
    client.customer_info(NO_RECORD)


def test_the_state_table_never_holds_a_number_in_the_clear(
    flex: Callable[..., Any], token: Callable[..., str], assert_no_clear_number: Callable[[str], None], aws: Any
) -> None:
    # Given every kind of state
    _every_kind_of_state(flex(MAX_FAILED_CHECKS="2", SEND_COOLDOWN_SECONDS="0"), token)

    # When the whole state table is read
    kinds = {str(item["sk"]).split("#")[0] for item in aws.scan(aws.state)}

    # Then there was plenty in it, and neither number's digits appear anywhere
    assert {"STATE", "SENDS", "AUDIT"} <= kinds
    assert_no_clear_number(TO)
    assert_no_clear_number(NO_RECORD)


def test_every_state_item_expires_and_audit_events_after_the_retention(
    flex: Callable[..., Any], token: Callable[..., str], aws: Any, clock: Any
) -> None:
    # Given a 7-day audit retention, and every kind of state
    _every_kind_of_state(flex(MAX_FAILED_CHECKS="2", SEND_COOLDOWN_SECONDS="0", AUDIT_RETENTION_DAYS="7"), token)

    # When the whole state table is read
    items = aws.scan(aws.state)

    # Then DynamoDB's TTL attribute is on every item, in the future; audit events live exactly 7 days
    ttl_attribute = aws.client.describe_time_to_live(TableName=aws.state)["TimeToLiveDescription"]["AttributeName"]
    assert all(isinstance(item.get(ttl_attribute), int) and item[ttl_attribute] > clock.now for item in items), [
        item for item in items if not isinstance(item.get(ttl_attribute), int)
    ]
    audit_items = [item for item in items if str(item["sk"]).startswith("AUDIT#")]
    assert audit_items
    assert {item[ttl_attribute] for item in audit_items} == {int(clock.now) + 7 * 86400}

"""Agent authentication (callerauth.agents): the IAM token validator and FlexAgents against the local sandbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from callerauth.agents import CACHE_SECONDS, Agent, FlexAgents, IamTokenValidator
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, FakeClock, free_port, refused, serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ALLOWED = frozenset({"agent", "supervisor", "admin"})
TIMEOUT = 2.0
IP = "203.0.113.7"


class CountingValidator:
    """Wraps the real validator and counts the IAM calls it makes."""

    def __init__(self, inner: IamTokenValidator) -> None:
        self.inner = inner
        self.calls = 0

    def validate(self, token: str) -> dict[str, Any]:
        self.calls += 1
        return self.inner.validate(token)


@dataclass
class Iam:
    sandbox: TwilioSandbox
    base_url: str
    clock: FakeClock

    def validator(self, credentials: tuple[str, str] = (ACCOUNT_SID, AUTH_TOKEN)) -> IamTokenValidator:
        return IamTokenValidator(self.base_url, lambda: credentials, TIMEOUT)

    def agents(self, allowed: frozenset[str] = ALLOWED) -> tuple[FlexAgents, CountingValidator]:
        counting = CountingValidator(self.validator())
        return FlexAgents(counting, allowed, self.clock), counting


@pytest.fixture
def iam() -> Iterator[Iam]:
    clock = FakeClock()
    sandbox = TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, clock=clock, announce=lambda _: None)
    server = make_server("127.0.0.1", 0, sandbox, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Iam(sandbox, f"http://127.0.0.1:{server.server_port}", clock)
    finally:
        sandbox.set_mode("normal")
        server.shutdown()
        server.server_close()
        thread.join(5)


# ---------------------------------------------------------------- IamTokenValidator


def test_the_validator_answers_iam_json_for_a_valid_token(iam: Iam) -> None:
    # Given a token the sandbox issued to an agent
    token = iam.sandbox.issue_token("alice", ["agent", "wfo.team_leader"], ttl_seconds=3600)
    # When the validator asks IAM
    answer = iam.validator().validate(token)
    # Then it is IAM's answer for that agent
    assert answer["valid"] is True
    assert answer["identity"] == "alice"
    assert answer["roles"] == ["agent", "wfo.team_leader"]
    assert answer["worker_sid"].startswith("WK")
    assert answer["expiration"] == "2025-06-15T16:06:40Z"


def test_the_validator_answers_valid_false_for_a_forged_token(iam: Iam) -> None:
    # Given a token signed with another auth token
    forged = TwilioSandbox(ACCOUNT_SID, "another-auth-token", SERVICE_SID, clock=iam.clock).issue_token("mallory")
    # When the validator asks IAM
    answer = iam.validator().validate(forged)
    # Then IAM says it is not valid (and the caller decides what that means)
    assert answer["valid"] is False


def test_wrong_account_credentials_never_let_a_token_through(iam: Iam) -> None:
    # Given a valid token but a validator with a wrong auth token (IAM answers 401)
    token = iam.sandbox.issue_token("alice")
    validator = iam.validator((ACCOUNT_SID, "wrong-auth-token"))
    # When it validates
    with refused() as caught:
        validator.validate(token)
    # Then the agent is refused
    assert (caught.value.status, caught.value.code) == (403, "agent_auth_invalid")


def test_iam_refusing_service_is_upstream_unavailable(iam: Iam) -> None:
    # Given IAM answering 503
    iam.sandbox.set_mode("refuse_iam")
    token = iam.sandbox.issue_token("alice")
    # When the validator asks it
    with refused() as caught:
        iam.validator().validate(token)
    # Then it is the contract's 503, with Retry-After
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")
    assert caught.value.retry_after is not None


def test_nothing_listening_is_upstream_unavailable() -> None:
    # Given a validator pointed at a port nothing listens on
    validator = IamTokenValidator(f"http://127.0.0.1:{free_port()}", lambda: (ACCOUNT_SID, AUTH_TOKEN), TIMEOUT)
    started = time.monotonic()
    # When it validates a token
    with refused() as caught:
        validator.validate("any.token.at-all")
    # Then it is the contract's 503, at once
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")
    assert time.monotonic() - started < TIMEOUT


def test_an_iam_answer_that_is_not_json_is_upstream_error() -> None:
    # Given an IAM answering 200 with a body that is not JSON
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return Response("<html>oops</html>", status=200, content_type="text/html")(environ, start_response)

    with serving(app) as base_url:
        validator = IamTokenValidator(base_url, lambda: (ACCOUNT_SID, AUTH_TOKEN), TIMEOUT)
        # When the validator asks it
        with refused() as caught:
            validator.validate("any.token.at-all")
    # Then it is an unexpected answer, and nobody is let through
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")


def test_a_hanging_iam_is_upstream_unavailable_within_the_timeout() -> None:
    # Given an IAM that does not answer for 3 s
    release = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        release.wait(3)
        return Response('{"valid": true}', content_type="application/json")(environ, start_response)

    with serving(app) as base_url:
        validator = IamTokenValidator(base_url, lambda: (ACCOUNT_SID, AUTH_TOKEN), 0.5)
        started = time.monotonic()
        # When the validator asks it
        try:
            with refused() as caught:
                validator.validate("any.token.at-all")
            elapsed = time.monotonic() - started
        finally:
            release.set()
    # Then it gives up after its timeout, as the contract's 503
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")
    assert 0.4 <= elapsed < 2.5


def test_credentials_are_read_on_every_call(iam: Iam) -> None:
    # Given a credentials provider that a rotation changes
    current = {"credentials": (ACCOUNT_SID, "wrong-auth-token")}
    validator = IamTokenValidator(iam.base_url, lambda: current["credentials"], TIMEOUT)
    token = iam.sandbox.issue_token("alice")
    with refused():
        validator.validate(token)
    # When the provider answers the right ones
    current["credentials"] = (ACCOUNT_SID, AUTH_TOKEN)
    answer = validator.validate(token)
    # Then the next call uses them
    assert answer["valid"] is True


# ---------------------------------------------------------------- FlexAgents


def test_a_valid_token_identifies_the_agent(iam: Iam) -> None:
    # Given a token of an agent with an allowed role
    agents, _ = iam.agents()
    token = iam.sandbox.issue_token("alice", ["agent"])
    expected_worker = iam.validator().validate(token)["worker_sid"]
    # When the agent is identified
    agent = agents.identify(token, IP)
    # Then it is that agent, authenticated
    assert agent == Agent(identity="alice", worker_sid=expected_worker, roles=("agent",), authenticated=True)
    assert expected_worker.startswith("WK") and len(expected_worker) == 34


def test_no_token_is_agent_auth_required_without_asking_iam(iam: Iam) -> None:
    # Given FlexAgents
    agents, counting = iam.agents()
    # When a request comes without a token
    with refused() as caught:
        agents.identify("", IP)
    # Then the agent is asked for one, and IAM was not bothered
    assert (caught.value.status, caught.value.code) == (403, "agent_auth_required")
    assert counting.calls == 0


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param("a.b.c", id="three-parts"),
        pytest.param("x" * 9000, id="too-long"),
    ],
)
def test_an_invalid_token_is_agent_auth_invalid(iam: Iam, token: str) -> None:
    # Given a token IAM will not accept
    agents, _ = iam.agents()
    # When the agent is identified
    with refused() as caught:
        agents.identify(token, IP)
    # Then it is refused
    assert (caught.value.status, caught.value.code) == (403, "agent_auth_invalid")


def test_a_forged_token_is_agent_auth_invalid(iam: Iam) -> None:
    # Given a token signed with another account's auth token
    agents, _ = iam.agents()
    forged = TwilioSandbox(ACCOUNT_SID, "another-auth-token", SERVICE_SID, clock=iam.clock).issue_token("mallory")
    # When the agent is identified
    with refused() as caught:
        agents.identify(forged, IP)
    # Then it is refused
    assert (caught.value.status, caught.value.code) == (403, "agent_auth_invalid")


def test_an_expired_token_is_agent_auth_invalid(iam: Iam) -> None:
    # Given a token that expired a second ago
    agents, _ = iam.agents()
    token = iam.sandbox.issue_token("alice", ttl_seconds=60)
    iam.clock.advance(61)
    # When the agent is identified
    with refused() as caught:
        agents.identify(token, IP)
    # Then it is refused
    assert (caught.value.status, caught.value.code) == (403, "agent_auth_invalid")


def test_an_answer_already_past_its_expiration_is_agent_auth_invalid(iam: Iam) -> None:
    # Given IAM (the sandbox's clock) still accepting a token our clock already sees expired
    token = iam.sandbox.issue_token("alice", ttl_seconds=60)
    validator = iam.validator()
    agents = FlexAgents(validator, ALLOWED, lambda: iam.clock.now + 120)
    # When the agent is identified
    with refused() as caught:
        agents.identify(token, IP)
    # Then it is refused on the answer's own expiration
    assert (caught.value.status, caught.value.code) == (403, "agent_auth_invalid")


@pytest.mark.parametrize(
    ("roles", "allowed"),
    [
        pytest.param(["guest"], ALLOWED, id="role-not-allowed"),
        pytest.param([], ALLOWED, id="no-role"),
        pytest.param(["agent"], frozenset({"supervisor"}), id="only-supervisors-allowed"),
    ],
)
def test_a_role_not_allowed_is_agent_auth_invalid(iam: Iam, roles: list[str], allowed: frozenset[str]) -> None:
    # Given a valid token whose roles are not allowed
    agents, _ = iam.agents(allowed)
    token = iam.sandbox.issue_token("bob", roles)
    # When the agent is identified
    with refused() as caught:
        agents.identify(token, IP)
    # Then it is refused with a message about the role
    assert (caught.value.status, caught.value.code) == (403, "agent_auth_invalid")
    assert "role" in caught.value.message


def test_one_allowed_role_among_others_is_enough(iam: Iam) -> None:
    # Given a supervisor who also holds a role nobody listed
    agents, _ = iam.agents()
    token = iam.sandbox.issue_token("carol", ["wfo.quality_process_manager", "supervisor"])
    # When the agent is identified
    agent = agents.identify(token, IP)
    # Then it is let through with both roles
    assert agent.roles == ("wfo.quality_process_manager", "supervisor")


def test_iam_unavailable_is_never_let_through(iam: Iam) -> None:
    # Given IAM answering 503
    agents, _ = iam.agents()
    token = iam.sandbox.issue_token("alice")
    iam.sandbox.set_mode("refuse_iam")
    # When the agent is identified
    with refused() as caught:
        agents.identify(token, IP)
    # Then the request is refused as unavailable, not served
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")


def test_iam_unreachable_is_never_let_through(iam: Iam) -> None:
    # Given FlexAgents whose IAM nothing listens for
    validator = IamTokenValidator(f"http://127.0.0.1:{free_port()}", lambda: (ACCOUNT_SID, AUTH_TOKEN), TIMEOUT)
    agents = FlexAgents(validator, ALLOWED, iam.clock)
    # When an agent is identified
    with refused() as caught:
        agents.identify(iam.sandbox.issue_token("alice"), IP)
    # Then it is the contract's 503
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")


# ---------------------------------------------------------------- the positive cache


@pytest.mark.parametrize("later", [0.0, 1.0, 30.0, CACHE_SECONDS - 0.5])
def test_a_token_is_validated_at_most_once_within_a_minute(iam: Iam, later: float) -> None:
    # Given an agent identified once
    agents, counting = iam.agents()
    token = iam.sandbox.issue_token("alice")
    first = agents.identify(token, IP)
    # When the same token comes again within 60 s
    iam.clock.advance(later)
    again = agents.identify(token, IP)
    # Then IAM was asked once, and the answer is the same agent
    assert counting.calls == 1
    assert again == first


def test_the_cache_survives_an_iam_outage_within_the_minute(iam: Iam) -> None:
    # Given an agent identified once, then IAM going down
    agents, counting = iam.agents()
    token = iam.sandbox.issue_token("alice")
    agents.identify(token, IP)
    iam.sandbox.set_mode("refuse_iam")
    # When the token comes again 10 s later
    iam.clock.advance(10)
    agent = agents.identify(token, IP)
    # Then the cached answer serves it, without asking IAM
    assert agent.identity == "alice"
    assert counting.calls == 1


def test_a_token_is_validated_again_after_a_minute(iam: Iam) -> None:
    # Given an agent identified once
    agents, counting = iam.agents()
    token = iam.sandbox.issue_token("alice")
    agents.identify(token, IP)
    # When the same token comes 60 s later
    iam.clock.advance(CACHE_SECONDS)
    agent = agents.identify(token, IP)
    # Then IAM was asked again
    assert counting.calls == 2
    assert agent.identity == "alice"


def test_revalidation_after_a_minute_sees_iam_down(iam: Iam) -> None:
    # Given an agent identified once, then IAM going down
    agents, _ = iam.agents()
    token = iam.sandbox.issue_token("alice")
    agents.identify(token, IP)
    iam.sandbox.set_mode("refuse_iam")
    # When the token comes again after the cache's minute
    iam.clock.advance(CACHE_SECONDS + 1)
    with refused() as caught:
        agents.identify(token, IP)
    # Then it is not served from a stale cache
    assert caught.value.status == 503


def test_the_cache_never_outlives_the_token(iam: Iam) -> None:
    # Given an agent identified with a token that expires in 20 s
    agents, counting = iam.agents()
    token = iam.sandbox.issue_token("alice", ttl_seconds=20)
    agents.identify(token, IP)
    iam.clock.advance(19)
    assert agents.identify(token, IP).identity == "alice"
    assert counting.calls == 1
    # When it comes again at its expiration (well within the cache's minute)
    iam.clock.advance(1)
    with refused() as caught:
        agents.identify(token, IP)
    # Then IAM was asked again, and the expired token refused
    assert counting.calls == 2
    assert (caught.value.status, caught.value.code) == (403, "agent_auth_invalid")


def test_tokens_are_cached_apart(iam: Iam) -> None:
    # Given two agents' tokens
    agents, counting = iam.agents()
    alice = iam.sandbox.issue_token("alice")
    bob = iam.sandbox.issue_token("bob", ["supervisor"])
    # When both are identified twice
    identities = [agents.identify(token, IP).identity for token in (alice, bob, alice, bob)]
    # Then each got its own agent, and IAM was asked once per token
    assert identities == ["alice", "bob", "alice", "bob"]
    assert counting.calls == 2


def test_a_refusal_is_not_cached(iam: Iam) -> None:
    # Given a token refused once because IAM was down
    agents, counting = iam.agents()
    token = iam.sandbox.issue_token("alice")
    iam.sandbox.set_mode("refuse_iam")
    with refused():
        agents.identify(token, IP)
    # When IAM is back and the token comes again at once
    iam.sandbox.set_mode("normal")
    agent = agents.identify(token, IP)
    # Then IAM was asked again and let the agent through
    assert agent.identity == "alice"
    assert counting.calls == 2


def test_a_token_iam_refused_is_remembered_for_half_a_minute(iam: Iam) -> None:
    # Given a forged token, refused by IAM
    agents, counting = iam.agents()
    with refused() as first:
        agents.identify("forged.token.value", IP)
    assert first.value.code == "agent_auth_invalid"

    # When it comes again, at once
    with refused() as again:
        agents.identify("forged.token.value", IP)

    # Then it is refused the same way, without asking IAM a second time (a flood of one token is cheap)
    assert again.value.code == "agent_auth_invalid"
    assert counting.calls == 1

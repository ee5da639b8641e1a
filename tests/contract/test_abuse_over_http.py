"""Abuse over real HTTP against the dev stack: a burst of identical starts, the per-agent cap, the deployment's
circuit breaker, code guessing across resends, and what the stack keeps and logs about a caller."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.support import MASKED, TO

pytestmark = pytest.mark.stack

DIGITS = "2025550100"
BURST = 20
AGENT_CAP = 3
MINUTE_CAP = 4
MAX_FAILED_CHECKS = 5


def _warm(stack: Any) -> None:
    """Cold-start the three functions now, outside any test's output capture: the handlers' logger binds its
    stream when it is first created."""
    for path in ("/start-verify", "/check-verify", "/customer-info"):
        assert requests.options(stack.api + path, timeout=15).status_code == 204


# -------------------------------------------------------------------------------- defaults: burst, privacy


@pytest.fixture(scope="class")
def burst_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """AgentAuth=flex and every limit at its default (a 30 s cooldown between sends to one number)."""
    with local_stack() as stack:
        _warm(stack)
        yield stack


class TestBurstAndPrivacy:
    def test_twenty_identical_parallel_starts_send_one_code(
        self, burst_stack: Any, fresh_number: Callable[[], str], failure: Any
    ) -> None:
        # Given an agent and a number nobody has sent to, and 20 identical requests released together
        token, to = burst_stack.token("burst-agent"), fresh_number()
        barrier = threading.Barrier(BURST)

        def start(_: int) -> requests.Response:
            plugin = burst_stack.plugin(token)
            barrier.wait(timeout=10)
            seen = plugin.start(to)
            assert seen.response is not None
            return seen.response

        # When they all arrive at once (a double click, a retrying proxy, a script)
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            answers = list(pool.map(start, range(BURST)))

        # Then exactly one code went out, one request succeeded, and 19 were told when to retry
        assert len(burst_stack.outbox(to)) == 1
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] + [429] * (BURST - 1)
        for answer in answers:
            if answer.status_code == 429:
                failure(answer, 429, "rate_limited")

    def test_a_whole_flow_logs_and_stores_no_number_code_or_token(
        self, burst_stack: Any, wrong: Callable[..., str], capfd: pytest.CaptureFixture[str]
    ) -> None:
        # Given an agent, and everything the stack logs captured: the handlers' Powertools records (whatever
        # stream they were bound to), and stdout / stderr (EMF metrics, the gateway's access lines)
        token = burst_stack.token("privacy-agent")
        plugin = burst_stack.plugin(token)
        records = _Records()
        loggers = [logging.getLogger("callerauth"), logging.getLogger()]
        for logger in loggers:
            logger.addHandler(records)
        try:
            # When the agent runs the whole flow for the sample customer
            started = plugin.start(TO)
            code = burst_stack.last_code(TO)
            bad = wrong(code)
            refused = plugin.check(TO, bad)
            checked = plugin.check(TO, code)
            info = burst_stack.customer_info(TO, token)
            canceled = burst_stack.post("/cancel-verify", {"to": TO}, token=token)
        finally:
            for logger in loggers:
                logger.removeHandler(records)
        out, err = capfd.readouterr()
        logged = "\n".join([out, err, *records.lines])

        # Then the flow did what it should (so the capture saw a real run)
        assert (started.success, refused.message, checked.success) == (True, "Incorrect token.", True)
        assert (info.status_code, canceled.status_code) == (200, 200)
        assert MASKED in "\n".join(records.lines)  # the handlers' own lines were captured...
        for line in ("POST /start-verify 200", "POST /check-verify 401", "GET /customer-info 200"):
            assert line in err  # ...and the gateway's

        # Then no log line holds the number (in any spelling), a code or the agent's token
        for secret in (TO, DIGITS, "12025550100", "%2B12025550100", "%2b12025550100", token):
            assert secret not in logged
            # The sandbox (Twilio's stand-in) prints each code it "sends", by design; never the number or token.
            assert secret not in "\n".join(burst_stack.announcements)
        for secret_code in (code, bad):
            assert not re.search(rf"(?<!\d){secret_code}(?!\d)", logged)

        # Then no answer body holds the number either
        for response in (started.response, refused.response, checked.response, info, canceled):
            assert response is not None and DIGITS not in response.text

        # Then the state table holds the flow (masked) but no item holds the number's digits
        items = burst_stack.state_items()
        assert any(item.get("to") == MASKED for item in items)
        for item in items:
            assert DIGITS not in json.dumps(item, default=str)


class _Records(logging.Handler):
    """Every record, as the handlers' Powertools formatter writes it and with all its attributes."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.dumps(vars(record), default=str))
        powertools = getattr(logging.getLogger("callerauth"), "powertools_handler", None)
        if powertools is not None and powertools.formatter is not None:
            self.lines.append(powertools.formatter.format(record))


# ------------------------------------------------------------------------ per-agent cap, code guessing


@pytest.fixture(scope="class")
def caps_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """No cooldown, a small per-agent hourly cap, and a lockout after 5 wrong codes."""
    with local_stack(
        SEND_COOLDOWN_SECONDS="0",
        MAX_SENDS_PER_AGENT_PER_HOUR=str(AGENT_CAP),
        MAX_FAILED_CHECKS=str(MAX_FAILED_CHECKS),
    ) as stack:
        yield stack


class TestAgentCapAndCodeGuessing:
    def test_an_agent_is_refused_at_exactly_the_hourly_cap(
        self,
        caps_stack: Any,
        fresh_number: Callable[[], str],
        fresh_window: Callable[[int, float], None],
        failure: Any,
    ) -> None:
        # Given an agent, more numbers than the cap, and one clock hour for all the sends
        token = caps_stack.token("cap-agent")
        numbers = [fresh_number() for _ in range(AGENT_CAP + 1)]
        fresh_window(3600, 10)

        # When the agent sends a code to each number in turn
        seen = [caps_stack.plugin(token).start(to) for to in numbers]

        # Then the cap's worth succeed, and the next is refused, with Retry-After, and nothing sent
        assert [s.success for s in seen] == [True] * AGENT_CAP + [False]
        refused = seen[-1].response
        failure(refused, 429, "rate_limited", f"You have sent too many codes ({AGENT_CAP} an hour); " + _in(refused))
        assert int(refused.headers["Retry-After"]) <= 2 * 3600  # at most the end of the next hour: no hour holds more
        assert [len(caps_stack.outbox(to)) for to in numbers] == [1] * AGENT_CAP + [0]

        # When a colleague sends to that last number
        theirs = caps_stack.plugin(caps_stack.token("cap-colleague")).start(numbers[-1])

        # Then it goes out: the cap is the agent's, not the number's
        assert theirs.success is True
        assert len(caps_stack.outbox(numbers[-1])) == 1

    def test_wrong_codes_across_two_sends_lock_the_number_and_then_the_right_code_too(
        self, caps_stack: Any, wrong: Callable[..., str], failure: Any
    ) -> None:
        # Given an agent who sent a code to a customer, and got it wrong three times
        to = "+12025550102"  # a seeded customer, so customer-info would have a record to serve
        token = caps_stack.token("guessing-agent")
        plugin = caps_stack.plugin(token)
        assert plugin.start(to).success is True
        code = caps_stack.last_code(to)
        first = [plugin.check(to, wrong(code, n)) for n in (1, 2, 3)]

        # When the code is re-sent, and two more wrong codes follow
        resent = plugin.start(to)
        fourth = plugin.check(to, wrong(code, 4))
        fifth = plugin.check(to, wrong(code, 5))

        # Then the first four are incorrect, and the fifth locks the number
        assert resent.success is True
        assert len(caps_stack.outbox(to)) == 2
        assert [s.message for s in [*first, fourth]] == ["Incorrect token."] * 4
        error = failure(fifth.response, 429, "too_many_attempts")
        assert "twilioCode" not in error  # our lockout, not Twilio's
        assert int(fifth.response.headers["Retry-After"]) >= 60

        # When the right code is typed, and the agent asks for the record, and sends a new code
        right = plugin.check(to, caps_stack.last_code(to))
        info = caps_stack.customer_info(to, token)
        again = plugin.start(to)

        # Then all are refused: no approval exists, and nothing more is sent while locked
        assert right.success is False
        failure(right.response, 429, "too_many_attempts")
        failure(info, 403, "not_verified")
        failure(again.response, 429, "too_many_attempts")
        assert len(caps_stack.outbox(to)) == 2


def _in(response: requests.Response) -> str:
    """The "try again in N minutes." tail of a refusal, computed from its own Retry-After."""
    minutes = -(-int(response.headers["Retry-After"]) // 60)
    return f"try again in {minutes} minute{'s' if minutes != 1 else ''}."


# ---------------------------------------------------------------------------- the deployment's breaker


@pytest.fixture(scope="class")
def breaker_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """No cooldown, and a small per-minute circuit breaker for the whole deployment."""
    with local_stack(SEND_COOLDOWN_SECONDS="0", MAX_SENDS_PER_MINUTE=str(MINUTE_CAP)) as stack:
        yield stack


class TestCircuitBreaker:
    def test_the_deployment_is_paused_at_exactly_the_per_minute_limit(
        self,
        breaker_stack: Any,
        fresh_number: Callable[[], str],
        fresh_window: Callable[[int, float], None],
        failure: Any,
    ) -> None:
        # Given several agents, each with their own number, and one clock minute for all the sends
        agents = [breaker_stack.plugin(breaker_stack.token(f"breaker-agent-{n}")) for n in range(MINUTE_CAP + 2)]
        numbers = [fresh_number() for _ in agents]
        fresh_window(60, 5)

        # When each agent sends one code
        seen = [plugin.start(to) for plugin, to in zip(agents, numbers, strict=True)]

        # Then the limit's worth go out, and everyone after is refused, with Retry-After within the minute
        assert [s.success for s in seen] == [True] * MINUTE_CAP + [False, False]
        for refused in seen[MINUTE_CAP:]:
            assert refused.message is not None and refused.message.startswith(
                "Verification is paused: too many codes sent across the contact centre"
            )
            failure(refused.response, 429, "rate_limited")
            assert 1 <= int(refused.response.headers["Retry-After"]) <= 2 * 60  # the end of the next minute at most
        assert [len(breaker_stack.outbox(to)) for to in numbers] == [1] * MINUTE_CAP + [0, 0]

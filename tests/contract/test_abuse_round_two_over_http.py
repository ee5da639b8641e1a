"""Abuse resistance, round two, over real HTTP against the dev stack: real numbers only, countries by region,
channels opt-in, tokens never in URLs, charsets, approvals that end when the situation changes, cancel by its
owner, source allow-lists and the budget of refused unauthenticated requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

pytestmark = pytest.mark.stack

TIMEOUT = 15
JAMAICA = "+18765550100"  # +1, but not the US: the region decides
TASK = "WT" + "ab" * 16


@pytest.fixture(scope="class")
def strict_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """AgentAuth=flex, US numbers only, no cooldown, 3 refused unauthenticated requests a minute per source."""
    with local_stack(
        ALLOWED_COUNTRIES="US", SEND_COOLDOWN_SECONDS="0", MAX_REFUSALS_PER_SOURCE_PER_MINUTE="3"
    ) as stack:
        yield stack


class TestRoundTwo:
    def test_a_number_libphonenumber_calls_invalid_is_refused_and_nothing_sent(
        self, strict_stack: Any, failure: Any
    ) -> None:
        # Given / When a code is asked for an unallocated +1 555 number
        answer = strict_stack.post("/start-verify", {"to": "+15555550123"}, token=strict_stack.token("a1"))
        # Then 400 naming the field, and the sandbox sent nothing
        failure(answer, 400, "invalid_parameter")
        assert strict_stack.outbox("+15555550123") == []

    @pytest.mark.parametrize(("to", "why"), [(JAMAICA, "country"), ("+19005550100", "premium-rate")])
    def test_numbers_outside_the_policy_are_blocked(self, strict_stack: Any, failure: Any, to: str, why: str) -> None:
        # Given AllowedCountries=US / When a code is asked for a Jamaican (+1 876) or a premium-rate number
        answer = strict_stack.post("/start-verify", {"to": to}, token=strict_stack.token("a2"))
        # Then 403 destination_blocked, nothing sent
        failure(answer, 403, "destination_blocked")
        assert strict_stack.outbox(to) == []

    def test_voice_is_opt_in(self, strict_stack: Any, failure: Any) -> None:
        # Given the default AllowedChannels=sms / When a code is asked for by voice
        answer = strict_stack.post(
            "/start-verify", {"to": "+12025550140", "channel": "call"}, token=strict_stack.token("a3")
        )
        # Then 400 naming the allowed channel
        error = failure(answer, 400, "invalid_parameter")
        assert "sms only" in error["message"]

    def test_a_token_in_a_url_is_refused(self, strict_stack: Any, failure: Any) -> None:
        # Given / When customer-info carries the token in its query string
        token = strict_stack.token("a4")
        answer = requests.get(
            f"{strict_stack.api}/customer-info?to=%2B12025550100&Token={quote(token)}", timeout=TIMEOUT
        )
        # Then 400, and the message says where the token goes
        error = failure(answer, 400, "invalid_parameter")
        assert "X-Flex-Token" in error["message"]

    def test_a_body_in_an_unsupported_charset_is_refused(self, strict_stack: Any, failure: Any) -> None:
        # Given a form body in EBCDIC (cp037) / When it is posted
        body = "to=%2B12025550141".encode("cp037")
        answer = requests.post(
            f"{strict_stack.api}/start-verify",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=cp037"},
            timeout=TIMEOUT,
        )
        # Then 400 malformed_body: it is not decoded and acted on
        failure(answer, 400, "malformed_body")

    def test_a_new_code_revokes_the_approval_and_a_task_bound_one_needs_its_task(
        self, strict_stack: Any, failure: Any
    ) -> None:
        # Given agent b1 verified the sample customer on a task
        token, to = strict_stack.token("b1"), "+12025550100"
        assert strict_stack.post("/start-verify", {"to": to, "taskSid": TASK}, token=token).status_code == 200
        code = strict_stack.last_code(to)
        checked = strict_stack.post(
            "/check-verify", {"to": to, "verification_code": code, "taskSid": TASK}, token=token
        )
        assert checked.status_code == 200, checked.text
        # Then the record is served on that task only
        assert failure(strict_stack.customer_info(to, token), 403, "not_verified")
        served = requests.get(
            f"{strict_stack.api}/customer-info?to={quote(to)}&taskSid={TASK}",
            headers={"X-Flex-Token": token},
            timeout=TIMEOUT,
        )
        assert served.status_code == 200, served.text
        # When a new code is sent to the number, the approval ends
        assert strict_stack.post("/start-verify", {"to": to, "taskSid": TASK}, token=token).status_code == 200
        after = requests.get(
            f"{strict_stack.api}/customer-info?to={quote(to)}&taskSid={TASK}",
            headers={"X-Flex-Token": token},
            timeout=TIMEOUT,
        )
        failure(after, 403, "not_verified")

    def test_only_the_sender_or_a_supervisor_cancels(self, strict_stack: Any, failure: Any) -> None:
        # Given agent c1 sent a code
        to = "+12025550142"
        owner, colleague = strict_stack.token("c1"), strict_stack.token("c2")
        supervisor = strict_stack.token("c3", ("agent", "supervisor"))
        assert strict_stack.post("/start-verify", {"to": to}, token=owner).status_code == 200
        # When a colleague cancels it / Then refused; a supervisor may
        failure(strict_stack.post("/cancel-verify", {"to": to}, token=colleague), 403, "cancel_not_allowed")
        assert strict_stack.post("/cancel-verify", {"to": to}, token=supervisor).status_code == 200

    def test_a_flood_of_bad_tokens_is_cut_off_per_source(self, strict_stack: Any, failure: Any) -> None:
        # Given MaxRefusalsPerSourcePerMinute=3 / When one source sends bad tokens
        answers = [strict_stack.post("/start-verify", {"to": "+12025550143"}, token=f"forged-{n}") for n in range(5)]
        # Then the first ones are refused as bad tokens, and after the budget the source gets 429
        codes = [a.json()["error"]["code"] for a in answers]
        assert codes[:3] == ["agent_auth_invalid"] * 3
        assert codes[3:] == ["rate_limited"] * 2
        failure(answers[-1], 429, "rate_limited")


def test_a_source_outside_the_allow_list_is_refused(local_stack: Callable[..., Any], failure: Any) -> None:
    # Given AgentAuth=none, callers allowed from 10.0.0.0/8 only (the test calls from 127.0.0.1)
    with local_stack(AGENT_AUTH="none", ALLOWED_SOURCE_CIDRS="10.0.0.0/8") as stack:
        # When a code is asked for
        answer = stack.post("/start-verify", {"to": "+12025550144"})
        # Then 403 source_not_allowed, nothing sent
        failure(answer, 403, "source_not_allowed")
        assert stack.outbox("+12025550144") == []

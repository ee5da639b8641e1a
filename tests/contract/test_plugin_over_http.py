"""The Flex plugin over real HTTP against the dev stack: the unmodified plugin (AgentAuth=none), the allow-list,
and the plugin with the agent's token (AgentAuth=flex), reading every answer the way the plugin does."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import FLEX_ORIGIN, PLUGIN_FORM, START_MISSING, TO, VERIFY_DOCS

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
OTHER_ORIGIN = "https://evil.example"
AUTH_REQUIRED = "Agent authentication required: send the agent's Flex token as 'Token'."
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CUSTOMER_FIELDS = ("name", "accountNumber", "tier", "email", "postcode")
TIMEOUT = 15


def _sample_customer(phone: str) -> dict[str, Any]:
    customers = json.loads((REPO / "devserver" / "sample_customers.json").read_text(encoding="utf-8"))
    return next(c for c in customers if c["phone"] == phone)


# ------------------------------------------------------------------------------- AgentAuth=none: drop-in


@pytest.fixture(scope="class")
def plugin_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """The backend as the unmodified plugin needs it: AgentAuth=none, every other setting at its default."""
    with local_stack(AGENT_AUTH="none") as stack:
        yield stack


def preflight(url: str, origin: str, method: str) -> requests.Response:
    """What a browser sends before a call carrying the X-Flex-Token header."""
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "X-Flex-Token",
    }
    return requests.options(url, headers=headers, timeout=TIMEOUT)


class TestUnmodifiedPlugin:
    def test_start_then_check_with_the_code_from_the_outbox_verifies(self, plugin_stack: Any) -> None:
        # Given the unmodified plugin, pointed at the stack
        plugin = plugin_stack.plugin()
        already_sent = len(plugin_stack.outbox(TO))

        # When the agent presses "send code"
        started = plugin.start(TO)

        # Then the plugin sent exactly its own request, and the agent sees success
        request = started.response.request
        assert request.method == "POST" and request.url == f"{plugin_stack.api}/start-verify"
        assert request.headers["Content-Type"] == PLUGIN_FORM
        assert request.body == "to=%2B12025550100"
        assert (started.success, started.message) == (True, None)
        assert started.response.json() == {"success": True, "status": "pending", "channel": "sms", "resendAfter": 30}
        # ...and one SMS went to the caller
        messages = plugin_stack.outbox(TO)
        assert len(messages) == already_sent + 1
        assert (messages[-1]["to"], messages[-1]["channel"]) == (TO, "sms")
        code = messages[-1]["code"]

        # When the agent types the code the caller read back
        checked = plugin.check(TO, code)

        # Then the plugin sent its check body, and the caller is verified
        assert checked.response.request.body == f"to=%2B12025550100&verification_code={code}"
        assert (checked.success, checked.message) == (True, None)
        body = checked.response.json()
        assert body["message"] == "Verification success."
        assert ISO_UTC.match(body["verifiedUntil"])

    def test_wrong_code_is_incorrect_token(
        self, plugin_stack: Any, fresh_number: Callable[[], str], wrong: Callable[..., str], failure: Any
    ) -> None:
        # Given a code was sent to a caller
        plugin, to = plugin_stack.plugin(), fresh_number()
        assert plugin.start(to).success is True

        # When the agent types another code
        seen = plugin.check(to, wrong(plugin_stack.last_code(to)))

        # Then the reference backend's 401 "Incorrect token.", which the plugin shows as a failure
        assert (seen.success, seen.message) == (False, "Incorrect token.")
        error = failure(seen.response, 401, "incorrect_code", "Incorrect token.")
        assert error["moreInfo"] == VERIFY_DOCS

    @pytest.mark.parametrize("fields", [{}, {"to": ""}], ids=["no-field", "empty-to"])
    def test_start_without_to_shows_the_reference_message(
        self, fields: dict[str, str], plugin_stack: Any, failure: Any
    ) -> None:
        # Given the unmodified plugin / When its start request carries no number
        seen = plugin_stack.plugin().post("/start-verify", fields)

        # Then the agent reads the reference backend's sentence in error.message
        assert (seen.success, seen.message) == (False, START_MISSING)
        error = failure(seen.response, 400, "missing_parameter", START_MISSING)
        assert error["moreInfo"] == VERIFY_DOCS

    def test_check_without_the_code_is_missing_parameter(
        self, plugin_stack: Any, fresh_number: Callable[[], str], failure: Any
    ) -> None:
        # Given the unmodified plugin / When its check request has no code
        seen = plugin_stack.plugin().post("/check-verify", {"to": fresh_number()})

        # Then the reference backend's "Missing parameter."
        assert (seen.success, seen.message) == (False, "Missing parameter.")
        failure(seen.response, 400, "missing_parameter", "Missing parameter.")

    def test_customer_info_is_never_served_without_an_identified_agent(self, plugin_stack: Any, failure: Any) -> None:
        # Given AgentAuth=none: callers are known by source IP only
        # When anyone asks for the sample customer's record
        answer = plugin_stack.customer_info(TO, token=None)

        # Then it is refused, whatever was verified
        failure(answer, 403, "agent_auth_required", AUTH_REQUIRED)
        assert "Ada" not in answer.text

    @pytest.mark.parametrize(
        ("case", "status", "code"),
        [
            ("start sends a code", 200, None),
            ("start without a number", 400, "missing_parameter"),
            ("start with bad percent-encoding", 400, "malformed_body"),
            ("start with a number that is not E.164", 400, "invalid_parameter"),
            ("check with a wrong code", 401, "incorrect_code"),
            ("check with nothing pending", 404, "verification_not_found"),
            ("customer-info without an agent", 403, "agent_auth_required"),
            ("an unknown path", 404, "not_found"),
            ("GET on a POST-only path", 405, "method_not_allowed"),
            ("a body over 8 KiB", 413, "body_too_large"),
            ("preflight from the Flex origin", 204, None),
        ],
    )
    def test_every_answer_carries_cors_and_every_failure_the_one_shape(
        self,
        case: str,
        status: int,
        code: str | None,
        plugin_stack: Any,
        fresh_number: Callable[[], str],
        wrong: Callable[..., str],
        failure: Any,
        cors: Any,
    ) -> None:
        # Given the backend the browser calls from Flex
        api, to = plugin_stack.api, fresh_number()
        form = {"Content-Type": PLUGIN_FORM, "Origin": FLEX_ORIGIN}
        if case == "check with a wrong code":
            assert plugin_stack.plugin().start(to).success is True

        # When the request is made
        requests_by_case: dict[str, Callable[[], requests.Response]] = {
            "start sends a code": lambda: plugin_stack.post("/start-verify", {"to": to}),
            "start without a number": lambda: plugin_stack.post("/start-verify", {}),
            "start with bad percent-encoding": lambda: requests.post(
                f"{api}/start-verify", data="to=%2B1555%zz", headers=form, timeout=TIMEOUT
            ),
            "start with a number that is not E.164": lambda: plugin_stack.post("/start-verify", {"to": "5550100"}),
            "check with a wrong code": lambda: plugin_stack.post(
                "/check-verify", {"to": to, "verification_code": wrong(plugin_stack.last_code(to))}
            ),
            "check with nothing pending": lambda: plugin_stack.post(
                "/check-verify", {"to": to, "verification_code": "123456"}
            ),
            "customer-info without an agent": lambda: plugin_stack.customer_info(to, token=None),
            "an unknown path": lambda: plugin_stack.post("/verify", {"to": to}),
            "GET on a POST-only path": lambda: requests.get(
                f"{api}/start-verify", headers={"Origin": FLEX_ORIGIN}, timeout=TIMEOUT
            ),
            "a body over 8 KiB": lambda: plugin_stack.post("/start-verify", {"to": to, "padding": "x" * 9000}),
            "preflight from the Flex origin": lambda: requests.options(
                f"{api}/start-verify",
                headers={
                    "Origin": FLEX_ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "X-Flex-Token",
                },
                timeout=TIMEOUT,
            ),
        }
        response = requests_by_case[case]()

        # Then the browser may read it (CORS), and a failure is JSON in the contract's one shape
        assert response.status_code == status, response.text[:300]
        cors(response)
        if code is not None:
            failure(response, status, code)
        if case == "GET on a POST-only path":
            assert response.headers["Allow"] == "POST, OPTIONS"
        if case == "a body over 8 KiB":
            assert plugin_stack.outbox(to) == []

    @pytest.mark.parametrize("path", ["/start-verify", "/check-verify", "/cancel-verify", "/customer-info"])
    def test_preflight_for_the_token_header_is_answered_on_every_path(
        self, path: str, plugin_stack: Any, cors: Any
    ) -> None:
        # Given the plugin adds the X-Flex-Token header (AgentAuth=flex), so the browser preflights
        # When it asks
        response = preflight(plugin_stack.api + path, FLEX_ORIGIN, "POST")

        # Then 204, allowing the header and the methods
        assert response.status_code == 204
        assert response.content == b""
        cors(response)


# ---------------------------------------------------------------------------------- the CORS allow-list


@pytest.fixture(scope="class")
def origins_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """The unmodified plugin's backend with a CORS allow-list of the Flex origin only."""
    with local_stack(AGENT_AUTH="none", ALLOWED_ORIGINS=FLEX_ORIGIN) as stack:
        yield stack


class TestAllowedOrigins:
    @pytest.mark.parametrize(
        ("origin", "allowed"),
        [pytest.param(FLEX_ORIGIN, FLEX_ORIGIN, id="listed"), pytest.param(OTHER_ORIGIN, None, id="unlisted")],
    )
    def test_only_a_listed_origin_may_read_the_answers(
        self,
        origin: str,
        allowed: str | None,
        origins_stack: Any,
        fresh_number: Callable[[], str],
        failure: Any,
        cors: Any,
    ) -> None:
        # Given the allow-list names the Flex origin only / When a page on `origin` calls
        plugin = origins_stack.plugin(origin=origin)
        started = plugin.start(fresh_number())
        missing = plugin.post("/start-verify", {})

        # Then a listed origin is echoed on success and on failure; an unlisted one gets no
        # Access-Control-Allow-Origin (the browser hides the answer); both answers say Vary: Origin
        assert started.success is True
        cors(started.response, allowed)
        assert missing.message == START_MISSING
        failure(missing.response, 400, "missing_parameter", origin=allowed)

    @pytest.mark.parametrize(("origin", "allowed"), [(FLEX_ORIGIN, FLEX_ORIGIN), (OTHER_ORIGIN, None)])
    def test_preflight_allows_only_listed_origins(
        self, origin: str, allowed: str | None, origins_stack: Any, cors: Any
    ) -> None:
        # Given the allow-list / When a browser preflights the token header from `origin`
        response = preflight(f"{origins_stack.api}/customer-info", origin, "GET")

        # Then 204, echoing the origin only when listed
        assert response.status_code == 204
        cors(response, allowed)


# ------------------------------------------------------------------------ AgentAuth=flex: agent's token


@pytest.fixture(scope="class")
def flex_stack(local_stack: Callable[..., Any]) -> Iterator[Any]:
    """AgentAuth=flex (the default). No send cooldown, so that tests may each send to the sample customer."""
    with local_stack(AGENT_AUTH="flex", SEND_COOLDOWN_SECONDS="0") as stack:
        yield stack


class TestPluginWithAgentToken:
    def test_the_unmodified_plugin_is_told_to_send_the_token(self, flex_stack: Any, failure: Any) -> None:
        # Given AgentAuth=flex and the plugin as published (no Token field)
        plugin = flex_stack.plugin()
        already_sent = len(flex_stack.outbox(TO))

        # When the agent presses "send code", then types a code
        started = plugin.start(TO)
        checked = plugin.check(TO, "123456")

        # Then the agent reads why, instead of a frozen UI, and nothing was sent
        assert (started.success, started.message) == (False, AUTH_REQUIRED)
        failure(started.response, 403, "agent_auth_required", AUTH_REQUIRED)
        assert (checked.success, checked.message) == (False, AUTH_REQUIRED)
        failure(checked.response, 403, "agent_auth_required", AUTH_REQUIRED)
        assert len(flex_stack.outbox(TO)) == already_sent

    def test_with_the_agent_token_the_plugin_flow_verifies(self, flex_stack: Any) -> None:
        # Given the plugin sending the agent's Flex token as `Token`
        token = flex_stack.token("dev-agent", ("agent",))
        plugin = flex_stack.plugin(token)

        # When the agent sends a code, and types the one the caller received
        started = plugin.start(TO)
        code = flex_stack.last_code(TO)
        checked = plugin.check(TO, code)

        # Then both succeed, and the requests were the plugin's plus one field
        assert started.response.request.body == f"to=%2B12025550100&Token={token}"
        assert (started.success, checked.success) == (True, True)
        assert checked.response.json()["message"] == "Verification success."

    def test_customer_info_only_for_the_agent_who_verified_and_until_cancel(
        self, flex_stack: Any, failure: Any
    ) -> None:
        # Given an agent (and a colleague) with Flex tokens, and a code sent to the sample customer
        token = flex_stack.token("info-agent", ("agent",))
        colleague = flex_stack.token("other-agent", ("agent",))
        plugin = flex_stack.plugin(token)
        assert plugin.start(TO).success is True

        # When the agent asks for the record before checking the code
        before = flex_stack.customer_info(TO, token)

        # Then it is refused
        failure(before, 403, "not_verified")

        # When the code is checked, and the agent asks again
        assert plugin.check(TO, flex_stack.last_code(TO)).success is True
        after = flex_stack.customer_info(TO, token)

        # Then the record, with only the configured fields (no notes, no phone)
        assert after.status_code == 200
        body = after.json()
        sample = _sample_customer(TO)
        assert body["success"] is True
        assert body["customer"] == {name: sample[name] for name in CUSTOMER_FIELDS}
        assert "notes" not in body["customer"] and "phone" not in body["customer"]
        assert ISO_UTC.match(body["verifiedAt"]) and ISO_UTC.match(body["verifiedUntil"])
        assert body["verifiedAt"] < body["verifiedUntil"]

        # When a colleague asks for the same caller
        theirs = flex_stack.customer_info(TO, colleague)

        # Then it is refused: the approval is the verifying agent's
        failure(theirs, 403, "not_verified")
        assert "Ada" not in theirs.text

        # When the agent cancels, and asks again
        canceled = flex_stack.post("/cancel-verify", {"to": TO}, token=token)
        again = flex_stack.customer_info(TO, token)

        # Then the approval is gone
        assert canceled.status_code == 200
        assert canceled.json() == {"success": True, "status": "canceled"}
        failure(again, 403, "not_verified")

    def test_a_role_that_is_not_allowed_is_refused(
        self, flex_stack: Any, fresh_number: Callable[[], str], failure: Any
    ) -> None:
        # Given a valid Flex token whose roles are not in ALLOWED_ROLES
        to = fresh_number()
        plugin = flex_stack.plugin(flex_stack.token("guest-user", ("guest",)))

        # When the plugin starts a verification with it
        seen = plugin.start(to)

        # Then the agent reads why, and nothing is sent
        assert seen.success is False
        failure(seen.response, 403, "agent_auth_invalid", seen.message)
        assert flex_stack.outbox(to) == []

    def test_iam_unreachable_is_503_with_retry_after_never_let_through(
        self, flex_stack: Any, fresh_number: Callable[[], str], failure: Any
    ) -> None:
        # Given Twilio IAM refuses to answer, and an agent token it never validated (nothing cached)
        token, to = flex_stack.token("iam-agent", ("agent",)), fresh_number()
        flex_stack.sandbox.set_mode("refuse_iam")
        try:
            # When the agent starts a verification, and asks for customer data
            seen = flex_stack.plugin(token).start(to)
            info = flex_stack.customer_info(TO, token)
        finally:
            flex_stack.sandbox.set_mode("normal")

        # Then both are 503 with Retry-After, the agent reads a message, and nothing was sent
        assert seen.success is False and seen.message  # the plugin shows whatever message comes
        failure(seen.response, 503, "upstream_unavailable")
        failure(info, 503, "upstream_unavailable")
        assert flex_stack.outbox(to) == []

        # When IAM is back
        again = flex_stack.plugin(token).start(to)

        # Then the same token works (the refusal was not cached)
        assert again.success is True
        assert len(flex_stack.outbox(to)) == 1

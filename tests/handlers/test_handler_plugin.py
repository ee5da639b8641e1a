"""The unmodified Flex plugin against the handlers (AgentAuth=none): its flow, CORS and routing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import CORS, MAX_BODY, PLUGIN_FORM, START_MISSING, TO, VERIFY_DOCS, iso

# ------------------------------------------------------------------------------------ the plugin's flow


def test_plugin_start_then_check_with_the_sent_code_approves(
    api: Callable[..., Any], sandbox: Any, clock: Any, audit: Any
) -> None:
    # Given the backend with AgentAuth=none, as the unmodified plugin needs it
    client = api(AGENT_AUTH="none")

    # When the plugin posts its exact start body
    started = client.post("/start-verify", raw="to=%2B12025550100", content_type=PLUGIN_FORM)

    # Then a code goes out to the number
    assert started.status == 200
    assert started.body == {"success": True, "status": "pending", "channel": "sms", "resendAfter": 30}
    assert [(m["to"], m["channel"]) for m in sandbox.outbox] == [(TO, "sms")]
    code = sandbox.outbox[-1]["code"]

    # When the agent types that code and the plugin posts its exact check body
    checked = client.post("/check-verify", raw=f"to=%2B12025550100&verification_code={code}", content_type=PLUGIN_FORM)

    # Then the caller is verified, server-side, for the approval window
    assert checked.status == 200
    assert checked.body == {
        "success": True,
        "message": "Verification success.",
        "verifiedUntil": iso(clock.now + 1800),
    }
    assert audit.of(started) | {"twilio_sid": None} == audit.of(started) | {
        "action": "start",
        "outcome": "sent",
        "agent": "anonymous:203.0.113.10",
        "to": "+1******0100",
        "channel": "sms",
        "twilio_sid": None,
    }
    assert (audit.of(checked)["action"], audit.of(checked)["outcome"]) == ("check", "approved")


def test_plugin_wrong_code_is_incorrect_token(
    api: Callable[..., Any], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given a code was sent
    client = api(AGENT_AUTH="none")
    assert client.start().status == 200

    # When the agent types another code
    answer = client.check(code=client.wrong_code())

    # Then the reference backend's answer, in the contract's shape
    error = assert_error(answer, 401, "incorrect_code", "Incorrect token.")
    assert error["moreInfo"] == VERIFY_DOCS
    assert (audit.of(answer)["action"], audit.of(answer)["outcome"]) == ("check", "incorrect_code")


@pytest.mark.parametrize("body", ["", "to=", "channel=sms", "to=%20%20"])
def test_start_without_to_is_the_reference_missing_parameter(
    body: str, api: Callable[..., Any], assert_error: Callable[..., Any], sandbox: Any
) -> None:
    # Given the plugin's backend / When start-verify has no number
    answer = api(AGENT_AUTH="none").post("/start-verify", raw=body, content_type=PLUGIN_FORM)

    # Then 400 with the reference message in both places the plugin may read, and nothing is sent
    error = assert_error(answer, 400, "missing_parameter", START_MISSING)
    assert error["moreInfo"] == VERIFY_DOCS
    assert sandbox.outbox == []


@pytest.mark.parametrize(
    "fields", [{"to": TO}, {"verification_code": "123456"}, {"to": TO, "verification_code": ""}, {}]
)
def test_check_without_a_field_is_missing_parameter(
    fields: dict[str, str], api: Callable[..., Any], assert_error: Callable[..., Any]
) -> None:
    # Given the plugin's backend / When check-verify lacks the number or the code
    answer = api(AGENT_AUTH="none").post("/check-verify", fields)

    # Then the reference backend's "Missing parameter."
    assert_error(answer, 400, "missing_parameter", "Missing parameter.")


def test_check_with_nothing_pending_is_verification_not_found(
    api: Callable[..., Any], assert_error: Callable[..., Any], audit: Any
) -> None:
    # Given no code was ever sent / When a check arrives
    answer = api(AGENT_AUTH="none").check(code="123456")

    # Then Twilio's 20404 in the contract's terms, audited
    error = assert_error(answer, 404, "verification_not_found")
    assert error["twilioCode"] == 20404
    assert audit.of(answer)["outcome"] == "verification_not_found"


def test_the_email_channel_works_end_to_end(api: Callable[..., Any], sandbox: Any) -> None:
    # Given the handlers / When a code is sent by e-mail to an address written in mixed case
    client = api(AGENT_AUTH="none", ALLOWED_CHANNELS="sms,email")
    started = client.post("/start-verify", {"to": "Ada.Lovelace@Example.com", "channel": "email"})

    # Then it goes to the address, and checking it (in any case) approves
    assert started.status == 200, started.body
    assert started.body["channel"] == "email"
    assert [(m["to"], m["channel"]) for m in sandbox.outbox] == [("ada.lovelace@example.com", "email")]
    code = sandbox.outbox[-1]["code"]
    checked = client.post("/check-verify", {"to": "ADA.LOVELACE@example.com", "verification_code": code})
    assert checked.status == 200, checked.body


# --------------------------------------------------------------------------------------- CORS, routing


def _requests() -> dict[str, Callable[[Any, Callable[..., Any]], Any]]:
    return {
        "start ok": lambda c, e: c.start(),
        "missing to": lambda c, e: c.post("/start-verify", {}),
        "wrong code": lambda c, e: (c.start(), c.check(code=c.wrong_code()))[1],
        "customer-info refused": lambda c, e: c.customer_info(),
        "preflight": lambda c, e: c.send(e("OPTIONS", "/check-verify")),
        "wrong method": lambda c, e: c.send(e("GET", "/start-verify")),
        "unknown path": lambda c, e: c.send(e("POST", "/nope")),
        "too large": lambda c, e: c.post("/start-verify", raw="x" * (MAX_BODY + 1), content_type=PLUGIN_FORM),
        "malformed": lambda c, e: c.post("/start-verify", raw="{", content_type="application/json"),
    }


@pytest.mark.parametrize("name", sorted(_requests()))
def test_every_response_carries_the_cors_headers(
    name: str, api: Callable[..., Any], make_event: Callable[..., Any]
) -> None:
    # Given the default allow-list / When any request is answered, errors included
    answer = _requests()[name](api(AGENT_AUTH="none"), make_event)

    # Then the browser may read it
    assert {k: answer.headers.get(k) for k in CORS} == CORS
    assert answer.headers["Content-Type"] == "application/json"


def test_an_origin_allow_list_echoes_only_listed_origins(
    api: Callable[..., Any], make_event: Callable[..., Any]
) -> None:
    # Given an allow-list of origins
    client = api(AGENT_AUTH="none", ALLOWED_ORIGINS="https://flex.twilio.com,https://example.org")

    # When a listed and an unlisted origin ask (an error and a success)
    listed = client.post("/start-verify", {}, headers={"Origin": "https://example.org"})
    unlisted = client.send(make_event("OPTIONS", "/start-verify", headers={"Origin": "https://evil.example"}))

    # Then only the listed one is echoed, and caches are told the answer varies by origin
    assert listed.headers["Access-Control-Allow-Origin"] == "https://example.org"
    assert listed.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in unlisted.headers
    assert unlisted.headers["Vary"] == "Origin"


@pytest.mark.parametrize("path", ["/start-verify", "/cancel-verify", "/check-verify", "/customer-info"])
def test_options_answers_the_preflight_with_204(
    path: str, api: Callable[..., Any], make_event: Callable[..., Any]
) -> None:
    # Given any route / When the browser sends its preflight
    answer = api(AGENT_AUTH="flex").send(
        make_event(
            "OPTIONS",
            path,
            headers={
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-flex-token",
            },
        )
    )

    # Then 204 with the CORS headers and no body (and no token needed)
    assert answer.status == 204
    assert answer.body is None
    assert {k: answer.headers.get(k) for k in CORS} == CORS


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/start-verify", {"POST", "OPTIONS"}),
        ("PUT", "/check-verify", {"POST", "OPTIONS"}),
        ("DELETE", "/customer-info", {"GET", "POST", "OPTIONS"}),
        ("GET", "/cancel-verify", {"POST", "OPTIONS"}),
    ],
)
def test_a_wrong_method_on_a_known_path_is_405(
    method: str,
    path: str,
    allowed: set[str],
    api: Callable[..., Any],
    make_event: Callable[..., Any],
    assert_error: Callable[..., Any],
) -> None:
    # Given the handlers / When a known path is called with a method it does not serve
    answer = api(AGENT_AUTH="none").send(make_event(method, path, query={"to": TO}))

    # Then 405, telling which methods that path serves
    assert_error(answer, 405, "method_not_allowed")
    assert set(answer.headers["Allow"].split(", ")) == allowed


def test_an_unknown_resource_is_404(
    api: Callable[..., Any], make_event: Callable[..., Any], assert_error: Callable[..., Any]
) -> None:
    # Given the start_verify function / When an event names a resource it does not serve
    answer = api(AGENT_AUTH="none").send(make_event("POST", "/verify-everything"))

    # Then 404 not_found
    assert_error(answer, 404, "not_found")

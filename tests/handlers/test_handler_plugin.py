"""The unmodified Flex plugin against the handlers (AgentAuth=none), and request decoding for every client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import PLUGIN_FORM, TASK, TO, iso

START_MISSING = "Missing parameter; please provide a phone number or email."
VERIFY_DOCS = "https://www.twilio.com/docs/verify/api/verification"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, X-Flex-Token",
}
MAX_BODY = 8 * 1024


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
    client = api(AGENT_AUTH="none")
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


# ---------------------------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("base64_body", [False, True])
def test_a_body_of_exactly_8_kib_is_read_and_one_byte_more_is_413(
    base64_body: bool, api: Callable[..., Any], assert_error: Callable[..., Any], sandbox: Any
) -> None:
    # Given bodies of 8 KiB and 8 KiB + 1 once decoded (unknown fields are ignored)
    client = api(AGENT_AUTH="none", SEND_COOLDOWN_SECONDS="0")
    prefix = "to=%2B12025550100&padding="
    fits, too_large = (prefix + "x" * (size - len(prefix)) for size in (MAX_BODY, MAX_BODY + 1))

    # When both are posted
    accepted = client.post("/start-verify", raw=fits, content_type=PLUGIN_FORM, base64_body=base64_body)
    refused = client.post("/start-verify", raw=too_large, content_type=PLUGIN_FORM, base64_body=base64_body)

    # Then the first sends a code, the second is refused before anything is sent
    assert accepted.status == 200
    assert_error(refused, 413, "body_too_large")
    assert len(sandbox.outbox) == 1


@pytest.mark.parametrize(
    ("raw", "content_type", "is_base64"),
    [
        pytest.param('{"to": "+12025550100"', "application/json", False, id="truncated-json"),
        pytest.param('["+12025550100"]', "application/json", False, id="json-not-an-object"),
        pytest.param("not*base64!", PLUGIN_FORM, True, id="bad-base64"),
        pytest.param("to=%2B1555555%G00100", PLUGIN_FORM, False, id="bad-percent-escape"),
        pytest.param("to=%2B12025550100%", PLUGIN_FORM, False, id="truncated-percent-escape"),
        pytest.param("to=%FF%FE", PLUGIN_FORM, False, id="percent-encoded-non-utf8"),
        pytest.param("to=%2B12025550100", "text/plain", False, id="unsupported-content-type"),
    ],
)
def test_an_undecodable_body_is_malformed_body(
    raw: str,
    content_type: str,
    is_base64: bool,
    api: Callable[..., Any],
    make_event: Callable[..., Any],
    assert_error: Callable[..., Any],
    sandbox: Any,
) -> None:
    # Given the handlers / When the body cannot be decoded
    event = make_event("POST", "/start-verify", body=raw, headers={"Content-Type": content_type}, is_base64=is_base64)
    answer = api(AGENT_AUTH="none").send(event)

    # Then 400 malformed_body, and nothing is sent
    assert_error(answer, 400, "malformed_body")
    assert sandbox.outbox == []


@pytest.mark.parametrize(
    ("json_body", "base64_body", "content_type"),
    [
        pytest.param(True, False, "application/json", id="json"),
        pytest.param(True, False, "application/json; charset=utf-8", id="json-charset"),
        pytest.param(True, True, "application/json", id="base64-json"),
        pytest.param(False, True, PLUGIN_FORM, id="base64-form"),
        pytest.param(False, False, "application/x-www-form-urlencoded", id="form-without-charset"),
    ],
)
def test_json_base64_and_form_bodies_are_all_read(
    json_body: bool, base64_body: bool, content_type: str, api: Callable[..., Any], sandbox: Any
) -> None:
    # Given the handlers
    client = api(AGENT_AUTH="none")
    fields = {"to": TO, "channel": "call", "locale": "pt-BR"}

    # When a client posts the same fields in another encoding
    if json_body:
        answer = client.post("/start-verify", json_body=fields, content_type=content_type, base64_body=base64_body)
    else:
        answer = client.post("/start-verify", fields, content_type=content_type, base64_body=base64_body)

    # Then they are understood
    assert answer.status == 200, answer.body
    assert answer.body["channel"] == "call"
    assert [(m["to"], m["channel"]) for m in sandbox.outbox] == [(TO, "call")]


# --------------------------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_to_alias_is_accepted(encoding: str, api: Callable[..., Any], sandbox: Any) -> None:
    # Given the handlers / When the number comes as `To` (Twilio's spelling)
    client = api(AGENT_AUTH="none")
    answer = (
        client.post("/start-verify", {"To": TO})
        if encoding == "form"
        else client.post("/start-verify", json_body={"To": TO})
    )

    # Then it is the `to`
    assert answer.status == 200, answer.body
    assert [m["to"] for m in sandbox.outbox] == [TO]


@pytest.mark.parametrize("alias", ["verification_code", "code", "Code"])
def test_code_aliases_are_accepted(alias: str, api: Callable[..., Any]) -> None:
    # Given a code was sent
    client = api(AGENT_AUTH="none")
    assert client.start().status == 200

    # When the check names the code with an alias
    answer = client.post("/check-verify", {"to": TO, alias: client.code()})

    # Then it is checked and approved
    assert answer.status == 200, answer.body
    assert answer.body["message"] == "Verification success."


@pytest.mark.parametrize("alias", ["taskSid", "TaskSid", "task_sid"])
@pytest.mark.parametrize("encoding", ["form", "json"])
def test_task_sid_aliases_are_accepted(alias: str, encoding: str, api: Callable[..., Any], audit: Any) -> None:
    # Given the handlers / When the task comes under an alias
    client = api(AGENT_AUTH="none")
    fields = {"to": TO, alias: TASK}
    answer = (
        client.post("/start-verify", fields) if encoding == "form" else client.post("/start-verify", json_body=fields)
    )

    # Then the start is recorded for that task
    assert answer.status == 200, answer.body
    assert audit.of(answer)["task_sid"] == TASK


@pytest.mark.parametrize("how", ["header", "form", "json"])
def test_the_flex_token_is_accepted_as_header_or_field(
    how: str, api: Callable[..., Any], sandbox: Any, audit: Any
) -> None:
    # Given AgentAuth=flex and an agent's token
    client = api(AGENT_AUTH="flex")
    token = sandbox.issue_token("alice", ["agent"])

    # When the token comes as the X-Flex-Token header or the Token field
    if how == "header":
        answer = client.post("/start-verify", {"to": TO}, headers={"X-Flex-Token": token})
    elif how == "form":
        answer = client.post("/start-verify", {"to": TO, "Token": token})
    else:
        answer = client.post("/start-verify", json_body={"to": TO, "Token": token})

    # Then the agent is identified
    assert answer.status == 200, answer.body
    assert audit.of(answer)["agent"] == "alice"


# ------------------------------------------------------------------------------------------ validation

CANARY = "C4NARY"


@pytest.mark.parametrize(
    ("path", "fields", "name"),
    [
        pytest.param("/start-verify", {"to": TO, "channel": f"sms{CANARY}"}, "channel", id="start-channel"),
        pytest.param("/start-verify", {"to": TO, "locale": f"en-{CANARY}"}, "locale", id="start-locale"),
        pytest.param("/start-verify", {"to": TO, "locale": CANARY.lower()}, "locale", id="start-locale-shape"),
        pytest.param("/start-verify", {"to": TO, "taskSid": f"WT{CANARY}" + "0" * 26}, "taskSid", id="start-task"),
        pytest.param("/start-verify", {"to": TO, "taskSid": "WT" + "a" * 33}, "taskSid", id="start-task-long"),
        pytest.param("/start-verify", {"to": f"+1555{CANARY}"}, "to", id="start-to"),
        pytest.param("/start-verify", {"to": "+1" + "5" * 40}, "to", id="start-to-long"),
        pytest.param("/start-verify", {"to": f"{CANARY}@", "channel": "email"}, "to", id="start-email"),
        pytest.param(
            "/check-verify", {"to": TO, "verification_code": f"12{CANARY}"}, "verification_code", id="check-code"
        ),
        pytest.param(
            "/check-verify", {"to": TO, "verification_code": "123"}, "verification_code", id="check-code-short"
        ),
        pytest.param(
            "/check-verify", {"to": TO, "verification_code": "1" * 11}, "verification_code", id="check-code-long"
        ),
        pytest.param(
            "/check-verify",
            {"to": TO, "verification_code": "123456", "task_sid": f"WT{CANARY}"},
            "taskSid",
            id="check-task",
        ),
        pytest.param("/cancel-verify", {"to": f"+{CANARY}"}, "to", id="cancel-to"),
        pytest.param("/customer-info", {"to": TO, "TaskSid": CANARY}, "taskSid", id="customer-info-task"),
    ],
)
def test_an_invalid_field_is_named_never_echoed_and_refused_before_any_call(
    path: str,
    fields: dict[str, str],
    name: str,
    api: Callable[..., Any],
    assert_error: Callable[..., Any],
    sandbox: Any,
    audit: Any,
) -> None:
    # Given the handlers / When a field fails validation
    answer = api(AGENT_AUTH="none").post(path, fields)

    # Then 400 invalid_parameter naming the field, without the submitted value anywhere in the body
    error = assert_error(answer, 400, "invalid_parameter")
    assert f"'{name}'" in error["message"]
    submitted = next(value for key, value in fields.items() if key != "to" or name == "to")
    assert submitted not in json.dumps(answer.body)
    assert CANARY not in json.dumps(answer.body) and CANARY.lower() not in json.dumps(answer.body)
    # and nothing reached Twilio or the state table
    assert sandbox.outbox == []
    assert audit.all() == []


def test_a_non_string_json_value_is_invalid_and_not_echoed(
    api: Callable[..., Any], assert_error: Callable[..., Any]
) -> None:
    # Given the handlers / When a JSON client sends the number as a JSON number
    answer = api(AGENT_AUTH="none").post("/start-verify", json_body={"to": 12025550100})

    # Then it is refused as invalid, naming the field only
    error = assert_error(answer, 400, "invalid_parameter")
    assert "'to'" in error["message"]
    assert "2025550100" not in json.dumps(answer.body)


@pytest.mark.parametrize(
    "setting",
    [
        {"HASH_SECRET": "too-short"},
        {"ACCOUNT_SID": "AC-fill-me"},
        {"APPROVAL_TTL_SECONDS": "soon"},
        {"AGENT_AUTH": "maybe"},
    ],
)
def test_a_misconfiguration_is_internal_error_with_cors_and_no_detail(
    setting: dict[str, str], api: Callable[..., Any], assert_error: Callable[..., Any], sandbox: Any
) -> None:
    # Given a deployment with a setting that cannot work
    client = api(**{"AGENT_AUTH": "none", **setting})

    # When the plugin starts a verification
    answer = client.start()

    # Then 500 "Internal error." that the plugin can still read, naming nothing internal
    assert_error(answer, 500, "internal_error", "Internal error.")
    assert answer.body == {
        "success": False,
        "message": "Internal error.",
        "error": {"code": "internal_error", "message": "Internal error."},
    }
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert sandbox.outbox == []


COLD_INVOKE = """
import json, pathlib
from devserver.lambdas import load_handler, make_context
root = pathlib.Path.cwd()
handler = load_handler("functions/start_verify", "app.lambda_handler", root)
event = json.loads((root / "events" / "start-verify.json").read_text())
print(json.dumps(handler(event, make_context("start-verify"))))
"""


def test_a_cold_container_without_the_metrics_namespace_still_answers_in_the_contract_shape() -> None:
    # Given a cold container (fresh interpreter) whose environment lacks the Powertools metrics namespace,
    # and whose Twilio secret still holds the template's placeholders (a first deploy)
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(root / "layers" / "core"), str(root)]),
        "AGENT_AUTH": "none",
        "STATE_TABLE": "state",
        "CUSTOMERS_TABLE": "customers",
        "ACCOUNT_SID": "AC-fill-me",
        "AUTH_TOKEN": "fill-me",
        "VERIFY_SERVICE_SID": "VA-fill-me",
        "HASH_SECRET": "x" * 32,
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    # When the plugin's start event is invoked
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", COLD_INVOKE], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )

    # Then it answers 500 in the contract's shape (the misconfiguration), rather than raising
    assert result.returncode == 0, result.stderr[-1500:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"]["code"] == "internal_error"

"""Request decoding for every client, through the handlers: bodies, aliases, field validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import MAX_BODY, PLUGIN_FORM, TASK, TO

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
    client = api(AGENT_AUTH="none", ALLOWED_CHANNELS="sms,call")
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
    answer = api(AGENT_AUTH="none", ALLOWED_CHANNELS="sms,email").post(path, fields)

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

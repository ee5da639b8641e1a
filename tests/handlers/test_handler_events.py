"""Every `events/*.json` file (for `sam local invoke -e`) drives its handler to its documented answer."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from devserver.events import REST_PROXY_KEYS
from tests.support import ISO_Z, VISIBLE

EVENTS = Path(__file__).resolve().parents[2] / "events"
TOKEN_PLACEHOLDER = "REPLACE_WITH_AGENT_FLEX_TOKEN"
SENT = {"success": True, "status": "pending", "channel": "sms", "resendAfter": 30}


@dataclass(frozen=True)
class Expected:
    """What an events file documents: under which AgentAuth, after what, which status and body."""

    agent_auth: str
    status: int
    body: Callable[[Any], bool]
    # "pending": a code was sent to the event's `to` first, and the event carries that code;
    # "verified": the token's agent verified the event's `to` (for the event's task) first.
    given: str | None = None
    sent_to: str | None = None  # a code must have gone out to this number


EXPECTED: dict[str, Expected] = {
    "start-verify.json": Expected("none", 200, lambda body: body == SENT, sent_to="+12025550100"),
    "start-verify-flex.json": Expected("flex", 200, lambda body: body == SENT, sent_to="+12025550100"),
    "start-verify-json.json": Expected("flex", 200, lambda body: body == SENT, sent_to="+12025550101"),
    "start-verify-base64.json": Expected("none", 200, lambda body: body == SENT, sent_to="+12025550102"),
    "check-verify.json": Expected(
        "none",
        200,
        lambda body: (
            body.keys() == {"success", "message", "verifiedUntil"}
            and body["success"] is True
            and body["message"] == "Verification success."
            and ISO_Z.fullmatch(body["verifiedUntil"]) is not None
        ),
        given="pending",
    ),
    "cancel-verify.json": Expected(
        "flex", 200, lambda body: body == {"success": True, "status": "canceled"}, given="verified"
    ),
    "customer-info-get.json": Expected(
        "flex",
        200,
        lambda body: (
            body["success"] is True
            and body["customer"] == VISIBLE
            and ISO_Z.fullmatch(body["verifiedAt"]) is not None
            and ISO_Z.fullmatch(body["verifiedUntil"]) is not None
        ),
        given="verified",
    ),
    "customer-info-post.json": Expected(
        "flex", 200, lambda body: body["success"] is True and body["customer"] == VISIBLE, given="verified"
    ),
    "preflight.json": Expected("none", 204, lambda body: body is None),
}
EVENT_FILES = sorted(path.name for path in EVENTS.glob("*.json"))


def _fields(event: dict[str, Any]) -> dict[str, str]:
    """The request's fields, decoded the way a client encoded them."""
    if event["httpMethod"] == "GET":
        return dict(event["queryStringParameters"] or {})
    if not event["body"]:
        return {}
    body = base64.b64decode(event["body"]).decode() if event["isBase64Encoded"] else event["body"]
    if event["headers"].get("Content-Type", "").startswith("application/json"):
        return dict(json.loads(body))
    return dict(parse_qsl(body))


def _with_code(event: dict[str, Any], code: str) -> dict[str, Any]:
    fields = _fields(event)
    fields["verification_code"] = code
    return {**event, "body": urlencode(fields)}


def test_every_expectation_has_its_events_file() -> None:
    # Given the documented expectations / When listing events/ / Then both name the same files
    assert set(EXPECTED) == set(EVENT_FILES)


@pytest.mark.parametrize("name", EVENT_FILES)
def test_events_file_is_a_complete_rest_proxy_event(name: str) -> None:
    # Given an events file
    event = json.loads((EVENTS / name).read_text())
    # Then it has every key of `sam local generate-event apigateway aws-proxy`, consistently filled
    assert event.keys() >= REST_PROXY_KEYS
    assert event["requestContext"]["identity"]["sourceIp"]
    assert event["requestContext"]["requestId"]
    assert event["requestContext"]["httpMethod"] == event["httpMethod"]
    assert event["requestContext"]["resourcePath"] == event["resource"]
    assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    if event["queryStringParameters"]:
        assert event["multiValueQueryStringParameters"] == {k: [v] for k, v in event["queryStringParameters"].items()}
    # and every phone number in it is a fictional +1 555 555 01xx one
    numbers = re.findall(r"(?:\+|%2B)(\d{7,15})", json.dumps(event))
    assert all(re.fullmatch(r"1202555\d{4}", number) for number in numbers), numbers


@pytest.mark.parametrize("name", EVENT_FILES)
def test_events_file_drives_its_handler(name: str, api: Callable[..., Any], sandbox: Any) -> None:
    expected = EXPECTED.get(name)
    assert expected is not None, f"events/{name} has no expectation: document its answer in EXPECTED"
    # Given handlers configured as the file expects, a real agent token in place of the placeholder
    client = api(AGENT_AUTH=expected.agent_auth)
    token = sandbox.issue_token("dev-agent", ["agent"])
    event = json.loads((EVENTS / name).read_text().replace(TOKEN_PLACEHOLDER, token))
    fields = _fields(event)
    credentials = {"Token": token} if expected.agent_auth == "flex" else {}
    task = {"taskSid": fields["taskSid"]} if "taskSid" in fields else {}
    # and what the file presumes happened before it
    if expected.given == "pending":
        assert client.start(fields["to"], **credentials).status == 200
        event = _with_code(event, client.code(fields["to"]))
    elif expected.given == "verified":
        client.verify(fields["to"], **credentials, **task)
    outbox_before = len(sandbox.outbox)

    # When the event is invoked
    status, headers, body = client.send(event)

    # Then the answer is the documented one, with the CORS headers
    assert status == expected.status, body
    assert expected.body(body), body
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type, X-Flex-Token"
    if expected.sent_to:
        assert [m["to"] for m in sandbox.outbox[outbox_before:]] == [expected.sent_to]


@pytest.mark.parametrize("name", [name for name in EVENT_FILES if TOKEN_PLACEHOLDER in (EVENTS / name).read_text()])
def test_events_file_as_committed_is_refused_until_a_real_token_is_pasted(
    name: str, api: Callable[..., Any], assert_error: Callable[..., Any]
) -> None:
    # Given AgentAuth=flex (the default) / When an events file is invoked with its placeholder token
    event = json.loads((EVENTS / name).read_text())
    answer = api(AGENT_AUTH="flex").send(event)

    # Then IAM refuses the placeholder: paste a real token (`make dev` prints one) before `sam local invoke`
    assert_error(answer, 403, "agent_auth_invalid")

"""The local API Gateway: the proxy event it builds, how it translates answers, and how it fails."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from devserver.events import REST_PROXY_KEYS
from devserver.gateway import Gateway
from devserver.lambdas import Handler
from devserver.stack import DEV_HASH_SECRET, start_stack
from devserver.template import GatewayResponse, Route, gateway_responses, load_template
from tests.support import PLUGIN_FORM as FORM

FIXTURE = Path(__file__).with_name("fixtures") / "sam_template.yaml"
ROUTES = [
    Route("/start-verify", "ANY", "StartVerifyFunction", "functions/start_verify/", "app.lambda_handler"),
    Route("/check-verify", "POST", "CheckVerifyFunction", "functions/check_verify/", "app.lambda_handler"),
    Route("/items/{id}", "GET", "ItemsFunction", "functions/items/", "app.lambda_handler"),
]
OK = {"statusCode": 200, "body": '{"ok": true}'}


class Recorder:
    """A fake handler that keeps what it was called with and answers a fixed result."""

    def __init__(self, result: Any = OK, error: Exception | None = None, delay: float = 0.0) -> None:
        self.result = result
        self.error, self.delay = error, delay
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        time.sleep(self.delay)
        if self.error:
            raise self.error
        return self.result


def make_gateway(
    handler: Handler, responses: dict[str, GatewayResponse] | None = None, routes: list[Route] | None = None
) -> tuple[Client, list[str]]:
    log: list[str] = []
    gateway = Gateway(routes or ROUTES, lambda route: handler, responses, log=log.append)
    return Client(gateway), log


# ------------------------------------------------------------------------------------ the event


def test_form_post_event_has_the_rest_v1_proxy_shape() -> None:
    # Given a gateway in front of a recording handler
    handler = Recorder()
    client, _ = make_gateway(handler)
    # When the plugin's start request arrives
    before_ms = int(time.time() * 1000)
    response = client.post(
        "/start-verify",
        data="to=%2B12025550100",
        content_type=FORM,
        headers={"User-Agent": "flex-plugin/1.0", "Origin": "https://flex.twilio.com"},
    )
    # Then the handler got the REST API proxy event, as API Gateway builds it
    event = handler.events[0]
    assert set(event) == REST_PROXY_KEYS  # what `sam local generate-event apigateway aws-proxy` has
    assert event["resource"] == event["path"] == "/start-verify"
    assert event["httpMethod"] == "POST"
    assert event["body"] == "to=%2B12025550100"
    assert event["isBase64Encoded"] is False
    assert event["headers"]["Content-Type"] == FORM
    assert event["headers"]["Origin"] == "https://flex.twilio.com"
    assert event["multiValueHeaders"]["Content-Type"] == [FORM]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    ctx = event["requestContext"]
    assert ctx["resourcePath"] == "/start-verify"
    assert ctx["httpMethod"] == "POST"
    assert ctx["path"] == "/Prod/start-verify"
    assert ctx["stage"] == "Prod"
    assert ctx["accountId"] == "123456789012"
    assert ctx["protocol"] == "HTTP/1.1"
    assert uuid.UUID(ctx["requestId"]) and ctx["requestId"] == response.headers["x-amzn-RequestId"]
    assert ctx["extendedRequestId"] == response.headers["x-amz-apigw-id"]
    assert before_ms <= ctx["requestTimeEpoch"] <= int(time.time() * 1000)
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", ctx["requestTime"])
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["identity"]["userAgent"] == "flex-plugin/1.0"
    assert ctx["identity"]["cognitoIdentityId"] is None
    assert {"resourceId", "domainPrefix", "domainName", "apiId"} <= set(ctx)


def test_json_post_body_is_passed_as_text() -> None:
    # Given
    handler = Recorder()
    client, _ = make_gateway(handler)
    # When a JSON body is posted
    client.post("/start-verify", json={"to": "+12025550100", "channel": "sms"})
    # Then the body is the JSON text, unchanged and not base64
    event = handler.events[0]
    assert json.loads(event["body"]) == {"to": "+12025550100", "channel": "sms"}
    assert event["isBase64Encoded"] is False
    assert event["headers"]["Content-Type"] == "application/json"


def test_get_query_string_is_decoded_and_repeated_keys_keep_every_value() -> None:
    # Given
    handler = Recorder()
    client, _ = make_gateway(handler)
    # When a GET carries an encoded number and a repeated key
    client.get("/start-verify?to=%2B12025550100&tag=a&tag=b+c")
    # Then single values hold the last one, multi values all of them, and there is no body
    event = handler.events[0]
    assert event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"to": "+12025550100", "tag": "b c"}
    assert event["multiValueQueryStringParameters"] == {"to": ["+12025550100"], "tag": ["a", "b c"]}
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_a_body_that_is_not_utf8_is_base64_encoded() -> None:
    # Given
    handler = Recorder()
    client, _ = make_gateway(handler)
    raw = b"to=\xff\xfe\x00"
    # When
    client.post("/start-verify", data=raw, content_type="application/octet-stream")
    # Then
    event = handler.events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_path_parameters_and_context_object() -> None:
    # Given a route with a path parameter and a 4 s timeout
    handler = Recorder()
    route = Route("/items/{id}", "GET", "ItemsFunction", "functions/items/", "app.h", timeout_seconds=4.0)
    client, _ = make_gateway(handler, routes=[route])
    # When
    client.get("/items/42")
    # Then the event names the resource, and the context looks like the Lambda runtime's
    event, context = handler.events[0], handler.contexts[0]
    assert event["resource"] == "/items/{id}" and event["path"] == "/items/42"
    assert event["pathParameters"] == {"id": "42"}
    assert context.function_name == "ItemsFunction"
    assert context.function_version == "$LATEST"
    assert context.invoked_function_arn.endswith(":function:ItemsFunction")
    assert context.memory_limit_in_mb == 256
    assert 0 < context.get_remaining_time_in_millis() <= 4000
    assert uuid.UUID(context.aws_request_id)


# ---------------------------------------------------------------------------------- the response


def test_proxy_result_becomes_the_http_response() -> None:
    # Given a handler answering with single and multi-value headers
    handler = Recorder(
        {
            "statusCode": 201,
            "headers": {"X-One": "1", "Set-Cookie": "ignored=1", "X-Num": 7},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": '{"success": true}',
            "isBase64Encoded": False,
        }
    )
    client, _ = make_gateway(handler)
    # When
    response = client.post("/start-verify", data="to=x", content_type=FORM)
    # Then status, body and headers are the handler's; multiValueHeaders win over headers for one name
    assert response.status_code == 201
    assert response.get_data(as_text=True) == '{"success": true}'
    assert response.headers["X-One"] == "1"
    assert response.headers["X-Num"] == "7"
    assert response.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["Content-Type"] == "application/json"  # API Gateway's default


def test_base64_result_is_decoded_and_reserved_headers_are_remapped() -> None:
    # Given a binary answer that also sets headers API Gateway does not pass through as they are
    payload = b"\x89PNG\x00"
    handler = Recorder(
        {
            "statusCode": 200,
            "isBase64Encoded": True,
            "body": base64.b64encode(payload).decode(),
            "headers": {
                "Content-Type": "image/png",
                "WWW-Authenticate": "Basic",
                "Content-Length": "999",
                "Transfer-Encoding": "chunked",
            },
        }
    )
    client, _ = make_gateway(handler)
    # When
    response = client.get("/start-verify")
    # Then
    assert response.get_data() == payload
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["x-amzn-Remapped-WWW-Authenticate"] == "Basic"
    assert "WWW-Authenticate" not in response.headers
    assert response.headers["x-amzn-Remapped-Content-Length"] == "999"
    assert "Transfer-Encoding" not in response.headers


# ------------------------------------------------------------------------------------ failures


def test_unknown_path_answers_the_templates_gateway_response() -> None:
    # Given the fixture template's MISSING_AUTHENTICATION_TOKEN customisation
    handler = Recorder()
    client, log = make_gateway(handler, gateway_responses(load_template(FIXTURE)))
    # When
    response = client.get("/nope")
    # Then its status, headers and body are used, and no handler runs
    assert response.status_code == 404
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json()["error"]["code"] == "not_found"
    assert handler.events == []
    assert log == [log[0]] and log[0].startswith("GET /nope 404 ")


def test_unknown_path_without_customisation_is_api_gateways_403() -> None:
    # Given no gateway responses in the template
    client, _ = make_gateway(Recorder())
    # When
    response = client.get("/nope")
    # Then it is what a bare REST API answers
    assert response.status_code == 403
    assert response.get_json() == {"message": "Missing Authentication Token"}
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_a_method_the_route_does_not_declare_is_an_unknown_route() -> None:
    # Given /check-verify declared for POST only
    handler = Recorder()
    client, _ = make_gateway(handler)
    # When it is called with GET
    response = client.get("/check-verify")
    # Then API Gateway has no such method: Missing Authentication Token
    assert response.status_code == 403
    assert handler.events == []


def test_handler_exception_is_a_502_and_the_traceback_is_logged() -> None:
    # Given a handler that crashes
    client, log = make_gateway(Recorder(error=RuntimeError("boom in handler")))
    # When
    response = client.post("/start-verify", data="to=secret-body-value", content_type=FORM)
    # Then the caller sees API Gateway's 502, and the log has the traceback but never the body
    assert response.status_code == 502
    assert response.get_json() == {"message": "Internal server error"}
    assert response.headers["x-amzn-ErrorType"] == "InternalServerErrorException"
    text = "\n".join(log)
    assert "Traceback" in text and "RuntimeError: boom in handler" in text
    assert "secret-body-value" not in text
    assert log[-1].startswith("POST /start-verify 502 ") and log[-1].endswith("ms")


def test_a_newline_in_a_path_cannot_forge_a_log_line() -> None:
    # Given the dev gateway's request log
    client, log = make_gateway(Recorder())
    # When a path carries an encoded line break and a fake log line after it
    client.get("/start-verify%0aPOST%20/check-verify%20200%201.0ms")
    # Then the request is one line, the break written as an escape
    assert all("\n" not in line for line in log)
    assert log[-1].startswith("GET /start-verify\\nPOST /check-verify 200 1.0ms ")


@pytest.mark.parametrize(
    "result",
    [
        None,
        "ok",
        {"body": "{}"},
        {"statusCode": "200", "body": "{}"},
        {"statusCode": True, "body": "{}"},
        {"statusCode": 200, "body": {"success": True}},
        {"statusCode": 200, "headers": {"X-A": ["list"]}},
        {"statusCode": 200, "multiValueHeaders": {"X-A": "not a list"}},
        {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
        {"statusCode": 200, "body": "x", "extra": object()},
    ],
)
def test_malformed_proxy_results_are_502(result: Any) -> None:
    # Given a handler answering something that is not a valid proxy response
    client, _ = make_gateway(Recorder(result))
    # When
    response = client.get("/start-verify")
    # Then
    assert response.status_code == 502
    assert response.get_json() == {"message": "Internal server error"}


def test_default_5xx_customisation_applies_to_lambda_errors() -> None:
    # Given the fixture's DEFAULT_5XX template, which uses $context variables
    client, _ = make_gateway(Recorder(error=ValueError("x")), gateway_responses(load_template(FIXTURE)))
    # When
    response = client.get("/start-verify")
    # Then the 502 keeps its status and gets the template's headers and rendered body
    assert response.status_code == 502
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.get_json() == {
        "success": False,
        "message": "Internal server error",
        "requestId": response.headers["x-amzn-RequestId"],
    }


def test_a_failing_cold_start_is_a_502_and_is_retried() -> None:
    # Given a loader that fails once, then returns a handler
    handler = Recorder()
    attempts: list[str] = []

    def handler_for(route: Route) -> Handler:
        attempts.append(route.function_logical_id)
        if len(attempts) == 1:
            raise ImportError("No module named 'callerauth'")
        return handler

    log: list[str] = []
    client = Client(Gateway(ROUTES, handler_for, log=log.append))
    # When two requests arrive
    first, second = client.get("/start-verify"), client.get("/start-verify")
    # Then the first fails like Runtime.ImportModuleError, the second loads the handler; later ones reuse it
    assert (first.status_code, second.status_code) == (502, 200)
    assert "ImportError: No module named 'callerauth'" in "\n".join(log)
    client.get("/start-verify")
    assert attempts == ["StartVerifyFunction", "StartVerifyFunction"]


def test_a_handler_slower_than_its_timeout_is_a_502() -> None:
    # Given a 50 ms function timeout and a handler that takes longer
    route = Route("/slow", "ANY", "Slow", "functions/slow/", "app.h", timeout_seconds=0.05)
    client, log = make_gateway(Recorder(delay=0.1), routes=[route])
    # When
    response = client.get("/slow")
    # Then Lambda would have killed it: API Gateway answers 502
    assert response.status_code == 502
    assert any("Task timed out" in line for line in log)


def test_bodies_over_10_mb_are_413_without_calling_the_handler() -> None:
    # Given
    handler = Recorder()
    client, _ = make_gateway(handler)
    # When
    response = client.post("/start-verify", data=b"a" * (10 * 1024 * 1024 + 1), content_type=FORM)
    # Then
    assert response.status_code == 413
    assert response.get_json() == {"message": "Request Too Long"}
    assert handler.events == []


# --------------------------------------------------------------------- the whole stack, for real

FAKE_HANDLER = """
import os, sys
import boto3
import fakecore

def lambda_handler(event, context):
    import json
    names = ["STATE_TABLE", "CUSTOMERS_TABLE", "ACCOUNT_SID", "VERIFY_SERVICE_SID",
             "TWILIO_VERIFY_BASE_URL", "TWILIO_IAM_BASE_URL", "TWILIO_LOOKUP_BASE_URL", "AGENT_AUTH",
             "APPROVAL_TTL_SECONDS",
             "SEND_COOLDOWN_SECONDS", "HASH_SECRET", "HASH_SECRET_ARN", "POWERTOOLS_SERVICE_NAME",
             "AWS_ENDPOINT_URL_DYNAMODB"]
    body = {"module": __name__, "layer": fakecore.MARK, "env": {n: os.environ.get(n) for n in names}}
    if event["path"] == "/customer-info":
        phone = event["queryStringParameters"]["to"]
        item = boto3.client("dynamodb").get_item(TableName=os.environ["CUSTOMERS_TABLE"],
                                                 Key={"phone": {"S": phone}})
        body["customer"] = item["Item"]["name"]["S"]
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project tree with the fixture template, three handlers all called app.py, and a core layer."""
    shutil.copy(FIXTURE, tmp_path / "template.yaml")
    for name in ("start_verify", "check_verify", "customer_info"):
        (tmp_path / "functions" / name).mkdir(parents=True)
        (tmp_path / "functions" / name / "app.py").write_text(FAKE_HANDLER)
    (tmp_path / "layers" / "core" / "fakecore").mkdir(parents=True)
    (tmp_path / "layers" / "core" / "fakecore" / "__init__.py").write_text('MARK = "from the layer"\n')
    (tmp_path / ".env").write_text(
        "# local settings\nAGENT_AUTH=flex\nexport APPROVAL_TTL_SECONDS='600'\n"
        "SEND_COOLDOWN_SECONDS=1  # the environment overrides this one\nACCOUNT_SID=\n"
    )
    for key in (
        "ACCOUNT_SID",
        "AUTH_TOKEN",
        "VERIFY_SERVICE_SID",
        "HASH_SECRET",
        "AGENT_AUTH",
        "APPROVAL_TTL_SECONDS",
        "STATE_TABLE",
        "TWILIO_VERIFY_BASE_URL",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SEND_COOLDOWN_SECONDS", "2")
    monkeypatch.setenv("HASH_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:real")
    return tmp_path


@pytest.mark.stack
def test_stack_serves_the_handlers_with_tables_sandbox_and_settings(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a project without Twilio credentials, a .env, the environment and an env argument,
    # and the core layer already imported by the test process
    monkeypatch.syspath_prepend(str(project / "layers" / "core"))
    import fakecore

    monkeypatch.setattr(fakecore, "MARK", "patched in the test process")
    announced: list[str] = []
    # When the stack starts on free ports
    with start_stack(
        project, api_port=0, sandbox_port=0, dynamodb_port=0, env={"AGENT_AUTH": "none"}, announce=announced.append
    ) as stack:
        start = requests.get(f"{stack.api_url}/start-verify", timeout=10).json()
        check = requests.post(f"{stack.api_url}/check-verify", timeout=10).json()
        info = requests.get(f"{stack.api_url}/customer-info?to=%2B12025550100", timeout=10).json()
        unknown = requests.get(f"{stack.api_url}/nope", timeout=10)
        outbox = requests.get(f"{stack.outbox_url}", timeout=10)
        # Then each function is its own app.py, with a fresh (cold) copy of the layer
        assert start["module"] != check["module"] != info["module"]
        assert start["layer"] == "from the layer"
        # and the handlers see the stack's tables, endpoints and sandbox credentials
        env = start["env"]
        assert env["STATE_TABLE"] == "callerauth-state" and env["CUSTOMERS_TABLE"] == "callerauth-customers"
        assert env["AWS_ENDPOINT_URL_DYNAMODB"] == stack.dynamodb_url
        assert stack.sandbox is not None and env["ACCOUNT_SID"] == stack.sandbox.account_sid
        assert env["TWILIO_VERIFY_BASE_URL"] == env["TWILIO_IAM_BASE_URL"] == stack.sandbox_url
        assert env["TWILIO_LOOKUP_BASE_URL"] == stack.sandbox_url
        assert env["HASH_SECRET"] == DEV_HASH_SECRET
        assert env["HASH_SECRET_ARN"] is None  # would send the core to real Secrets Manager
        assert env["POWERTOOLS_SERVICE_NAME"] == "callerauth"
        # and settings: env argument over environment over .env
        settings = (env["AGENT_AUTH"], env["SEND_COOLDOWN_SECONDS"], env["APPROVAL_TTL_SECONDS"])
        assert settings == ("none", "2", "600")
        # and the customers table was seeded; unknown paths get the template's answer; the sandbox serves
        assert info["customer"] == "Ada Lovelace"
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        assert outbox.status_code == 200 and outbox.json() == []
    # Then stopping restores the environment and the process's own modules, and closes the ports
    assert "STATE_TABLE" not in os.environ and os.environ["SEND_COOLDOWN_SECONDS"] == "2"
    assert os.environ["HASH_SECRET_ARN"].endswith(":secret:real")
    assert sys.modules["fakecore"] is fakecore
    assert announced == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.api_url}/start-verify", timeout=2)


@pytest.mark.stack
def test_stack_uses_real_twilio_when_all_credentials_are_set(project: Path) -> None:
    # Given all three Twilio settings
    creds = {"ACCOUNT_SID": "AC" + "1" * 32, "AUTH_TOKEN": "t" * 32, "VERIFY_SERVICE_SID": "VA" + "2" * 32}
    # When
    with start_stack(project, api_port=0, sandbox_port=0, dynamodb_port=0, env=creds, announce=lambda _: None) as stack:
        env = requests.get(f"{stack.api_url}/start-verify", timeout=10).json()["env"]
        # Then no sandbox runs and the handlers get the real credentials and Twilio's own URLs
        assert stack.sandbox is None and stack.sandbox_url is None
        assert env["ACCOUNT_SID"] == creds["ACCOUNT_SID"]
        assert env["TWILIO_VERIFY_BASE_URL"] is None

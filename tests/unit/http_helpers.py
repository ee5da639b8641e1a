"""What the tests of the core's HTTP layer (callerauth/http.py: serve) share: a fake container, events, a call."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from callerauth.config import Settings
from callerauth.http import Reply, Request, serve
from callerauth.refusals import Refusal

from devserver.events import rest_proxy_event

FAKE_NUMBER = "+12025550199"
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Content-Type, X-Flex-Token"
FORM = "application/x-www-form-urlencoded"


def echo(request: Request, services: Any) -> Reply:
    return Reply(
        200,
        {
            "success": True,
            "fields": request.fields,
            "token": request.token,
            "sourceIp": request.source_ip,
            "requestId": request.request_id,
        },
    )


def boom(request: Request, services: Any) -> Reply:
    raise RuntimeError(services.secret_message)


def refuse(request: Request, services: Any) -> Reply:
    raise services.refusal


ROUTES = {
    "/echo": {"POST": echo, "GET": echo},
    "/post-only": {"POST": echo},
    "/boom": {"POST": boom},
    "/refuse": {"POST": refuse},
}


@dataclass
class FakeRuntime:
    """A container whose settings (or their failure) and services the test chooses."""

    allowed_origins: tuple[str, ...] = ("*",)
    settings_failure: Exception | None = None
    services_failure: Exception | None = None
    services_value: Any = field(
        default_factory=lambda: SimpleNamespace(
            secret_message=f"customer {FAKE_NUMBER} not found at https://api.example/{FAKE_NUMBER}",
            refusal=Refusal("rate_limited", "cooldown", retry_after=42),
        )
    )
    services_built: int = 0

    def settings(self) -> Settings:
        if self.settings_failure is not None:
            raise self.settings_failure
        return Settings(state_table="state", customers_table="customers", allowed_origins=self.allowed_origins)

    def services(self) -> Any:
        self.services_built += 1
        if self.services_failure is not None:
            raise self.services_failure
        return self.services_value


def event(
    method: str = "POST",
    path: str = "/echo",
    body: str | None = None,
    content_type: str | None = FORM,
    headers: dict[str, str] | None = None,
    is_base64: bool = False,
    query: dict[str, str] | None = None,
    multi_query: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    evt = rest_proxy_event(method, path, headers=all_headers, body=body, is_base64=is_base64, source_ip="198.51.100.23")
    # The query maps exactly as given: these tests also send the two disagreeing, or only one of them.
    return {**evt, "queryStringParameters": query, "multiValueQueryStringParameters": multi_query}


def call(evt: dict[str, Any], runtime: FakeRuntime | None = None) -> tuple[int, dict[str, str], Any]:
    answer = serve(evt, SimpleNamespace(aws_request_id="req-7f3a"), ROUTES, runtime or FakeRuntime())
    body = json.loads(answer["body"]) if answer["body"] else None
    return answer["statusCode"], answer["headers"], body


def fields_of(evt: dict[str, Any]) -> dict[str, str]:
    status, _, body = call(evt)
    assert status == 200, body
    return body["fields"]


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["message"] == body["error"]["message"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")

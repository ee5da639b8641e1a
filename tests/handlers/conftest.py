"""Handler-test helpers: API Gateway events, an `api` that routes them as the template does, the audit trail."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest

from devserver.events import rest_proxy_event
from tests.support import PLUGIN_FORM, TO

SOURCE_IP = "203.0.113.10"


def rest_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    is_base64: bool = False,
    source_ip: str = SOURCE_IP,
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as the Prod stage delivers it."""
    all_headers = {
        "Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "Origin": "https://flex.twilio.com",
        "X-Forwarded-For": source_ip,
        **(headers or {}),
    }
    return rest_proxy_event(
        method,
        path,
        headers=all_headers,
        query=query,
        body=body,
        is_base64=is_base64,
        source_ip=source_ip,
        request_id="5c9f3e3a-0000-4000-8000-000000000000",
        context={"accountId": "123456789012", "apiId": "a1b2c3d4e5", "protocol": "HTTP/1.1"},
        identity={"userAgent": "pytest"},
    )


class Api:
    """The three functions behind one base URL, as the Flex plugin (or any client) sees them."""

    def __init__(self, handlers: Any, invoke: Callable[..., Any], sandbox: Any) -> None:
        self.handlers = handlers
        self._invoke = invoke
        self.sandbox = sandbox

    def send(self, event: dict[str, Any]) -> Any:
        return self._invoke(self.handlers.for_resource(event["resource"]), event)

    def post(
        self,
        path: str,
        fields: Mapping[str, str] | None = None,
        *,
        json_body: Any = None,
        raw: str | None = None,
        content_type: str | None = None,
        base64_body: bool = False,
        headers: Mapping[str, str] | None = None,
        source_ip: str = SOURCE_IP,
    ) -> Any:
        """POST a form (the plugin's way; default), a JSON document, or a raw body."""
        if raw is not None:
            body, kind = raw, content_type
        elif json_body is not None:
            body, kind = json.dumps(json_body), content_type or "application/json"
        else:
            body, kind = urlencode(dict(fields or {})), content_type or PLUGIN_FORM
        if base64_body:
            body = base64.b64encode(body.encode()).decode()
        all_headers = {**({"Content-Type": kind} if kind else {}), **(headers or {})}
        return self.send(
            rest_event("POST", path, body=body, headers=all_headers, is_base64=base64_body, source_ip=source_ip)
        )

    def get(
        self, path: str, query: Mapping[str, str] | None = None, *, headers: Mapping[str, str] | None = None
    ) -> Any:
        return self.send(rest_event("GET", path, query=query, headers=headers))

    def start(self, to: str = TO, **fields: str) -> Any:
        return self.post("/start-verify", {"to": to, **fields})

    def check(self, to: str = TO, code: str | None = None, **fields: str) -> Any:
        return self.post("/check-verify", {"to": to, "verification_code": code or self.code(to), **fields})

    def cancel(self, to: str = TO, **fields: str) -> Any:
        return self.post("/cancel-verify", {"to": to, **fields})

    def customer_info(self, to: str = TO, **fields: str) -> Any:
        return self.post("/customer-info", {"to": to, **fields})

    def code(self, to: str = TO) -> str:
        """The last code the sandbox "sent" to ``to``."""
        sent = [message["code"] for message in self.sandbox.outbox if message["to"] == to]
        assert sent, f"no code was sent to {to}"
        return str(sent[-1])

    def verify(self, to: str = TO, **fields: str) -> Any:
        """Start, read the code from the outbox, check it: the plugin's happy path."""
        started = self.start(to, **fields)
        assert started.status == 200, started.body
        checked = self.check(to, **fields)
        assert checked.status == 200, checked.body
        return checked

    def wrong_code(self, to: str = TO) -> str:
        """A well-formed code that is not the one sent."""
        return "111111" if self.code(to) != "111111" else "222222"


@pytest.fixture
def api(handlers: Callable[..., Any], invoke: Callable[..., Any], sandbox: Any) -> Callable[..., Api]:
    """``api(AGENT_AUTH="none", ...)``: an Api over fresh handlers with that configuration."""

    def make(**env: str) -> Api:
        return Api(handlers(**env), invoke, sandbox)

    return make


class Audit:
    """The state table's audit events (items whose sort key begins with ``AUDIT#``)."""

    def __init__(self, tables: Any) -> None:
        self._tables = tables

    def all(self) -> list[dict[str, Any]]:
        return [item for item in self._tables.scan(self._tables.state) if str(item["sk"]).startswith("AUDIT#")]

    def of(self, answer: Any) -> dict[str, Any]:
        """The one audit event the request behind ``answer`` wrote."""
        events = [item for item in self.all() if item["request_id"] == answer.request_id]
        assert len(events) == 1, f"expected one audit event for the request, found {events}"
        return events[0]


@pytest.fixture
def audit(aws: Any) -> Audit:
    return Audit(aws)


def assert_error(answer: Any, status: int, code: str, message: str | None = None) -> dict[str, Any]:
    """The contract's one failure shape, readable by both of the plugin's readers; returns `error`."""
    assert answer.status == status, answer.body
    body = answer.body
    assert body["success"] is False, body
    assert body["error"]["code"] == code, body
    assert body["message"] == body["error"]["message"], body
    if message is not None:
        assert body["message"] == message, body
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert answer.headers["Access-Control-Allow-Headers"] == "Content-Type, X-Flex-Token"
    return dict(body["error"])


@pytest.fixture(name="assert_error")
def assert_error_fixture() -> Callable[..., dict[str, Any]]:
    return assert_error


@pytest.fixture
def make_event() -> Callable[..., dict[str, Any]]:
    return rest_event


@pytest.fixture
def assert_no_clear_number(aws: Any) -> Callable[[str], None]:
    """Fails if any state-table item holds ``number``'s digits (national part and all) in the clear."""

    def check(number: str) -> None:
        digits = re.sub(r"\D", "", number)[-10:]
        items = aws.scan(aws.state)
        assert items, "the state table is empty: nothing was checked"
        leaks = [item for item in items if digits in json.dumps(item, default=str)]
        assert not leaks, f"items hold {number} in the clear: {leaks}"

    return check

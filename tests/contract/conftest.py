"""HTTP contract fixtures: the dev stack in-process on free loopback ports, and a client that reads like the plugin.

- ``local_stack(**env)``: a context manager that starts ``devserver.stack.start_stack`` on free ports with the
  contract's defaults overridden by ``env`` (always the Twilio sandbox, never credentials from ``.env``) and
  stops it on exit. The handlers read ``os.environ``, which a stack sets and restores, so only one stack may
  run at a time: use it from a class- or module-scoped fixture, one per configuration.
- ``PluginClient`` (through ``stack.plugin(token)``): sends exactly what ``plugin-verify`` sends and returns
  what the agent would see, as the plugin's reducer reads the answer.
- ``fresh_number()``: a new E.164 number per call, so tests sharing a stack never share a destination.
- ``assert_failure(response, status, code, message)``: the contract's one error shape, with CORS.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest
import requests
from boto3.dynamodb.types import TypeDeserializer

from tests.support import FLEX_ORIGIN, PLUGIN_FORM, RunningStack, contract_stack

REPO = Path(__file__).resolve().parents[2]
SYSTEM_ERROR = "System error."  # what the plugin shows for a network failure or a body that is not JSON
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, X-Flex-Token"
TIMEOUT = 15  # seconds, per HTTP request: a hung stack fails the test instead of the run


_numbers = itertools.count(1)


# ------------------------------------------------------------------------------------------ the plugin


class FrozenPluginUI(AssertionError):
    """A failure body without ``error.message``: the plugin's reducer would throw and its UI would freeze."""


@dataclass(frozen=True)
class AgentSees:
    """What the plugin makes of an answer: ``success``, and the sentence it shows when that is false."""

    success: bool
    message: str | None = None
    response: requests.Response | None = field(default=None, compare=False, repr=False)


class PluginClient:
    """``plugin-verify``'s two requests, byte for byte (plus ``Token`` when given, as the README asks).

    It reads the answer as the plugin does: ``resp.json()``, the status ignored, only ``data.success`` and,
    when that is false, ``data.error.message``.
    """

    def __init__(self, api_url: str, token: str | None = None, origin: str | None = FLEX_ORIGIN) -> None:
        self.api_url, self.token, self.origin = api_url, token, origin

    def start(self, to: str) -> AgentSees:
        return self.post("/start-verify", {"to": to})

    def check(self, to: str, code: str) -> AgentSees:
        return self.post("/check-verify", {"to": to, "verification_code": code})

    def post(self, path: str, fields: dict[str, str]) -> AgentSees:
        """A form POST built as the plugin builds its two (``fields`` may leave out what it always sends)."""
        if self.token is not None:
            fields = {**fields, "Token": self.token}
        headers = {"Content-Type": PLUGIN_FORM}
        if self.origin:  # a browser adds it to every cross-origin fetch
            headers["Origin"] = self.origin
        # URLSearchParams' encoding: application/x-www-form-urlencoded, '+' as %2B, space as '+'.
        response = requests.post(self.api_url + path, data=urlencode(fields), headers=headers, timeout=TIMEOUT)
        return read_as_plugin(response)


def read_as_plugin(response: requests.Response) -> AgentSees:
    """The plugin's reducer: JSON or "System error.", then ``data.success`` / ``data.error.message``."""
    try:
        data = response.json()
    except ValueError:
        return AgentSees(False, SYSTEM_ERROR, response)
    if not isinstance(data, dict) or not isinstance(data.get("success"), bool):
        raise FrozenPluginUI(f"HTTP {response.status_code}: no boolean 'success' in {data!r:.200}")
    if data["success"]:
        return AgentSees(True, None, response)
    error = data.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("message"), str) or not error["message"]:
        raise FrozenPluginUI(f"HTTP {response.status_code}: a failure without error.message: {data!r:.200}")
    return AgentSees(False, error["message"], response)


# ------------------------------------------------------------------------------------------- the stack


@dataclass
class LocalStack(RunningStack):
    """A running dev stack and what tests do with it over HTTP."""

    def plugin(self, token: str | None = None, origin: str | None = FLEX_ORIGIN) -> PluginClient:
        return PluginClient(self.api, token, origin)

    def token(self, identity: str, roles: tuple[str, ...] = ("agent",)) -> str:
        return self.sandbox.issue_token(identity, list(roles))

    def outbox(self, to: str) -> list[dict[str, Any]]:
        """``GET {sandbox}/outbox?to=...``: every message the sandbox "sent" to ``to``, oldest first."""
        response = requests.get(f"{self.stack.outbox_url}?to={quote(to, safe='')}", timeout=TIMEOUT)
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()
        return messages

    def last_code(self, to: str) -> str:
        messages = self.outbox(to)
        assert messages, f"no message was sent to {to[:2]}…{to[-4:]}"
        return str(messages[-1]["code"])

    def post(self, path: str, fields: dict[str, str], *, token: str | None = None, **kwargs: Any) -> requests.Response:
        """A form POST as the plugin would send it (with ``Token`` when given)."""
        if token is not None:
            fields = {**fields, "Token": token}
        headers = {"Content-Type": PLUGIN_FORM, "Origin": FLEX_ORIGIN, **kwargs.pop("headers", {})}
        return requests.post(self.api + path, data=urlencode(fields), headers=headers, timeout=TIMEOUT, **kwargs)

    def customer_info(self, to: str, token: str | None) -> requests.Response:
        """``GET /customer-info?to=...`` with the agent's token in ``X-Flex-Token``, as the README shows."""
        headers = {"Origin": FLEX_ORIGIN}
        if token is not None:
            headers["X-Flex-Token"] = token
        return requests.get(f"{self.api}/customer-info?to={quote(to, safe='')}", headers=headers, timeout=TIMEOUT)

    def state_items(self) -> list[dict[str, Any]]:
        """Every item of the state table, read straight from the stack's DynamoDB (moto server)."""
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.stack.dynamodb_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        deserialize = TypeDeserializer().deserialize
        table = self.stack.table_names["StateTable"]
        pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        return [{k: deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]


@contextmanager
def _local_stack(**overrides: str) -> Iterator[LocalStack]:
    with contract_stack(**overrides) as (stack, env, announcements):
        local = LocalStack(stack, env, announcements)
        assert local.sandbox is not None
        yield local


@pytest.fixture(scope="session")
def local_stack() -> Callable[..., Any]:
    """``with local_stack(AGENT_AUTH="none") as stack: ...`` — for class- or module-scoped fixtures."""
    return _local_stack


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def fresh_number() -> Callable[[], str]:
    """A new +1 202 555 7NNN number per call: no seeded customer, never the sample customer's digits."""

    def make() -> str:
        return f"+1202555{7000 + next(_numbers):04d}"

    return make


def wrong_code(code: str, offset: int = 1) -> str:
    """Another six-digit code than ``code``."""
    return f"{(int(code) + offset) % 1_000_000:06d}"


@pytest.fixture(scope="session")
def wrong() -> Callable[..., str]:
    return wrong_code


def wait_for_fresh_window(length: int, margin: float) -> None:
    """If fewer than ``margin`` seconds are left in the current fixed window of ``length`` seconds (the
    windows the send counters use), wait for the next one, so that a test's sends share one window."""
    left = length - time.time() % length
    if left < margin:
        time.sleep(left + 0.05)


@pytest.fixture(scope="session")
def fresh_window() -> Callable[[int, float], None]:
    return wait_for_fresh_window


def assert_cors(response: requests.Response, origin: str | None = "*") -> None:
    """The contract's CORS headers; ``origin=None``: no Access-Control-Allow-Origin at all."""
    headers = response.headers
    assert headers.get("Access-Control-Allow-Methods") == ALLOW_METHODS, dict(headers)
    assert headers.get("Access-Control-Allow-Headers") == ALLOW_HEADERS, dict(headers)
    assert headers.get("Access-Control-Allow-Origin") == origin, dict(headers)
    if origin != "*":
        assert "Origin" in [v.strip() for v in headers.get("Vary", "").split(",")], dict(headers)


def assert_failure(
    response: requests.Response, status: int, code: str, message: str | None = None, *, origin: str | None = "*"
) -> dict[str, Any]:
    """The one failure shape (``message == error.message``), CORS, and Retry-After where the contract wants it."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers.get("Content-Type", "").startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["error"], dict)
    assert body["error"]["code"] == code, body
    assert body["message"] == body["error"]["message"], body
    if message is not None:
        assert body["message"] == message
    assert_cors(response, origin)
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) >= 1
    return dict(body["error"])


@pytest.fixture(scope="session")
def failure() -> Callable[..., dict[str, Any]]:
    return assert_failure


@pytest.fixture(scope="session")
def cors() -> Callable[..., None]:
    return assert_cors

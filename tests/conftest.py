"""Shared fixtures: moto tables built from template.yaml, the Twilio sandbox on loopback, fresh handlers.

- ``clock``: the fake time that the sandbox and the handlers share (``clock.now``, ``clock.advance(s)``).
- ``aws``: moto's DynamoDB with the template's own tables (``aws.state``, ``aws.customers``), TTL on,
  customers seeded from ``devserver/sample_customers.json``.
- ``sandbox``: a fresh ``TwilioSandbox`` per test, served on a free loopback port (``sandbox_url``).
- ``handlers(**env)``: fresh ``functions/*/app.py`` modules (cold containers) configured by ``env``.
- ``invoke(handler, event)``: one Lambda invocation, as ``(status, headers, json body)``.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from moto import mock_aws
from werkzeug.serving import WSGIRequestHandler, make_server

from devserver.lambdas import load_handler, make_context
from devserver.template import literal_global_env, load_template, table_specs
from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, FakeClock

# Every response any test produces is checked against docs/openapi.yaml.
pytest_plugins = ["tests.openapi_conformance"]

# Hypothesis: the same examples on every run (derandomize: a failure found is a failure seen again), a
# bounded number of them, no per-example deadline (moto and shared CI machines are slow now and then),
# and no example database (nothing written to the worktree). `ci` (when CI is set) tries more examples;
# HYPOTHESIS_PROFILE=<name> picks one by hand.
for _name, _examples in (("ci", 300), ("dev", 100)):
    hypothesis_settings.register_profile(
        _name,
        max_examples=_examples,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = ("start_verify", "check_verify", "customer_info", "ivr")
HASH_SECRET = "handler-tests-hash-secret-0123456789"
TABLES = {"StateTable": "state", "CustomersTable": "customers"}
# 2030-03-27T00:00:00Z: on an hour boundary, so a test's sends share one hourly and one minute window.
START = 1_900_800_000


TEMPLATE = load_template(REPO / "template.yaml")
# Every variable the functions get (the template's) or read locally: cleared before each load, so that one
# configuration never leaks into another (and the cloud-only *_ARN secrets are never looked up).
SETTINGS = (
    *TEMPLATE["Globals"]["Function"]["Environment"]["Variables"],
    "ACCOUNT_SID",
    "AUTH_TOKEN",
    "VERIFY_SERVICE_SID",
    "HASH_SECRET",
    "TWILIO_VERIFY_BASE_URL",
    "TWILIO_IAM_BASE_URL",
    "TWILIO_LOOKUP_BASE_URL",
    "TWILIO_TASKROUTER_BASE_URL",
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


# --------------------------------------------------------------------------------------------- DynamoDB


@dataclass(frozen=True)
class Tables:
    client: Any
    state: str = TABLES["StateTable"]
    customers: str = TABLES["CustomersTable"]

    def scan(self, table: str) -> list[dict[str, Any]]:
        """Every item of ``table``, as plain Python values."""
        deserialize = TypeDeserializer().deserialize
        pages = self.client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        return [{k: _plain(deserialize(v)) for k, v in item.items()} for page in pages for item in page["Items"]]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@dataclass(frozen=True)
class _DynamoDbSetup:
    session: boto3.session.Session
    client: Any
    specs: dict[str, Any]
    customers: list[dict[str, Any]]


@pytest.fixture(scope="session")
def _dynamodb_setup() -> _DynamoDbSetup:
    """Made once: a boto3 session (moto intercepts its clients while mocking), the tables, the customers."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    serialize = TypeSerializer().serialize
    customers = json.loads((REPO / "devserver" / "sample_customers.json").read_text(), parse_float=Decimal)
    return _DynamoDbSetup(
        session,
        session.client("dynamodb"),
        table_specs(TEMPLATE),
        [{k: serialize(v) for k, v in customer.items()} for customer in customers],
    )


@pytest.fixture
def aws(_dynamodb_setup: _DynamoDbSetup, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tables]:
    setup = _dynamodb_setup
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        # moto empties boto3's default session for the mock; the handlers' `boto3.client(...)` then share this
        # one, so that the service models load once per run, not once per test (moto restores it on exit).
        boto3.DEFAULT_SESSION = setup.session
        for logical_id, spec in setup.specs.items():
            setup.client.create_table(TableName=TABLES[logical_id], **spec.create_table_kwargs)
            if spec.ttl_attribute:
                setup.client.update_time_to_live(
                    TableName=TABLES[logical_id],
                    TimeToLiveSpecification={"AttributeName": spec.ttl_attribute, "Enabled": True},
                )
        for item in setup.customers:
            setup.client.put_item(TableName=TABLES["CustomersTable"], Item=item)
        yield Tables(setup.client)


# ------------------------------------------------------------------------------------------ Twilio sandbox


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class _Switch:
    """The one loopback server's WSGI app: whichever sandbox the current test made."""

    app: Callable[..., Iterable[bytes]] | None = None

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        assert self.app is not None, "no sandbox for this request: use the `sandbox` fixture"
        return self.app(environ, start_response)


@dataclass(frozen=True)
class _SandboxServer:
    switch: _Switch
    url: str


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[_SandboxServer]:
    switch = _Switch()
    server = make_server("127.0.0.1", 0, switch, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="twilio-sandbox", daemon=True)
    thread.start()
    yield _SandboxServer(switch, f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    thread.join(5)


@pytest.fixture
def sandbox(_sandbox_server: _SandboxServer, clock: FakeClock) -> Iterator[TwilioSandbox]:
    """A fresh sandbox (empty outbox, no pending codes, normal mode) on the shared clock."""
    fresh = TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, clock=clock, announce=lambda _message: None)
    _sandbox_server.switch.app = fresh
    yield fresh
    _sandbox_server.switch.app = None


@pytest.fixture
def sandbox_url(_sandbox_server: _SandboxServer) -> str:
    return _sandbox_server.url


# ---------------------------------------------------------------------------------------------- handlers


@dataclass(frozen=True)
class Handlers:
    """One cold container per function, all configured alike."""

    start_verify: Callable[[dict[str, Any], Any], dict[str, Any]]
    check_verify: Callable[[dict[str, Any], Any], dict[str, Any]]
    customer_info: Callable[[dict[str, Any], Any], dict[str, Any]]
    ivr: Callable[[dict[str, Any], Any], dict[str, Any]]
    env: dict[str, str] = field(default_factory=dict)

    def for_resource(self, resource: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """The function that template.yaml routes ``resource`` to (any other path goes to start_verify)."""
        if resource.startswith("/ivr/"):
            return self.ivr
        return {"/check-verify": self.check_verify, "/customer-info": self.customer_info}.get(
            resource, self.start_verify
        )


@pytest.fixture
def handlers(
    aws: Tables, sandbox: TwilioSandbox, sandbox_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Handlers]]:
    """``handlers(AGENT_AUTH="none", ...)``: fresh app.py modules against moto and the sandbox.

    The environment is set (monkeypatch) and, as well, pinned per load: each container gets a snapshot of
    it and the test's clock. ``wiring.Container`` is swapped only while the modules import; the clock is
    the core's own seam (``Container(env, clock)``).
    """

    def load(**overrides: str) -> Handlers:
        for name in SETTINGS:
            monkeypatch.delenv(name, raising=False)
        env = {
            **literal_global_env(TEMPLATE),
            "STATE_TABLE": aws.state,
            "CUSTOMERS_TABLE": aws.customers,
            "ACCOUNT_SID": ACCOUNT_SID,
            "AUTH_TOKEN": AUTH_TOKEN,
            "VERIFY_SERVICE_SID": SERVICE_SID,
            "HASH_SECRET": HASH_SECRET,
            "TWILIO_VERIFY_BASE_URL": sandbox_url,
            "TWILIO_IAM_BASE_URL": sandbox_url,
            "TWILIO_LOOKUP_BASE_URL": sandbox_url,
            "TWILIO_TASKROUTER_BASE_URL": sandbox_url,
            **overrides,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        wiring = importlib.import_module("callerauth.wiring")
        before = set(sys.modules)
        with monkeypatch.context() as patch:
            patch.setattr(wiring, "Container", functools.partial(wiring.Container, dict(os.environ), clock))
            loaded = {name: load_handler(f"functions/{name}", "app.lambda_handler", REPO) for name in FUNCTIONS}
        modules.update(set(sys.modules) - before)
        return Handlers(**loaded, env=env)

    modules: set[str] = set()
    yield load
    for name in modules:  # forget this test's handler modules
        sys.modules.pop(name, None)


@dataclass(frozen=True)
class Answer:
    """A handler's answer; unpacks as ``status, headers, body``. ``request_id`` names its audit event."""

    status: int
    headers: dict[str, str]
    body: Any
    request_id: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.status, self.headers, self.body))


def _invoke(handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any]) -> Answer:
    context = make_context("callerauth-test")  # a unique aws_request_id, as Lambda gives every invocation
    result = handler(event, context)
    # What API Gateway's proxy integration accepts: an int status, string headers, a string body.
    assert isinstance(result["statusCode"], int)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result["headers"].items())
    assert isinstance(result["body"], str)
    # The IVR answers TwiML (text/xml), kept as its text; everything else answers JSON.
    xml = result["headers"].get("Content-Type") == "text/xml"
    body = result["body"] if xml else json.loads(result["body"]) if result["body"] else None
    return Answer(result["statusCode"], result["headers"], body, context.aws_request_id)


@pytest.fixture
def invoke() -> Callable[[Callable[[dict[str, Any], Any], dict[str, Any]], dict[str, Any]], Answer]:
    return _invoke

"""Fault-injection fixtures: the real handlers against moto and the Twilio sandbox, with faults on the way.

Builds on ``tests/conftest.py`` (``aws``, ``sandbox``, ``handlers``, ``invoke``, ``clock``) and reuses the
handler-test helpers (``Api``, ``Audit``, ``assert_error``) without redefining them.

- ``desk(**env)``: an agent (``alice``, Flex token) at fresh, cold handlers configured by ``env``
  (``AGENT_AUTH=flex``). Several desks share the tables and the sandbox: a second desk is a second set of
  containers, e.g. one whose DynamoDB or Twilio endpoint is broken.
- ``dynamo``: faults for the handlers' DynamoDB clients, injected at botocore's ``before-call`` hook on the
  default session (so every client the handlers create afterwards carries it), for chosen calls only:
  ``dynamo.fail("TransactWriteItems", canceled("None", "TransactionConflict"), times=1, skip=0)``.
  A fault that answers (``throttled``, ``canceled``, ``unprocessed``) raises the client's own modeled
  exception, exactly as a real error answer would; ``unreachable`` raises ``EndpointConnectionError``.
  The SDK's retries are not involved: a fault armed for one call is what that call finally gets.
- ``twilio``: counts the requests that reach the sandbox (Verify sends and checks, IAM) and waits for the
  ones a ``timeout`` left hanging (``twilio.settle()``).
- ``state``: the state table as the product keeps it: a destination's ``STATE`` item and the send counters.
- ``closed_url``: ``http://127.0.0.1:<port>`` where nothing listens (a bound socket that never listens).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import EndpointConnectionError

from tests.handlers.conftest import Api, Audit, assert_error
from tests.support import TO

AGENT = "alice"
HOOK_ID = "tests-faults-dynamodb"


# ------------------------------------------------------------------------------------------- the agent


@dataclass
class Desk:
    """One agent's requests, each carrying her Flex token, through one set of handler containers."""

    api: Api
    token: str

    def start(self, to: str = TO, **fields: str) -> Any:
        return self.api.start(to, Token=self.token, **fields)

    def check(self, to: str = TO, code: str | None = None, **fields: str) -> Any:
        return self.api.check(to, code, Token=self.token, **fields)

    def customer_info(self, to: str = TO, **fields: str) -> Any:
        return self.api.customer_info(to, Token=self.token, **fields)

    def code(self, to: str = TO) -> str:
        return self.api.code(to)


@pytest.fixture
def desk(
    handlers: Callable[..., Any], invoke: Callable[..., Any], sandbox: Any, twilio: TwilioTraffic
) -> Callable[..., Desk]:
    token = str(sandbox.issue_token(AGENT, ["agent"]))

    def make(**env: str) -> Desk:
        return Desk(Api(handlers(**{"AGENT_AUTH": "flex", **env}), invoke, sandbox), token)

    return make


@pytest.fixture
def audit(aws: Any) -> Audit:
    return Audit(aws)


def assert_refused(answer: Any, status: int, code: str, *, retry_after: bool | None = None) -> dict[str, Any]:
    """The contract's error shape and CORS headers; ``Retry-After`` (a positive integer) where it is promised."""
    error = assert_error(answer, status, code)
    assert answer.headers.get("Access-Control-Allow-Origin") == "*", answer.headers
    if retry_after is None:
        retry_after = status in (429, 503)
    if retry_after:
        assert int(answer.headers["Retry-After"]) > 0, answer.headers
    return error


@pytest.fixture(name="assert_refused")
def assert_refused_fixture() -> Callable[..., dict[str, Any]]:
    return assert_refused


# ---------------------------------------------------------------------------------------- the state table


@dataclass
class StateView:
    tables: Any

    def items(self) -> list[dict[str, Any]]:
        return list(self.tables.scan(self.tables.state))

    def counters(self) -> dict[str, int]:
        """Every send counter: ``destination|agent:<id>|deployment`` + its window → sends counted."""

        def owner(pk: str) -> str:
            return "destination" if pk.startswith("D#") else f"deployment {pk}" if pk.startswith("DEPLOYMENT#") else pk

        return {
            f"{owner(item['pk'])} {item['sk']}": int(item["n"])
            for item in self.items()
            if str(item["sk"]).startswith("SENDS#")
        }

    def sends_counted(self) -> set[int]:
        """The distinct values of all counters: {0} (or set()) when nothing is held, {1} after one send."""
        return set(self.counters().values())


@pytest.fixture
def state(aws: Any) -> StateView:
    return StateView(aws)


# ----------------------------------------------------------------------------------------------- Twilio


class TwilioTraffic:
    """A WSGI wrapper round the sandbox: counts requests by kind and knows when none is in flight."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._done = threading.Condition()
        self.started: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        kind = _kind(str(environ.get("PATH_INFO", "")))
        with self._done:
            self.started[kind] += 1
        try:
            return list(self._app(environ, start_response))  # run to the end, so "finished" means done
        finally:
            with self._done:
                self.finished[kind] += 1
                self._done.notify_all()

    @property
    def verify_calls(self) -> int:
        """Requests that reached Twilio Verify (sends, checks, cancels)."""
        return sum(n for kind, n in self.started.items() if kind in ("send", "check", "update"))

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every request that reached the sandbox has been answered (a hung one included)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self.started != self.finished:
                left = deadline - time.monotonic()
                assert left > 0, f"sandbox requests still in flight: {self.started - self.finished}"
                self._done.wait(left)


def _kind(path: str) -> str:
    if path.endswith("/VerificationCheck"):
        return "check"
    if path.endswith("/Verifications"):
        return "send"
    if "/Verifications/" in path:
        return "update"
    if path.endswith("/Tokens/validate"):
        return "iam"
    return "sandbox"


@pytest.fixture
def twilio(sandbox: Any, _sandbox_server: Any) -> Iterator[TwilioTraffic]:
    traffic = TwilioTraffic(sandbox)
    _sandbox_server.switch.app = traffic
    yield traffic
    sandbox.set_mode("normal")  # wakes whatever a "timeout" left hanging
    traffic.settle()


# ------------------------------------------------------------------------------------------------ the rig


@dataclass(frozen=True)
class Rig:
    """What nearly every fault test looks at: the agent's desk, the sandbox and its traffic, the state, the audit."""

    desk: Callable[..., Desk]
    sandbox: Any
    twilio: TwilioTraffic
    state: StateView
    audit: Audit


@pytest.fixture
def rig(desk: Callable[..., Desk], sandbox: Any, twilio: TwilioTraffic, state: StateView, audit: Audit) -> Rig:
    return Rig(desk, sandbox, twilio, state, audit)


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A loopback URL that refuses connections: the port is held (bound, never listening) for the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


# --------------------------------------------------------------------------------------------- DynamoDB

Fault = Callable[[str, dict[str, Any]], tuple[AWSResponse, dict[str, Any]]]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _answer(status: int, parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    body = json.dumps({k: v for k, v in parsed.items() if k != "ResponseMetadata"}).encode()
    headers = HTTPHeaders()
    headers["x-amzn-RequestId"] = "FAULT"
    headers["Content-Type"] = "application/x-amz-json-1.0"
    parsed["ResponseMetadata"] = {
        "RequestId": "FAULT",
        "HTTPStatusCode": status,
        "HTTPHeaders": dict(headers.items()),
        "RetryAttempts": 0,
    }
    return AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", status, headers, _Raw(body)), parsed


def throttled(code: str = "ProvisionedThroughputExceededException") -> Fault:
    """DynamoDB refuses the call for capacity (``ThrottlingException`` for on-demand bursts)."""

    def fault(operation: str, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        message = "The level of configured provisioned throughput for the table was exceeded."
        return _answer(400, {"Error": {"Code": code, "Message": message}, "message": message})

    return fault


def canceled(*reasons: str) -> Fault:
    """``TransactionCanceledException``, one reason per transaction item (``None``, ``TransactionConflict``…)."""

    def fault(operation: str, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        message = (
            f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(reasons)}]"
        )
        cancellation = [
            {"Code": code, **({"Message": "Transaction is ongoing for the item"} if code != "None" else {})}
            for code in reasons
        ]
        return _answer(
            400,
            {
                "Error": {"Code": "TransactionCanceledException", "Message": message},
                "Message": message,
                "CancellationReasons": cancellation,
            },
        )

    return fault


def unprocessed() -> Fault:
    """BatchGetItem answers 200 but leaves every key unprocessed (what throttling inside a batch looks like)."""

    def fault(operation: str, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        body = json.loads(params.get("body") or b"{}")
        return _answer(200, {"Responses": {}, "UnprocessedKeys": body.get("RequestItems", {})})

    return fault


def unreachable() -> Fault:
    """The endpoint cannot be reached (what botocore raises after its retries on a refused connection)."""

    def fault(operation: str, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")

    return fault


class DynamoFaults:
    """Armed faults per operation, spent in order by the next calls of that operation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, deque[Fault | None]] = {}
        self._always: Fault | None = None
        self.calls: Counter[str] = Counter()

    def fail(self, operation: str, fault: Fault, *, times: int = 1, skip: int = 0) -> None:
        """The next ``times`` calls of ``operation`` (after ``skip`` that pass) get ``fault``."""
        with self._lock:
            self._armed.setdefault(operation, deque()).extend([None] * skip + [fault] * times)

    def down(self, fault: Fault | None = None) -> None:
        """Every call fails (``unreachable`` by default) until ``up()``."""
        self._always = fault or unreachable()

    def up(self) -> None:
        self._always = None

    def assert_spent(self) -> None:
        """Every armed fault was met: the test injected where it meant to."""
        with self._lock:
            left = {op: len(queue) for op, queue in self._armed.items() if queue}
        assert not left, f"faults armed but never reached: {left} (calls so far: {dict(self.calls)})"

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        operation = model.name
        with self._lock:
            self.calls[operation] += 1
            queue = self._armed.get(operation)
            fault = queue.popleft() if queue else None
        fault = fault or self._always
        return fault(operation, params) if fault else None


@pytest.fixture
def dynamo(aws: Any) -> Iterator[DynamoFaults]:
    """Installed on boto3's default session (the ``aws`` fixture's) before any handler makes its client."""
    faults = DynamoFaults()
    session = boto3.DEFAULT_SESSION
    assert session is not None, "the aws fixture makes boto3's default session"
    events = session.events
    events.register("before-call.dynamodb", cast("Callable[..., None]", faults), unique_id=HOOK_ID)
    yield faults
    events.unregister("before-call.dynamodb", unique_id=HOOK_ID)

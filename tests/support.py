"""What every test suite shares: the sample values, a hand-moved clock, a WSGI app on loopback, the local stack.

The values the dev stack and the bench use too live in devserver/samples.py; this module names them as the
tests do (``TO`` is the sample customer) and adds the tests' own.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from callerauth import errors
from callerauth.refusals import Refusal
from werkzeug.serving import make_server

from devserver.samples import (
    CONTRACT_DEFAULTS,
    FLEX_ORIGIN,
    PLUGIN_FORM,
    SAMPLE_CUSTOMER,
    SAMPLE_CUSTOMER_MASKED,
    SANDBOX_ACCOUNT_SID,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_SERVICE_SID,
)
from devserver.twilio_sandbox import TwilioSandbox
from devserver.twilio_sandbox import iso as twilio_time

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from devserver.stack import Stack

REPO = Path(__file__).resolve().parents[1]

__all__ = [
    "ACCOUNT_SID",
    "AUTH_TOKEN",
    "CONTRACT_DEFAULTS",
    "CORS",
    "EMAIL",
    "FLEX_ORIGIN",
    "ISO_Z",
    "MASKED",
    "MAX_BODY",
    "OTHER_TASK",
    "PLUGIN_FORM",
    "REPO",
    "SERVICE_SID",
    "START_MISSING",
    "TASK",
    "TO",
    "VERIFY_DOCS",
    "VISIBLE",
    "FakeClock",
    "RunningStack",
    "contract_stack",
    "free_port",
    "iso",
    "serving",
]

TO = SAMPLE_CUSTOMER  # a seeded customer (devserver/sample_customers.json)
MASKED = SAMPLE_CUSTOMER_MASKED  # TO as logs and audit events show it
EMAIL = "jane@example.com"
TASK = "WT0123456789abcdef0123456789abcdef"  # a Flex task SID
OTHER_TASK = "WTfedcba9876543210fedcba9876543210"
# What the unmodified Flex plugin shows or links to: the reference backend's exact text.
START_MISSING = "Missing parameter; please provide a phone number or email."
VERIFY_DOCS = "https://www.twilio.com/docs/verify/api/verification"
MAX_BODY = 8 * 1024  # the core's limit on a request body, in bytes
# The CORS headers of every answer under ALLOWED_ORIGINS=*.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, X-Flex-Token",
}
# TO's record as customer-info serves it under the default CUSTOMER_FIELDS.
VISIBLE = {
    "name": "Ada Lovelace",
    "accountNumber": "ACCT-100100",
    "tier": "gold",
    "email": "ada.lovelace@example.com",
    "postcode": "94105",
}
# A time as the contract (verifiedAt, verifiedUntil) and Twilio write one: ISO-8601 UTC, whole seconds, a Z.
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
iso = twilio_time  # epoch seconds -> that form


# The Twilio sandbox's credentials (obviously fake, shaped as the core demands: AC/VA + 32 hex).
ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID = SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SANDBOX_SERVICE_SID


class FakeClock:
    """Time that moves only when a test says so; callable, so it can stand in for ``time.time``."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def serving(app: WSGIApplication) -> Iterator[str]:
    """``app`` on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    """A loopback port nothing listens on (a refused connection, for tests of an upstream that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_one_stack = threading.Lock()  # one local stack at a time in a process: they share os.environ


@contextmanager
def contract_stack(**overrides: str) -> Iterator[tuple[Stack, dict[str, str], list[str]]]:
    """The local dev stack on free loopback ports with CONTRACT_DEFAULTS and ``overrides``: (stack, env, what
    it announced). Refuses to start a second one while one runs."""
    from devserver.stack import start_stack

    if not _one_stack.acquire(blocking=False):
        raise RuntimeError("another local stack is running: use one class- or module-scoped stack at a time")
    try:
        env = {**CONTRACT_DEFAULTS, **overrides}
        announcements: list[str] = []
        stack = start_stack(REPO, api_port=0, sandbox_port=0, dynamodb_port=0, env=env, announce=announcements.append)
        try:
            yield stack, env, announcements
        finally:
            stack.stop()
    finally:
        _one_stack.release()


@dataclass
class RunningStack:
    """A local stack that contract_stack started, and the settings it runs with."""

    stack: Stack
    env: dict[str, str]
    announcements: list[str]  # what the stack (mostly the sandbox: codes it "sends") would have printed

    @property
    def api(self) -> str:
        return self.stack.api_url

    @property
    def sandbox(self) -> TwilioSandbox:
        assert self.stack.sandbox is not None, "these tests run against the Twilio sandbox only"
        return self.stack.sandbox


class Answered:
    """What `refused()` caught: `value` is the contract's answer (status, code, body) to the refusal."""

    value: errors.ApiError


@contextmanager
def refused() -> Iterator[Answered]:
    """Like ``pytest.raises(Refusal)``, but what the test reads is the answer the edge makes of it."""
    answered = Answered()
    with pytest.raises(Refusal) as raised:
        yield answered
    answered.value = errors.api_error(raised.value)

"""Fuzz fixtures: the dev stack in-process on free loopback ports, one configuration per test class.

- ``FLEX_ENV``: ``AGENT_AUTH=flex`` with every limit of our own set high, so that authenticated requests
  with a valid token get past the limits and reach Twilio (the sandbox) and DynamoDB: 200s, Twilio's own
  refusals (60203 after 5 sends to a number, 60202 after 5 checks, 20404), ``not_verified``.
- ``NONE_ENV``: ``AGENT_AUTH=none`` with the limits set low, an origin allow-list and a country allow-list,
  so that the other branches answer too: ``rate_limited`` / ``too_many_attempts`` (``Retry-After``),
  ``destination_blocked``, ``agent_auth_required`` on customer-info, ``Vary: Origin`` without
  ``Access-Control-Allow-Origin`` for an origin that is not listed.
- ``fuzz_stack(env)``: a context manager that starts ``devserver.stack.start_stack`` with the contract's
  defaults overridden by ``env`` (always the Twilio sandbox) and stops it on exit. The handlers read
  ``os.environ``, so only one stack may run at a time: use it from class-scoped fixtures only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import RunningStack, contract_stack

REPO = Path(__file__).resolve().parents[2]
AGENT = "fuzz-agent"
LISTED_ORIGIN = "https://flex.twilio.com"


FLEX_ENV = {
    "AGENT_AUTH": "flex",
    "SEND_COOLDOWN_SECONDS": "0",
    "MAX_SENDS_PER_DESTINATION_PER_HOUR": "100000",
    "MAX_SENDS_PER_AGENT_PER_HOUR": "100000",
    "MAX_SENDS_PER_MINUTE": "100000",
    "MAX_FAILED_CHECKS": "100000",
}

NONE_ENV = {
    "AGENT_AUTH": "none",
    "ALLOWED_ORIGINS": f"{LISTED_ORIGIN},https://example.com",
    "ALLOWED_COUNTRIES": "US,GB",
    "SEND_COOLDOWN_SECONDS": "30",
    "MAX_SENDS_PER_DESTINATION_PER_HOUR": "2",
    "MAX_SENDS_PER_AGENT_PER_HOUR": "3",
    "MAX_SENDS_PER_MINUTE": "3",
    "MAX_FAILED_CHECKS": "2",
}


@dataclass
class FuzzStack(RunningStack):
    """A running dev stack: where to send requests, and the configuration it runs with."""

    token: str | None = None  # a valid Flex token for AGENT (AGENT_AUTH=flex only)

    @property
    def allowed_origins(self) -> list[str] | None:
        """The configured allow-list, or ``None`` for ``*``."""
        value = self.env["ALLOWED_ORIGINS"].strip()
        return None if value == "*" else [origin.strip() for origin in value.split(",") if origin.strip()]


@contextmanager
def fuzz_stack(**overrides: str) -> Iterator[FuzzStack]:
    with contract_stack(**overrides) as (stack, env, announcements):
        local = FuzzStack(stack, env, announcements)
        if env["AGENT_AUTH"] == "flex":
            local.token = local.sandbox.issue_token(AGENT, ["agent"])
        yield local


@pytest.fixture(scope="class")
def flex_stack() -> Iterator[FuzzStack]:
    with fuzz_stack(**FLEX_ENV) as stack:
        yield stack


@pytest.fixture(scope="class")
def none_stack() -> Iterator[FuzzStack]:
    with fuzz_stack(**NONE_ENV) as stack:
        yield stack

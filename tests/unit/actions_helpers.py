"""The actions tests' shared steps (send, check, approve, ...) and DynamoDB stand-ins.

The tests drive the core's decisions (actions.py over store.py): real actions, moto tables from template.yaml,
fake Twilio/IAM. The ``world`` fixture (tests/unit/conftest.py) uses small limits: cooldown 30 s, 5 sends an
hour per number, 30 per agent, 60 a minute, lock after 3 consecutive failed checks for 120 s, approvals for
300 s. ``world.call`` answers an Outcome: status, body, ``code``, ``retry_after``, and how many audit items
the request wrote.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from callerauth.actions import cancel_verify, check_verify, customer_info, start_verify

from tests.support import TO

OTHER = "+12025550111"
START = 1_700_000_000
HOUR_END = START + 2800
AGENT_A, AGENT_B, GUEST = "token-agent-a", "token-agent-b", "token-guest"
IDENTITY_A, IDENTITY_B = "agent-a@example.com", "agent-b@example.com"


def send(world: Any, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return world.call(start_verify, {"to": to, **extra}, token=token)


def check(world: Any, code: str, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return world.call(check_verify, {"to": to, "verification_code": code, **extra}, token=token)


def check_right(world: Any, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return check(world, world.verify.code_for(to), to, token, **extra)


def check_wrong(world: Any, to: str = TO, token: str | None = AGENT_A) -> Any:
    pending = world.verify.code_for(to) if world.verify.is_pending(to) else ""
    return check(world, "000000" if pending != "000000" else "111111", to, token)


def cancel(world: Any, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return world.call(cancel_verify, {"to": to, **extra}, token=token)


def info(world: Any, to: str = TO, token: str | None = AGENT_A, **extra: str) -> Any:
    return world.call(customer_info, {"to": to, **extra}, token=token)


def approve(world: Any, to: str = TO, token: str = AGENT_A, **extra: str) -> None:
    assert send(world, to, token).status == 200
    assert check_right(world, to, token, **extra).status == 200


def closed_port_client() -> Any:
    """A DynamoDB client whose endpoint refuses every connection."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "max_attempts": 1}),
    )


class FailingClient:
    """The moto client, except that the operations named in ``fail`` raise a throttling ClientError."""

    def __init__(self, real: Any, fail: Callable[[str, dict[str, Any]], bool]) -> None:
        self._real, self._fail = real, fail

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if not callable(attribute) or name.startswith("_") or name in ("exceptions", "get_paginator"):
            return attribute

        def call(**kwargs: Any) -> Any:
            if self._fail(name, kwargs):
                raise ClientError(
                    {
                        "Error": {
                            "Code": "ProvisionedThroughputExceededException",
                            "Message": "Rate of requests exceeds the allowed throughput.",
                        }
                    },
                    name,
                )
            return attribute(**kwargs)

        return call

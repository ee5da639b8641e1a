"""Fixtures for the core's unit tests: moto tables built from template.yaml, and fakes for Twilio and IAM.

DynamoDB comes from the shared ``aws`` fixture (tests/conftest.py). The clock here is the tests' own: it starts
800 s into a fixed hour (20 s into a minute), so that a window's end and "now" are never the same instant.

The fakes are plain classes exposed through fixtures (``world``, ``world_factory``, ``log_lines``), so that
test modules never import this file. Nothing here is autouse: other test modules in this folder are unaffected.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from callerauth import errors
from callerauth.actions import Services
from callerauth.agents import FlexAgents
from callerauth.config import CHANNELS, Settings
from callerauth.http import Reply, Request
from callerauth.lookup import Signals
from callerauth.privacy import Hasher
from callerauth.refusals import Refusal
from callerauth.sources import SourceGate
from callerauth.store import StateStore
from callerauth.twilio_verify import Sent

from devserver.template import load_template, table_specs
from tests.support import FakeClock

ROOT = Path(__file__).resolve().parents[2]
HASH_SECRET = b"unit-test-hash-secret-0123456789"
START_TIME = 1_700_000_000  # 800 s into a fixed hour, 20 s into a fixed minute
TWILIO_CODE_LIFETIME = 600  # a Twilio verification lives 10 minutes


@dataclass
class Pending:
    sid: str
    code: str
    channel: str
    created: float


class FakeVerify:
    """Twilio Verify v2 as the core sees it: one pending code per destination, 10-minute life, single use.

    A start while a verification is pending re-sends the same code; approved, cancelled or expired
    verifications answer 20404. ``fail(op, error)`` makes the next call of ``op`` raise ``error``;
    ``on_start`` runs inside ``start`` (to look at the state while Twilio is "sending").
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._sids = itertools.count(1)
        self._codes = itertools.count(314159)
        self.pending: dict[str, Pending] = {}
        self.calls: list[tuple[str, str]] = []
        self.failures: dict[str, list[Refusal]] = {}
        self.on_start: Callable[[str], None] | None = None

    def fail(self, op: str, error: Refusal, times: int = 1) -> None:
        self.failures.setdefault(op, []).extend([error] * times)

    def code_for(self, to: str) -> str:
        return self._live(to).code  # type: ignore[union-attr]

    def is_pending(self, to: str) -> bool:
        return self._live(to) is not None

    def start(self, to: str, channel: str, locale: str) -> Sent:
        self.calls.append(("start", to))
        if self.on_start is not None:
            self.on_start(to)
        self._maybe_fail("start")
        current = self._live(to)
        if current is None:
            current = Pending(
                f"VE{next(self._sids):032x}", f"{next(self._codes) % 1_000_000:06d}", channel, self._clock()
            )
            self.pending[to] = current
        return Sent(sid=current.sid, status="pending", channel=channel)

    def check(self, to: str, code: str) -> bool:
        self.calls.append(("check", to))
        self._maybe_fail("check")
        current = self._live(to)
        if current is None:
            raise not_found_20404()
        if code != current.code:
            return False
        del self.pending[to]
        return True

    def cancel(self, to: str) -> None:
        self.calls.append(("cancel", to))
        self._maybe_fail("cancel")
        if self._live(to) is None:
            raise not_found_20404()
        del self.pending[to]

    def count(self, op: str) -> int:
        return sum(1 for name, _ in self.calls if name == op)

    def _live(self, to: str) -> Pending | None:
        current = self.pending.get(to)
        if current is not None and self._clock() >= current.created + TWILIO_CODE_LIFETIME:
            del self.pending[to]
            return None
        return current

    def _maybe_fail(self, op: str) -> None:
        queued = self.failures.get(op)
        if queued:
            raise queued.pop(0)


class FakeLookup:
    """Twilio Lookup v2 as the core sees it: every number an ordinary mobile, unless ``answers`` says otherwise.

    ``answers[number]`` is a dict of Signals fields (``line_type``, ``sim_swapped_in_period``, ...) or a
    Refusal to raise (Lookup unreachable); ``calls`` lists the numbers looked up.
    """

    def __init__(self) -> None:
        self.answers: dict[str, dict[str, Any] | Refusal] = {}
        self.calls: list[str] = []

    def signals(self, number: str, packages: tuple[str, ...], now: int) -> Signals:
        self.calls.append(number)
        answer = self.answers.get(number, {})
        if isinstance(answer, Refusal):
            raise Refusal(answer.code, answer.reason)
        ordinary = {
            "line_type": "mobile",
            "sim_swapped_in_period": False,
            "call_forwarding": False,
            "sms_pumping_risk_score": 3,
            "number_blocked": False,
        }
        values = {**ordinary, **answer}
        unanswered = tuple(values.pop("unanswered", ()))
        return Signals(fields=packages, at=now, unanswered=unanswered, **values)


def not_found_20404() -> Refusal:
    from callerauth.twilio_verify import error_for

    return error_for(404, 20404)


class FakeIam:
    """Twilio IAM's token validation: known tokens answer like twilio-flex-token-validator expects."""

    def __init__(self) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        self.calls = 0

    def add(
        self, token: str, identity: str, roles: tuple[str, ...] = ("agent",), worker_sid: str | None = None
    ) -> None:
        self.answers[token] = {
            "valid": True,
            "identity": identity,
            "roles": list(roles),
            "worker_sid": worker_sid or f"WK{uuid.uuid4().hex}",
            "expiration": "2099-01-01T00:00:00Z",
        }

    def validate(self, token: str) -> dict[str, Any]:
        self.calls += 1
        return self.answers.get(token, {"valid": False, "code": 20101, "message": "Invalid Access Token"})


AGENT_A, AGENT_B, GUEST = "token-agent-a", "token-agent-b", "token-guest"  # the guest has no allowed role


SOURCE_IP = "203.0.113.7"


@dataclass
class Outcome:
    """What one action call answered (a Reply or the ApiError it raised), and how many audit items it wrote."""

    status: int
    body: dict[str, Any]
    error: errors.ApiError | None
    audits: int

    @property
    def code(self) -> str | None:
        return self.error.code if self.error else None

    @property
    def retry_after(self) -> int | None:
        """The Retry-After the answer carries (429 and 503), in seconds."""
        return self.error.retry_after if self.error else None


@dataclass
class World:
    """The real actions over moto tables (built from template.yaml), with fakes for Twilio and IAM."""

    client: Any
    settings: Settings
    clock: FakeClock
    verify: FakeVerify
    iam: FakeIam
    services: Services
    lookup: FakeLookup
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def request(
        self,
        path: str,
        fields: Mapping[str, str] | None = None,
        token: str | None = AGENT_A,
        method: str = "POST",
        source_ip: str = SOURCE_IP,
    ) -> Request:
        values = dict(fields or {})
        if token is not None:
            values["token"] = token
        return Request(method, path, values, {}, source_ip, f"req-{next(self._ids)}", {})

    def call(
        self,
        action: Callable[[Request, Any], Reply],
        fields: Mapping[str, str] | None = None,
        token: str | None = AGENT_A,
        services: Any = None,
        count_audits: bool = True,
    ) -> Outcome:
        """Run ``action``; count the audit items written under the request's destination (unless told not to:
        a test whose state table is gone)."""
        to = str((fields or {}).get("to", "")).strip()
        to = to.lower() if "@" in to else to
        count = self.audit_count if count_audits else lambda _to: 0
        before = count(to)
        request = self.request("/" + action.__name__.replace("_", "-"), fields, token)
        try:
            reply = action(request, services or self.services)
        except Refusal as refusal:  # as the edge answers it
            error = errors.api_error(refusal)
            return Outcome(error.status, error.body(), error, self.audit_count(to) - before)
        except errors.ApiError as error:
            return Outcome(error.status, error.body(), error, count(to) - before)
        return Outcome(reply.status, reply.body, None, count(to) - before)

    # -- looking at the tables --------------------------------------------------------------

    def items(self) -> list[dict[str, Any]]:
        pages = self.client.get_paginator("scan").paginate(TableName=self.settings.state_table, ConsistentRead=True)
        return [item for page in pages for item in page["Items"]]

    def audits(self) -> list[dict[str, Any]]:
        return [plain(item) for item in self.items() if item["sk"]["S"].startswith("AUDIT#")]

    def audit_count(self, to: str | None = None) -> int:
        """AUDIT# items: under one destination (a cheap query), or in the whole table."""
        if to:
            return self._audits_under(self.pk(to))
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.settings.state_table,
            Select="COUNT",
            ConsistentRead=True,
            FilterExpression="begins_with(sk, :audit)",
            ExpressionAttributeValues={":audit": {"S": "AUDIT#"}},
        )
        return sum(int(page["Count"]) for page in pages)

    def source_audit_count(self, source_ip: str = SOURCE_IP) -> int:
        """Audit items kept under a source (refused requests nobody was identified in)."""
        return self._audits_under("S#" + self.services.sources.key(source_ip))

    def _audits_under(self, pk: str) -> int:
        answer = self.client.query(
            TableName=self.settings.state_table,
            Select="COUNT",
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :audit)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":audit": {"S": "AUDIT#"}},
        )
        return int(answer["Count"])

    def state(self, to: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.settings.state_table,
            ConsistentRead=True,
            Key={"pk": {"S": self.pk(to)}, "sk": {"S": "STATE"}},
        ).get("Item")
        return plain(item) if item else None

    def counter(self, pk: str, sk: str) -> int:
        item = self.client.get_item(
            TableName=self.settings.state_table, ConsistentRead=True, Key={"pk": {"S": pk}, "sk": {"S": sk}}
        ).get("Item")
        return int(item["n"]["N"]) if item else 0

    def pk(self, to: str) -> str:
        return "D#" + self.services.hasher.key(to)

    def seed_customer(self, phone: str, **record: str) -> None:
        item = {"phone": {"S": phone}} | {k: {"S": v} for k, v in record.items()}
        self.client.put_item(TableName=self.settings.customers_table, Item=item)

    def with_store_client(self, client: Any) -> Services:
        """The same services, but with DynamoDB reached through ``client``."""
        return self.services._replace(store=StateStore(client, self.settings))


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    return {k: deserialize(v) for k, v in item.items()}


@pytest.fixture(scope="session")
def template_tables() -> dict[str, Any]:
    return table_specs(load_template(ROOT / "template.yaml"))


@pytest.fixture
def world_factory(aws: Any, template_tables: dict[str, Any]) -> Callable[..., World]:
    """``world_factory(**settings)``: fresh tables (from template.yaml's definitions), fakes, real actions.

    DynamoDB is the shared ``aws`` fixture (tests/conftest.py: moto, dummy credentials); every world gets
    tables of its own in it, so that each Hypothesis example starts empty.
    """
    dynamodb = aws.client

    def make(**overrides: Any) -> World:
        suffix = uuid.uuid4().hex[:12]
        names = {"StateTable": f"state-{suffix}", "CustomersTable": f"customers-{suffix}"}
        for logical_id, spec in template_tables.items():
            dynamodb.create_table(TableName=names[logical_id], **spec.create_table_kwargs)
            if spec.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=names[logical_id],
                    TimeToLiveSpecification={"AttributeName": spec.ttl_attribute, "Enabled": True},
                )
        overrides.setdefault("allowed_channels", CHANNELS)  # every channel, unless a test says otherwise
        overrides.setdefault("lookup_fields", ())  # Lookup off, unless a test turns it on (tests/unit/test_risk*)
        settings = Settings(state_table=names["StateTable"], customers_table=names["CustomersTable"], **overrides)
        clock = FakeClock(START_TIME)
        verify = FakeVerify(clock)
        iam = FakeIam()
        iam.add(AGENT_A, "agent-a@example.com", worker_sid="WK" + "a" * 32)
        iam.add(AGENT_B, "agent-b@example.com", worker_sid="WK" + "b" * 32)
        iam.add(GUEST, "guest@example.com", roles=("guest",))
        hasher = Hasher(HASH_SECRET)
        services = Services(
            settings=settings,
            store=StateStore(dynamodb, settings),
            verify=verify,
            lookup=(lookup := FakeLookup()),
            agents=FlexAgents(iam, settings.allowed_roles, clock),
            hasher=hasher,
            sources=SourceGate(settings, hasher, clock),
            clock=clock,
        )
        return World(dynamodb, settings, clock, verify, iam, services, lookup)

    return make


@pytest.fixture
def world(world_factory: Callable[..., World]) -> World:
    """Small, test-friendly limits: cooldown 30 s, 5 sends an hour, lock after 3 failures for 120 s."""
    return world_factory(max_failed_checks=3, lockout_seconds=120, approval_ttl_seconds=300)


CORE_LOGGER = "callerauth"  # Powertools Logger(service="callerauth") is this standard logger


class _Capture(logging.Handler):
    """Formats records with the core logger's own (Powertools JSON) formatter, so extras are in the text."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every line the core's logger writes during the test, formatted exactly as Powertools writes it."""
    import callerauth.http  # noqa: F401 - creates the core's logger and its handler

    target = logging.getLogger(CORE_LOGGER)
    capture = _Capture(next((h.formatter for h in target.handlers if h.formatter is not None), None))
    target.addHandler(capture)
    try:
        yield capture.lines
    finally:
        target.removeHandler(capture)

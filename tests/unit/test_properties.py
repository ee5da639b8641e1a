"""Properties (Hypothesis): (a) whatever arrives, the answer is the contract's; (b) a model of the decisions.

(a) drives serve() with the real routes and actions over moto tables, with fakes for Twilio and IAM only.
(b) is a RuleBasedStateMachine for one destination and one agent: send, check (right or wrong), cancel,
customer-info, lock and the passing of time, each answer predicted by a model of CONTRACT.md and DESIGN.md.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from callerauth.actions import cancel_verify, check_verify, customer_info, start_verify
from callerauth.config import Settings
from callerauth.fields import ALIASES
from callerauth.http import serve
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests.support import TO

AGENT_TOKEN = "token-agent-a"
ROUTES = {
    "/start-verify": {"POST": start_verify},
    "/cancel-verify": {"POST": cancel_verify},
    "/check-verify": {"POST": check_verify},
    "/customer-info": {"GET": customer_info, "POST": customer_info},
}
# CONTRACT.md's table: every error code and its HTTP status.
CONTRACT_CODES = {
    "missing_parameter": 400,
    "invalid_parameter": 400,
    "malformed_body": 400,
    "incorrect_code": 401,
    "agent_auth_required": 403,
    "agent_auth_invalid": 403,
    "not_verified": 403,
    "destination_blocked": 403,
    "verification_not_found": 404,
    "customer_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "body_too_large": 413,
    "rate_limited": 429,
    "too_many_attempts": 429,
    "max_send_attempts": 429,
    "upstream_error": 502,
    "upstream_unavailable": 503,
    "internal_error": 500,
}
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class Runtime:
    def __init__(self, world: Any) -> None:
        self._world = world

    def settings(self) -> Settings:
        return self._world.settings

    def services(self) -> Any:
        return self._world.services


def answer(world: Any, evt: dict[str, Any]) -> dict[str, Any]:
    return serve(evt, SimpleNamespace(aws_request_id=str(uuid.uuid4())), ROUTES, Runtime(world))


# ------------------------------------------------------------------------------------------ (a) decoding

ALIAS_NAMES = [alias for aliases in ALIASES.values() for alias in aliases]
keys = st.one_of(
    st.sampled_from(ALIAS_NAMES), st.sampled_from(["TO", "phone", "Channel", "token", ""]), st.text(max_size=12)
)
interesting = st.sampled_from(
    [
        TO,
        "+12025550101",
        "+1555",
        "12025550100",
        "jane@example.com",
        "JANE@EXAMPLE.COM",
        "sms",
        "call",
        "email",
        "whatsapp",
        "fax",
        "en",
        "pt-BR",
        "EN_us",
        "123456",
        "314159",
        "0000",
        "12345678901",
        AGENT_TOKEN,
        "forged",
        "WT" + "ab" * 16,
        "WT1",
        "",
        " ",
        "%2B1555",
        "\x00",
        "é",
        "".join(chr(0xFF10 + int(d)) for d in "123456"),  # full-width digits
    ]
)
strings = st.one_of(
    interesting,
    st.text(max_size=40),
    st.from_regex(E164, fullmatch=True),
    st.from_regex(r"[0-9]{4,10}", fullmatch=True),
)
# JSON may carry what no form can: lone surrogates, as the escape \ud800 (valid JSON, not valid Unicode).
lone_surrogates = st.builds(
    "".join, st.lists(st.text(max_size=4) | st.characters(categories=["Cs"]), min_size=1, max_size=4)
) | st.sampled_from(["\ud800@example.com", "+1555555\udfff0100"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | strings | lone_surrogates,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
pairs = st.lists(st.tuples(keys, strings), max_size=6)
# Often a well-formed core, so that the actions' own decisions are reached, with anything added around it.
_core = {
    "to": st.sampled_from([TO, "+12025550101", "jane@example.com"]) | st.from_regex(E164, fullmatch=True),
    "Token": st.just(AGENT_TOKEN),
}
_extras = {
    "code": st.sampled_from(["314159", "123456"]),
    "channel": st.sampled_from(["sms", "call", "email"]),
    "taskSid": st.just("WT" + "ab" * 16),
}
plausible = st.fixed_dictionaries(_core, optional=_extras) | st.fixed_dictionaries({}, optional=_core | _extras)
request_pairs = st.builds(lambda base, extra: [*base.items(), *extra], plausible, pairs)
json_objects = st.builds(
    lambda base, extra: {**base, **extra}, plausible, st.dictionaries(keys, json_values, max_size=4)
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str | None, bool, str | None]:
    """(body, isBase64Encoded, Content-Type) of every kind a client, or an attacker, might send."""
    kind = draw(st.sampled_from(["form"] * 3 + ["json"] * 3 + ["form-raw", "json-pairs", "text", "bytes", "none"]))
    form_types = [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded;charset=UTF-8",
        "application/x-www-form-urlencoded; charset=ISO-8859-1",
        None,
    ]
    json_types = ["application/json", "application/json; charset=utf-8", "application/vnd.api+json", None]
    any_type = st.one_of(
        st.sampled_from(
            form_types
            + json_types
            + ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded;charset=x"]
        ),
        st.text(max_size=30),
    )
    raw: bytes | None
    if kind == "form":
        raw = urlencode(draw(request_pairs)).encode()
        content_type = draw(st.one_of(*[st.sampled_from(form_types)] * 3, any_type))
    elif kind == "form-raw":  # hand-made, unescaped or half-escaped
        raw = "&".join(f"{k}={v}" for k, v in draw(request_pairs)).encode()
        content_type = draw(st.sampled_from(form_types) | any_type)
    elif kind == "json":
        raw = json.dumps(draw(json_objects | json_values)).encode()
        content_type = draw(st.one_of(*[st.sampled_from(json_types)] * 3, any_type))
    elif kind == "json-pairs":  # repeated keys, which a dict cannot hold
        items = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in draw(request_pairs))
        raw = ("{" + items + "}").encode()
        content_type = draw(st.sampled_from(json_types) | any_type)
    elif kind == "text":
        raw = draw(st.text(max_size=200)).encode()
        content_type = draw(any_type | st.none())
    elif kind == "bytes":
        raw = draw(st.binary(max_size=200))
        content_type = draw(any_type | st.none())
    else:
        raw, content_type = None, draw(any_type | st.none())
    if raw is None:
        return draw(st.sampled_from([None, ""])), False, content_type
    if kind == "bytes" or draw(st.booleans()):
        return base64.b64encode(raw).decode(), True, content_type
    return raw.decode("utf-8"), False, content_type


common_methods = st.sampled_from(["POST"] * 16 + ["GET"] * 3 + ["OPTIONS", "PUT", "DELETE", "HEAD", "post"])


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    body, is_base64, content_type = draw(bodies())
    headers: dict[str, str] = {}
    if content_type is not None:
        headers[draw(st.sampled_from(["Content-Type", "content-type"]))] = content_type
    if draw(st.booleans()):
        headers["X-Flex-Token"] = draw(st.sampled_from([AGENT_TOKEN, "forged", ""]) | st.text(max_size=20))
    if draw(st.booleans()):
        headers["Origin"] = draw(st.sampled_from(["https://flex.twilio.com", "null"]))
    query = draw(
        st.none()
        | st.builds(lambda base, extra: {**base, **extra}, plausible, st.dictionaries(keys, strings, max_size=4))
    )
    return {
        "httpMethod": draw(st.one_of(*[common_methods] * 6, st.text(max_size=6))),
        "resource": draw(st.sampled_from([*ROUTES, *ROUTES, *ROUTES, "/", "/start-verify/", "/nope"])),
        "headers": headers,
        "body": body,
        "isBase64Encoded": is_base64,
        "queryStringParameters": query,
        "requestContext": {"identity": {"sourceIp": "192.0.2.1"}},
    }


def sent_secrets(evt: dict[str, Any]) -> set[str]:
    """Full numbers and 6+-digit codes that the request carried, decoded or not."""
    texts = [str(evt.get("body")), json.dumps(evt.get("queryStringParameters"))]
    if evt.get("isBase64Encoded"):
        with contextlib.suppress(ValueError):
            texts.append(base64.b64decode(evt["body"]).decode("latin-1"))
    found: set[str] = set()
    for text in texts:
        found |= set(re.findall(r"\+?[0-9]{6,15}", text))
        found |= {m.replace("%2B", "+") for m in re.findall(r"%2B[0-9]{6,15}", text)}
    return {s for s in found if len(s.lstrip("+")) >= 6}


def test_whatever_arrives_the_answer_is_the_contracts(world_factory: Callable[..., Any], log_lines: list[str]) -> None:
    # Given the real routes and actions, over moto, with fake Twilio and IAM
    world = world_factory()
    world.seed_customer(TO, name="Jane Doe")

    @given(evt=events())
    def one_request(evt: dict[str, Any]) -> None:
        world.clock.advance(7)
        logged_before = len(log_lines)

        # When
        reply = answer(world, evt)

        # Then: never a 5xx, always CORS, always the one shape
        status, headers = reply["statusCode"], reply["headers"]
        assert status < 500, reply
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
        assert headers["Access-Control-Allow-Headers"] == "Content-Type, X-Flex-Token"
        if status == 204:
            assert evt["httpMethod"] == "OPTIONS" and evt["resource"] in ROUTES
            assert reply["body"] == ""
            return
        assert headers["Content-Type"] == "application/json"
        body = json.loads(reply["body"])
        assert isinstance(body, dict)
        assert isinstance(body["success"], bool)
        if body["success"]:
            assert status == 200
        else:
            error = body["error"]
            assert body["message"] == error["message"]
            assert isinstance(error["message"], str) and error["message"]
            assert CONTRACT_CODES[error["code"]] == status
            if status in (429, 503):
                assert int(headers["Retry-After"]) >= 1
            if status == 405:
                assert "Allow" in headers
        # and no full number, code or token in the body or in the request's log lines
        said = reply["body"].replace("such as +12025550100", "")  # the documented example of an E.164 number
        logged = "\n".join(log_lines[logged_before:])
        assert logged, "every request is logged"
        for secret in sent_secrets(evt):
            assert secret not in said
            assert secret not in logged
        assert AGENT_TOKEN not in said and AGENT_TOKEN not in logged

    one_request()


# Regressions: lone surrogates (the JSON escape \ud800) once reached .encode() in the hasher and the token
# cache and answered 500.


@pytest.mark.parametrize("path", ["/start-verify", "/check-verify", "/cancel-verify", "/customer-info"])
def test_a_lone_surrogate_in_an_email_is_a_request_error(world_factory: Callable[..., Any], path: str) -> None:
    # Given
    world = world_factory()
    body = '{"to": "\\ud800@example.com", "channel": "email", "code": "123456", "Token": "token-agent-a"}'

    # When
    reply = answer(
        world, {"httpMethod": "POST", "resource": path, "body": body, "headers": {"Content-Type": "application/json"}}
    )

    # Then
    assert reply["statusCode"] == 400
    assert json.loads(reply["body"])["error"]["code"] in ("invalid_parameter", "malformed_body")


def test_a_lone_surrogate_in_the_token_is_a_request_error(world_factory: Callable[..., Any]) -> None:
    # Given
    world = world_factory()

    # When
    reply = answer(
        world,
        {
            "httpMethod": "POST",
            "resource": "/start-verify",
            "body": json.dumps({"to": TO, "Token": "\udfff"}),
            "headers": {"Content-Type": "application/json"},
        },
    )

    # Then
    assert reply["statusCode"] in (400, 403)
    assert json.loads(reply["body"])["error"]["code"] in ("invalid_parameter", "malformed_body", "agent_auth_invalid")


# ------------------------------------------------------------------------------------------ (b) the model

COOLDOWN, CAP, MAX_FAILED, LOCKOUT, APPROVAL_TTL, TWILIO_LIFE = 30, 3, 3, 120, 300, 600
SMALL = {
    "send_cooldown_seconds": COOLDOWN,
    "max_sends_per_destination_per_hour": CAP,
    "max_failed_checks": MAX_FAILED,
    "lockout_seconds": LOCKOUT,
    "approval_ttl_seconds": APPROVAL_TTL,
}


class OneDestination(RuleBasedStateMachine):
    """One number, one agent. The model states what CONTRACT.md and DESIGN.md promise.

    A test binds ``make_world`` (the ``world_factory`` fixture) and ``seen`` (what every example answered).
    """

    make_world: Callable[..., Any]
    seen: Counter[tuple[str, int, str | None]]

    def __init__(self) -> None:
        super().__init__()
        self.world = self.make_world(**SMALL)
        self.world.seed_customer(TO, name="Jane Doe")
        self.now = int(self.world.clock())
        self.requests = 0
        # the model
        self.last_send: int | None = None
        self.sends: Counter[int] = Counter()  # per fixed hour
        self.failed = 0
        self.series_started = 0  # when the current run of consecutive failures began
        self.locked_until = 0
        self.code_created: int | None = None  # Twilio's pending verification
        self.approved_until = 0
        self.action = ""

    # -- the model's view ---------------------------------------------------------------

    def locked(self) -> bool:
        return self.locked_until > self.now

    def pending(self) -> bool:
        return self.code_created is not None and self.now < self.code_created + TWILIO_LIFE

    def call(self, action: Callable[..., Any], fields: dict[str, str]) -> Any:
        """One request, straight into the action (the invariant counts its audit events)."""
        self.requests += 1
        self.action = action.__name__
        return self.world.call(action, {"to": TO, **fields}, token=AGENT_TOKEN)

    def expect(self, out: Any, status: int, code: str | None = None, retry_after: int | None = None) -> None:
        self.seen[(self.action, status, code)] += 1
        assert (out.status, out.code) == (status, code), out.body
        if retry_after is not None:
            assert out.retry_after == retry_after, out.body

    # -- rules ---------------------------------------------------------------------------

    @rule()
    def send(self) -> None:
        out = self.call(start_verify, {})
        hour = self.now // 3600
        waits = []
        if self.locked():
            waits.append(self.locked_until - self.now)
        elif self.last_send is not None and self.now < self.last_send + COOLDOWN:
            waits.append(self.last_send + COOLDOWN - self.now)
        if self.sends[hour] >= CAP:
            waits.append((hour + 1) * 3600 - self.now)
            self.seen[("start_verify: destination cap", 429, "rate_limited")] += 1
        if waits:
            self.expect(out, 429, "too_many_attempts" if self.locked() else "rate_limited", max(waits))
            return
        self.expect(out, 200)
        assert out.body["resendAfter"] == COOLDOWN
        self.last_send = self.now
        self.sends[hour] += 1
        if not self.pending():
            self.code_created = self.now

    def check(self, right: bool) -> None:
        live = self.world.verify.pending.get(TO)
        code = live.code if live else "314159"
        out = self.call(check_verify, {"verification_code": code if right else f"{(int(code) + 1) % 10**6:06d}"})
        if self.locked():
            self.expect(out, 429, "too_many_attempts", self.locked_until - self.now)
        elif not self.pending():
            self.expect(out, 404, "verification_not_found")
        elif right:
            self.expect(out, 200)
            self.failed, self.code_created = 0, None
            self.approved_until = self.now + APPROVAL_TTL
        else:
            self.failed += 1
            if self.failed == 1:
                self.series_started = self.now
            if self.failed >= MAX_FAILED:
                self.failed, self.locked_until = 0, self.now + LOCKOUT
                self.expect(out, 429, "too_many_attempts", LOCKOUT)
            else:
                self.expect(out, 401, "incorrect_code")

    @rule()
    def check_right(self) -> None:
        self.check(right=True)

    def failures_are_recent(self) -> bool:
        """DESIGN.md counts failures "within an hour": the model never lets a run of failures get older."""
        return self.failed == 0 or self.now - self.series_started < 3600

    @precondition(failures_are_recent)
    @rule()
    def check_wrong(self) -> None:
        self.check(right=False)

    @precondition(failures_are_recent)
    @rule()
    def lock(self) -> None:
        """A caller guessing: a code is sent, wrong codes until the lock, then a resend and the right code."""
        if self.failed == 0 and not self.locked():
            self.time_passes(3600 - self.now % 3600 + COOLDOWN)  # a fresh hour: no cap or cooldown refuses
        self.send()
        for _ in range(MAX_FAILED):
            self.check(right=False)
        self.time_passes(COOLDOWN)
        self.send()
        self.check(right=True)

    @rule()
    def resend_until_refused(self) -> None:
        for _ in range(CAP + 1):
            self.time_passes(COOLDOWN)
            self.send()

    @rule()
    def verify_and_read(self) -> None:
        """What an agent does: send, check the code read back, open the customer's record."""
        self.send()
        self.check(right=True)
        self.read_customer()

    @rule()
    def cancel(self) -> None:
        out = self.call(cancel_verify, {})
        self.expect(out, 200)
        self.code_created, self.approved_until = None, 0

    @rule()
    def read_customer(self) -> None:
        out = self.call(customer_info, {})
        if self.now < self.approved_until:
            self.expect(out, 200)
            assert out.body["customer"] == {"name": "Jane Doe"}
        else:
            self.expect(out, 403, "not_verified")

    @rule(seconds=st.sampled_from([1, 5, 29, 30, 31, 59, 60, 119, 120, 121, 299, 300, 301, 599, 600, 1800, 3600]))
    def time_passes(self, seconds: int) -> None:
        self.world.clock.advance(seconds)
        self.now += seconds

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def twilio_agrees_with_the_model(self) -> None:
        assert self.world.verify.is_pending(TO) == self.pending()

    @invariant()
    def one_audit_event_per_request(self) -> None:
        assert self.world.audit_count(TO) == self.requests


def test_the_backend_behaves_like_the_model(world_factory: Callable[..., Any]) -> None:
    seen: Counter[tuple[str, int, str | None]] = Counter()  # (action, status, code) over every example

    class Bound(OneDestination):
        make_world = staticmethod(world_factory)

    Bound.seen = seen

    run_state_machine_as_test(
        Bound,
        # The profile's (tests/conftest.py) but fewer, longer runs: each example builds its own tables.
        settings=settings(max_examples=25, stateful_step_count=15),
    )

    # and the run was not vacuous: every decision of the model was reached and agreed with
    assert set(seen) >= {
        ("start_verify", 200, None),
        ("start_verify", 429, "rate_limited"),
        ("start_verify: destination cap", 429, "rate_limited"),
        ("start_verify", 429, "too_many_attempts"),
        ("check_verify", 200, None),
        ("check_verify", 401, "incorrect_code"),
        ("check_verify", 429, "too_many_attempts"),
        ("check_verify", 404, "verification_not_found"),
        ("cancel_verify", 200, None),
        ("customer_info", 200, None),
        ("customer_info", 403, "not_verified"),
    }, seen

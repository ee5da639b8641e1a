"""Schemathesis against docs/openapi.yaml, over real HTTP, against the dev stack started in-process.

Every operation of the document is fuzzed with schema-valid (positive) and schema-invalid (negative) data —
Schemathesis' examples, coverage and fuzzing phases, and its probes of undocumented methods — in two
configurations (``conftest.py``):

- ``AGENT_AUTH=flex``, our limits high: every request carries a valid sandbox Flex token (the
  ``X-Flex-Token`` header; in positive cases also a generated ``Token`` field or query parameter, which
  would win over the header), so that requests get past agent authentication to the validators, the
  sandbox Twilio and DynamoDB — except the negative cases aimed at the token itself;
- ``AGENT_AUTH=none``, our limits low, an origin allow-list and a country allow-list.

Every response must pass:

- ``not_a_server_error``: never a 5xx — bad input is a 4xx;
- ``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``: a documented status, with the documented content type, headers (CORS,
  ``Retry-After``, ``Allow``) and body;
- ``negative_data_rejection``: what the document calls invalid is refused (400, 403 for a bad token,
  405, 413) — except the known disagreements below;
- ``unsupported_method``: a method the path does not serve is answered 405;
- ``contract_check`` (CONTRACT.md, what a schema cannot say): the CORS headers on every response (``*``;
  or, with an allow-list, the listed origin echoed, else none, and ``Vary: Origin``); a JSON object with a
  boolean ``success``; every failure ``success: false`` with an ``error`` object and
  ``message == error.message``; ``Retry-After`` on 429; no submitted phone number or e-mail address in a
  failure body.

Bounded and reproducible: a fixed seed, deterministic generation (Hypothesis' ``derandomize``), no example
database, ``MAX_EXAMPLES`` per operation in the fuzzing phase, no deadline. Random data cannot guess a
code, so ``test_happy_path`` drives start → check (with the code from the sandbox's outbox) →
customer-info → cancel through Schemathesis cases and the same checks: the success bodies are validated
too. ``test_fuzzing_reached_the_product`` fails if the fuzzing stops reaching the branches it is there for
(a change that made every request fail early would otherwise pass unnoticed).

Where the contract is lenient (``LENIENCIES``: empty values taken as absent, blanks around ``to`` and
``verification_code`` ignored, no length limit on ``Origin``), the document says so, and
``test_documented_leniency`` checks that document and product agree on each.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.fuzz.conftest import LISTED_ORIGIN, REPO, FuzzStack
from tests.support import TO as SAMPLE_CUSTOMER

SPEC = REPO / "docs" / "openapi.yaml"
SEED = 20300327
MAX_EXAMPLES = 25  # per operation and configuration, fuzzing phase (the examples and coverage phases add theirs)
API_GATEWAY_MAX_QUERY = 10240  # characters of a URL API Gateway (regional) accepts; longer ones never reach us
TIMEOUT = 15  # seconds per request: a hung stack fails the test instead of the run


ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, X-Flex-Token"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "suppress-health-check": ["all"],
        "request-timeout": TIMEOUT,
        # What refusing invalid data looks like here: 400 (invalid, malformed), 403 (a token that is not one),
        # 405 (a method the path does not serve), 413 (too large).
        "checks": {"negative_data_rejection": {"expected-statuses": [400, 403, 405, 413]}},
        "generation": {
            "mode": "all",  # positive and negative
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
    }
)
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)

pytestmark = [pytest.mark.fuzz, pytest.mark.stack]


# -------------------------------------------------------------------------------- the document itself


class _Document:
    """``docs/openapi.yaml`` as JSON Schema: is a request's body, query or header value valid per the document?"""

    URI = "urn:callerauth:fuzz:openapi"

    def __init__(self) -> None:
        self.raw: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
        self.registry: Registry[Any] = Registry().with_resource(self.URI, DRAFT202012.create_resource(self.raw))

    def _node(self, pointer: str) -> Any:
        node: Any = self.raw
        for part in pointer.lstrip("/").split("/"):
            node = node[int(part)] if isinstance(node, list) else node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _resolve(self, pointer: str) -> str:
        """Follow ``$ref`` (the document's own) from ``pointer`` to the object's pointer."""
        while isinstance(ref := self._node(pointer).get("$ref"), str):
            pointer = ref.removeprefix("#")
        return pointer

    @functools.cache  # noqa: B019 - one instance for the whole run
    def validator(self, pointer: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{self.URI}#{pointer}"}, registry=self.registry)

    def _operation(self, case: Case) -> str:
        return "/paths/" + case.path.replace("~", "~0").replace("/", "~1") + "/" + case.method.lower()

    def body_valid(self, case: Case, body: Any) -> bool:
        operation = self._operation(case)
        request_body = self._resolve(operation + "/requestBody")
        media_type = (case.media_type or "").split(";")[0].strip()
        if media_type not in self._node(request_body + "/content"):
            return False
        pointer = request_body + "/content/" + media_type.replace("/", "~1") + "/schema"
        return self.validator(pointer).is_valid(body)

    def parameters(self, case: Case, location: str) -> dict[str, str]:
        """``{name (lower-case for headers): schema pointer}`` of the operation's parameters in ``location``."""
        found: dict[str, str] = {}
        operation = self._operation(case)
        for index in range(len(self._node(operation).get("parameters", []))):
            pointer = self._resolve(f"{operation}/parameters/{index}")
            parameter = self._node(pointer)
            if parameter["in"] == location:
                name = parameter["name"].lower() if location == "header" else parameter["name"]
                found[name] = pointer + "/schema"
        return found

    def values_valid(self, case: Case, location: str, values: Mapping[str, Any]) -> bool:
        """Every documented parameter in ``values`` is valid (unknown ones are ignored, as documented)."""
        documented = self.parameters(case, location)
        for name, value in values.items():
            pointer = documented.get(name.lower() if location == "header" else name)
            if pointer is not None and not self.validator(pointer).is_valid(value):
                return False
        return True


DOCUMENT = _Document()


# --------------------------------------------------------------------------------- documented leniency


@dataclass(frozen=True)
class Leniency:
    """A request a strict reading would refuse and the contract accepts; document and product must agree."""

    name: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


# Decided (issue 9): an empty value is taken as absent (the default applies; an empty Token leaves the
# X-Flex-Token header in force), blanks around `to` and `verification_code` are ignored, and Origin
# has no length limit (it is a CORS header: an unlisted origin is simply not echoed).
LENIENCIES = [
    Leniency("long-origin", "/cancel-verify", {"to": "+12025550121"}, headers={"Origin": "https://" + "o" * 2048}),
    Leniency("empty-Token", "/cancel-verify", {"to": "+12025550122", "Token": ""}),
    Leniency("empty-channel", "/start-verify", {"to": "+12025550123", "channel": ""}),
    Leniency("empty-locale", "/start-verify", {"to": "+12025550124", "locale": ""}),
    Leniency("empty-taskSid", "/start-verify", {"to": "+12025550125", "taskSid": ""}),
    Leniency("padded-to", "/start-verify", {"to": " +12025550126\t"}),
    Leniency("padded-verification_code", "/check-verify", {"to": "+12025550127", "verification_code": " 123456\r\n"}),
]


# ------------------------------------------------------------------------------------------ the agent


class _Current:
    """The stack the running test class uses (``contract_check`` reads its configuration)."""

    stack: FuzzStack | None = None


CURRENT = _Current()


def _authenticate(case: Case, token: str | None) -> None:
    """A valid Flex token on ``case`` (``AGENT_AUTH=flex``), unless the case is a negative one aimed at it.

    The ``X-Flex-Token`` header always carries it; in positive cases, a generated ``Token`` field or query
    parameter (which would win over the header) is replaced by it too. Negative cases that target the
    security parameter itself (a missing or mangled ``X-Flex-Token``) are sent as generated. This runs as
    each case is sent: the examples and coverage phases build their cases before any fixture has run.
    """
    if token is None or case.operation.schema.is_security_param_negated(case):
        return
    headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(case.headers or {})
    headers["X-Flex-Token"] = token
    case.headers = headers
    if case.meta is not None and case.meta.generation.mode.is_positive:
        for container in (case.body, case.query):
            if isinstance(container, dict) and "Token" in container:
                container["Token"] = token


# ------------------------------------------------------------------------------------------ the checks


def _header(response: Response, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def _sent_destinations(case: Case) -> Iterator[str]:
    """The phone numbers and e-mail addresses the request carried in ``to`` / ``To``."""
    for container in (case.body, case.query):
        if isinstance(container, dict):
            for name in ("to", "To"):
                value = container.get(name)
                if isinstance(value, str):
                    value = value.strip()
                    if E164.match(value) or ("@" in value and len(value) >= 6):
                        yield value


def contract_check(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """CONTRACT.md's rules that a schema cannot say: CORS everywhere, one failure shape, nothing echoed."""
    stack = CURRENT.stack
    assert stack is not None, "no stack for this request"
    status = response.status_code
    where = f"{case.method} {case.path} -> {status}"

    if case.path.startswith("/ivr/"):  # Twilio's webhooks: no fuzzed request is signed, so no TwiML, no body
        assert status in (403, 405), f"{where}: expected 403 (unsigned) or 405"
        assert not response.content, f"{where}: a body"
        assert _header(response, "Access-Control-Allow-Origin") is None, f"{where}: CORS on a webhook"
        return True

    # The CORS headers on every response, errors included.
    assert _header(response, "Access-Control-Allow-Methods") == ALLOW_METHODS, f"{where}: Allow-Methods"
    assert _header(response, "Access-Control-Allow-Headers") == ALLOW_HEADERS, f"{where}: Allow-Headers"
    allow_origin = _header(response, "Access-Control-Allow-Origin")
    allowed = stack.allowed_origins
    if allowed is None:
        assert allow_origin == "*", f"{where}: Access-Control-Allow-Origin {allow_origin!r}, expected '*'"
    else:
        origin = response.request.headers.get("Origin")
        expected = origin if origin in allowed else None
        assert allow_origin == expected, f"{where}: Access-Control-Allow-Origin {allow_origin!r} for {origin!r}"
        vary = [value.strip().lower() for value in (_header(response, "Vary") or "").split(",")]
        assert "origin" in vary, f"{where}: no 'Vary: Origin' with an origin allow-list"

    if status == 204:  # the preflight: no body
        assert not response.content, f"{where}: a body on 204"
        return True

    # A JSON object with a boolean `success`; a failure in the one shape both of the plugin's readers need.
    content_type = _header(response, "Content-Type") or ""
    assert content_type.startswith("application/json"), f"{where}: Content-Type {content_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict), f"{where}: not a JSON object"
    if status < 400:
        assert body.get("success") is True, f"{where}: success is {body.get('success')!r}"
        return True
    assert body.get("success") is False, f"{where}: success is {body.get('success')!r}"
    error = body.get("error")
    assert isinstance(error, dict), f"{where}: no 'error' object (the plugin's UI would freeze)"
    message = error.get("message")
    assert isinstance(message, str) and message, f"{where}: no error.message"
    assert body.get("message") == message, f"{where}: message {body.get('message')!r} != error.message {message!r}"
    assert isinstance(error.get("code"), str) and error["code"], f"{where}: no error.code"
    if status == 429:
        retry_after = _header(response, "Retry-After") or ""
        assert retry_after.isdigit() and int(retry_after) >= 1, f"{where}: Retry-After {retry_after!r}"

    # No full phone number or e-mail address ever appears in a failure body.
    text = response.content.decode("utf-8", "replace")
    for value in _sent_destinations(case):
        assert value.lstrip("+") not in text, f"{where}: the submitted destination appears in the body"
    return True


CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
    contract_check,
]


# ----------------------------------------------------------------------------------- sending a case


REACHED: dict[str, dict[str, set[tuple[int, str | None]]]] = defaultdict(lambda: defaultdict(set))


def _record(config: str, case: Case, response: Response) -> None:
    code = None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
    REACHED[config][f"{case.method} {case.path}"].add((response.status_code, code))


def _call(stack: FuzzStack, case: Case, record: str | None = None) -> Response:
    """Send ``case`` to ``stack`` and run every check on the answer (``record``: the configuration's name)."""
    _authenticate(case, stack.token)
    if len(urlencode(case.query or {}, doseq=True)) > API_GATEWAY_MAX_QUERY:
        # API Gateway refuses such a URL itself (414) before any function runs; the dev gateway lets it reach
        # the handler, which refuses it too (a token in a URL, a field too long). Either way: refused.
        response = case.call(base_url=stack.api)
        assert response.status_code in (400, 403, 414), response.status_code
        return response
    response = case.call_and_validate(base_url=stack.api, checks=CHECKS)
    if record is not None:
        _record(record, case, response)
    return response


def _assert_reached(config: str, expected: dict[str, set[tuple[int, str | None]]]) -> None:
    reached = REACHED.get(config)
    if not reached:
        pytest.skip("the fuzz tests of this configuration did not run (deselected)")
    missing = {
        operation: sorted(outcomes - reached[operation], key=str)
        for operation, outcomes in expected.items()
        if operation in reached and outcomes - reached[operation]
    }
    assert not missing, f"the fuzzing never reached: {missing}; it reached: {dict(reached)}"


def _happy_path(stack: FuzzStack, token: str | None) -> None:
    """start → check with the right code → customer-info (GET, POST) → cancel → customer-info refused."""
    to = SAMPLE_CUSTOMER
    auth = {} if token is None else {"Token": token}

    def send(path: str, method: str, **kwargs: Any) -> Response:
        return _call(stack, schema[path][method].Case(headers={"Origin": LISTED_ORIGIN}, **kwargs))

    def form(path: str, fields: dict[str, str]) -> Response:
        return send(path, "POST", body={**fields, **auth}, media_type="application/x-www-form-urlencoded")

    response = form("/start-verify", {"to": to})
    assert response.status_code == 200, response.content
    code = [message for message in stack.sandbox.outbox if message["to"] == to][-1]["code"]

    response = send("/check-verify", "POST", body={"To": to, "Code": code, **auth}, media_type="application/json")
    assert response.status_code == 200, response.content

    info = send("/customer-info", "GET", query={"to": to})  # the token in X-Flex-Token only
    posted = send("/customer-info", "POST", body={"to": to, **auth}, media_type="application/json")
    if token is None:  # customer data is never served to a caller nobody has identified
        assert (info.status_code, posted.status_code) == (403, 403)
    else:
        assert (info.status_code, posted.status_code) == (200, 200), (info.content, posted.content)
        assert json.loads(info.content)["customer"] == json.loads(posted.content)["customer"]

    response = form("/cancel-verify", {"to": to})
    assert response.status_code == 200, response.content
    if token is not None:
        response = send("/customer-info", "GET", query={"to": to})
        assert response.status_code == 403, response.content


# ------------------------------------------------------------------------------------------ the tests


@pytest.fixture(scope="class")
def flex(flex_stack: FuzzStack) -> Iterator[FuzzStack]:
    CURRENT.stack = flex_stack
    yield flex_stack
    CURRENT.stack = None


@pytest.fixture(scope="class")
def none(none_stack: FuzzStack) -> Iterator[FuzzStack]:
    CURRENT.stack = none_stack
    yield none_stack
    CURRENT.stack = None


class TestFuzzAgentAuthFlex:
    """``AGENT_AUTH=flex``, our limits high, a valid token on every request."""

    def test_happy_path(self, flex: FuzzStack) -> None:
        _happy_path(flex, flex.token)

    @schema.parametrize()
    def test_operation(self, case: Case, flex: FuzzStack) -> None:
        _call(flex, case, record="flex")

    def test_fuzzing_reached_the_product(self) -> None:
        _assert_reached(
            "flex",
            {
                "POST /start-verify": {
                    (200, None),
                    (400, "invalid_parameter"),
                    (400, "malformed_body"),
                    (413, "body_too_large"),
                    (429, "max_send_attempts"),  # Twilio's 60203, after 5 sends to one number
                },
                "POST /check-verify": {(400, "invalid_parameter"), (401, "incorrect_code"), (429, "too_many_attempts")},
                "POST /cancel-verify": {(200, None), (400, "invalid_parameter")},
                "POST /customer-info": {(403, "not_verified"), (400, "invalid_parameter")},
                "GET /customer-info": {(403, "not_verified"), (400, "missing_parameter")},
                "OPTIONS /start-verify": {(204, None)},
                "PUT /start-verify": {(405, "method_not_allowed")},
            },
        )

    @pytest.mark.parametrize("probe", [pytest.param(probe, id=probe.name) for probe in LENIENCIES])
    def test_documented_leniency(self, flex: FuzzStack, probe: Leniency) -> None:
        """The document and the product agree on each leniency: both accept it (no 400)."""
        case = schema[probe.path]["POST"].Case(
            headers={"Origin": LISTED_ORIGIN, **probe.headers}, body=probe.body, media_type="application/json"
        )
        # Given the document's reading of the probe
        valid = DOCUMENT.body_valid(case, probe.body) and DOCUMENT.values_valid(case, "header", probe.headers)
        # When the product answers it
        response = _call(flex, case)
        # Then both accept it
        assert valid, f"the document calls {probe.body} {probe.headers or ''} invalid"
        assert response.status_code != 400, f"the product answers {response.status_code} {response.content[:200]!r}"


class TestFuzzAgentAuthNone:
    """``AGENT_AUTH=none``, our limits low, an origin allow-list, a country allow-list."""

    def test_happy_path(self, none: FuzzStack) -> None:
        _happy_path(none, None)

    @schema.parametrize()
    def test_operation(self, case: Case, none: FuzzStack) -> None:
        _call(none, case, record="none")

    def test_fuzzing_reached_the_product(self) -> None:
        _assert_reached(
            "none",
            {
                # (random numbers are almost never real ones: the country allow-list is proven by the handler tests)
                "POST /start-verify": {(429, "rate_limited")},
                "POST /check-verify": {(404, "verification_not_found")},  # lockouts: the handler and model tests
                "POST /cancel-verify": {(200, None)},
                "GET /customer-info": {(403, "agent_auth_required")},
                "POST /customer-info": {(403, "agent_auth_required")},
            },
        )

"""Properties (a): whatever arrives, the answer is the contract's (tests/unit/properties_helpers.py)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from callerauth.fields import ALIASES
from hypothesis import given
from hypothesis import strategies as st

from tests.support import TO
from tests.unit.properties_helpers import AGENT_TOKEN, CONTRACT_CODES, E164, ROUTES, answer

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

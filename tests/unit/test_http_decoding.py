"""serve() decodes what API Gateway delivers: forms, JSON, base64, query strings, aliases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.http_helpers import FORM, assert_error, b64, call, event, fields_of

# ------------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize(
    "content_type", [FORM, f"{FORM};charset=UTF-8", f"{FORM}; charset=utf-8", "Application/X-WWW-Form-URLEncoded", None]
)
def test_form_body_is_decoded_with_or_without_charset(content_type: str | None) -> None:
    # Given the plugin's own encoding of a start request (URLSearchParams)
    evt = event(body="to=%2B12025550100&channel=sms", content_type=content_type)

    # When / Then
    assert fields_of(evt) == {"to": "+12025550100", "channel": "sms"}


def test_form_body_in_latin_1_is_decoded_with_its_charset() -> None:
    # Given a form body whose percent-escapes are Latin-1 bytes, as the charset says
    evt = event(body="to=jos%E9%40example.com&channel=email", content_type=f"{FORM}; charset=ISO-8859-1")

    # When / Then: %E9 is é, not an invalid UTF-8 byte
    assert fields_of(evt) == {"to": "josé@example.com", "channel": "email"}


def test_raw_latin_1_bytes_in_a_base64_body_are_decoded_with_its_charset() -> None:
    # Given raw (unescaped) Latin-1 bytes, delivered by API Gateway as base64
    evt = event(
        body=b64("locale=en&to=josé@example.com".encode("latin-1")),
        is_base64=True,
        content_type=f"{FORM};charset=latin-1",
    )

    # When / Then
    assert fields_of(evt)["to"] == "josé@example.com"


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/problem+json", None]
)
def test_json_object_body_is_decoded(content_type: str | None) -> None:
    # Given a JSON object (without Content-Type, a body starting with "{" is taken for JSON)
    evt = event(body=json.dumps({"to": "+12025550100", "verification_code": "123456"}), content_type=content_type)

    # When / Then
    assert fields_of(evt) == {"to": "+12025550100", "verification_code": "123456"}


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"to=%2B12025550100&code=123456", FORM),
        (b'{"to": "+12025550100", "code": "123456"}', "application/json"),
    ],
)
def test_base64_encoded_bodies_are_decoded_first(raw: bytes, content_type: str) -> None:
    # Given a body API Gateway marked isBase64Encoded
    evt = event(body=b64(raw), is_base64=True, content_type=content_type)

    # When / Then
    assert fields_of(evt) == {"to": "+12025550100", "verification_code": "123456"}


def test_get_reads_the_query_string_and_ignores_any_body() -> None:
    # Given a GET with the fields in the query string and something else in a body
    evt = event(method="GET", query={"To": "+12025550100", "taskSid": "WT" + "0" * 32}, body="to=%2B19999999999")

    # When / Then
    assert fields_of(evt) == {"to": "+12025550100", "task_sid": "WT" + "0" * 32}


def test_get_reads_repeated_query_parameters_and_refuses_conflicting_ones() -> None:
    # Given the same field twice in a query string: once agreeing, once not
    agreeing = event(method="GET", query={"to": "+12025550100"}, multi_query={"to": ["+12025550100", "+12025550100"]})
    conflicting = event(
        method="GET", query={"to": "+12025550101"}, multi_query={"to": ["+12025550100", "+12025550101"]}
    )

    # When
    agreed = fields_of(agreeing)
    status, _, body = call(conflicting)

    # Then
    assert agreed == {"to": "+12025550100"}
    assert_error(status, body, 400, "invalid_parameter")


def test_get_without_a_query_string_has_no_fields() -> None:
    # Given / When / Then
    assert fields_of(event(method="GET")) == {}


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("to", "to"),
        ("To", "to"),
        ("verification_code", "verification_code"),
        ("code", "verification_code"),
        ("Code", "verification_code"),
        ("channel", "channel"),
        ("locale", "locale"),
        ("Token", "token"),
        ("taskSid", "task_sid"),
        ("TaskSid", "task_sid"),
        ("task_sid", "task_sid"),
    ],
)
def test_every_alias_lands_on_its_canonical_field(alias: str, canonical: str) -> None:
    # Given a field under one of its contract names
    evt = event(body=f"{alias}=value-1")

    # When / Then
    assert fields_of(evt) == {canonical: "value-1"}


def test_the_token_comes_from_the_field_or_else_the_x_flex_token_header() -> None:
    # Given a token only in the header (any case), and one in both places
    header_only = event(body="to=1", headers={"x-FLEX-token": "header-token"})
    both = event(body="Token=field-token", headers={"X-Flex-Token": "header-token"})

    # When
    _, _, from_header = call(header_only)
    _, _, from_field = call(both)

    # Then
    assert from_header["token"] == "header-token"
    assert from_field["token"] == "field-token"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("to=%2B12025550100&To=%2B12025550101", FORM),
        ("code=123456&Code=654321", FORM),
        ("taskSid=a&task_sid=b", FORM),
        ('{"to": "+12025550100", "to": "+12025550101"}', "application/json"),
        ('{"verification_code": "1234", "code": "4321"}', "application/json"),
    ],
)
def test_conflicting_repeats_of_a_field_are_refused(body: str, content_type: str) -> None:
    # Given / When
    status, headers, answer = call(event(body=body, content_type=content_type))

    # Then
    assert_error(status, answer, 400, "invalid_parameter")
    assert "more than once" in answer["message"]
    assert "+12025550101" not in answer["message"]
    assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("to=%2B12025550100&To=%2B12025550100", FORM),
        ('{"to": "+12025550100", "To": "+12025550100"}', "application/json"),
    ],
)
def test_identical_repeats_are_accepted(body: str, content_type: str) -> None:
    # Given / When / Then
    assert fields_of(event(body=body, content_type=content_type)) == {"to": "+12025550100"}


def test_unknown_fields_are_ignored_whatever_their_type() -> None:
    # Given unknown fields next to a known one, including non-string JSON values
    evt = event(
        body=json.dumps(
            {"to": "+12025550100", "TO": "x", "extra": [1, {"a": None}], "n": 3.5, "flag": True, "nothing": None}
        ),
        content_type="application/json",
    )

    # When / Then
    assert fields_of(evt) == {"to": "+12025550100"}


@pytest.mark.parametrize("value", [12025550100, 1.5, True, None, ["+12025550100"], {"number": "+1555"}])
def test_a_known_field_with_a_non_string_json_value_is_refused(value: Any) -> None:
    # Given
    evt = event(body=json.dumps({"to": value}), content_type="application/json")

    # When
    status, _, body = call(evt)

    # Then
    assert_error(status, body, 400, "invalid_parameter")
    assert "'to'" in body["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "is_base64"),
    [
        (None, FORM, False),
        ("", FORM, False),
        ("", "application/json", False),
        ("", None, False),
        ("", FORM, True),
    ],
)
def test_an_empty_body_has_no_fields(body: str | None, content_type: str | None, is_base64: bool) -> None:
    # Given / When / Then: the action decides what is missing, not the decoder
    assert fields_of(event(body=body, content_type=content_type, is_base64=is_base64)) == {}

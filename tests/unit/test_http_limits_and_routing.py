"""serve() limits what it reads (sizes, fields) and routes by resource and method."""

from __future__ import annotations

import pytest
from callerauth.http import serve

from tests.unit.http_helpers import (
    CORS_HEADERS,
    CORS_METHODS,
    FORM,
    ROUTES,
    FakeRuntime,
    assert_error,
    b64,
    call,
    event,
)

# ------------------------------------------------------------------------------------------ limits


def padded_form(size: int, filler: str = "a") -> str:
    prefix = "to=%2B12025550100&pad="
    return prefix + filler * ((size - len(prefix.encode())) // len(filler.encode()))


def test_a_body_of_exactly_8_kib_is_accepted_and_one_byte_more_is_refused_with_413() -> None:
    # Given bodies of 8192 and 8193 bytes
    at_limit, over_limit = padded_form(8192), padded_form(8193)
    assert (len(at_limit.encode()), len(over_limit.encode())) == (8192, 8193)

    # When
    status_ok, _, _ = call(event(body=at_limit))
    status_big, headers, body = call(event(body=over_limit))

    # Then
    assert status_ok == 200
    assert_error(status_big, body, 413, "body_too_large")
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_the_8_kib_limit_counts_bytes_not_characters() -> None:
    # Given 4100 two-byte characters: under 8192 characters, over 8192 bytes
    body = padded_form(8200, filler="é")
    assert len(body) < 8192 < len(body.encode())

    # When
    status, _, answer = call(event(body=body))

    # Then
    assert_error(status, answer, 413, "body_too_large")


def test_the_8_kib_limit_applies_to_the_decoded_base64_body() -> None:
    # Given base64 bodies decoding to 8192 and 8193 bytes
    at_limit, over_limit = padded_form(8192).encode(), padded_form(8193).encode()

    # When
    status_ok, _, _ = call(event(body=b64(at_limit), is_base64=True))
    status_big, _, body = call(event(body=b64(over_limit), is_base64=True))

    # Then
    assert status_ok == 200
    assert_error(status_big, body, 413, "body_too_large")


def test_a_huge_body_is_refused_with_413_before_any_decoding() -> None:
    # Given 100 KiB of something that is not even valid base64
    evt = event(body="!" * 100_000, is_base64=True)

    # When
    status, _, body = call(evt)

    # Then
    assert_error(status, body, 413, "body_too_large")


@pytest.mark.parametrize(
    ("body", "content_type", "is_base64"),
    [
        ("to=%ZZ", FORM, False),
        ("to=%", FORM, False),
        ("to=%4", FORM, False),
        ("to=100%", FORM, False),
        ("to=%FF", FORM, False),  # a percent-escape that is not UTF-8
        (b64(b"to=\xff\xfe"), FORM, True),  # raw bytes that are not UTF-8
        ("to=\udcff", FORM, False),  # a lone surrogate smuggled into the event's body string
        (b64(b'{"to": "\xff"}'), "application/json", True),
        ("not base64!", FORM, True),
        ("dG89MQ", FORM, True),  # missing padding
        ("{", "application/json", False),
        ('{"to": }', "application/json", False),
        ("[1, 2]", "application/json", False),
        ('"to"', "application/json", False),
        ("42", "application/json", False),
        ("null", "application/json", False),
        ("[" * 5000, "application/json", False),
        ("to=1", "text/plain", False),
        ("to=1", "multipart/form-data; boundary=x", False),
        ("to=1", f"{FORM}; charset=no-such-charset", False),
        ("to=1", f"{FORM}; charset=base64", False),
    ],
)
def test_undecodable_bodies_answer_400_malformed_body(body: str, content_type: str, is_base64: bool) -> None:
    # Given / When
    status, headers, answer = call(event(body=body, content_type=content_type, is_base64=is_base64))

    # Then
    assert_error(status, answer, 400, "malformed_body")
    assert headers["Content-Type"] == "application/json"
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_a_malformed_body_never_reaches_the_action_or_builds_the_services() -> None:
    # Given
    runtime = FakeRuntime()

    # When
    status, _, _ = call(event(path="/boom", body="to=%ZZ"), runtime)

    # Then
    assert status == 400
    assert runtime.services_built == 0


# ------------------------------------------------------------------------------------------ routing


def test_an_unknown_path_answers_404_not_found_with_cors() -> None:
    # Given / When
    status, headers, body = call(event(path="/nowhere", body="to=1"))

    # Then
    assert_error(status, body, 404, "not_found")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == CORS_METHODS


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
def test_a_wrong_method_on_a_known_path_answers_405_with_allow(method: str) -> None:
    # Given / When
    status, headers, body = call(event(method=method, path="/post-only"))

    # Then
    assert_error(status, body, 405, "method_not_allowed")
    assert method not in {m.strip() for m in headers["Allow"].split(",")}
    assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("path", "allowed"), [("/post-only", {"POST", "OPTIONS"}), ("/echo", {"GET", "POST", "OPTIONS"})]
)
def test_the_allow_header_of_a_405_lists_only_the_paths_own_methods(path: str, allowed: set[str]) -> None:
    # Given a path and the methods it takes
    # When it is asked with DELETE
    status, headers, _ = call(event(method="DELETE", path=path))

    # Then (RFC 9110 15.5.6: the target resource's methods)
    assert status == 405
    assert {m.strip() for m in headers["Allow"].split(",")} == allowed


@pytest.mark.parametrize("path", ["/echo", "/post-only", "/boom"])
def test_options_on_every_path_answers_the_preflight_with_204(path: str) -> None:
    # Given a browser preflight
    runtime = FakeRuntime()
    evt = event(
        method="OPTIONS",
        path=path,
        content_type=None,
        headers={"Origin": "https://flex.twilio.com", "Access-Control-Request-Method": "POST"},
    )

    # When
    answer = serve(evt, None, ROUTES, runtime)

    # Then
    assert answer["statusCode"] == 204
    assert answer["body"] == ""
    assert answer["headers"]["Access-Control-Allow-Origin"] == "*"
    assert answer["headers"]["Access-Control-Allow-Methods"] == CORS_METHODS
    assert answer["headers"]["Access-Control-Allow-Headers"] == CORS_HEADERS
    assert runtime.services_built == 0


def test_the_request_carries_the_request_id_and_source_ip() -> None:
    # Given / When
    _, _, body = call(event(body="to=1"))

    # Then
    assert body["requestId"] == "req-7f3a"
    assert body["sourceIp"] == "198.51.100.23"

"""serve(): decoding, routing, CORS and the one error shape (layers/core/callerauth/http.py)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from callerauth import errors
from callerauth.config import ConfigError, Settings
from callerauth.http import Reply, Request, serve

from devserver.events import rest_proxy_event

FAKE_NUMBER = "+12025550199"
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Content-Type, X-Flex-Token"
FORM = "application/x-www-form-urlencoded"


def echo(request: Request, services: Any) -> Reply:
    return Reply(
        200,
        {
            "success": True,
            "fields": request.fields,
            "token": request.token,
            "sourceIp": request.source_ip,
            "requestId": request.request_id,
        },
    )


def boom(request: Request, services: Any) -> Reply:
    raise RuntimeError(services.secret_message)


def refuse(request: Request, services: Any) -> Reply:
    raise services.refusal


ROUTES = {
    "/echo": {"POST": echo, "GET": echo},
    "/post-only": {"POST": echo},
    "/boom": {"POST": boom},
    "/refuse": {"POST": refuse},
}


@dataclass
class FakeRuntime:
    """A container whose settings (or their failure) and services the test chooses."""

    allowed_origins: tuple[str, ...] = ("*",)
    settings_failure: Exception | None = None
    services_failure: Exception | None = None
    services_value: Any = field(
        default_factory=lambda: SimpleNamespace(
            secret_message=f"customer {FAKE_NUMBER} not found at https://api.example/{FAKE_NUMBER}",
            refusal=errors.rate_limited("Slow down.", 42),
        )
    )
    services_built: int = 0

    def settings(self) -> Settings:
        if self.settings_failure is not None:
            raise self.settings_failure
        return Settings(state_table="state", customers_table="customers", allowed_origins=self.allowed_origins)

    def services(self) -> Any:
        self.services_built += 1
        if self.services_failure is not None:
            raise self.services_failure
        return self.services_value


def event(
    method: str = "POST",
    path: str = "/echo",
    body: str | None = None,
    content_type: str | None = FORM,
    headers: dict[str, str] | None = None,
    is_base64: bool = False,
    query: dict[str, str] | None = None,
    multi_query: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    evt = rest_proxy_event(method, path, headers=all_headers, body=body, is_base64=is_base64, source_ip="198.51.100.23")
    # The query maps exactly as given: these tests also send the two disagreeing, or only one of them.
    return {**evt, "queryStringParameters": query, "multiValueQueryStringParameters": multi_query}


def call(evt: dict[str, Any], runtime: FakeRuntime | None = None) -> tuple[int, dict[str, str], Any]:
    answer = serve(evt, SimpleNamespace(aws_request_id="req-7f3a"), ROUTES, runtime or FakeRuntime())
    body = json.loads(answer["body"]) if answer["body"] else None
    return answer["statusCode"], answer["headers"], body


def fields_of(evt: dict[str, Any]) -> dict[str, str]:
    status, _, body = call(evt)
    assert status == 200, body
    return body["fields"]


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["message"] == body["error"]["message"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


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


# ------------------------------------------------------------------------------------------ CORS


def test_cors_default_allows_every_origin() -> None:
    # Given / When
    _, headers, _ = call(event(body="to=1", headers={"Origin": "https://anywhere.example"}))

    # Then
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == CORS_METHODS
    assert headers["Access-Control-Allow-Headers"] == CORS_HEADERS
    assert headers["Content-Type"] == "application/json"
    assert "Vary" not in headers


def test_cors_allow_list_echoes_a_listed_origin_with_vary() -> None:
    # Given an allow-list
    runtime = FakeRuntime(allowed_origins=("https://flex.twilio.com", "https://admin.example"))

    # When
    _, headers, _ = call(event(body="to=1", headers={"origin": "https://admin.example"}), runtime)

    # Then
    assert headers["Access-Control-Allow-Origin"] == "https://admin.example"
    assert headers["Vary"] == "Origin"


@pytest.mark.parametrize("origin", ["https://evil.example", "https://flex.twilio.com.evil.example", None])
def test_cors_allow_list_gives_an_unlisted_origin_no_allow_origin(origin: str | None) -> None:
    # Given an allow-list, and a request from elsewhere (or with no Origin at all)
    runtime = FakeRuntime(allowed_origins=("https://flex.twilio.com",))
    headers_in = {"Origin": origin} if origin else {}

    # When: a success and an error
    _, ok_headers, _ = call(event(body="to=1", headers=headers_in), runtime)
    status, err_headers, _ = call(event(path="/nowhere", headers=headers_in), runtime)

    # Then
    assert status == 404
    for headers in (ok_headers, err_headers):
        assert "Access-Control-Allow-Origin" not in headers
        assert headers["Vary"] == "Origin"
        assert headers["Access-Control-Allow-Methods"] == CORS_METHODS


# ------------------------------------------------------------------------------------------ failures


def test_an_action_raising_a_plain_exception_answers_500_and_leaks_nothing(
    log_lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an action whose exception message carries a phone number and a URL
    runtime = FakeRuntime()

    # When
    status, headers, body = call(event(path="/boom", body="to=%2B12025550100"), runtime)

    # Then: one shape, one sentence, CORS, and no number anywhere
    assert status == 500
    assert body == {
        "success": False,
        "message": "Internal error.",
        "error": {"code": "internal_error", "message": "Internal error."},
    }
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert log_lines, "the failure must be logged"
    printed = capsys.readouterr()  # anything else written (metrics, stray prints)
    for text in [json.dumps(body), *log_lines, printed.out, printed.err]:
        assert FAKE_NUMBER not in text
        assert FAKE_NUMBER[2:] not in text
        assert "api.example" not in text
    error_lines = [json.loads(line) for line in log_lines if json.loads(line)["level"] == "ERROR"]
    assert len(error_lines) == 1
    assert error_lines[0]["request_id"] == "req-7f3a"
    assert error_lines[0]["exception"] == "RuntimeError"


def test_a_normal_request_logs_one_line_without_the_body(log_lines: list[str]) -> None:
    # Given / When
    status, _, _ = call(event(body="to=%2B12025550100&code=987654&Token=secret-token"))

    # Then
    assert status == 200
    records = [json.loads(line) for line in log_lines]
    assert [r["message"] for r in records] == ["request"]
    assert records[0]["status"] == 200
    assert records[0]["request_id"] == "req-7f3a"
    for text in log_lines:
        assert "2025550100" not in text
        assert "987654" not in text
        assert "secret-token" not in text


def test_retry_after_comes_from_the_api_errors_retry_after() -> None:
    # Given an action refusing with a 42 s wait
    # When
    status, headers, body = call(event(path="/refuse", body=""))

    # Then
    assert_error(status, body, 429, "rate_limited")
    assert headers["Retry-After"] == "42"


def test_an_error_without_retry_after_has_no_retry_after_header() -> None:
    # Given
    runtime = FakeRuntime()
    runtime.services_value.refusal = errors.incorrect_code()

    # When
    status, headers, body = call(event(path="/refuse", body=""), runtime)

    # Then
    assert_error(status, body, 401, "incorrect_code")
    assert body["error"]["moreInfo"].startswith("https://")
    assert "Retry-After" not in headers


@pytest.mark.parametrize(
    ("failure", "problem"),
    [
        pytest.param(
            {"settings_failure": ConfigError("STATE_TABLE and CUSTOMERS_TABLE must name the tables")},
            "STATE_TABLE",
            id="settings-that-cannot-be-parsed",
        ),
        pytest.param(
            {"services_failure": ConfigError("Twilio credentials are missing or placeholders")},
            "Twilio",
            id="placeholder-twilio-credentials",
        ),
        pytest.param({"settings_failure": KeyError("STATE_TABLE")}, "STATE_TABLE", id="settings-plain-exception"),
    ],
)
def test_a_configuration_error_answers_500_internal_error_with_cors(
    failure: dict[str, Exception], problem: str
) -> None:
    # Given a container whose settings (or services) fail to build
    runtime = FakeRuntime(**failure)  # type: ignore[arg-type]

    # When
    status, headers, body = call(event(body="to=1"), runtime)

    # Then the contract's 500, with CORS, and never the problem itself
    assert_error(status, body, 500, "internal_error")
    assert problem not in json.dumps(body)
    assert headers["Access-Control-Allow-Origin"] == "*"

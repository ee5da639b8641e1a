"""serve() answers CORS on every answer, and fails in the contract's shape."""

from __future__ import annotations

import json

import pytest
from callerauth.config import ConfigError
from callerauth.refusals import Refusal

from tests.unit.http_helpers import (
    CORS_HEADERS,
    CORS_METHODS,
    FAKE_NUMBER,
    FakeRuntime,
    assert_error,
    call,
    event,
)

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
    runtime.services_value.refusal = Refusal("incorrect_code")

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

"""The real Twilio adapter (callerauth.twilio_verify) against the local Twilio sandbox over loopback HTTP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from callerauth import errors, http
from callerauth.twilio_verify import TWILIO_WINDOW_SECONDS, Credentials, Sent, TwilioVerify, error_for
from werkzeug.wrappers import Response

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, EMAIL, SERVICE_SID, TO, FakeClock, free_port, refused, serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

RIGHT = Credentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID)
TIMEOUT = 2.0
DOCS = "https://www.twilio.com/docs/errors/"


@dataclass
class Live:
    sandbox: TwilioSandbox
    base_url: str
    clock: FakeClock

    def adapter(self, credentials: Callable[[], Credentials] = lambda: RIGHT, timeout: float = TIMEOUT) -> TwilioVerify:
        return TwilioVerify(credentials, self.base_url, timeout)

    def code_for(self, to: str) -> str:
        return str([m for m in self.sandbox.outbox if m["to"] == to][-1]["code"])


@pytest.fixture
def live() -> Iterator[Live]:
    clock = FakeClock()
    sandbox = TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, clock=clock, announce=lambda _: None)
    with serving(sandbox) as base_url:
        try:
            yield Live(sandbox, base_url, clock)
        finally:
            sandbox.set_mode("normal")  # wakes any request a "timeout" test left hanging


@pytest.fixture
def adapter(live: Live) -> TwilioVerify:
    return live.adapter()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# ---------------------------------------------------------------- happy path


def test_start_sends_a_code_and_answers_the_pending_verification(live: Live, adapter: TwilioVerify) -> None:
    # Given a sandbox with an empty outbox
    # When the adapter starts an SMS verification
    sent = adapter.start(TO, "sms", "en")
    # Then Twilio's pending verification comes back, and one code went out to that number
    assert isinstance(sent, Sent)
    assert sent.status == "pending"
    assert sent.channel == "sms"
    assert [(m["to"], m["channel"], m["verificationSid"]) for m in live.sandbox.outbox] == [(TO, "sms", sent.sid)]


def test_start_by_email(live: Live, adapter: TwilioVerify) -> None:
    # Given a sandbox
    # When the adapter starts an e-mail verification
    sent = adapter.start(EMAIL, "email", "fr")
    # Then the code goes to the address
    assert (sent.status, sent.channel) == ("pending", "email")
    assert live.sandbox.outbox[-1]["to"] == EMAIL


def test_check_answers_false_for_a_wrong_code_and_true_for_the_right_one(live: Live, adapter: TwilioVerify) -> None:
    # Given a code sent to a number
    adapter.start(TO, "sms", "en")
    code = live.code_for(TO)
    # When the adapter checks a wrong code, then the right one
    first = adapter.check(TO, wrong(code))
    second = adapter.check(TO, code)
    # Then the wrong one is refused and the right one approved
    assert first is False
    assert second is True


def test_a_check_after_approval_is_verification_not_found(live: Live, adapter: TwilioVerify) -> None:
    # Given a verification already approved
    adapter.start(TO, "sms", "en")
    code = live.code_for(TO)
    assert adapter.check(TO, code) is True
    # When the same code is checked again
    with refused() as caught:
        adapter.check(TO, code)
    # Then Twilio's 20404 is the contract's 404
    assert (caught.value.status, caught.value.code, caught.value.twilio_code) == (404, "verification_not_found", 20404)


def test_cancel_finds_the_verification_by_number_and_ends_it(live: Live, adapter: TwilioVerify) -> None:
    # Given a pending verification for a number whose "+" must be percent-encoded in the path
    adapter.start(TO, "sms", "en")
    code = live.code_for(TO)
    # When the adapter cancels it
    adapter.cancel(TO)
    # Then it is gone: its code no longer checks
    with refused() as caught:
        adapter.check(TO, code)
    assert caught.value.code == "verification_not_found"


def test_cancel_without_a_pending_verification_is_verification_not_found(adapter: TwilioVerify) -> None:
    # Given nothing pending for the number
    # When the adapter cancels
    with refused() as caught:
        adapter.cancel(TO)
    # Then it is the contract's 404
    assert (caught.value.status, caught.value.code) == (404, "verification_not_found")


def test_six_wrong_checks_lock_the_verification_with_twilio_60202(live: Live, adapter: TwilioVerify) -> None:
    # Given five wrong checks already made
    adapter.start(TO, "sms", "en")
    code = live.code_for(TO)
    assert [adapter.check(TO, wrong(code)) for _ in range(5)] == [False] * 5
    # When the right code is checked next
    with refused() as caught:
        adapter.check(TO, code)
    # Then Twilio's lockout is the contract's too_many_attempts, with Retry-After
    assert (caught.value.status, caught.value.code, caught.value.twilio_code) == (429, "too_many_attempts", 60202)
    assert caught.value.retry_after == TWILIO_WINDOW_SECONDS


# ---------------------------------------------------------------- Twilio errors through fail_next

ERROR_CASES = [
    # Twilio status, Twilio code, our status, our code, twilioCode, Retry-After, moreInfo
    pytest.param(400, 60200, 400, "invalid_parameter", 60200, None, DOCS + "60200", id="60200"),
    pytest.param(429, 60202, 429, "too_many_attempts", 60202, TWILIO_WINDOW_SECONDS, DOCS + "60202", id="60202"),
    pytest.param(429, 60203, 429, "max_send_attempts", 60203, TWILIO_WINDOW_SECONDS, DOCS + "60203", id="60203"),
    pytest.param(400, 60205, 403, "destination_blocked", 60205, None, DOCS + "60205", id="60205"),
    pytest.param(403, 60410, 403, "destination_blocked", 60410, None, DOCS + "60410", id="60410"),
    pytest.param(403, 60605, 403, "destination_blocked", 60605, None, DOCS + "60605", id="60605"),
    pytest.param(429, 60212, 429, "rate_limited", None, 5, None, id="60212"),
    pytest.param(404, 20404, 404, "verification_not_found", 20404, None, DOCS + "20404", id="20404"),
    pytest.param(429, 20429, 503, "upstream_unavailable", None, 1, None, id="20429"),
    pytest.param(500, None, 503, "upstream_unavailable", None, 5, None, id="500-no-code"),
    pytest.param(503, 20503, 503, "upstream_unavailable", None, 5, None, id="503-20503"),
    pytest.param(401, 20003, 502, "upstream_error", 20003, None, DOCS + "20003", id="401-20003"),
    pytest.param(400, 21211, 502, "upstream_error", 21211, None, DOCS + "21211", id="400-unknown-code"),
]

OPERATIONS: dict[str, Callable[[TwilioVerify], object]] = {
    "start": lambda adapter: adapter.start(TO, "sms", "en"),
    "check": lambda adapter: adapter.check(TO, "123456"),
    "cancel": lambda adapter: adapter.cancel(TO),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize(
    ("twilio_status", "twilio_code", "status", "code", "twilio_code_out", "retry_after", "more_info"), ERROR_CASES
)
def test_twilio_errors_are_mapped_to_the_contract(
    live: Live,
    adapter: TwilioVerify,
    operation: str,
    twilio_status: int,
    twilio_code: int | None,
    status: int,
    code: str,
    twilio_code_out: int | None,
    retry_after: int | None,
    more_info: str | None,
) -> None:
    # Given the sandbox answers the next Verify request with a Twilio error
    live.sandbox.fail_next(twilio_status, twilio_code)
    # When the adapter makes that request
    with refused() as caught:
        OPERATIONS[operation](adapter)
    # Then the error is the contract's
    error = caught.value
    assert (error.status, error.code) == (status, code)
    assert error.twilio_code == twilio_code_out
    assert error.retry_after == retry_after
    assert error.more_info == more_info
    assert error.body()["success"] is False


def test_an_injected_error_does_not_stick(live: Live, adapter: TwilioVerify) -> None:
    # Given one injected failure, already met
    live.sandbox.fail_next(429, 60203)
    with refused():
        adapter.start(TO, "sms", "en")
    # When the adapter tries again
    sent = adapter.start(TO, "sms", "en")
    # Then it goes through
    assert sent.status == "pending"


def test_a_twilio_4xx_without_an_error_code_reports_no_twilio_code(live: Live, adapter: TwilioVerify) -> None:
    # Given the sandbox answers an unexpected 4xx whose body has no Twilio error code
    live.sandbox.fail_next(418, None)
    # When the adapter starts a verification
    with refused() as caught:
        adapter.start(TO, "sms", "en")
    # Then it is an unexpected answer, with no invented Twilio code
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")
    assert caught.value.twilio_code is None
    assert "twilioCode" not in caught.value.body()["error"]


def problem_app(status: int, code: int) -> WSGIApplication:
    """An upstream answering every request with an RFC 9457 problem, as newer Twilio APIs do."""
    body = {"type": f"{DOCS}{code}", "title": "Problem", "status": status, "code": code, "detail": "injected"}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = Response(json.dumps(body), status=status, content_type="application/problem+json")
        return response(environ, start_response)

    return app


@pytest.mark.parametrize(
    ("status", "code", "expected_status", "expected_code"),
    [
        pytest.param(429, 60203, 429, "max_send_attempts", id="60203"),
        pytest.param(503, 20503, 503, "upstream_unavailable", id="503"),
    ],
)
def test_a_twilio_error_in_rfc_9457_shape_is_mapped_like_a_legacy_one(
    status: int, code: int, expected_status: int, expected_code: str
) -> None:
    # Given an upstream that answers Twilio errors as RFC 9457 problems
    with serving(problem_app(status, code)) as base_url:
        adapter = TwilioVerify(lambda: RIGHT, base_url, TIMEOUT)
        # When the adapter starts a verification
        with refused() as caught:
            adapter.start(TO, "sms", "en")
    # Then the error is mapped by its Twilio code, as the legacy shape is
    assert (caught.value.status, caught.value.code) == (expected_status, expected_code)


# ---------------------------------------------------------------- transport failures


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_an_answer_that_is_not_json_is_upstream_error(live: Live, adapter: TwilioVerify, operation: str) -> None:
    # Given the sandbox answers 200 with a body that is not JSON
    live.sandbox.set_mode("malformed")
    # When the adapter makes a request
    with refused() as caught:
        OPERATIONS[operation](adapter)
    # Then it is an unexpected answer
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")


def json_app(body: str) -> WSGIApplication:
    """An upstream answering every request 201 with this JSON body."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return Response(body, status=201, content_type="application/json")(environ, start_response)

    return app


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{}", id="object-without-status"),
        pytest.param('{"status": 7}', id="status-not-a-string"),
        pytest.param("[]", id="array"),
        pytest.param("null", id="null"),
    ],
)
def test_a_json_answer_that_is_not_a_verification_is_upstream_error(body: str) -> None:
    # Given an upstream that answers 201 with JSON that is not a verification
    with serving(json_app(body)) as base_url:
        adapter = TwilioVerify(lambda: RIGHT, base_url, TIMEOUT)
        # When the adapter starts a verification
        with refused() as caught:
            adapter.start(TO, "sms", "en")
    # Then it is an unexpected answer, not a crash
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")


def test_a_hanging_twilio_is_upstream_unavailable_within_the_adapter_timeout(live: Live) -> None:
    # Given a sandbox whose Verify requests hang (for 5 s at most, restored at teardown)
    live.sandbox.timeout_seconds = 5.0
    live.sandbox.set_mode("timeout")
    adapter = live.adapter(timeout=0.5)
    started = time.monotonic()
    # When the adapter starts a verification
    with refused() as caught:
        adapter.start(TO, "sms", "en")
    elapsed = time.monotonic() - started
    # Then it gives up after its own timeout, as the contract's 503 with Retry-After
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    assert 0.4 <= elapsed < 2.5
    assert live.sandbox.outbox == []


def test_nothing_listening_is_upstream_unavailable() -> None:
    # Given a port nothing listens on
    adapter = TwilioVerify(lambda: RIGHT, f"http://127.0.0.1:{free_port()}", TIMEOUT)
    started = time.monotonic()
    # When the adapter starts a verification
    with refused() as caught:
        adapter.start(TO, "sms", "en")
    # Then it is the contract's 503, at once
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")
    assert time.monotonic() - started < TIMEOUT


# ---------------------------------------------------------------- credentials


def test_credentials_are_read_on_every_call_and_a_change_rebuilds_the_client(live: Live) -> None:
    # Given a credentials provider that a rotation can change, serving the right ones first
    current = {"credentials": RIGHT}
    calls: list[Credentials] = []

    def provider() -> Credentials:
        calls.append(current["credentials"])
        return current["credentials"]

    adapter = live.adapter(provider)
    assert adapter.start(TO, "sms", "en").status == "pending"
    # When the provider starts answering a wrong auth token
    current["credentials"] = Credentials(ACCOUNT_SID, "rotated-away", SERVICE_SID)
    with refused() as caught:
        adapter.start(TO, "sms", "en")
    # Then the adapter used it at once (Twilio's 401 20003 is an unexpected answer) ...
    assert (caught.value.status, caught.value.code, caught.value.twilio_code) == (502, "upstream_error", 20003)
    # ... and the right ones again as soon as the provider does
    current["credentials"] = RIGHT
    assert adapter.start(TO, "sms", "en").status == "pending"
    assert len(calls) == 3


def test_a_new_service_sid_is_used_at_once(live: Live) -> None:
    # Given a provider whose Verify service changes to one the sandbox does not know
    current = {"credentials": RIGHT}
    adapter = live.adapter(lambda: current["credentials"])
    adapter.start(TO, "sms", "en")
    current["credentials"] = Credentials(ACCOUNT_SID, AUTH_TOKEN, "VA" + "0" * 32)
    # When the adapter checks
    with refused() as caught:
        adapter.check(TO, "123456")
    # Then the request went to the new service (Twilio: 20404 for an unknown service)
    assert caught.value.twilio_code == 20404


# ---------------------------------------------------------------- no number or code in the logs


def test_the_client_logs_neither_the_number_nor_the_code_even_at_debug(
    live: Live, adapter: TwilioVerify, caplog: pytest.LogCaptureFixture
) -> None:
    # Given every logger captured at DEBUG
    caplog.set_level(logging.DEBUG)
    # When the adapter sends a code, checks it, sends again and cancels (the number is in cancel's URL)
    adapter.start(TO, "sms", "en")
    code = live.code_for(TO)
    assert adapter.check(TO, code) is True
    adapter.start(TO, "sms", "en")
    adapter.cancel(TO)
    # Then the capture saw the traffic (the sandbox's own access log) but no client-side line has the number or code
    assert any(record.name.startswith("werkzeug") for record in caplog.records)
    client_side = [record for record in caplog.records if not record.name.startswith("werkzeug")]
    logged = "\n".join(f"{record.getMessage()} {record.args!r}" for record in client_side)
    for secret in (TO, TO[1:], "%2B" + TO[1:], code):
        assert secret not in logged


def test_cancel_logs_no_number_at_info(adapter: TwilioVerify, caplog: pytest.LogCaptureFixture) -> None:
    # Given a pending verification and every logger captured at INFO (the number is in cancel's URL)
    adapter.start(TO, "sms", "en")
    caplog.set_level(logging.INFO)
    # When the adapter cancels it
    adapter.cancel(TO)
    # Then no client-side log line carries the number (the sandbox's own access log, werkzeug's, is not ours)
    assert any(record.name.startswith("werkzeug") for record in caplog.records)
    logged = "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith("werkzeug"))
    for secret in (TO, TO[1:], "%2B" + TO[1:]):
        assert secret not in logged


# ---------------------------------------------------------------- error_for, as a table

ERROR_FOR_TABLE = [
    # Twilio status, Twilio code, our status, our code, twilioCode, Retry-After header
    (400, 60200, 400, "invalid_parameter", 60200, None),
    (429, 60202, 429, "too_many_attempts", 60202, str(TWILIO_WINDOW_SECONDS)),
    (429, 60203, 429, "max_send_attempts", 60203, str(TWILIO_WINDOW_SECONDS)),
    (400, 60205, 403, "destination_blocked", 60205, None),
    (403, 60410, 403, "destination_blocked", 60410, None),
    (403, 60605, 403, "destination_blocked", 60605, None),
    (429, 60212, 429, "rate_limited", None, "5"),
    (404, 20404, 404, "verification_not_found", 20404, None),
    (429, 20429, 503, "upstream_unavailable", None, "1"),
    (500, None, 503, "upstream_unavailable", None, "5"),
    (502, None, 503, "upstream_unavailable", None, "5"),
    (503, 20503, 503, "upstream_unavailable", None, "5"),
    (401, 20003, 502, "upstream_error", 20003, None),
    (400, 21608, 502, "upstream_error", 21608, None),
    (400, None, 502, "upstream_error", None, None),
]


def encoded(error: errors.ApiError) -> dict[str, Any]:
    """The API Gateway answer the shared HTTP layer makes of an action raising ``error``."""

    def action(request: http.Request, services: Any) -> http.Reply:
        raise error

    runtime = SimpleNamespace(settings=lambda: SimpleNamespace(allowed_origins=("*",)), services=lambda: None)
    event = {"httpMethod": "POST", "resource": "/start-verify", "path": "/start-verify", "headers": {}, "body": ""}
    return http.serve(event, None, {"/start-verify": {"POST": action}}, runtime)


@pytest.mark.parametrize(
    ("twilio_status", "twilio_code", "status", "code", "twilio_code_out", "retry_after"), ERROR_FOR_TABLE
)
def test_error_for(
    twilio_status: int,
    twilio_code: int | None,
    status: int,
    code: str,
    twilio_code_out: int | None,
    retry_after: str | None,
) -> None:
    # Given Twilio's answer
    # When it is mapped and answered
    error = errors.api_error(error_for(twilio_status, twilio_code))
    answer = encoded(error)
    body = json.loads(answer["body"])
    # Then status, code, twilioCode and Retry-After are the contract's, in the one error shape
    assert (error.status, error.code) == (status, code)
    assert answer["statusCode"] == status
    assert answer["headers"].get("Retry-After") == retry_after
    assert body["success"] is False
    assert body["message"] == body["error"]["message"] == error.message
    assert isinstance(error.message, str) and error.message
    assert body["error"]["code"] == code
    assert body["error"].get("twilioCode") == twilio_code_out
    if twilio_code_out is not None:
        assert body["error"]["moreInfo"] == f"{DOCS}{twilio_code_out}"
    assert set(body) == {"success", "message", "error"}

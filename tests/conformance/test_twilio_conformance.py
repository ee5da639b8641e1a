"""The backend's real Twilio adapter against Prism serving Twilio's published Verify v2 OpenAPI description.

Prism runs with ``--errors``: a request that violates Twilio's schema (a missing required field, a value outside
an enum, a path parameter that breaks its pattern, no Basic auth) is answered 4xx instead of an example. The
adapter turns any such answer into an ApiError, so "no ApiError" means every request it sent conformed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import requests
from callerauth.twilio_verify import Credentials, Sent, TwilioVerify

from tests.support import ACCOUNT_SID, EMAIL, SERVICE_SID, TO, refused

if TYPE_CHECKING:
    from tests.conformance.conftest import Prism

pytestmark = pytest.mark.prism

AUTH_TOKEN = "conformance-auth-token"
TIMEOUT = 10.0


def credentials(service_sid: str = SERVICE_SID) -> Callable[[], Credentials]:
    return lambda: Credentials(ACCOUNT_SID, AUTH_TOKEN, service_sid)


@pytest.fixture
def adapter(prism: Prism) -> TwilioVerify:
    return TwilioVerify(credentials(), prism.base_url, TIMEOUT)


def assert_sent(sent: Sent) -> None:
    assert isinstance(sent, Sent)
    assert isinstance(sent.sid, str) and re.fullmatch(r"VE[0-9a-fA-F]{32}", sent.sid)
    assert isinstance(sent.status, str) and sent.status
    assert isinstance(sent.channel, str) and sent.channel


# ---------------------------------------------------------------- the adapter's requests conform


@pytest.mark.parametrize(("to", "channel", "locale"), [(TO, "sms", "en"), (EMAIL, "email", "en"), (TO, "call", "fr")])
def test_start_sends_a_request_that_twilio_schema_accepts(
    adapter: TwilioVerify, to: str, channel: str, locale: str
) -> None:
    # Given the adapter pointed at Prism
    # When it starts a verification
    sent = adapter.start(to, channel, locale)
    # Then Prism validated the request and answered a verification, which the adapter read
    assert_sent(sent)


def test_check_sends_a_request_that_twilio_schema_accepts(adapter: TwilioVerify) -> None:
    # Given the adapter pointed at Prism
    # When it checks a code
    approved = adapter.check(TO, "123456")
    # Then Prism accepted the request and the adapter answered a bool (Prism's example decides which one)
    assert isinstance(approved, bool)


def test_cancel_sends_a_request_that_twilio_schema_accepts_with_the_number_encoded_in_the_path(
    adapter: TwilioVerify, prism: Prism
) -> None:
    # Given the adapter pointed at Prism, and Prism's log so far
    logged_before = len(prism.log_text())
    # When it cancels the pending verification of a number
    adapter.cancel(TO)
    # Then Prism accepted the request (no ApiError) ...
    # ... which went to the path with the "+" percent-encoded, as Twilio expects it
    logged = prism.log_text()[logged_before:]
    assert f"/v2/Services/{SERVICE_SID}/Verifications/%2B12025550100" in logged


def test_start_then_check_then_cancel_in_sequence(adapter: TwilioVerify) -> None:
    # Given the adapter pointed at Prism
    # When it runs the whole flow on one client
    sent = adapter.start(TO, "sms", "en")
    approved = adapter.check(TO, "654321")
    adapter.cancel(TO)
    # Then every step conformed
    assert_sent(sent)
    assert isinstance(approved, bool)


# ---------------------------------------------------------------- negative controls: the check can fail


VERIFICATIONS = f"/v2/Services/{SERVICE_SID}/Verifications"


@pytest.mark.parametrize(
    ("path", "form", "auth", "status"),
    [
        pytest.param(VERIFICATIONS, {"Channel": "sms"}, True, 422, id="start-without-To"),
        pytest.param(VERIFICATIONS, {"To": TO}, True, 422, id="start-without-Channel"),
        pytest.param(f"{VERIFICATIONS}/%2B12025550100", {"Status": "paused"}, True, 422, id="status-not-in-enum"),
        pytest.param(f"{VERIFICATIONS}/%2B12025550100", {"Code": "123456"}, True, 422, id="update-without-Status"),
        pytest.param(
            "/v2/Services/VAnot-a-sid/Verifications",
            {"To": TO, "Channel": "sms"},
            True,
            422,
            id="service-sid-breaks-pattern",
        ),
        pytest.param(VERIFICATIONS, {"To": TO, "Channel": "sms"}, False, 401, id="no-basic-auth"),
    ],
)
def test_prism_refuses_a_request_that_violates_twilio_schema(
    prism: Prism, path: str, form: dict[str, str], auth: bool, status: int
) -> None:
    # Given a raw request that breaks Twilio's published schema
    credentials = (ACCOUNT_SID, AUTH_TOKEN) if auth else None
    # When it is sent to Prism
    response = requests.post(prism.base_url + path, data=form, auth=credentials, timeout=TIMEOUT)
    # Then Prism answers its validation error, not an example
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "sid" not in response.json()


def test_a_conforming_raw_request_is_answered_with_an_example(prism: Prism) -> None:
    # Given the same raw request as the negative controls, but valid
    form = {"To": TO, "Channel": "sms"}
    # When it is sent to Prism
    response = requests.post(prism.base_url + VERIFICATIONS, data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=TIMEOUT)
    # Then Prism answers the spec's example (so the 4xx above come from the violations alone)
    assert response.status_code == 201
    assert response.json()["status"] == "pending"


def test_the_adapter_reports_prism_validation_errors_as_api_errors(prism: Prism) -> None:
    # Given the adapter with a service SID that breaks Twilio's ^VA[0-9a-fA-F]{32}$ pattern
    adapter = TwilioVerify(credentials("VA-not-a-service-sid"), prism.base_url, TIMEOUT)
    # When it starts a verification
    with refused() as caught:
        adapter.start(TO, "sms", "en")
    # Then Prism's 422 surfaces as an unexpected upstream answer: a non-conforming request cannot pass silently
    assert caught.value.status == 502
    assert caught.value.code == "upstream_error"

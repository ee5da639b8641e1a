"""The backend's real Lookup adapter against Prism serving Twilio's published Lookup v2 OpenAPI description.

Prism runs with ``--errors``: a request that breaks Twilio's schema is answered 4xx instead of an example, and
the adapter turns any such answer into a Refusal; so "signals, no Refusal" means the request conformed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests
from callerauth.config import LOOKUP_FIELDS
from callerauth.lookup import Signals, TwilioLookup
from callerauth.twilio_verify import Credentials

from tests.support import ACCOUNT_SID, SERVICE_SID, TO, refused

if TYPE_CHECKING:
    from tests.conformance.conftest import Prism

pytestmark = pytest.mark.prism

AUTH_TOKEN = "conformance-auth-token"
TIMEOUT = 10.0
NOW = 1_900_800_000


def adapter(prism: Prism, auth_token: str = AUTH_TOKEN) -> TwilioLookup:
    return TwilioLookup(lambda: Credentials(ACCOUNT_SID, auth_token, SERVICE_SID), prism.base_url, TIMEOUT)


@pytest.mark.parametrize("packages", [("line_type_intelligence",), LOOKUP_FIELDS], ids=["default", "every-package"])
def test_a_lookup_sends_a_request_that_twilio_schema_accepts(lookup_prism: Prism, packages: tuple[str, ...]) -> None:
    # Given the adapter pointed at Prism, and Prism's log so far
    logged_before = len(lookup_prism.log_text())

    # When it looks a number up
    signals = adapter(lookup_prism).signals(TO, packages, NOW)

    # Then Prism validated the request and answered one of Twilio's examples, which the adapter read
    assert isinstance(signals, Signals)
    assert (signals.fields, signals.at) == (packages, NOW)
    # ... sent to the number's path with its "+" percent-encoded, asking for the packages by name
    logged = lookup_prism.log_text()[logged_before:]
    assert "/v2/PhoneNumbers/%2B12025550100" in logged


def test_prism_refuses_a_lookup_without_basic_auth(lookup_prism: Prism) -> None:
    # Given / When a raw request without credentials (the negative control: the check can fail)
    response = requests.get(f"{lookup_prism.base_url}/v2/PhoneNumbers/%2B12025550100", timeout=TIMEOUT)

    # Then Prism answers its validation error, not an example
    assert response.status_code == 401
    assert "phone_number" not in response.json()


def test_a_lookup_twilio_refuses_is_a_refusal(lookup_prism: Prism) -> None:
    # Given the adapter with an empty auth token (the client then sends no Basic auth: Prism answers 401)
    with refused() as answer:
        adapter(lookup_prism, auth_token="").signals(TO, ("line_type_intelligence",), NOW)
    assert (answer.value.code, answer.value.reason) == ("upstream_error", "lookup_refused")

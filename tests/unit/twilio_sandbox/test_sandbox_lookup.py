"""The Twilio sandbox's Lookup v2: Twilio's answer shape, the risk numbers, auth and injected faults; and the
core's reading of it (callerauth.lookup.read) through the real twilio client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from callerauth.config import LOOKUP_FIELDS
from callerauth.lookup import Signals, TwilioLookup
from callerauth.twilio_verify import Credentials

from devserver.sandbox_lookup import RISK_NUMBERS
from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, FakeClock, serving
from tests.unit.twilio_sandbox.conftest import AUTH, ApiClient, assert_twilio_error

MOBILE, LANDLINE, VOIP, SWAPPED, FORWARDED, PUMPING = RISK_NUMBERS
EVERY = ",".join(LOOKUP_FIELDS)


def look_up(client: ApiClient, number: str, fields: str = EVERY) -> dict[str, object]:
    answer = client.get(f"/v2/PhoneNumbers/{number}", query_string={"Fields": fields}, auth=AUTH)
    assert answer.status_code == 200
    body: dict[str, object] = answer.json
    return body


def test_only_the_packages_asked_for_are_answered(client: ApiClient) -> None:
    body = look_up(client, MOBILE, "line_type_intelligence")
    assert body["line_type_intelligence"] == {
        "carrier_name": "Sandbox Wireless",
        "mobile_country_code": "310",
        "mobile_network_code": "150",
        "type": "mobile",
        "error_code": None,
    }
    assert body["sim_swap"] is body["call_forwarding"] is body["sms_pumping_risk"] is None
    assert body["phone_number"] == MOBILE and body["valid"] is True


def test_lookup_needs_the_account_s_credentials_and_a_number(client: ApiClient) -> None:
    assert_twilio_error(client.get(f"/v2/PhoneNumbers/{MOBILE}"), 401, 20003)
    assert_twilio_error(client.get("/v2/PhoneNumbers/not-a-number", auth=AUTH), 404, 20404)


def test_injected_lookup_faults_leave_verify_alone(client: ApiClient, sandbox: TwilioSandbox) -> None:
    sandbox.fail_next(503, 20503, api="lookup")
    assert client.get(f"/v2/PhoneNumbers/{MOBILE}", auth=AUTH).status_code == 503
    assert client.get(f"/v2/PhoneNumbers/{MOBILE}", auth=AUTH).status_code == 200
    assert sandbox.lookups == [MOBILE]  # only answered lookups are recorded
    with pytest.raises(ValueError, match="api"):
        sandbox.fail_next(503, api="iam")


@pytest.fixture
def adapter(sandbox: TwilioSandbox) -> Iterator[TwilioLookup]:
    with serving(sandbox) as url:
        yield TwilioLookup(lambda: Credentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID), url, 5.0)


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (MOBILE, {"line_type": "mobile", "sim_swapped_in_period": False, "call_forwarding": False}),
        (LANDLINE, {"line_type": "landline"}),
        (VOIP, {"line_type": "nonFixedVoip"}),
        (SWAPPED, {"sim_swapped_in_period": True}),
        (FORWARDED, {"call_forwarding": True}),
        (PUMPING, {"sms_pumping_risk_score": 95, "number_blocked": False}),
    ],
)
def test_the_core_reads_each_risk_number_through_the_twilio_client(
    adapter: TwilioLookup, clock: FakeClock, number: str, expected: dict[str, object]
) -> None:
    signals = adapter.signals(number, LOOKUP_FIELDS, int(clock()))

    assert isinstance(signals, Signals) and signals.unanswered == ()
    assert {name: getattr(signals, name) for name in expected} == expected
    if number == SWAPPED:
        assert signals.sim_swapped_at == int(clock()) - 2 * 86400


def test_a_package_error_code_is_unanswered_and_forwarding_reads_either_name() -> None:
    from callerauth.lookup import read

    answer = {
        "line_type_intelligence": {"type": None, "error_code": 60601},
        "call_forwarding": {"call_forwarding_enabled": True, "error_code": None},
        "sim_swap": None,
    }
    signals = read(answer, ("line_type_intelligence", "call_forwarding", "sim_swap"), 7)

    assert signals.unanswered == ("line_type_intelligence", "sim_swap")
    assert (signals.line_type, signals.call_forwarding) == (None, True)

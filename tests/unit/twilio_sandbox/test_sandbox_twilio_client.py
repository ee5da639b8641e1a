"""The official twilio client, over loopback, against the Twilio sandbox."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client as TwilioClient

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import SERVICE_SID, TO
from tests.unit.twilio_sandbox.conftest import AUTH, IAM, wrong

# ---------------------------------------------------------------- the official twilio client, over HTTP


def test_twilio_client_send_and_approve(live: TwilioClient, sandbox: TwilioSandbox) -> None:
    # Given the sandbox on a real port and the official client pointed at it
    service = live.verify.v2.services(SERVICE_SID)
    # When a code is sent and then checked
    verification = service.verifications.create(to=TO, channel="sms")
    approved = service.verification_checks.create(to=TO, code=sandbox.outbox[-1]["code"])
    # Then the client parses both
    assert verification.sid.startswith("VE") and verification.status == "pending"
    assert verification.valid is False and verification.date_created is not None
    assert (approved.sid, approved.status, approved.valid) == (verification.sid, "approved", True)
    # and a second check is 20404
    with pytest.raises(TwilioRestException) as info:
        service.verification_checks.create(to=TO, code=sandbox.outbox[-1]["code"])
    assert (info.value.status, info.value.code) == (404, 20404)


def test_twilio_client_wrong_codes_raise_only_at_sixth(live: TwilioClient, sandbox: TwilioSandbox) -> None:
    # Given a pending verification
    service = live.verify.v2.services(SERVICE_SID)
    service.verifications.create(to=TO, channel="sms")
    bad = wrong(sandbox.outbox[-1]["code"])
    # When five wrong codes are checked, they answer pending without raising
    assert [service.verification_checks.create(to=TO, code=bad).status for _ in range(5)] == ["pending"] * 5
    # Then the sixth raises 60202
    with pytest.raises(TwilioRestException) as info:
        service.verification_checks.create(to=TO, code=bad)
    assert (info.value.status, info.value.code) == (429, 60202)


def test_twilio_client_cancel_by_sid_and_by_number(live: TwilioClient) -> None:
    # Given two pending verifications
    service = live.verify.v2.services(SERVICE_SID)
    first = service.verifications.create(to=TO, channel="sms")
    service.verifications.create(to="+12025550101", channel="call")
    # When one is canceled by sid and the other by number (the client puts the number in the path as is)
    by_sid = service.verifications(first.sid).update(status="canceled")
    by_number = service.verifications("+12025550101").update(status="canceled")
    # Then both are canceled, and canceling again is 20404
    assert (by_sid.status, by_number.status) == ("canceled", "canceled")
    with pytest.raises(TwilioRestException) as info:
        service.verifications(first.sid).update(status="canceled")
    assert (info.value.status, info.value.code) == (404, 20404)


def test_twilio_client_sixth_send_raises_60203(live: TwilioClient) -> None:
    # Given five sends to one number
    service = live.verify.v2.services(SERVICE_SID)
    sids = {service.verifications.create(to=TO, channel="sms").sid for _ in range(5)}
    assert len(sids) == 1
    # When a sixth is asked for
    with pytest.raises(TwilioRestException) as info:
        service.verifications.create(to=TO, channel="sms")
    # Then the client raises Twilio's 60203
    assert (info.value.status, info.value.code) == (429, 60203)


def test_iam_over_http_with_requests(live: TwilioClient, sandbox: TwilioSandbox) -> None:
    # Given the sandbox on a real port
    import requests

    base = live.verify.base_url
    # When an agent token is made over HTTP and validated the way twilio-flex-token-validator does
    token = requests.post(f"{base}/agent-tokens", json={"identity": "dev-agent"}, timeout=5).json()["token"]
    resp = requests.post(f"{base}{IAM}", json={"token": token}, auth=AUTH, timeout=5)
    # Then it is valid for that agent
    assert resp.status_code == 200 and resp.json()["valid"] is True
    assert resp.json()["identity"] == "dev-agent"

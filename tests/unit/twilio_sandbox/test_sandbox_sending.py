"""The Twilio sandbox sends codes as Twilio Verify does: outbox, resends, channels, limits."""

from __future__ import annotations

import re
from typing import Any

import pytest

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, ISO_Z, SERVICE_SID, TO, FakeClock
from tests.unit.twilio_sandbox.conftest import VERIFICATION_KEYS, ApiClient, assert_twilio_error, send

# ---------------------------------------------------------------- sending


def test_send_answers_a_verification_shaped_like_twilio_spec(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given a fresh sandbox
    # When a code is sent by SMS
    resp = send(client)
    # Then the body has exactly the fields of verify.v2.service.verification, with Twilio's formats
    assert resp.status_code == 201
    body: dict[str, Any] = resp.json
    assert set(body) == VERIFICATION_KEYS
    assert re.fullmatch(r"VE[0-9a-f]{32}", body["sid"])
    assert (body["service_sid"], body["account_sid"], body["to"], body["channel"]) == (
        SERVICE_SID,
        ACCOUNT_SID,
        TO,
        "sms",
    )
    assert (body["status"], body["valid"], body["lookup"], body["amount"], body["payee"], body["sna"]) == (
        "pending",
        False,
        {},
        None,
        None,
        None,
    )
    assert ISO_Z.fullmatch(body["date_created"]) and ISO_Z.fullmatch(body["date_updated"])
    assert body["url"].endswith(f"/v2/Services/{SERVICE_SID}/Verifications/{body['sid']}")
    assert len(body["send_code_attempts"]) == 1
    assert re.fullmatch(r"VL[0-9a-f]{32}", body["send_code_attempts"][0]["attempt_sid"])
    # and the code is never in the answer
    assert sandbox.outbox[0]["code"] not in resp.get_data(as_text=True)


def test_send_records_outbox_and_announces_masked_destination(
    client: ApiClient, sandbox: TwilioSandbox, announced: list[str]
) -> None:
    # Given a fresh sandbox
    # When a code is sent
    sid = send(client).json["sid"]
    # Then the outbox holds one 6-digit message for that number
    assert len(sandbox.outbox) == 1
    message = sandbox.outbox[0]
    assert set(message) == {"to", "channel", "code", "sentAt", "verificationSid"}
    assert (message["to"], message["channel"], message["verificationSid"]) == (TO, "sms", sid)
    assert re.fullmatch(r"\d{6}", message["code"]) and ISO_Z.fullmatch(message["sentAt"])
    # and one announcement with the number masked
    assert announced == [f"[twilio sandbox] sms to +1******0100 — code {message['code']} ({sid})"]
    assert TO not in announced[0]


def test_resend_while_pending_reuses_sid_and_code(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given a pending verification
    first = send(client).json
    # When the number asks again, by voice this time
    second = send(client, channel="call").json
    # Then it is the same verification, code and sid, with a second attempt recorded
    assert second["sid"] == first["sid"]
    assert second["channel"] == "call" and len(second["send_code_attempts"]) == 2
    assert [m["code"] for m in sandbox.outbox] == [sandbox.outbox[0]["code"]] * 2


def test_sixth_send_within_ten_minutes_is_60203_until_the_window_passes(
    client: ApiClient, sandbox: TwilioSandbox, clock: FakeClock
) -> None:
    # Given five sends to one number within ten minutes
    for _ in range(5):
        assert send(client).status_code == 201
        clock.advance(60)
    # When a sixth is asked for
    resp = send(client)
    # Then Twilio's "Max send attempts reached" answers, and nothing is sent
    assert_twilio_error(resp, 429, 60203)
    assert resp.json["message"] == "Max send attempts reached"
    assert len(sandbox.outbox) == 5
    # and another number is not affected
    assert send(client, to="+12025550101").status_code == 201
    # and once the first send is ten minutes old, sending works again
    clock.advance(600 - 5 * 60)
    assert send(client).status_code == 201


@pytest.mark.parametrize(
    ("to", "channel"),
    [
        (TO, "fax"),
        (TO, ""),
        ("2025550100", "sms"),
        ("+0555550100", "call"),
        ("", "sms"),
        ("jane@example.com", "sms"),
        (TO, "email"),
        ("not-an-email", "email"),
    ],
)
def test_send_rejects_bad_channel_or_destination_with_60200(client: ApiClient, to: str, channel: str) -> None:
    # Given a destination that does not suit the channel (or no valid channel)
    # When it is sent
    resp = send(client, to=to, channel=channel)
    # Then 400 / 60200, without echoing the value
    assert_twilio_error(resp, 400, 60200)
    assert not to or to not in resp.json["message"]


def test_email_channel_is_accepted_and_masked(client: ApiClient, announced: list[str]) -> None:
    # Given an e-mail address
    # When a code is sent by e-mail
    resp = send(client, to="jane@example.com", channel="email")
    # Then it is pending and the announcement masks the mailbox
    assert resp.status_code == 201 and resp.json["channel"] == "email"
    assert "j***@example.com" in announced[0] and "jane@" not in announced[0]

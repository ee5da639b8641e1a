"""The Twilio sandbox checks and updates verifications as Twilio Verify does."""

from __future__ import annotations

import pytest

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import TO, FakeClock
from tests.unit.twilio_sandbox.conftest import (
    AUTH,
    CHECK,
    CHECK_KEYS,
    VERIFICATION_KEYS,
    VERIFICATIONS,
    ApiClient,
    assert_twilio_error,
    check,
    send,
    wrong,
)

# ---------------------------------------------------------------- checking


def test_right_code_approves_and_finishes_the_verification(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given a pending verification
    sid = send(client).json["sid"]
    code = sandbox.outbox[-1]["code"]
    # When the right code is checked
    resp = check(client, code)
    # Then it is approved, shaped like verify.v2.service.verification_check
    assert resp.status_code == 200
    assert set(resp.json) == CHECK_KEYS
    assert (resp.json["sid"], resp.json["status"], resp.json["valid"], resp.json["to"]) == (sid, "approved", True, TO)
    # and it is finished: checking or updating again is 20404
    assert_twilio_error(check(client, code), 404, 20404)
    assert_twilio_error(client.post(f"{VERIFICATIONS}/{sid}", data={"Status": "canceled"}, auth=AUTH), 404, 20404)
    # and a new send starts a new verification
    assert send(client).json["sid"] != sid


def test_check_by_verification_sid(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given a pending verification
    sid = send(client).json["sid"]
    # When it is checked by its sid rather than by number
    resp = client.post(CHECK, data={"VerificationSid": sid, "Code": sandbox.outbox[-1]["code"]}, auth=AUTH)
    # Then it is approved
    assert resp.json["status"] == "approved" and resp.json["sid"] == sid


def test_five_wrong_codes_then_60202_even_for_the_right_code(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given a pending verification and five wrong attempts, each answered "pending"
    send(client)
    code = sandbox.outbox[-1]["code"]
    for _ in range(5):
        resp = check(client, wrong(code))
        assert resp.status_code == 200
        assert (resp.json["status"], resp.json["valid"]) == ("pending", False)
    # When a sixth attempt comes, with the right code
    resp = check(client, code)
    # Then Twilio's "Max check attempts reached" answers, and the code is not in the message
    assert_twilio_error(resp, 429, 60202)
    assert resp.json["message"] == "Max check attempts reached"
    assert code not in resp.get_data(as_text=True)


def test_check_without_pending_verification_is_20404(client: ApiClient) -> None:
    # Given nothing was ever sent to this number
    # When a code is checked
    resp = check(client, "123456")
    # Then Twilio's not-found answers
    assert_twilio_error(resp, 404, 20404)


def test_code_expires_after_ten_minutes(client: ApiClient, sandbox: TwilioSandbox, clock: FakeClock) -> None:
    # Given a verification sent ten minutes ago
    sid = send(client).json["sid"]
    code = sandbox.outbox[-1]["code"]
    clock.advance(599)
    assert send(client).json["sid"] == sid  # still pending one second before
    clock.advance(1)
    # When its code is checked
    resp = check(client, code)
    # Then it is gone, and a new send makes a new verification
    assert_twilio_error(resp, 404, 20404)
    assert send(client).json["sid"] != sid


def test_check_requires_code_and_destination(client: ApiClient) -> None:
    # Given a pending verification
    send(client)
    # When a check lacks a code, or lacks both To and VerificationSid
    no_code = client.post(CHECK, data={"To": TO}, auth=AUTH)
    no_to = client.post(CHECK, data={"Code": "123456"}, auth=AUTH)
    # Then both are 400 / 20001
    assert_twilio_error(no_code, 400, 20001)
    assert_twilio_error(no_to, 400, 20001)


# ---------------------------------------------------------------- updating


@pytest.mark.parametrize("by", ["sid", "encoded_to"])
def test_cancel_by_sid_or_url_encoded_number(client: ApiClient, sandbox: TwilioSandbox, by: str) -> None:
    # Given a pending verification
    sid = send(client).json["sid"]
    target = sid if by == "sid" else "%2B12025550100"
    # When it is canceled
    resp = client.post(f"{VERIFICATIONS}/{target}", data={"Status": "canceled"}, auth=AUTH)
    # Then the answer is the verification with status canceled, and its code no longer works
    assert resp.status_code == 200 and set(resp.json) == VERIFICATION_KEYS
    assert (resp.json["sid"], resp.json["status"], resp.json["valid"]) == (sid, "canceled", False)
    assert_twilio_error(check(client, sandbox.outbox[-1]["code"]), 404, 20404)


def test_update_to_approved_and_invalid_status(client: ApiClient) -> None:
    # Given a pending verification
    sid = send(client).json["sid"]
    # When an unknown status is asked for, then "approved"
    bad = client.post(f"{VERIFICATIONS}/{sid}", data={"Status": "pending"}, auth=AUTH)
    good = client.post(f"{VERIFICATIONS}/{sid}", data={"Status": "approved"}, auth=AUTH)
    # Then the first is 60200 and the second approves it
    assert_twilio_error(bad, 400, 60200)
    assert (good.json["status"], good.json["valid"]) == ("approved", True)


def test_update_unknown_number_is_20404_without_the_full_number(client: ApiClient) -> None:
    # Given nothing pending
    # When a number's verification is canceled
    resp = client.post(f"{VERIFICATIONS}/%2B12025550199", data={"Status": "canceled"}, auth=AUTH)
    # Then 20404, and the message masks the number
    assert_twilio_error(resp, 404, 20404)
    assert "+12025550199" not in resp.json["message"]


def test_fetch_pending_verification(client: ApiClient) -> None:
    # Given a pending verification
    sid = send(client).json["sid"]
    # When it is fetched, by sid and by number
    by_sid = client.get(f"{VERIFICATIONS}/{sid}", auth=AUTH)
    by_to = client.get(f"{VERIFICATIONS}/%2B12025550100", auth=AUTH)
    # Then both are the pending verification
    assert by_sid.json["sid"] == by_to.json["sid"] == sid
    assert by_sid.json["status"] == "pending"

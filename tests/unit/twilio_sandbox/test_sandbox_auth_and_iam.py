"""The Twilio sandbox's authentication and routing, and its IAM token validation."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import pytest

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, TO, FakeClock
from tests.unit.twilio_sandbox.conftest import (
    AUTH,
    CHECK,
    IAM,
    VERIFICATIONS,
    ApiClient,
    assert_twilio_error,
    validate,
)

# ---------------------------------------------------------------- authentication and routing


@pytest.mark.parametrize("auth", [None, (ACCOUNT_SID, "wrong"), ("AC" + "1" * 32, AUTH_TOKEN)])
def test_verify_requires_basic_auth(client: ApiClient, sandbox: TwilioSandbox, auth: Any) -> None:
    # Given missing or wrong credentials
    # When a code is sent
    resp = client.post(VERIFICATIONS, data={"To": TO, "Channel": "sms"}, auth=auth)
    # Then Twilio's 401 answers, exactly, and nothing is sent
    assert resp.status_code == 401
    assert resp.json == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert sandbox.outbox == []


def test_unknown_service_is_20404(client: ApiClient) -> None:
    # Given another service sid
    other = "VA" + "1" * 32
    # When a code is sent under it
    resp = client.post(f"/v2/Services/{other}/Verifications", data={"To": TO, "Channel": "sms"}, auth=AUTH)
    # Then 404 / 20404
    assert_twilio_error(resp, 404, 20404)


def test_unknown_path_is_404_and_wrong_method_is_405(client: ApiClient) -> None:
    # Given the sandbox
    # When an unknown path and a wrong method are requested
    missing = client.get("/v2/Nothing", auth=AUTH)
    wrong_method = client.get(CHECK, auth=AUTH)
    # Then both answer Twilio's error shape
    assert_twilio_error(missing, 404, 20404)
    assert_twilio_error(wrong_method, 405, 20004)
    assert "POST" in wrong_method.headers["Allow"]


# ---------------------------------------------------------------- IAM token validation


def test_iam_accepts_an_issued_token(client: ApiClient, sandbox: TwilioSandbox, clock: FakeClock) -> None:
    # Given a token issued for a supervisor
    token = sandbox.issue_token("alice", roles=["agent", "supervisor"], ttl_seconds=600)
    # When it is validated
    resp = validate(client, token)
    # Then it is valid, with identity, roles, worker and expiration
    assert resp.status_code == 200
    body = resp.json
    assert (body["valid"], body["code"], body["message"]) == (True, 0, None)
    assert (body["identity"], body["roles"]) == ("alice", ["agent", "supervisor"])
    assert re.fullmatch(r"WK[0-9a-f]{32}", body["worker_sid"]) and body["realm_user_id"]
    assert body["expiration"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(clock.now) + 600))


@pytest.mark.parametrize("token", ["garbage", "", "a.b.c", None, 42])
def test_iam_rejects_unknown_tokens(client: ApiClient, token: Any) -> None:
    # Given something that is not a sandbox token
    # When it is validated
    resp = validate(client, token)
    # Then Twilio's invalid answer comes back with 200
    assert resp.status_code == 200
    assert (resp.json["valid"], resp.json["code"]) == (False, 20107)
    assert resp.json["message"] == "Invalid Access Token"
    assert resp.json["identity"] is None


def test_iam_rejects_expired_and_tampered_tokens(client: ApiClient, sandbox: TwilioSandbox, clock: FakeClock) -> None:
    # Given a token valid for one minute, and a copy with a forged payload
    token = sandbox.issue_token("bob", ttl_seconds=60)
    header, payload, signature = token.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(base64.urlsafe_b64decode(payload + "==").replace(b'"bob"', b'"eve"'))
        .rstrip(b"=")
        .decode()
    )
    # When the forged one is validated now, and the genuine one a minute later
    forged = validate(client, f"{header}.{forged_payload}.{signature}")
    clock.advance(60)
    expired = validate(client, token)
    # Then neither is valid
    assert forged.json["valid"] is False
    assert expired.json["valid"] is False and expired.json["code"] == 20107


def test_iam_rejects_tokens_of_another_auth_token(client: ApiClient, clock: FakeClock) -> None:
    # Given a token issued by a sandbox with other credentials
    other = TwilioSandbox(ACCOUNT_SID, "another-token", SERVICE_SID, clock=clock, announce=lambda _: None)
    # When it is validated here
    resp = validate(client, other.issue_token("mallory"))
    # Then it is not valid
    assert resp.json["valid"] is False


@pytest.mark.parametrize(
    ("auth", "path"),
    [
        (None, IAM),
        ((ACCOUNT_SID, "wrong"), IAM),
        (AUTH, f"/v1/Accounts/AC{'2' * 32}/Tokens/validate"),
    ],
)
def test_iam_requires_matching_account_and_basic_auth(
    client: ApiClient, sandbox: TwilioSandbox, auth: Any, path: str
) -> None:
    # Given wrong credentials or another account in the path
    # When a valid token is validated
    resp = validate(client, sandbox.issue_token("alice"), auth=auth, path=path)
    # Then 401 Authenticate
    assert_twilio_error(resp, 401, 20003)


def test_issue_token_requires_identity(sandbox: TwilioSandbox) -> None:
    # Given the sandbox
    # When a token is asked for nobody
    # Then it refuses
    with pytest.raises(ValueError):
        sandbox.issue_token("")

"""Tests for the local Twilio sandbox (devserver/twilio_sandbox.py)."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client as TwilioClient
from werkzeug.serving import make_server
from werkzeug.test import Client, TestResponse

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, ISO_Z, SERVICE_SID, TO, FakeClock

VERIFICATIONS = f"/v2/Services/{SERVICE_SID}/Verifications"
CHECK = f"/v2/Services/{SERVICE_SID}/VerificationCheck"
IAM = f"/v1/Accounts/{ACCOUNT_SID}/Tokens/validate"
AUTH = (ACCOUNT_SID, AUTH_TOKEN)
# The keys Twilio's verification and verification-check resources share, then each one's own.
SHARED_KEYS = {"sid", "service_sid", "account_sid", "to", "channel", "status", "valid", "amount", "payee"}
DATE_KEYS = {"date_created", "date_updated"}
VERIFICATION_KEYS = SHARED_KEYS | DATE_KEYS | {"lookup", "send_code_attempts", "sna", "url"}
CHECK_KEYS = SHARED_KEYS | DATE_KEYS | {"sna_attempts_error_codes"}


class JsonResponse(TestResponse):
    """A test response whose ``json`` is typed ``Any``, so tests can index it without casts."""

    @property
    def json(self) -> Any:
        return self.get_json(silent=True)


class ApiClient(Client):
    """werkzeug's test client answering ``JsonResponse``; ``auth=`` gives HTTP Basic auth."""

    def __init__(self, app: TwilioSandbox) -> None:
        super().__init__(app, response_wrapper=JsonResponse)

    def get(self, *args: Any, **kw: Any) -> JsonResponse:
        return cast(JsonResponse, super().get(*args, **kw))

    def post(self, *args: Any, **kw: Any) -> JsonResponse:
        return cast(JsonResponse, super().post(*args, **kw))

    def delete(self, *args: Any, **kw: Any) -> JsonResponse:
        return cast(JsonResponse, super().delete(*args, **kw))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def announced() -> list[str]:
    return []


@pytest.fixture
def sandbox(clock: FakeClock, announced: list[str]) -> TwilioSandbox:
    return TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, clock=clock, announce=announced.append)


@pytest.fixture
def client(sandbox: TwilioSandbox) -> ApiClient:
    return ApiClient(sandbox)


@pytest.fixture
def live(sandbox: TwilioSandbox) -> Iterator[TwilioClient]:
    server = make_server("127.0.0.1", 0, sandbox, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    twilio = TwilioClient(ACCOUNT_SID, AUTH_TOKEN)
    twilio.verify.base_url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield twilio
    finally:
        server.shutdown()
        thread.join(5)


def send(client: ApiClient, to: str = TO, channel: str = "sms") -> JsonResponse:
    return client.post(VERIFICATIONS, data={"To": to, "Channel": channel, "Locale": "en"}, auth=AUTH)


def check(client: ApiClient, code: str, to: str = TO) -> JsonResponse:
    return client.post(CHECK, data={"To": to, "Code": code}, auth=AUTH)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def assert_twilio_error(resp: JsonResponse, status: int, code: int) -> None:
    assert resp.status_code == status
    assert resp.json == {
        "code": code,
        "message": resp.json["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    assert isinstance(resp.json["message"], str) and resp.json["message"]


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


def validate(client: ApiClient, token: Any, auth: Any = AUTH, path: str = IAM) -> JsonResponse:
    return client.post(path, json={"token": token}, auth=auth)


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


# ---------------------------------------------------------------- sandbox-only endpoints


def test_outbox_lists_filters_and_clears(client: ApiClient) -> None:
    # Given codes sent to two numbers
    send(client)
    send(client, to="+447700900123")
    send(client)
    # When the outbox is read whole and filtered
    everything = client.get("/outbox").json
    mine = client.get("/outbox", query_string={"to": TO}).json
    # Then it lists them newest last, and the filter is exact
    assert [m["to"] for m in everything] == [TO, "+447700900123", TO]
    assert [m["to"] for m in mine] == [TO, TO]
    assert client.get("/outbox", query_string={"to": "+1555"}).json == []
    # and DELETE empties it
    assert client.delete("/outbox").json == {"cleared": 3}
    assert client.get("/outbox").json == []


def test_agent_tokens_endpoint_json_and_form(client: ApiClient) -> None:
    # Given the sandbox
    # When tokens are asked for with JSON roles and with a comma string in a form
    as_json = client.post("/agent-tokens", json={"identity": "dev-agent", "roles": ["agent", "admin"]})
    as_form = client.post("/agent-tokens", data={"identity": "sup", "roles": "supervisor, agent"})
    default = client.post("/agent-tokens", json={"identity": "plain"})
    # Then each is a 201 with a token that IAM accepts with those roles
    assert as_json.status_code == as_form.status_code == default.status_code == 201
    assert as_form.json["roles"] == ["supervisor", "agent"] and default.json["roles"] == ["agent"]
    checked = validate(client, as_json.json["token"]).json
    assert (checked["valid"], checked["identity"]) == (True, "dev-agent")
    assert checked["roles"] == ["agent", "admin"]


@pytest.mark.parametrize("body", [{}, {"identity": ""}, {"identity": "x", "roles": [1]}])
def test_agent_tokens_endpoint_rejects_bad_requests(client: ApiClient, body: dict[str, Any]) -> None:
    # Given a request without a usable identity or with bad roles
    # When a token is asked for
    resp = client.post("/agent-tokens", json=body)
    # Then 400 in Twilio's shape
    assert resp.status_code == 400 and resp.json["status"] == 400


# ---------------------------------------------------------------- fault injection


def test_fail_next_answers_injected_errors_then_recovers(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given two injected 503/20500 errors, then one without a code
    sandbox.fail_next(503, 20500, count=2)
    sandbox.fail_next(500)
    # When four sends follow
    responses = [send(client) for _ in range(4)]
    # Then the first two carry the injected Twilio error, the third a bare 500, the fourth works
    for resp in responses[:2]:
        assert_twilio_error(resp, 503, 20500)
        assert resp.json["message"] == "Sandbox injected error"
    assert (responses[2].status_code, responses[2].json) == (500, {"message": "Internal Server Error"})
    assert responses[3].status_code == 201
    assert len(sandbox.outbox) == 1


def test_fail_next_over_http_applies_to_checks(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given a pending verification and an injected 429/20429 over HTTP
    send(client)
    assert client.post("/sandbox/fail-next", json={"status": 429, "code": 20429}).status_code == 200
    # When the right code is checked twice
    first = check(client, sandbox.outbox[-1]["code"])
    second = check(client, sandbox.outbox[-1]["code"])
    # Then only the first fails
    assert_twilio_error(first, 429, 20429)
    assert second.json["status"] == "approved"


def test_fail_next_validates_arguments(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given the sandbox
    # When nonsense is injected
    # Then it is refused
    with pytest.raises(ValueError):
        sandbox.fail_next(42)
    with pytest.raises(ValueError):
        sandbox.fail_next(500, count=0)
    assert client.post("/sandbox/fail-next", json={"code": 1}).status_code == 400


def test_malformed_mode_answers_not_json(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given malformed mode, set over HTTP
    assert client.post("/sandbox/mode", json={"mode": "malformed"}).json == {"mode": "malformed"}
    # When a code is sent
    resp = send(client)
    # Then the answer is 200 with a body that is not JSON, and nothing was sent
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, "not json")
    assert sandbox.outbox == []
    # and normal mode restores service
    sandbox.set_mode("normal")
    assert send(client).status_code == 201


def test_invalid_mode_is_refused(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given the sandbox
    # When an unknown mode is asked for
    resp = client.post("/sandbox/mode", json={"mode": "chaos"})
    # Then it is refused
    assert resp.status_code == 400
    with pytest.raises(ValueError):
        sandbox.set_mode("chaos")  # type: ignore[arg-type]


def test_refuse_iam_mode_answers_503_for_iam_only(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given refuse_iam mode
    sandbox.set_mode("refuse_iam")
    # When a token is validated and a code sent
    iam = validate(client, sandbox.issue_token("alice"))
    verify = send(client)
    # Then IAM answers 503 while Verify works
    assert iam.status_code == 503 and iam.json["status"] == 503
    assert verify.status_code == 201


def test_timeout_mode_hangs_until_normal_mode_wakes_it(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given timeout mode and a send in flight
    sandbox.set_mode("timeout")
    results: list[JsonResponse] = []
    worker = threading.Thread(target=lambda: results.append(send(client)))
    worker.start()
    worker.join(1.0)
    assert worker.is_alive() and results == [] and sandbox.outbox == []
    # When normal mode is set
    started = time.monotonic()
    sandbox.set_mode("normal")
    worker.join(5)
    # Then the sleeper wakes at once and answers normally
    assert not worker.is_alive() and time.monotonic() - started < 0.5
    assert results[0].status_code == 201


def test_timeout_mode_answers_after_the_timeout(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given timeout mode with a short timeout
    sandbox.timeout_seconds = 0.2
    sandbox.set_mode("timeout")
    # When a code is sent
    started = time.monotonic()
    resp = send(client)
    # Then it answers late, normally (a slow Twilio still sends the code)
    assert time.monotonic() - started >= 0.2
    assert resp.status_code == 201 and len(sandbox.outbox) == 1


def test_concurrent_sends_respect_the_send_limit(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given twelve simultaneous sends to one number
    barrier = threading.Barrier(12)
    statuses: list[int] = []
    sids: set[str] = set()

    def one() -> None:
        local = ApiClient(sandbox)
        barrier.wait()
        resp = send(local)
        statuses.append(resp.status_code)
        if resp.status_code == 201:
            sids.add(resp.json["sid"])

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # Then exactly five got through, all on one verification, with one code
    assert sorted(statuses) == [201] * 5 + [429] * 7
    assert len(sids) == 1 and len({m["code"] for m in sandbox.outbox}) == 1


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

"""The local Twilio sandbox (devserver/twilio_sandbox.py) under test: a fresh one per test on a hand-moved
clock, a werkzeug client for it, the official twilio client over loopback, and the requests the tests repeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from twilio.rest import Client as TwilioClient
from werkzeug.test import Client, TestResponse

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, TO, FakeClock, serving

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
    with serving(sandbox) as url:
        twilio = TwilioClient(ACCOUNT_SID, AUTH_TOKEN)
        twilio.verify.base_url = url
        yield twilio


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


def validate(client: ApiClient, token: Any, auth: Any = AUTH, path: str = IAM) -> JsonResponse:
    return client.post(path, json={"token": token}, auth=auth)

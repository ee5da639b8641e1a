"""The cloud's wiring: Twilio credentials and the hashing secret read from Secrets Manager (moto)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID
from tests.support import PLUGIN_FORM


def _secret(name: str, value: str) -> str:
    return str(boto3.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"])


@pytest.fixture
def from_secrets_manager(aws: Any) -> Callable[[dict[str, str]], dict[str, str]]:
    """Settings as template.yaml gives them: secret ARNs, and no credential in the environment."""

    def settings(twilio: dict[str, str]) -> dict[str, str]:
        return {
            "TWILIO_SECRET_ARN": _secret(f"twilio-{len(twilio)}-{id(twilio)}", json.dumps(twilio)),
            "HASH_SECRET_ARN": _secret(f"hash-{id(twilio)}", "k" * 64),
            "ACCOUNT_SID": "",
            "AUTH_TOKEN": "",
            "VERIFY_SERVICE_SID": "",
            "HASH_SECRET": "",
            "AGENT_AUTH": "none",
        }

    return settings


def test_the_credentials_and_the_hashing_key_come_from_secrets_manager(
    api: Callable[..., Any], sandbox: Any, from_secrets_manager: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    # Given the stack's secrets filled with the Twilio credentials, and none in the environment
    twilio = {"ACCOUNT_SID": ACCOUNT_SID, "AUTH_TOKEN": AUTH_TOKEN, "VERIFY_SERVICE_SID": SERVICE_SID}
    client = api(**from_secrets_manager(twilio))

    # When the plugin asks for a code
    started = client.post("/start-verify", raw="to=%2B12025550100", content_type=PLUGIN_FORM)

    # Then it is sent with those credentials
    assert started.status == 200
    assert [message["to"] for message in sandbox.outbox] == ["+12025550100"]


def test_a_secret_still_holding_its_placeholders_answers_500_and_sends_nothing(
    api: Callable[..., Any],
    sandbox: Any,
    from_secrets_manager: Callable[[dict[str, str]], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the secret as the stack creates it, before anyone filled it in
    placeholders = {"ACCOUNT_SID": "AC-fill-me", "AUTH_TOKEN": "fill-me", "VERIFY_SERVICE_SID": "VA-fill-me"}
    client = api(**from_secrets_manager(placeholders))

    # When the plugin asks for a code
    logging.getLogger("callerauth").addHandler(caplog.handler)
    try:
        started = client.post("/start-verify", raw="to=%2B12025550100", content_type=PLUGIN_FORM)
    finally:
        logging.getLogger("callerauth").removeHandler(caplog.handler)

    # Then a 500 in the contract's shape (the log says what to fill), and nothing is sent
    assert started.status == 500
    assert started.body["error"] == {"code": "internal_error", "message": "Internal error."}
    assert sandbox.outbox == []
    problems = [getattr(record, "problem", "") for record in caplog.records]
    assert any("Twilio credentials are missing or placeholders" in problem for problem in problems), problems

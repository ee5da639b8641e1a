"""Smoke test of a deployed stack, opt-in: runs only when AWS_SAM_STACK_NAME names one (CI's deploy job).

It reads the stack's ApiUrl output and checks the answers that cost nothing (no message is sent):
the contract's error shape and CORS headers from the handlers and from API Gateway itself.
"""

from __future__ import annotations

import os

import pytest
import requests

from tests.support import PLUGIN_FORM as FORM

STACK = os.environ.get("AWS_SAM_STACK_NAME", "")
pytestmark = pytest.mark.skipif(not STACK, reason="set AWS_SAM_STACK_NAME to smoke-test a deployed stack")


@pytest.fixture(scope="module")
def api_url() -> str:
    import boto3

    stack = boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "ApiUrl")


def test_a_start_without_a_number_answers_the_reference_message(api_url: str) -> None:
    # When the plugin's start request arrives without `to`
    answer = requests.post(f"{api_url}/start-verify", data="", headers={"Content-Type": FORM}, timeout=15)
    # Then the contract's 400, readable by the plugin, with CORS
    assert answer.status_code == 400
    body = answer.json()
    assert body["success"] is False
    assert body["error"]["message"] == "Missing parameter; please provide a phone number or email."
    assert "Access-Control-Allow-Origin" in answer.headers


def test_the_preflight_is_answered(api_url: str) -> None:
    answer = requests.options(
        f"{api_url}/check-verify",
        headers={"Origin": "https://flex.twilio.com", "Access-Control-Request-Method": "POST"},
        timeout=15,
    )
    assert answer.status_code == 204
    assert "X-Flex-Token" in answer.headers["Access-Control-Allow-Headers"]


def test_an_unknown_path_answers_in_the_contract_s_shape(api_url: str) -> None:
    answer = requests.post(f"{api_url}/no-such-path", timeout=15)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"

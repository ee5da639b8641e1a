"""The IVR over HTTP against the dev stack: the sandbox's call simulator (``POST /sandbox/calls``) plays Twilio
(signed webhooks, the outbox's code, the TwiML followed), then the agent holding the call's task asks as the
patched plugin asks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from devserver.samples import SANDBOX_WORKSPACE_SID
from tests.contract.conftest import TIMEOUT, LocalStack

pytestmark = pytest.mark.stack

VERIFIED, WRONG, UNSIGNED = "+12025550101", "+12025550102", "+12025550103"


@pytest.fixture(scope="module")
def stack(local_stack: Callable[..., Any]) -> Iterator[LocalStack]:
    with local_stack(TASKROUTER_WORKSPACE_SID=SANDBOX_WORKSPACE_SID) as running:
        yield running


def call(stack: LocalStack, caller: str, digits: str, worker: str = "alice") -> dict[str, Any]:
    body = {"from": caller, "digits": digits, "worker": worker}
    response = requests.post(f"{stack.stack.sandbox_url}/sandbox/calls", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def customer_info(stack: LocalStack, caller: str, task: str, worker: str = "alice") -> requests.Response:
    headers = {"X-Flex-Token": stack.token(worker)}
    query = {"to": caller, "taskSid": task}
    return requests.get(f"{stack.api}/customer-info", params=query, headers=headers, timeout=TIMEOUT)


def test_a_caller_who_keys_the_code_reaches_the_agent_verified(stack: LocalStack) -> None:
    answer = call(stack, VERIFIED, "code")
    assert answer["verified"] is True
    assert answer["callSid"].startswith("CA") and answer["taskSid"].startswith("WT")
    for twiml in answer["twiml"]:  # TwiML verbs only
        tags = {e.tag for e in ET.fromstring(twiml).iter()}  # noqa: S314 - our own API's answer
        assert tags <= {"Response", "Say", "Gather", "Redirect", "Enqueue", "Task"}, twiml
    served = customer_info(stack, VERIFIED, answer["taskSid"])
    assert served.status_code == 200, served.text
    assert served.json()["customer"]["name"] == "Grace Hopper"  # sample_customers.json
    assert served.json()["assurance"]["method"] == "ivr"
    assert len(stack.outbox(VERIFIED)) == 1  # the IVR's code only


def test_wrong_codes_reach_the_agent_unverified_and_the_record_stays_locked(stack: LocalStack) -> None:
    answer = call(stack, WRONG, "wrong")
    assert answer["verified"] is False
    assert len(answer["twiml"]) == 4  # start, then IvrMaxAttempts (3) wrong entries
    refused = customer_info(stack, WRONG, answer["taskSid"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_verified"


def test_an_unsigned_webhook_is_refused_with_no_side_effect(stack: LocalStack) -> None:
    form = {"CallSid": "CA" + "0" * 32, "From": UNSIGNED}
    response = requests.post(f"{stack.api}/ivr/start", data=form, timeout=TIMEOUT)
    assert (response.status_code, response.text) == (403, "")
    assert stack.outbox(UNSIGNED) == []

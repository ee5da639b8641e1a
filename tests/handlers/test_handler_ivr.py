"""The IVR (issue 15): Twilio's signed voice webhooks, through the Lambda handler, against moto and the sandbox.

A caller who keys the right code reaches the agent verified, and the agent holding the call's task reads the
record with no second code; wrong codes reach the agent unverified; an unsigned or wrongly signed webhook is
refused with nothing done; the IVR shares the limits and the lockout with agents; every step is audited.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from devserver.samples import SANDBOX_WORKSPACE_SID
from tests.handlers.conftest import rest_event
from tests.support import AUTH_TOKEN, MASKED, TO, VISIBLE

BASE = "https://ivr.example.test/Prod"
FLOW = "https://webhooks.twilio.com/v1/Accounts/AC0123/Flows/FW0123?FlowEvent=return"
WORKFLOW = "WW" + "ab" * 16
CALL = "CA" + "0123456789abcdef" * 2
OTHER_CALL = "CA" + "fedcba9876543210" * 2
TWILIO_IP = "54.172.60.1"
# TwiML's voice verbs and the nouns inside them (https://www.twilio.com/docs/voice/twiml).
TWIML = {"Response", "Say", "Gather", "Redirect", "Enqueue", "Task", "Play", "Pause", "Hangup", "Dial"}


def signed(url: str, params: Mapping[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, dict(params)))


class Call:
    """Twilio, playing one call against the IVR handler: signed webhooks, and the TwiML they answer."""

    every: list[Any] = []  # every call's answers, in order (ivr_events)

    def __init__(self, api: Any, caller: str = TO, call_sid: str = CALL) -> None:
        self.api, self.caller, self.call_sid = api, caller, call_sid
        self.answers: list[Any] = []

    def post(self, url: str, extra: Mapping[str, str] | None = None, signature: str | None = None) -> Any:
        params = {
            "CallSid": self.call_sid,
            "From": self.caller,
            "To": "+12025550000",
            "AccountSid": "AC0",
            **(extra or {}),
        }
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signed(url, params) if signature is None else signature,
        }
        path = parts.path.removeprefix(urlsplit(BASE).path)
        event = rest_event(
            "POST", path, body=urlencode(params), headers=headers, query=query or None, source_ip=TWILIO_IP
        )
        answer = self.api.send(event)
        self.answers.append(answer)
        Call.every.append(answer)
        return answer

    def start(self, **kwargs: Any) -> Any:
        return self.post(f"{BASE}/ivr/start", **kwargs)

    def key(self, digits: str) -> Any:
        """Key digits into the last <Gather>: Twilio posts them to its action URL."""
        return self.post(gather(self.answers[-1].body).attrib["action"], {"Digits": digits})


def twiml(body: str) -> ET.Element:
    root = ET.fromstring(body)  # noqa: S314 - our own answer, in a test
    assert root.tag == "Response"
    assert {element.tag for element in root.iter()} <= TWIML, body
    return root


def gather(body: str) -> ET.Element:
    found = twiml(body).find("Gather")
    assert found is not None, body
    return found


def verified_flag(body: str) -> str:
    redirect = twiml(body).find("Redirect")
    assert redirect is not None and redirect.text, body
    assert redirect.text.startswith(FLOW + "&")
    return parse_qs(urlsplit(redirect.text).query)["verified"][0]


def ivr_events(audit: Any) -> list[dict[str, Any]]:
    """The IVR's audit events (those naming a call), in the order the webhooks came (the test clock stands
    still, so their times tie: ordered by the handler's answers instead)."""
    events = [e for e in audit.all() if e.get("call_sid")]
    order = {answer.request_id: n for n, answer in enumerate(Call.every)}
    return sorted(events, key=lambda e: order.get(str(e["request_id"]), -1))


@pytest.fixture
def ivr(api: Callable[..., Any]) -> Callable[..., Any]:
    """An Api with the IVR on (a Studio flow to return to) and TaskRouter checks on."""

    def make(**env: str) -> Any:
        settings = {
            "AGENT_AUTH": "flex",
            "TASKROUTER_WORKSPACE_SID": SANDBOX_WORKSPACE_SID,
            "IVR_BASE_URL": BASE,
            "IVR_REDIRECT_URL": FLOW,
            **env,
        }
        return api(**settings)

    return make


def agent(sandbox: Any, identity: str, task: str) -> dict[str, str]:
    return {"Token": str(sandbox.issue_token(identity, ["agent"])), "taskSid": task}


# ------------------------------------------------------------------------------------------ verified


def test_a_caller_who_keys_the_right_code_reaches_the_agent_verified_and_the_agent_reads_the_record(
    ivr: Callable[..., Any], sandbox: Any, audit: Any
) -> None:
    client = ivr()
    call = Call(client)

    # When the call comes in, the IVR sends a code by SMS to the caller and gathers the digits
    started = call.start()
    assert started.status == 200 and started.headers["Content-Type"] == "text/xml"
    prompt = gather(started.body)
    assert prompt.attrib["action"] == f"{BASE}/ivr/check?attempt=1"
    assert prompt.find("Say").attrib["language"] == "en-US"  # type: ignore[union-attr]
    assert [m["to"] for m in sandbox.outbox] == [TO]

    # And the caller keys the code they received
    checked = call.key(client.code(TO))

    # Then the call goes back to the Studio flow with verified=true
    assert checked.status == 200
    assert verified_flag(checked.body) == "true"

    # And the agent holding the call's task reads the record with no code of their own, "verified in IVR"
    task = sandbox.taskrouter.create_task(TO, "alice", CALL)
    served = client.customer_info(TO, **agent(sandbox, "alice", task))
    assert served.status == 200, served.body
    assert served.body["customer"] == VISIBLE
    assert served.body["assurance"]["method"] == "ivr"
    assert served.body["assurance"]["channel"] == "sms"
    assert len(sandbox.outbox) == 1  # no second code

    # And every step is audited, as agent "ivr" on that call
    steps = [(e["action"], e["outcome"], e["agent"], e["to"]) for e in ivr_events(audit)]
    assert steps == [("start", "sent", "ivr", MASKED), ("check", "approved", "ivr", MASKED)]
    assert audit.of(served)["outcome"] == "served"


def test_an_agent_verified_approval_says_method_agent(ivr: Callable[..., Any], sandbox: Any) -> None:
    client = ivr()
    task = sandbox.taskrouter.create_task(TO, "alice", CALL)
    alice = agent(sandbox, "alice", task)
    client.verify(TO, **alice)
    served = client.customer_info(TO, **alice)
    assert served.body["assurance"]["method"] == "agent"


def test_the_ivr_approval_serves_only_a_task_of_that_call(ivr: Callable[..., Any], sandbox: Any) -> None:
    client = ivr()
    call = Call(client)
    call.start()
    call.key(client.code(TO))

    # A later call's task from the same number gets nothing without its own verification
    task = sandbox.taskrouter.create_task(TO, "bob", OTHER_CALL)
    answer = client.customer_info(TO, **agent(sandbox, "bob", task))
    assert answer.status == 403 and answer.body["error"]["code"] == "not_verified"


def test_with_a_workflow_the_call_is_enqueued_with_the_verification_in_the_task(
    ivr: Callable[..., Any], sandbox: Any
) -> None:
    client = ivr(IVR_REDIRECT_URL="", IVR_WORKFLOW_SID=WORKFLOW)
    call = Call(client)
    call.start()
    checked = call.key(client.code(TO))
    enqueue = twiml(checked.body).find("Enqueue")
    assert enqueue is not None and enqueue.attrib["workflowSid"] == WORKFLOW
    attributes = json.loads(enqueue.findtext("Task") or "")
    assert attributes["verified"] is True and attributes["verificationMethod"] == "ivr"
    assert attributes["verifiedAt"].endswith("Z")


# ------------------------------------------------------------------------------------------ unverified


def test_wrong_codes_reach_the_agent_unverified_and_the_record_stays_locked(
    ivr: Callable[..., Any], sandbox: Any, audit: Any
) -> None:
    client = ivr()
    call = Call(client)
    call.start()
    wrong = client.wrong_code(TO)

    # Two wrong entries: asked again, the attempt number in the (signed) action URL
    for attempt in (2, 3):
        again = call.key(wrong)
        assert gather(again.body).attrib["action"] == f"{BASE}/ivr/check?attempt={attempt}"
    # The third (IvrMaxAttempts=3): on to an agent, verified=false
    last = call.key(wrong)
    assert verified_flag(last.body) == "false"

    task = sandbox.taskrouter.create_task(TO, "alice", CALL)
    answer = client.customer_info(TO, **agent(sandbox, "alice", task))
    assert answer.status == 403 and answer.body["error"]["code"] == "not_verified"
    outcomes = [(e["action"], e["outcome"]) for e in ivr_events(audit)]
    assert outcomes == [("start", "sent")] + [("check", "incorrect_code")] * 3


def test_keying_nothing_is_a_wrong_entry_audited_without_asking_twilio(
    ivr: Callable[..., Any], sandbox: Any, audit: Any
) -> None:
    client = ivr(IVR_MAX_ATTEMPTS="1")
    call = Call(client)
    started = call.start()
    # The <Redirect> after the <Gather>: Twilio follows it when the caller keys nothing
    redirect = twiml(started.body).find("Redirect")
    assert redirect is not None and redirect.text == f"{BASE}/ivr/check?attempt=1"
    answer = call.post(redirect.text)
    assert verified_flag(answer.body) == "false"
    assert [e["outcome"] for e in ivr_events(audit)] == ["sent", "incorrect_code"]


def test_a_refused_start_goes_on_to_an_agent_unverified_and_is_audited(
    ivr: Callable[..., Any], sandbox: Any, audit: Any
) -> None:
    # The sandbox's high SMS-pumping-risk number (make dev's Lookup packages)
    client = ivr(LOOKUP_FIELDS="line_type_intelligence,sms_pumping_risk")
    risky = "+12025550185"
    answer = Call(client, risky).start()
    assert answer.status == 200
    assert verified_flag(answer.body) == "false"
    assert "could not verify you" in (twiml(answer.body).findtext("Say") or "")
    assert sandbox.outbox == []
    assert [(e["outcome"], e["agent"]) for e in ivr_events(audit)] == [("destination_risky", "ivr")]


def test_a_landline_caller_gets_no_voice_code_on_the_line_it_calls_from(
    ivr: Callable[..., Any], sandbox: Any, audit: Any
) -> None:
    # Given voice codes allowed (an agent's start would send a landline its code by voice)
    client = ivr(LOOKUP_FIELDS="line_type_intelligence", ALLOWED_CHANNELS="sms,call")

    # When the sandbox's landline calls the IVR
    answer = Call(client, "+12025550181").start()

    # Then no code is sent (the call would ring the line the caller is on), and the call goes on unverified
    assert verified_flag(answer.body) == "false"
    assert sandbox.outbox == []
    assert [(e["outcome"], e["agent"]) for e in ivr_events(audit)] == [("destination_risky", "ivr")]


def test_a_withheld_number_goes_on_to_an_agent_unverified_and_is_audited(
    ivr: Callable[..., Any], sandbox: Any, audit: Any
) -> None:
    answer = Call(ivr(), "+266696687").start()  # Twilio's "anonymous" caller ID
    assert verified_flag(answer.body) == "false"
    assert sandbox.outbox == []
    assert [(e["outcome"], e["to"]) for e in ivr_events(audit)] == [("invalid_parameter", "unknown")]


# ------------------------------------------------------------------------------------------ signatures


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("", id="missing"),
        pytest.param("bm90IGEgc2lnbmF0dXJl", id="garbage"),
        pytest.param(signed(f"{BASE}/ivr/start", {"CallSid": CALL}, "a" * 32), id="another-token"),
    ],
)
def test_an_unsigned_or_wrongly_signed_start_is_refused_with_no_side_effect(
    signature: str, ivr: Callable[..., Any], sandbox: Any, audit: Any, aws: Any
) -> None:
    answer = Call(ivr()).start(signature=signature)
    assert (answer.status, answer.body) == (403, None)  # no body at all
    assert "Content-Type" not in answer.headers
    assert sandbox.outbox == []
    # Nothing but the one audit event, under the source (not under the number it names)
    items = aws.scan(aws.state)
    assert [(i["pk"][:2], i["action"], i["outcome"], i["agent"]) for i in items if "outcome" in i] == [
        ("S#", "ivr_start", "signature_invalid", "unidentified")
    ]
    assert not [i for i in items if str(i["pk"]).startswith("D#")]


def test_a_signature_for_another_url_or_other_params_is_refused(ivr: Callable[..., Any], sandbox: Any) -> None:
    client = ivr()
    call = Call(client)
    call.start()
    code = client.code(TO)
    # A genuine signature of attempt 1, replayed with a forged attempt number (or forged digits)
    params = {"CallSid": CALL, "From": TO, "To": "+12025550000", "AccountSid": "AC0", "Digits": "000000"}
    replay = signed(f"{BASE}/ivr/check?attempt=1", params)
    assert call.post(f"{BASE}/ivr/check?attempt=0", {"Digits": "000000"}, signature=replay).status == 403
    assert call.post(f"{BASE}/ivr/check?attempt=1", {"Digits": code}, signature=replay).status == 403
    task = sandbox.taskrouter.create_task(TO, "alice", CALL)
    assert client.customer_info(TO, **agent(sandbox, "alice", task)).status == 403


def test_a_wrongly_signed_check_does_not_count_a_failure(ivr: Callable[..., Any], sandbox: Any, audit: Any) -> None:
    client = ivr(MAX_FAILED_CHECKS="1")
    call = Call(client)
    call.start()
    assert call.post(f"{BASE}/ivr/check?attempt=1", {"Digits": "000000"}, signature="x").status == 403
    # The number is not locked: the right code still verifies
    checked = call.post(f"{BASE}/ivr/check?attempt=1", {"Digits": client.code(TO)})
    assert verified_flag(checked.body) == "true"


def test_without_a_base_url_the_api_s_own_url_is_signed(ivr: Callable[..., Any], sandbox: Any) -> None:
    client = ivr(IVR_BASE_URL="")
    url = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/Prod/ivr/start"
    params = {"CallSid": CALL, "From": TO}
    event = rest_event(
        "POST",
        "/ivr/start",
        body=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signed(url, params)},
    )
    event["requestContext"]["domainName"] = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
    answer = client.send(event)
    assert answer.status == 200, answer.body
    assert gather(answer.body).attrib["action"].startswith("https://a1b2c3d4e5.execute-api")


# ------------------------------------------------------------------------------------------ shared limits


def test_the_lockout_is_shared_between_agents_and_the_ivr(
    ivr: Callable[..., Any], sandbox: Any, clock: Any, audit: Any
) -> None:
    client = ivr(MAX_FAILED_CHECKS="3")
    task = sandbox.taskrouter.create_task(TO, "alice", OTHER_CALL)
    alice = agent(sandbox, "alice", task)
    assert client.start(TO, **alice).status == 200
    wrong = client.wrong_code(TO)
    for _ in range(2):
        assert client.check(TO, code=wrong, **alice).status == 401

    # The caller calls back after the cooldown: the IVR's first wrong entry is the third failure, and locks
    clock.advance(31)
    call = Call(client)
    gather(call.start().body)
    locked = call.key(client.wrong_code(TO))
    assert verified_flag(locked.body) == "false"
    assert [e["outcome"] for e in ivr_events(audit)] == ["sent", "locked"]

    # And the agent's next check is refused by the lock
    answer = client.check(TO, code=client.code(TO), **alice)
    assert answer.status == 429 and answer.body["error"]["code"] == "too_many_attempts"


def test_an_agent_s_send_and_the_ivr_s_share_the_cooldown(ivr: Callable[..., Any], sandbox: Any, audit: Any) -> None:
    client = ivr()
    task = sandbox.taskrouter.create_task(TO, "alice", OTHER_CALL)
    assert client.start(TO, **agent(sandbox, "alice", task)).status == 200
    answer = Call(client).start()
    assert verified_flag(answer.body) == "false"
    assert len(sandbox.outbox) == 1
    assert [e["outcome"] for e in ivr_events(audit)] == ["rate_limited"]


def test_the_ivr_is_one_agent_for_the_per_agent_cap(ivr: Callable[..., Any], sandbox: Any, audit: Any) -> None:
    client = ivr(MAX_SENDS_PER_AGENT_PER_HOUR="1")
    assert gather(Call(client).start().body) is not None
    second = Call(client, "+12025550180", OTHER_CALL).start()
    assert verified_flag(second.body) == "false"
    assert [m["to"] for m in sandbox.outbox] == [TO]


def test_an_ivr_check_on_a_locked_number_goes_on_unverified(
    ivr: Callable[..., Any], sandbox: Any, clock: Any, audit: Any
) -> None:
    client = ivr(MAX_FAILED_CHECKS="3")
    call = Call(client)
    call.start()
    wrong = client.wrong_code(TO)
    call.key(wrong)
    call.key(wrong)
    # Then an agent on another call of this number keys a third wrong code: the number locks
    task = sandbox.taskrouter.create_task(TO, "alice", OTHER_CALL)
    locked = client.check(TO, code=wrong, **agent(sandbox, "alice", task))
    assert locked.status == 429 and locked.body["error"]["code"] == "too_many_attempts"
    # And the IVR's right code no longer passes: on to an agent, unverified
    last = call.key(client.code(TO))
    assert verified_flag(last.body) == "false"
    assert [e["outcome"] for e in ivr_events(audit)][-1] == "too_many_attempts"


def test_an_undecodable_body_is_refused_as_unsigned(ivr: Callable[..., Any], sandbox: Any, aws: Any) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}
    event = rest_event("POST", "/ivr/start", body="%ZZ", headers=headers, is_base64=True, source_ip=TWILIO_IP)
    answer = ivr().send(event)
    assert (answer.status, answer.body) == (403, None)
    assert [i["outcome"] for i in aws.scan(aws.state) if "outcome" in i] == ["signature_invalid"]

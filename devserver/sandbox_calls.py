"""The sandbox's call simulator, ``POST /sandbox/calls``: it plays Twilio's side of one call to the IVR.

``{"from": "+1…", "digits": "code" | "wrong", "worker": "<identity>"}``: it posts signed voice webhooks
(``X-Twilio-Signature``, the `twilio` library's `RequestValidator` algorithm, with the sandbox's auth token)
to the local API's ``/ivr/start``, keys the code from the sandbox's outbox (or a wrong one) into each
``<Gather>``, follows ``<Redirect>``s back to the IVR, and ends where the IVR hands the call on (a
``<Redirect>`` elsewhere, with ``verified``, or an ``<Enqueue>``): then it creates the task for ``worker``
on that call, as Flex would. Answers ``{"callSid", "taskSid", "verified", "twiml": [...]}``.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.request_validator import RequestValidator

if TYPE_CHECKING:
    from devserver.twilio_sandbox import TwilioSandbox

MAX_STEPS = 25  # a call that never ends is a bug in the IVR: stop, and say so


class CallError(Exception):
    pass


def simulate(sandbox: TwilioSandbox, api_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One call from ``body["from"]`` through the IVR at ``api_url``; its task for ``body["worker"]``."""
    caller, digits, worker = (str(body.get(key) or "") for key in ("from", "digits", "worker"))
    if not caller or not worker or digits not in ("code", "wrong"):
        raise CallError('send {"from": "+1…", "digits": "code" | "wrong", "worker": "<identity>"}')
    if not api_url:
        raise CallError("the sandbox does not know the API's URL")
    call_sid = "CA" + secrets.token_hex(16)
    params = {"CallSid": call_sid, "AccountSid": sandbox.account_sid, "From": caller, "To": "+12025550000"}
    params |= {"CallStatus": "in-progress", "Direction": "inbound"}
    url, extra, answers = f"{api_url}/ivr/start", dict[str, str](), list[str]()
    for _ in range(MAX_STEPS):
        twiml = _post(url, params | extra, sandbox.auth_token)
        answers.append(twiml)
        step = _follow(twiml, api_url, _digits(sandbox, caller, digits))
        if isinstance(step, bool):  # the IVR handed the call on
            task = sandbox.taskrouter.create_task(caller, worker, call_sid)
            return {"callSid": call_sid, "taskSid": task, "verified": step, "twiml": answers}
        url, extra = step
    raise CallError(f"the call did not end within {MAX_STEPS} webhooks")


def _follow(twiml: str, api_url: str, digits: str) -> tuple[str, dict[str, str]] | bool:
    """The next webhook (URL, extra parameters), or whether the caller was verified once the IVR let go."""
    root = ET.fromstring(twiml)  # noqa: S314 - the local API's own answer
    for verb in root:
        if verb.tag == "Gather":
            return verb.attrib["action"], {"Digits": digits}
        if verb.tag == "Redirect" and verb.text:
            if verb.text.startswith(api_url):
                return verb.text, {}
            return parse_qs(urlsplit(verb.text).query).get("verified") == ["true"]
        if verb.tag == "Enqueue":
            return json.loads(verb.findtext("Task") or "{}").get("verified") is True
    raise CallError("the IVR's TwiML neither gathers, redirects nor enqueues")


def _digits(sandbox: TwilioSandbox, caller: str, mode: str) -> str:
    sent = [str(m["code"]) for m in sandbox.outbox if m["to"] == caller]
    code = sent[-1] if sent else "000000"
    if mode == "code":
        return code
    return "111111" if code != "111111" else "222222"


def _post(url: str, params: dict[str, str], auth_token: str) -> str:
    signature = RequestValidator(auth_token).compute_signature(url, params)
    request = urllib.request.Request(  # noqa: S310 - the local API's URL
        url,
        data=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return str(response.read().decode())

"""The IVR: Twilio's voice webhooks (POST /ivr/start, POST /ivr/check) in, TwiML out.

The caller is Twilio, proved by `X-Twilio-Signature` (never a Flex token); the answers are TwiML built with
the `twilio` library's `VoiceResponse`, never the JSON error shape, and need no CORS. Every decision is the
core's own (`actions.start_for_call`, `actions.check_for_call`: the same reservation, caps, Lookup risk,
Verify, failed-check count, lockout and audit as an agent's request), made by the agent `ivr` on this call.
A refusal never hangs up on the caller: they hear a sentence and the call goes on to an agent unverified.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from callerauth import errors, fields
from callerauth.agents import Agent
from callerauth.config import ConfigError, Settings
from callerauth.http import MAX_BODY_BYTES, Request
from callerauth.observability import logger, record
from callerauth.privacy import mask
from callerauth.refusals import Refusal
from callerauth.store import AuditEvent
from callerauth.utc import iso

if TYPE_CHECKING:
    from callerauth.actions import Services
    from callerauth.http import Runtime

IVR_AGENT = "ivr"  # the agent of the per-agent cap and of the audit trail
START, CHECK = "/ivr/start", "/ivr/check"
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")

# The caller's sentences, per language of IVR_LOCALE (config.IVR_LANGUAGES).
SENTENCES: dict[str, dict[str, str]] = {
    "en": {
        "sent": "We have sent a code by text message to the phone you are calling from. "
        "Please enter it now, then press the pound key.",
        "again": "That code is not right. Please enter the code again, then press the pound key.",
        "verified": "Thank you, you are verified. Connecting you to an agent.",
        "wrong": "That code is not right. Connecting you to an agent.",
        "refused": "We could not verify you automatically. Connecting you to an agent.",
    },
    "es": {
        "sent": "Le hemos enviado un código por mensaje de texto al teléfono desde el que llama. "
        "Introdúzcalo ahora y pulse la tecla numeral.",
        "again": "Ese código no es correcto. Introdúzcalo de nuevo y pulse la tecla numeral.",
        "verified": "Gracias, su identidad está verificada. Le pasamos con un agente.",
        "wrong": "Ese código no es correcto. Le pasamos con un agente.",
        "refused": "No hemos podido verificarle automáticamente. Le pasamos con un agente.",
    },
}


@dataclass(slots=True)
class Webhook:
    """One of Twilio's requests, decoded: its form parameters, our own query (the attempt), where from."""

    path: str
    params: dict[str, str]
    query: dict[str, str]
    signature: str
    source_ip: str
    request_id: str
    base: str  # the public URL before /ivr/... (IVR_BASE_URL, or the API's own)
    url: str  # the public URL Twilio signed
    log: dict[str, Any] = field(default_factory=dict)

    def request(self) -> Request:
        """The core's request for this webhook: no contract fields (the number is the call's), no token."""
        return Request("POST", self.path, {}, {}, self.source_ip, self.request_id, self.log)


Step = Callable[[Webhook, "Services"], str]


def serve(
    event: Mapping[str, Any], context: Any, routes: Mapping[str, Mapping[str, Step]], runtime: Runtime
) -> dict[str, Any]:
    """Answer one voice webhook: TwiML (200), or an empty 403 (not Twilio's), 404, 405, 400 or 500."""
    started = time.perf_counter()
    request_id = str(getattr(context, "aws_request_id", "") or "local")
    method = str(event.get("httpMethod") or "").upper()
    path = str(event.get("resource") or event.get("path") or "")
    log: dict[str, Any] = {"method": method, "route": path, "request_id": request_id}
    try:
        steps = routes.get(path)
        if steps is None:
            return _empty(log, 404)
        step = steps.get(method)
        if step is None:
            return _empty(log, 405, {"Allow": ", ".join(steps)})
        services = runtime.services()
        webhook = _decode(event, path, request_id, log, services.settings)
        if services.webhooks is None or not services.webhooks.signed(webhook.url, webhook.params, webhook.signature):
            _refuse_unsigned(webhook, services)
            return _empty(log, 403)
        twiml = step(webhook, services)
        log["status"] = 200
        return {"statusCode": 200, "headers": {"Content-Type": "text/xml", "Cache-Control": "no-store"}, "body": twiml}
    except errors.ApiError as exc:  # an undecodable body, or a signed request that is no call
        log["error"] = exc.code
        return _empty(log, 400)
    except ConfigError as exc:
        log |= {"error": "internal_error", "problem": str(exc)}
        logger.error("configuration error", extra=log)
        return _empty(log, 500)
    except Exception as exc:  # frames only: a message can hold a number
        log |= {"error": "internal_error", "exception": type(exc).__name__}
        log["frames"] = traceback.format_tb(exc.__traceback__)[-5:]
        logger.error("unhandled exception", extra=log)
        return _empty(log, 500)
    finally:
        log["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        record(log)


# -- the two steps ----------------------------------------------------------------------------------


def start(webhook: Webhook, services: Services) -> str:
    """The call came in: send a code by SMS to the calling number, and gather the digits."""
    from callerauth.actions import start_for_call

    settings = services.settings
    target, caller = _call(webhook, services)
    if target is None:
        return _onwards(settings, "refused", verified=False)
    try:
        start_for_call(webhook.request(), services, target, caller)
    except Refusal:  # a limit, a lock, a risky number, Twilio or storage down: audited; on to an agent
        return _onwards(settings, "refused", verified=False)
    return _gather(settings, webhook.base, "sent", attempt=1)


def check(webhook: Webhook, services: Services) -> str:
    """The caller keyed digits (or nothing): check them; again, or on to an agent, verified or not."""
    from callerauth.actions import check_for_call

    settings = services.settings
    target, caller = _call(webhook, services)
    if target is None:
        return _onwards(settings, "refused", verified=False)
    attempt = _attempt(webhook.query.get("attempt", ""), settings.ivr_max_attempts)
    digits = webhook.params.get("Digits", "").strip("#* ")
    try:
        check_for_call(webhook.request(), services, target, caller, digits)
    except Refusal as refusal:
        if refusal.code == "incorrect_code" and attempt < settings.ivr_max_attempts:
            return _gather(settings, webhook.base, "again", attempt=attempt + 1)
        return _onwards(settings, "wrong" if refusal.code == "incorrect_code" else "refused", verified=False)
    return _onwards(settings, "verified", verified=True, at=iso(int(services.clock())))


# -- TwiML ------------------------------------------------------------------------------------------


def _gather(settings: Settings, base: str, sentence: str, attempt: int) -> str:
    """Say the sentence inside a <Gather> whose action is /ivr/check with this attempt's number (Twilio signs
    that URL, query included, so the number cannot be forged); no entry at all comes to /ivr/check too."""
    from twilio.twiml.voice_response import VoiceResponse

    check_url = f"{base}{CHECK}?{urlencode({'attempt': attempt})}"
    response = VoiceResponse()
    gather = response.gather(input="dtmf", action=check_url, method="POST", finish_on_key="#", timeout=10)
    gather.say(SENTENCES[settings.ivr_locale[:2]][sentence], language=settings.ivr_locale)
    response.redirect(check_url, method="POST")  # the caller keyed nothing: a wrong entry, audited
    return str(response.to_xml())


def _onwards(settings: Settings, sentence: str, *, verified: bool, at: str | None = None) -> str:
    """Say the sentence, then continue the call: back to the Studio flow, or into the TaskRouter workflow."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(SENTENCES[settings.ivr_locale[:2]][sentence], language=settings.ivr_locale)
    if settings.ivr_workflow_sid:
        # What the agent's Flex sees; customer-info never trusts it (the approval is the state table's).
        attributes = {"verified": verified, "verifiedAt": at, "verificationMethod": "ivr" if verified else None}
        response.enqueue(None, workflow_sid=settings.ivr_workflow_sid).task(json.dumps(attributes))
    elif settings.ivr_redirect_url:
        joiner = "&" if "?" in settings.ivr_redirect_url else "?"
        flag = urlencode({"verified": "true" if verified else "false"})
        response.redirect(f"{settings.ivr_redirect_url}{joiner}{flag}", method="POST")
    else:
        raise ConfigError("The IVR needs IVR_REDIRECT_URL (a Studio flow) or IVR_WORKFLOW_SID (a workflow)")
    return str(response.to_xml())


def base_url(settings: Settings, event: Mapping[str, Any] | None = None) -> str:
    """The public URL before /ivr/...: IVR_BASE_URL, else the API's own (its domain and stage)."""
    if settings.ivr_base_url:
        return settings.ivr_base_url
    context = (event or {}).get("requestContext") or {}
    domain, stage = context.get("domainName"), context.get("stage")
    if not domain or not stage:
        raise ConfigError("IVR_BASE_URL is not set and the request does not say its API's domain and stage")
    return f"https://{domain}/{stage}"


# -- decoding and refusing --------------------------------------------------------------------------


def _decode(event: Mapping[str, Any], path: str, request_id: str, log: dict[str, Any], settings: Settings) -> Webhook:
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    identity = (event.get("requestContext") or {}).get("identity") or {}
    base = base_url(settings, event)
    url = base + path
    if query:
        url += "?" + urlencode(query)
    try:
        params = dict(_form(event))
    except errors.ApiError as exc:  # nothing Twilio signed: refused as unsigned (the signature cannot match)
        params, log["error"] = {}, exc.code
    return Webhook(
        path,
        params,
        query,
        headers.get("x-twilio-signature", ""),
        str(identity.get("sourceIp") or "unknown"),
        request_id,
        base,
        url,
        log,
    )


def _form(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    body = str(event.get("body") or "")
    if len(body) > MAX_BODY_BYTES * 2:
        raise errors.body_too_large()
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
        return parse_qsl(raw.decode(), keep_blank_values=True, errors="strict")
    except (binascii.Error, UnicodeError, ValueError):
        raise errors.malformed_body("The webhook's body is not a form.") from None


def _refuse_unsigned(webhook: Webhook, services: Services) -> None:
    """Not Twilio's: nothing is done, and one audit event goes under the source (within its budget)."""
    from callerauth.actions import audit_under_source

    event = AuditEvent(
        action="ivr_start" if webhook.path == START else "ivr_check",
        outcome="signature_invalid",
        agent="unidentified",
        masked_to=mask(webhook.params.get("From", "")) or "unknown",
        request_id=webhook.request_id,
        at=services.clock(),
    )
    webhook.log |= {"outcome": "signature_invalid", "status": 403}
    try:
        if audit_under_source(services, webhook.source_ip, int(services.clock()), event) is not None:
            webhook.log["reason"] = "source_refusals"
    except Refusal:  # storage down: refused all the same
        webhook.log["reason"] = "audit_unavailable"


def _call(webhook: Webhook, services: Services) -> tuple[fields.Destination | None, Agent]:
    """The calling number (the code's destination) and the IVR as this call's agent. A caller with no usable
    number (withheld, not a phone number) cannot get a code: None, audited under the call."""
    call_sid = webhook.params.get("CallSid", "")
    if not CALL_SID.fullmatch(call_sid):
        raise errors.invalid_parameter("Not a voice call: no CallSid.")
    webhook.log["call_sid"] = call_sid
    caller = Agent(IVR_AGENT, call_sid=call_sid)
    try:
        return fields.start_target({"to": webhook.params.get("From", ""), "channel": "sms"}, ("sms",)), caller
    except errors.ApiError as exc:
        webhook.log |= {"outcome": exc.code, "reason": "caller_number"}
        event = AuditEvent(
            action="start" if webhook.path == START else "check",
            outcome=exc.code,
            agent=IVR_AGENT,
            masked_to="unknown",
            request_id=webhook.request_id,
            at=services.clock(),
            call_sid=call_sid,
        )
        with suppress(Refusal):  # storage down: the caller still goes on to an agent
            services.store.audit(services.hasher.key(f"call:{call_sid}"), int(services.clock()), event)
        return None, caller


def _attempt(raw: str, most: int) -> int:
    return min(int(raw), most) if raw.isdigit() and int(raw) >= 1 else 1


def _empty(log: dict[str, Any], status: int, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    log["status"] = status
    return {"statusCode": status, "headers": {"Cache-Control": "no-store", **(headers or {})}, "body": ""}

"""Twilio Verify v2 through the `twilio` client, and Twilio's errors in the contract's terms."""

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

from callerauth import twilio_rest
from callerauth.refusals import Code, Refusal, unavailable

# Seconds until Twilio lets a destination try again after its own limits (a verification lives 10 minutes).
TWILIO_WINDOW_SECONDS = 600


class Credentials(NamedTuple):
    account_sid: str
    auth_token: str
    verify_service_sid: str


class Sent(NamedTuple):
    sid: str
    status: str
    channel: str


class Verify(Protocol):
    def start(self, to: str, channel: str, locale: str) -> Sent: ...
    def check(self, to: str, code: str) -> bool:
        """True when Twilio approves the code; False when it is wrong."""
        ...

    def cancel(self, to: str) -> None: ...


class TwilioVerify:
    """Verify v2 through the `twilio` client, with a timeout well under the Lambda's, rebuilt when the
    credentials change. The calls are the ones `client.verify.v2.services(sid).verifications.create(...)` and
    its siblings make (twilio_rest.Api says why not through them)."""

    def __init__(self, credentials: Callable[[], Credentials], base_url: str, timeout: float) -> None:
        self._credentials = credentials
        self._api = twilio_rest.Api(base_url, "v2", timeout, error_for)

    def start(self, to: str, channel: str, locale: str) -> Sent:
        verification = self._post("Verifications", {"To": to, "Channel": channel, "Locale": locale})
        sid, sent_by = verification.get("sid", ""), verification.get("channel", channel)
        return Sent(sid=str(sid), status=verification["status"], channel=str(sent_by))

    def check(self, to: str, code: str) -> bool:
        return self._post("VerificationCheck", {"To": to, "Code": code})["status"] == "approved"

    def cancel(self, to: str) -> None:
        # A path segment: the "+" of a number must be encoded.
        self._post(f"Verifications/{quote(to, safe='')}", {"Status": "canceled"})

    def _post(self, path: str, data: dict[str, str]) -> dict[str, Any]:
        credentials = self._credentials()
        result = self._api.post(basic_auth(credentials), f"/Services/{credentials.verify_service_sid}/{path}", data)
        if not isinstance(result, dict) or not isinstance(result.get("status"), str):
            raise Refusal("upstream_error", "twilio_unreadable")
        return result


def basic_auth(credentials: Credentials) -> tuple[str, str]:
    """What Twilio's APIs authenticate with: the account SID and its auth token."""
    return credentials.account_sid, credentials.auth_token


def error_for(status: int, twilio_code: int | None) -> Refusal:
    """Twilio's answer (HTTP status, Twilio error code) as the domain's refusal."""
    if twilio_code is not None and twilio_code < 10000:
        twilio_code = None  # the client fills in the HTTP status when Twilio gave no code: not a Twilio code
    known = TWILIO_REFUSALS.get(twilio_code) if twilio_code is not None else None
    if known is not None:
        code, reason, retry_after = known
        shown = twilio_code not in TRANSIENT  # a transient refusal needs only a retry, not Twilio's docs
        return Refusal(code, reason, retry_after=retry_after, twilio_code=twilio_code if shown else None)
    if status >= 500:
        return unavailable("twilio_5xx")
    return Refusal("upstream_error", "twilio", twilio_code=twilio_code)


# Twilio failed in a way that does not say whether it acted: a send may have gone, a check been judged.
UNKNOWN_OUTCOMES = frozenset({"twilio_no_answer", "twilio_5xx", "twilio_unreadable"})


def outcome_unknown(refusal: Refusal) -> bool:
    """True when Twilio may have done what it was asked, so the worse case for an attacker must be assumed."""
    return refusal.reason in UNKNOWN_OUTCOMES


# Twilio error code -> (our code, reason, seconds to wait). https://www.twilio.com/docs/api/errors
TWILIO_REFUSALS: dict[int, tuple[Code, str | None, int | None]] = {
    60200: ("invalid_parameter", None, None),
    60202: ("too_many_attempts", None, TWILIO_WINDOW_SECONDS),
    60203: ("max_send_attempts", None, TWILIO_WINDOW_SECONDS),
    60205: ("destination_blocked", "landline", None),
    60410: ("destination_blocked", "fraud_guard", None),
    60605: ("destination_blocked", "geo_permissions", None),
    60212: ("rate_limited", "concurrent_requests", 5),
    20404: ("verification_not_found", None, None),
    20429: ("upstream_unavailable", "twilio_busy", 1),
}
TRANSIENT = frozenset({60212, 20429})

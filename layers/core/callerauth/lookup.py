"""Twilio Lookup v2 through the `twilio` client: what the phone network says about a number before a code is sent.

Only what the decisions need is kept: the line type, the SIM swap, call forwarding and the SMS-pumping
risk. Never the carrier's name, nor the number (the cache is keyed by its HMAC, like all state).
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

from callerauth import twilio_rest
from callerauth.refusals import Refusal, unavailable
from callerauth.twilio_verify import Credentials, basic_auth


class Signals(NamedTuple):
    """What Lookup answered for one number, at `at`. None: not asked, or the package could not answer."""

    fields: tuple[str, ...]  # the packages asked
    at: int
    line_type: str | None = None  # Twilio's type: mobile, landline, nonFixedVoip, tollFree, ...
    sim_swapped_in_period: bool | None = None  # a swap within Twilio's own period (swapped_period)
    sim_swapped_at: int | None = None  # when, where the carrier tells
    call_forwarding: bool | None = None  # unconditional forwarding is on
    sms_pumping_risk_score: int | None = None  # 0-100
    number_blocked: bool | None = None  # blocked by Verify Fraud Guard for SMS pumping
    unanswered: tuple[str, ...] = ()  # packages that answered an error code instead

    def stored(self) -> dict[str, Any]:
        """The cache's copy (JSON-able)."""
        return self._asdict()

    @classmethod
    def from_stored(cls, values: Mapping[str, Any]) -> "Signals":
        known = set(cls._fields)
        kept: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
        return cls(**kept)


class Lookup(Protocol):
    def signals(self, number: str, packages: tuple[str, ...], now: int) -> Signals:
        """Lookup's answer for `number`; raises a Refusal when Lookup cannot be asked or does not answer."""
        ...


class TwilioLookup:
    """Lookup v2 through the `twilio` client: the call `client.lookups.v2.phone_numbers(n).fetch(fields=...)`
    makes (twilio_rest.Api says why not through it), with the Verify adapter's timeout and errors."""

    def __init__(self, credentials: Callable[[], Credentials], base_url: str, timeout: float) -> None:
        self._credentials = credentials
        self._api = twilio_rest.Api(base_url, "v2", timeout, _error_for)

    def signals(self, number: str, packages: tuple[str, ...], now: int) -> Signals:
        # A path segment: the "+" of a number must be encoded.
        uri = f"/PhoneNumbers/{quote(number, safe='')}"
        answer = self._api.get(basic_auth(self._credentials()), uri, {"Fields": ",".join(packages)})
        return read(answer, packages, now)


def read(answer: Any, packages: tuple[str, ...], now: int) -> Signals:
    """Lookup's answer (its JSON: one object per data package asked) as Signals."""
    found: dict[str, Any] = {}
    unanswered = []
    for package in packages:
        value = answer.get(package) if isinstance(answer, Mapping) else None
        if not isinstance(value, dict) or value.get("error_code") is not None:
            unanswered.append(package)
            continue
        found.update(_PACKAGES[package](value))
    return Signals(fields=packages, at=now, unanswered=tuple(unanswered), **found)


def _line_type(package: Mapping[str, Any]) -> dict[str, Any]:
    kind = package.get("type")
    return {"line_type": kind if isinstance(kind, str) else None}


def _sim_swap(package: Mapping[str, Any]) -> dict[str, Any]:
    last = package.get("last_sim_swap") or {}
    return {
        "sim_swapped_in_period": _flag(last.get("swapped_in_period")),
        "sim_swapped_at": _time(last.get("last_sim_swap_date")),
    }


def _call_forwarding(package: Mapping[str, Any]) -> dict[str, Any]:
    # Twilio's description names it call_forwarding_status; newer clients read call_forwarding_enabled.
    status = package.get("call_forwarding_status", package.get("call_forwarding_enabled"))
    return {"call_forwarding": _flag(status)}


def _sms_pumping_risk(package: Mapping[str, Any]) -> dict[str, Any]:
    score = package.get("sms_pumping_risk_score")
    valid = isinstance(score, int) and not isinstance(score, bool)
    return {"sms_pumping_risk_score": score if valid else None, "number_blocked": _flag(package.get("number_blocked"))}


_PACKAGES: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "line_type_intelligence": _line_type,
    "sim_swap": _sim_swap,
    "call_forwarding": _call_forwarding,
    "sms_pumping_risk": _sms_pumping_risk,
}


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _time(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _error_for(status: int, twilio_code: int | None) -> Refusal:
    """Lookup refused: whatever the reason, the signals are unknown (LOOKUP_FAILURE decides what follows)."""
    if status >= 500 or status == 429:
        return unavailable("lookup_unavailable")
    return Refusal("upstream_error", "lookup_refused", twilio_code=twilio_code)

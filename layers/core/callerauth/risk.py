"""The phone number's own risk, weighed before a code is sent (NIST SP 800-63B-4 §3.1.3.3).

A code sent over the phone network proves possession of a number, not of a phone: a SIM swapped
yesterday, unconditional call forwarding or a number bought for the attack all defeat it. `assess`
turns Lookup's signals into the channel to send by, or a refusal an agent can act on.
"""

from typing import Any, NamedTuple

from callerauth.config import Settings
from callerauth.limits import DAY
from callerauth.lookup import Signals
from callerauth.refusals import Refusal
from callerauth.utc import iso

# Channels that ring or message a phone: the ones Lookup's signals are about.
PHONE_CHANNELS = ("sms", "call", "whatsapp")


class Assessment(NamedTuple):
    channel: str  # what to send by: the one asked for, or "call" for a landline
    evidence: dict[str, Any]  # what was weighed, for the audit trail and the agent (no carrier, no number)
    refusal: Refusal | None = None  # `destination_risky`, with the signal that decided it


def assess(signals: Signals | None, channel: str, settings: Settings, now: int) -> Assessment:
    """The channel to send by, or the refusal, with the evidence either way.

    `signals` is None when Lookup did not answer at all (a timeout, a 5xx): LOOKUP_FAILURE decides.
    """
    if signals is None:
        evidence: dict[str, Any] = {"verdict": "incomplete", "unanswered": list(settings.lookup_fields)}
        reason = "risk_unknown" if settings.lookup_failure == "refuse" else None
    else:
        evidence = _evidence(signals, settings, now)
        channel, reason = _decide(signals, evidence, channel, settings)
    if reason is None:
        return Assessment(channel, evidence)
    return Assessment(
        channel, {**evidence, "verdict": "refused", "reason": reason}, Refusal("destination_risky", reason)
    )


def not_checked(channel: str) -> Assessment:
    """Lookup is off, or the code goes to an e-mail address."""
    return Assessment(channel, {"verdict": "not_checked"})


def _decide(signals: Signals, evidence: dict[str, Any], channel: str, settings: Settings) -> tuple[str, str | None]:
    """(channel, None) to send, or (channel, the reason to refuse): the strongest signal speaks first."""
    score = signals.sms_pumping_risk_score
    if evidence.get("simSwapped"):
        return channel, "sim_swap"
    if signals.number_blocked or (score is not None and score >= settings.sms_pumping_risk_threshold):
        return channel, "sms_pumping_risk"
    if signals.line_type in settings.blocked_line_types:
        return channel, "line_type"
    if signals.line_type == "landline" and channel != "call":
        if "call" not in settings.allowed_channels:
            return channel, "landline"
        channel = "call"  # a landline cannot read a text, but it can hear a code
    if channel == "call" and signals.call_forwarding:
        return channel, "call_forwarding"  # the call would ring someone else's phone
    if signals.unanswered and settings.lookup_failure == "refuse":
        return channel, "risk_unknown"
    return channel, None


def _evidence(signals: Signals, settings: Settings, now: int) -> dict[str, Any]:
    verdict = "incomplete" if signals.unanswered else "passed"
    evidence: dict[str, Any] = {"verdict": verdict, "checkedAt": iso(signals.at)}
    if "line_type_intelligence" in signals.fields:
        evidence["lineType"] = signals.line_type
    if "sim_swap" in signals.fields:
        evidence["simSwapped"] = _swapped(signals, settings, now)
    if "call_forwarding" in signals.fields:
        evidence["callForwarding"] = signals.call_forwarding
    if "sms_pumping_risk" in signals.fields:
        evidence["smsPumpingRiskScore"] = signals.sms_pumping_risk_score
        evidence["numberBlocked"] = signals.number_blocked
    if signals.unanswered:
        evidence["unanswered"] = list(signals.unanswered)
    return evidence


def _swapped(signals: Signals, settings: Settings, now: int) -> bool | None:
    """A swap within SIM_SWAP_WINDOW_DAYS. Twilio gives the date only where the carrier shares it, and
    otherwise "swapped within its own period" (`swapped_period`, e.g. 24 h): that counts as a recent
    swap whatever the period is, since a longer one may still hide a swap of yesterday."""
    if signals.sim_swapped_at is not None:
        return now - signals.sim_swapped_at < settings.sim_swap_window_days * DAY
    return signals.sim_swapped_in_period

"""Send limits and lockouts: fixed windows, and which refusal (with what Retry-After) a breach means."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from callerauth import errors
from callerauth.config import Settings

HOUR, MINUTE = 3600, 60


@dataclass(frozen=True, slots=True)
class Window:
    """A fixed counting window: its id (part of the counter's key) and when it ends."""

    id: int
    ends_at: int


def window(now: int, length: int) -> Window:
    return Window(id=now // length, ends_at=(now // length + 1) * length)


def send_refusal(breached: Mapping[str, Mapping[str, int] | None], now: int, settings: Settings) -> errors.ApiError:
    """The answer to a refused send reservation.

    `breached` maps each reservation item whose condition failed ("state", "destination", "agent",
    "deployment") to its values at that moment (None when a concurrent send held it). The most
    specific reason speaks; Retry-After is the longest wait among them, so a retry at that time can pass.
    """
    waits: dict[str, int] = {}
    state = breached.get("state")
    if "state" in breached:
        if state and state.get("locked_until", 0) > now:
            waits["locked"] = state["locked_until"] - now
        else:
            last_send = state.get("last_send", now) if state else now
            waits["cooldown"] = max(1, last_send + settings.send_cooldown_seconds - now)
    if "destination" in breached:
        waits["destination"] = window(now, HOUR).ends_at - now
    if "agent" in breached:
        waits["agent"] = window(now, HOUR).ends_at - now
    if "deployment" in breached:
        waits["deployment"] = window(now, MINUTE).ends_at - now
    retry_after = max(waits.values(), default=1)
    if "locked" in waits:
        return errors.too_many_attempts(_locked_message(retry_after), retry_after)
    if "cooldown" in waits:
        return errors.rate_limited(f"A code was just sent; you can resend in {retry_after} s.", retry_after, "cooldown")
    if "destination" in waits:
        return errors.rate_limited(
            f"Too many codes sent to this number ({settings.max_sends_per_destination_per_hour} an hour); "
            f"try again in {_minutes(retry_after)}.",
            retry_after,
            "destination_cap",
        )
    if "agent" in waits:
        return errors.rate_limited(
            f"You have sent too many codes ({settings.max_sends_per_agent_per_hour} an hour); "
            f"try again in {_minutes(retry_after)}.",
            retry_after,
            "agent_cap",
        )
    return errors.rate_limited(
        f"Verification is paused: too many codes sent across the contact centre; try again in {retry_after} s.",
        retry_after,
        "circuit_breaker",
    )


def locked(locked_until: int, now: int) -> errors.ApiError:
    return errors.too_many_attempts(_locked_message(locked_until - now), locked_until - now)


def _locked_message(seconds: int) -> str:
    return f"Too many incorrect codes for this number; try again in {_minutes(seconds)}."


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"

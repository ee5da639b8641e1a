"""Send limits and lockouts: fixed windows, and which refusal (with what wait) a breach means."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from callerauth.config import Settings
from callerauth.refusals import Refusal

HOUR, MINUTE = 3600, 60


@dataclass(frozen=True, slots=True)
class Window:
    """A fixed counting window: its id (part of the counter's key) and when it ends."""

    id: int
    ends_at: int


def window(now: int, length: int) -> Window:
    return Window(id=now // length, ends_at=(now // length + 1) * length)


def send_refusal(breached: Mapping[str, Mapping[str, int] | None], now: int, settings: Settings) -> Refusal:
    """The refusal of a send reservation.

    `breached` maps each reservation item whose condition failed ("state", "destination", "agent",
    "deployment") to its values at that moment (None when a concurrent send held it). The most
    specific reason speaks; the wait is the longest among them, so a retry at that time can pass.
    """
    waits: dict[str, int] = {}
    state = breached.get("state")
    if "state" in breached:
        if state and state.get("locked_until", 0) > now:
            waits["locked"] = state["locked_until"] - now
        else:
            last_send = state.get("last_send", now) if state else now
            waits["cooldown"] = max(1, last_send + settings.send_cooldown_seconds - now)
    hour_left, minute_left = window(now, HOUR).ends_at - now, window(now, MINUTE).ends_at - now
    caps = {
        "destination": ("destination_cap", hour_left, settings.max_sends_per_destination_per_hour),
        "agent": ("agent_cap", hour_left, settings.max_sends_per_agent_per_hour),
        "deployment": ("circuit_breaker", minute_left, settings.max_sends_per_minute),
    }
    for item, (reason, wait, _) in caps.items():
        if item in breached:
            waits[reason] = wait
    retry_after = max(waits.values(), default=1)
    if "locked" in waits:
        return Refusal("too_many_attempts", "locked", retry_after=retry_after)
    reason = next(iter(waits), "circuit_breaker")  # the most specific: cooldown, then destination, agent, deployment
    limit = next((cap for name, _, cap in caps.values() if name == reason), None)
    return Refusal("rate_limited", reason, retry_after=retry_after, limit=limit)


def locked(locked_until: int, now: int) -> Refusal:
    return Refusal("too_many_attempts", "locked", retry_after=locked_until - now)

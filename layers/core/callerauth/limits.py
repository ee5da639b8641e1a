"""Send limits and lockouts: caps that hold over any span of their length, and what a breach answers.

A cap of N sends per window of length L counts each send twice, in the counter of its own window
and in the counter of the next one, so the counter of window k holds the sends of windows k-1 and
k. A send is admitted only while that counter is below N. Any span of length L lies within two
adjacent windows, so it never holds more than N sends (a fixed window alone lets 2N through across
its edge). The price: after a burst, a sender may wait up to one window longer than a perfect log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from callerauth.config import Settings
from callerauth.refusals import Refusal

MINUTE, HOUR, DAY = 60, 3600, 86400


@dataclass(frozen=True, slots=True)
class Cap:
    name: str  # which limit: destination, agent, minute, hour, day
    reason: str  # what a breach is called in logs, metrics and the message
    pk: str  # the counters' partition: the destination's, the agent's or the deployment's
    length: int  # seconds
    limit: int

    def window(self, now: int) -> int:
        return now // self.length

    def counter(self, window: int) -> str:
        """Sort key of the counter that admits sends in `window` (it also holds the window before)."""
        return f"SENDS#{self.length}#{window}"

    def ends_at(self, window: int) -> int:
        return (window + 1) * self.length


def caps(dest_pk: str, agent_pk: str, settings: Settings) -> tuple[Cap, ...]:
    """Every cap a send must pass, most specific first (the first breached one names the refusal)."""
    return (
        Cap("destination", "destination_cap", dest_pk, HOUR, settings.max_sends_per_destination_per_hour),
        Cap("agent", "agent_cap", agent_pk, HOUR, settings.max_sends_per_agent_per_hour),
        Cap("minute", "circuit_breaker", "DEPLOYMENT", MINUTE, settings.max_sends_per_minute),
        Cap("hour", "hourly_budget", "DEPLOYMENT", HOUR, settings.max_sends_per_hour),
        Cap("day", "daily_budget", "DEPLOYMENT", DAY, settings.max_sends_per_day),
    )


def send_refusal(
    breached: Mapping[str, Mapping[str, int] | None], now: int, settings: Settings, all_caps: tuple[Cap, ...]
) -> Refusal:
    """The refusal of a send reservation.

    `breached` maps each reservation item whose condition failed ("state", or a cap's name) to its
    values at that moment (None when a concurrent send held it). The most specific reason speaks; the
    wait is the longest among them, so a retry at that time can pass.
    """
    waits: dict[str, int] = {}
    state = breached.get("state")
    if "state" in breached:
        if state and state.get("locked_until", 0) > now:
            waits["locked"] = state["locked_until"] - now
        else:
            last_send = state.get("last_send", now) if state else now
            waits["cooldown"] = max(1, last_send + settings.send_cooldown_seconds - now)
    hit = [cap for cap in all_caps if cap.name in breached]
    for cap in hit:
        # The counter holds this window's sends and the last one's: when this window's alone reach the
        # limit, the next window starts full too.
        own = (breached[cap.name] or {}).get("own", 0)
        window = cap.window(now) + (1 if own >= cap.limit else 0)
        waits[cap.reason] = cap.ends_at(window) - now
    retry_after = max(waits.values(), default=1)
    if "locked" in waits:
        return Refusal("too_many_attempts", "locked", retry_after=retry_after)
    if "cooldown" in waits or not hit:
        return Refusal("rate_limited", "cooldown", retry_after=retry_after)
    return Refusal("rate_limited", hit[0].reason, retry_after=retry_after, limit=hit[0].limit)


def locked(locked_until: int, now: int) -> Refusal:
    return Refusal("too_many_attempts", "locked", retry_after=locked_until - now)

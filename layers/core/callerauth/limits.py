"""Send limits and lockouts: caps that hold over any span of their length, and what a breach answers.

A cap of N sends per window of length L counts each send twice, in the counter of its own window
and in the counter of the next one, so the counter of window k holds the sends of windows k-1 and
k. A send is admitted only while that counter is below N. Any span of length L lies within two
adjacent windows, so it never holds more than N sends (a fixed window alone lets 2N through across
its edge). The price: after a burst, a sender may wait up to one window longer than a perfect log.

The deployment's caps are split over `Settings.deployment_counter_shards` counters, so that concurrent
sends to different numbers do not all write one item (DynamoDB cancels concurrent transactions on an
item with `TransactionConflict`). A cap of N over S shards gives shard s an allowance of N // S, plus
one for the first N % S shards: the allowances sum to N, and each shard's counter holds over any span
as above, so the deployment never sends more than N in any span. A send counts on one shard per cap,
picked from its destination (`shard_of`); the store tries other shards when that one is full or busy.
"""

from collections.abc import Mapping
from typing import NamedTuple
from zlib import crc32

from callerauth.config import Settings
from callerauth.refusals import Refusal

MINUTE, HOUR, DAY = 60, 3600, 86400
DEPLOYMENT = "DEPLOYMENT"  # the deployment's counters' partition: DEPLOYMENT#<shard>


class Cap(NamedTuple):
    name: str  # which limit: destination, agent, minute, hour, day
    reason: str  # what a breach is called in logs, metrics and the message
    pk: str  # the counters' partition: the destination's, the agent's or the deployment shard's
    length: int  # seconds
    limit: int  # the cap, as configured (what a refusal names)
    shard: int = 0  # for the deployment's caps: which of `shards` counters this send counts on
    shards: int = 1  # how many counters the cap is split over (1: not split)

    @property
    def allowance(self) -> int:
        """What this counter may admit: the whole limit, or this shard's share (the shares sum to the limit)."""
        share, rest = divmod(self.limit, self.shards)
        return share + (1 if self.shard < rest else 0)

    @property
    def sharded(self) -> bool:
        return self.pk.startswith(DEPLOYMENT)

    def on(self, shard: int) -> "Cap":
        """The same cap, counted on another of its shards."""
        return self._replace(shard=shard % self.shards, pk=f"{DEPLOYMENT}#{shard % self.shards}")

    def window(self, now: int) -> int:
        return now // self.length

    def counter(self, window: int) -> str:
        """Sort key of the counter that admits sends in `window` (it also holds the window before)."""
        return f"SENDS#{self.length}#{window}"

    def ends_at(self, window: int) -> int:
        return (window + 1) * self.length


def caps(dest_pk: str, agent_pk: str, settings: Settings, shard: int = 0) -> tuple[Cap, ...]:
    """Every cap a send must pass, most specific first (the first breached one names the refusal); the
    deployment's on `shard` (of as many shards as the setting says, and never more than the cap: every
    shard admits at least one send)."""

    def deployment(name: str, reason: str, length: int, limit: int) -> "Cap":
        return Cap(name, reason, DEPLOYMENT, length, limit, shards=min(settings.deployment_counter_shards, limit))

    deployment_caps = (
        deployment("minute", "circuit_breaker", MINUTE, settings.max_sends_per_minute),
        deployment("hour", "hourly_budget", HOUR, settings.max_sends_per_hour),
        deployment("day", "daily_budget", DAY, settings.max_sends_per_day),
    )
    return (
        Cap("destination", "destination_cap", dest_pk, HOUR, settings.max_sends_per_destination_per_hour),
        Cap("agent", "agent_cap", agent_pk, HOUR, settings.max_sends_per_agent_per_hour),
        *(cap.on(shard) for cap in deployment_caps),
    )


def shard_of(key: str) -> int:
    """A destination's first-choice shard (any shard count: reduced modulo it). Not a secret: `key` is
    already the destination's HMAC, and a sender who aims every send at one shard only fills that shard."""
    return crc32(key.encode())


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
        window = cap.window(now) + (1 if own >= cap.allowance else 0)
        waits[cap.reason] = cap.ends_at(window) - now
    retry_after = max(waits.values(), default=1)
    if "locked" in waits:
        return Refusal("too_many_attempts", "locked", retry_after=retry_after)
    if "cooldown" in waits or not hit:
        return Refusal("rate_limited", "cooldown", retry_after=retry_after)
    return Refusal("rate_limited", hit[0].reason, retry_after=retry_after, limit=hit[0].limit)


def locked(locked_until: int, now: int) -> Refusal:
    return Refusal("too_many_attempts", "locked", retry_after=locked_until - now)

"""The deployment's caps on sharded counters: concurrent sends to different numbers do not contend on one
item, and the caps still hold over any span (issue 11, item 5).

DynamoDB cancels a transaction that touches an item another in-flight transaction is writing
(`TransactionConflict`), long before an item's throughput limit; moto serialises everything, so
`ContendedClient` models it: transactions in flight at once that share an item conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from callerauth import limits
from callerauth.config import ConfigError, Settings
from callerauth.refusals import Refusal
from callerauth.store import AuditEvent, StateStore
from hypothesis import example, given, settings
from hypothesis import strategies as st

NOW = 1_700_000_000 + 40  # 0 s into a minute would put every send at a window's edge; 40 s in, none is
ROOMY = {"send_cooldown_seconds": 0, "max_sends_per_destination_per_hour": 1000, "max_sends_per_agent_per_hour": 1000}
Key = tuple[str, str]


class ContendedClient:
    """moto's client, with DynamoDB's per-item transaction conflicts modelled.

    A transaction is in flight from its arrival until moto has applied it. While one is in flight, the
    requests queued in `arrivals` run (each may queue more): they are concurrent with it, and with each other.
    A transaction that touches an item an in-flight transaction touches is cancelled, with
    `TransactionConflict` as the reason of each shared item and "None" for the others (the one that came
    first wins; DynamoDB may cancel either, which changes nothing counted here).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.in_flight: list[set[Key]] = []
        self.arrivals: list[Callable[[], Any]] = []
        self.transactions = 0
        self.conflicts: list[set[Key]] = []  # the items each cancelled transaction shared
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self._client.batch_get_item(**kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.transactions += 1
        keys = [_item_key(item) for item in kwargs["TransactItems"]]
        held = set().union(*self.in_flight)
        if shared := held.intersection(keys):
            self.conflicts.append(shared)
            reasons = [{"Code": "TransactionConflict" if key in shared else "None"} for key in keys]
            error = {"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}}
            raise self._client.exceptions.TransactionCanceledException(
                {**error, "CancellationReasons": reasons}, "TransactWriteItems"
            )
        mine = set(keys)
        self.in_flight.append(mine)
        try:
            while self.arrivals:  # they arrive while this one is in flight
                self.arrivals.pop(0)()
            return self._client.transact_write_items(**kwargs)
        finally:
            self.in_flight.remove(mine)


def _item_key(item: dict[str, Any]) -> Key:
    body = next(iter(item.values()))
    key = body.get("Key") or body["Item"]
    return key["pk"]["S"], key["sk"]["S"]


def _deployment(keys: set[Key]) -> bool:
    return all(pk.startswith(limits.DEPLOYMENT) for pk, _ in keys)


def _event(request_id: str) -> AuditEvent:
    return AuditEvent("start", "upstream_unavailable", "agent", "+1202*****00", request_id)


def _destinations(shards: int, distinct: bool) -> Iterator[str]:
    """Destination keys whose first-choice shards are all different (or, `distinct=False`, all the same)."""
    seen: set[int] = set()
    for i in range(100_000):
        shard = limits.shard_of(f"dest-{i}") % shards
        if (shard not in seen) if distinct else (shard == limits.shard_of("dest-0") % shards):
            seen.add(shard)
            yield f"dest-{i}"


def _burst(store: StateStore, client: ContendedClient, dests: list[str]) -> list[str | Refusal]:
    """Every destination's send at once (each by an agent of its own), as ContendedClient models it."""
    answers: list[str | Refusal] = []

    def send(i: int) -> Callable[[], None]:
        def go() -> None:
            try:
                answers.append(store.reserve_send(dests[i], f"agent-{i}", NOW, f"req-{i}"))
            except Refusal as refusal:
                answers.append(refusal)

        return go

    client.arrivals = [send(i) for i in range(1, len(dests))]
    send(0)()
    return answers


def _sends_counted(world: Any, cap: str) -> int:
    """The sends the deployment's `cap` counter of this window holds, over every shard."""
    length = {"minute": limits.MINUTE, "hour": limits.HOUR, "day": limits.DAY}[cap]
    sk = f"SENDS#{length}#{NOW // length}"
    return sum(
        int(item["n"]["N"])
        for item in world.items()
        if item["pk"]["S"].startswith(limits.DEPLOYMENT + "#") and item["sk"]["S"] == sk
    )


# ---------------------------------------------------------------------------------------- concurrency


def test_concurrent_sends_to_numbers_on_different_shards_never_conflict(world_factory: Callable[..., Any]) -> None:
    # Given 8 shards, and 8 sends to different numbers (whose shards differ) arriving all at once
    world = world_factory(deployment_counter_shards=8, **ROOMY)
    client = ContendedClient(world.client)
    store = StateStore(client, world.settings)
    dests = list(_destinations(8, distinct=True))[:8]

    # When they reserve
    answers = _burst(store, client, dests)

    # Then none conflicted: one transaction each, every send admitted and counted once per cap
    assert client.conflicts == []
    assert client.transactions == 8
    assert all(isinstance(answer, str) for answer in answers), answers
    assert {cap: _sends_counted(world, cap) for cap in ("minute", "hour", "day")} == {"minute": 8, "hour": 8, "day": 8}


def test_the_single_counter_design_conflicts_on_every_concurrent_send(world_factory: Callable[..., Any]) -> None:
    # Given the old layout (one deployment counter item per window: one shard), and the same burst
    world = world_factory(deployment_counter_shards=1, **ROOMY)
    client = ContendedClient(world.client)
    store = StateStore(client, world.settings)
    dests = list(_destinations(8, distinct=True))[:8]

    # When they reserve
    answers = _burst(store, client, dests)

    # Then all but the first conflicted, on the deployment's counters only, and were refused as transient
    assert len(client.conflicts) == 7
    assert all(_deployment(shared) for shared in client.conflicts)
    assert sum(isinstance(answer, str) for answer in answers) == 1
    refusals = [answer for answer in answers if isinstance(answer, Refusal)]
    assert [(r.code, r.retry_after) for r in refusals] == [("upstream_unavailable", 1)] * 7
    assert _sends_counted(world, "minute") == 1


def test_a_send_whose_shard_is_busy_counts_on_another_one(world_factory: Callable[..., Any]) -> None:
    # Given two concurrent sends to different numbers whose first-choice shards are the same
    world = world_factory(deployment_counter_shards=8, **ROOMY)
    client = ContendedClient(world.client)
    store = StateStore(client, world.settings)
    dests = list(_destinations(8, distinct=False))[:2]

    # When they reserve
    answers = _burst(store, client, dests)

    # Then the second conflicted once, on the deployment's counters, and its retry went to another shard:
    # both admitted, in three transactions
    assert len(client.conflicts) == 1 and _deployment(client.conflicts[0])
    assert client.transactions == 3
    first, second = answers
    assert isinstance(first, str) and isinstance(second, str)
    assert first.rpartition("#")[2] != second.rpartition("#")[2]
    assert _sends_counted(world, "minute") == 2


def test_a_conflict_elsewhere_than_the_deployment_is_not_retried(world_factory: Callable[..., Any]) -> None:
    # Given two concurrent sends to different numbers by the same agent (its counter is one item)
    world = world_factory(deployment_counter_shards=8, **ROOMY)
    client = ContendedClient(world.client)
    store = StateStore(client, world.settings)
    dests = list(_destinations(8, distinct=True))[:2]
    answers: list[Any] = []
    client.arrivals = [lambda: answers.append(_send(store, dests[1], "one", NOW, "r2"))]

    # When they reserve
    answers.insert(0, store.reserve_send(dests[0], "one", NOW, "r1"))

    # Then the second is refused as transient after one transaction: another shard would not help
    assert client.transactions == 2
    assert isinstance(answers[1], Refusal) and answers[1].code == "upstream_unavailable"


def _send(store: StateStore, dest: str, agent: str, now: int, request_id: str) -> str | Refusal:
    try:
        return store.reserve_send(dest, agent, now, request_id)
    except Refusal as refusal:
        return refusal


# ------------------------------------------------------------------------------------------ full shards


def test_a_full_shard_sends_the_reservation_to_one_with_room_until_the_cap(world_factory: Callable[..., Any]) -> None:
    # Given a circuit breaker of 4 a minute over 4 shards (one send each), and numbers that all prefer one shard
    world = world_factory(deployment_counter_shards=4, max_sends_per_minute=4, **ROOMY)
    client = ContendedClient(world.client)
    store = StateStore(client, world.settings)
    dests = list(_destinations(4, distinct=False))[:5]

    # When five are sent, one after another
    answers = [_send(store, dest, f"agent-{i}", NOW, f"r{i}") for i, dest in enumerate(dests)]

    # Then the first four are admitted, each on its own shard, and the fifth is the circuit breaker's,
    # until the minute after next (the counter of the next minute holds this one's sends too)
    assert [isinstance(a, str) for a in answers] == [True] * 4 + [False]
    assert sorted(str(a).rpartition("#")[2].split(".")[0] for a in answers[:4]) == ["0", "1", "2", "3"]
    refusal = answers[4]
    assert isinstance(refusal, Refusal)
    assert (refusal.code, refusal.reason, refusal.limit) == ("rate_limited", "circuit_breaker", 4)
    assert refusal.retry_after == limits.MINUTE * (NOW // limits.MINUTE + 2) - NOW
    assert _sends_counted(world, "minute") == 4
    # and each send after the first took one read of the shards and one more transaction (the fifth: the read)
    assert (client.transactions, client.reads) == (1 + 3 * 2 + 1, 4)


def test_sends_spread_over_every_shard_stop_at_the_cap(world_factory: Callable[..., Any]) -> None:
    # Given a circuit breaker of 6 a minute over 4 shards (shares 2, 2, 1, 1), and numbers on every shard
    world = world_factory(deployment_counter_shards=4, max_sends_per_minute=6, **ROOMY)
    store = StateStore(world.client, world.settings)
    dests = list(_destinations(4, distinct=True))[:4] * 2

    # When eight are sent in the same minute, two to each shard
    answers = [_send(store, dest, f"agent-{i}", NOW + i, f"r{i}") for i, dest in enumerate(dests)]

    # Then exactly six are admitted, and the others are the circuit breaker's
    assert sum(isinstance(answer, str) for answer in answers) == 6
    assert {(a.code, a.reason) for a in answers if isinstance(a, Refusal)} == {("rate_limited", "circuit_breaker")}
    assert _sends_counted(world, "minute") == 6


def test_a_release_counts_back_on_the_shards_the_send_counted_on(world_factory: Callable[..., Any]) -> None:
    # Given a send that fell back to another shard (its own was full)
    world = world_factory(deployment_counter_shards=2, max_sends_per_minute=2, **ROOMY)
    store = StateStore(world.client, world.settings)
    first, second = list(_destinations(2, distinct=False))[:2]
    store.reserve_send(first, "agent-1", NOW, "r1")
    moved = store.reserve_send(second, "agent-2", NOW, "r2")
    assert moved.rpartition("#")[2] != f"{limits.shard_of(second) % 2}.0.0"

    # When Twilio definitely did not send it, and the reservation is given back
    store.release_send(second, "agent-2", NOW, moved, _event("r2"))

    # Then the shard it counted on has room again (a third number's send, preferring the full shard, passes)
    # and no counter went below zero
    third = list(_destinations(2, distinct=False))[2]
    assert isinstance(store.reserve_send(third, "agent-3", NOW, "r3"), str)
    counters = [int(item["n"]["N"]) for item in world.items() if item["sk"]["S"].startswith("SENDS#")]
    assert min(counters) >= 0
    assert _sends_counted(world, "minute") == 2


# -------------------------------------------------------------------------------------- caps still hold

CAPS = {
    "minute": ("circuit_breaker", limits.MINUTE),
    "hour": ("hourly_budget", limits.HOUR),
    "day": ("daily_budget", limits.DAY),
}
CAP = 3


def _steps(length: int) -> st.SearchStrategy[list[tuple[int, int, bool]]]:
    return st.lists(
        st.tuples(
            st.sampled_from([0, 0, 1, length // 2, length - 1, length + 1, 2 * length + 1]),  # seconds to wait
            st.integers(0, 11),  # which number
            st.booleans(),  # Twilio definitely refused it: the reservation is released
        ),
        min_size=1,
        max_size=16,
    )


@pytest.mark.parametrize("tight", list(CAPS))
def test_a_deployment_cap_holds_over_any_span_and_refuses_only_when_spent(
    world_factory: Callable[..., Any], tight: str
) -> None:
    reason, length = CAPS[tight]
    seen: set[str] = set()  # the refusals met, over every example

    @given(shards=st.integers(1, 4), steps=_steps(length))
    @example(shards=2, steps=[(0, number, False) for number in range(CAP + 2)])  # the cap is always met
    @settings(max_examples=20)
    def sends(shards: int, steps: list[tuple[int, int, bool]]) -> None:
        # Given one deployment cap of 3 (the others roomy) over `shards` shards
        limits_ = {"max_sends_per_minute": 1000, "max_sends_per_hour": 1000, "max_sends_per_day": 1000}
        world = world_factory(deployment_counter_shards=shards, **{**limits_, f"max_sends_per_{tight}": CAP}, **ROOMY)
        store = StateStore(world.client, world.settings)
        now, sent = NOW, list[int]()
        # When sends arrive, some of them given back
        for i, (wait, number, refused_by_twilio) in enumerate(steps):
            now += wait
            try:
                token = store.reserve_send(f"dest-{number}", f"agent-{i}", now, f"r{i}")
            except Refusal as refusal:
                # Then a refusal is that cap's, and only once it is spent: the sends its counter holds (this
                # window's and the last one's, as one unsharded counter would) reach the cap
                assert (refusal.code, refusal.reason, refusal.limit) == ("rate_limited", reason, CAP), refusal
                seen.add(str(refusal.reason))
                window = now // length
                assert len([t for t in sent if t // length in (window - 1, window)]) >= CAP
                continue
            if refused_by_twilio:
                store.release_send(f"dest-{number}", f"agent-{i}", now, token, _event(f"r{i}"))
            else:
                sent.append(now)
        # and no span of the cap's length ever held more than the cap
        assert max((sum(1 for t in sent if start <= t < start + length) for start in sent), default=0) <= CAP

    sends()
    # and the run was not vacuous: the cap refused sends
    assert seen == {reason}


# ------------------------------------------------------------------------------------------ the setting


def test_each_shard_admits_its_share_and_the_shares_sum_to_the_cap() -> None:
    settings_ = Settings(state_table="s", customers_table="c", deployment_counter_shards=8, max_sends_per_minute=60)
    minute = next(cap for cap in limits.caps("D#k", "A#a", settings_) if cap.name == "minute")
    shares = [minute.on(shard).allowance for shard in range(minute.shards)]
    assert shares == [8, 8, 8, 8, 7, 7, 7, 7] and sum(shares) == 60
    # a cap below the shard count is split over as many shards as it has sends, one each
    small = Settings(state_table="s", customers_table="c", deployment_counter_shards=8, max_sends_per_minute=3)
    minute = next(cap for cap in limits.caps("D#k", "A#a", small) if cap.name == "minute")
    assert [minute.on(shard).allowance for shard in range(minute.shards)] == [1, 1, 1]


@pytest.mark.parametrize(("raw", "shards"), [("", 8), ("1", 1), ("32", 32)])
def test_the_shard_count_is_a_setting(raw: str, shards: int) -> None:
    env = {"STATE_TABLE": "s", "CUSTOMERS_TABLE": "c", "DEPLOYMENT_COUNTER_SHARDS": raw}
    assert Settings.from_env(env).deployment_counter_shards == shards


@pytest.mark.parametrize("raw", ["0", "33", "eight"])
def test_a_shard_count_out_of_range_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="DEPLOYMENT_COUNTER_SHARDS"):
        Settings.from_env({"STATE_TABLE": "s", "CUSTOMERS_TABLE": "c", "DEPLOYMENT_COUNTER_SHARDS": raw})

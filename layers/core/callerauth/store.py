"""DynamoDB: verification state, send counters, the audit trail and customer records.

One state table, keys (pk, sk):
  D#<hmac(destination)>  STATE                      last send (who, by which channel, its risk), failed checks,
                                                    lock, approval
  D#<hmac(destination)>  LOOKUP                     what Twilio Lookup said of the number (a cache, see risk.py)
  D#<hmac(destination)>  SENDS#<length>#<window>    sends to that destination (see limits.py)
  A#<agent identity>     SENDS#<length>#<window>    sends by that agent
  DEPLOYMENT#<shard>     SENDS#<length>#<window>    sends by the whole deployment (minute, hour, day), one shard
  S#<hmac(source IP)>    REFUSED#60#<minute>        refused unauthenticated requests from that source
  D#<hmac(destination)>  AUDIT#<time>#<request id>  one audit event (S#... for refused unauthenticated ones)
Every item carries `expires_at` (TTL). TTL deletes late, so reads compare times themselves.
The deployment's caps are split over `deployment_counter_shards` shards (limits.py), so that concurrent
sends to different numbers do not write one item: DynamoDB cancels concurrent transactions on an item.
A request costs two calls: one conditional write (or read) before Twilio, one transaction after it
that records the outcome together with its audit event (a cancel first reads who owns the verification,
and a start with Lookup on first reads the number's cached Lookup answer). Only a send whose deployment shard is full
or busy costs more: one BatchGetItem of the full caps' shards, and one more reservation (four at most).
"""

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, NamedTuple, ParamSpec, Protocol, TypeVar

from callerauth import limits
from callerauth.config import Settings
from callerauth.lookup import Signals
from callerauth.refusals import Refusal, unavailable
from callerauth.utc import iso

STATE = "STATE"
LOOKUP = "LOOKUP"
CHECK_FAILED = "ConditionalCheckFailed"
FAILURE_WINDOW = 3600  # failed checks count as consecutive while each comes within this of the last


class AuditEvent(NamedTuple):
    action: str  # start | check | cancel | customer_info
    outcome: str  # sent | approved | incorrect_code | canceled | served | an error code
    agent: str
    masked_to: str
    request_id: str
    worker_sid: str | None = None
    task_sid: str | None = None
    channel: str | None = None
    twilio_sid: str | None = None
    risk: Mapping[str, Any] | None = None  # what a start weighed about the number (risk.Assessment.evidence)
    at: float | None = None  # when it happened, to the millisecond (orders a trail within a second)
    call_sid: str | None = None  # the IVR's call (CA...), so a call's steps can be followed in the trail


class CheckStarted(NamedTuple):
    failures: int  # consecutive failed checks, this one included (counted until proven right)
    previous_failed_at: int | None  # what to restore if this check turns out not to be a failure


class Approval(NamedTuple):
    agent: str
    task_sid: str | None
    approved_at: int
    approved_until: int
    call_sid: str | None = None  # the call of the task it was made on (TaskRouter checks): it follows the call
    channel: str | None = None  # how the approved code was sent
    risk: Mapping[str, Any] | None = None  # what was weighed before it was sent
    via: str | None = None  # how the caller was verified: "ivr" (the IVR, before an agent), else an agent


class Store(Protocol):
    """What the decisions need from storage. Every method raises a `Refusal`, never a storage error:
    a limit or a lock as itself, storage that cannot answer as `upstream_unavailable`."""

    def reserve_send(self, dest: str, agent: str, now: int, reservation: str) -> str: ...
    def release_send(self, dest: str, agent: str, now: int, reservation: str, event: AuditEvent) -> None: ...
    def known_signals(self, dest: str, now: int, packages: Sequence[str]) -> Signals | None: ...
    def record_start(
        self,
        dest: str,
        now: int,
        event: AuditEvent,
        *,
        fresh: Signals | None,
        sent: tuple[str, Mapping[str, Any]] | None = None,
    ) -> None: ...
    def begin_check(self, dest: str, now: int, limit: int) -> CheckStarted: ...
    def owner(self, dest: str) -> str | None: ...
    def refuse_source(self, source: str, now: int, event: AuditEvent, limit: int) -> bool: ...
    def approve(self, dest: str, now: int, approval: Approval, event: AuditEvent) -> None: ...
    def fail_check(self, dest: str, now: int, lock_until: int | None, event: AuditEvent) -> None: ...
    def abandon_check(self, dest: str, now: int, started: CheckStarted, event: AuditEvent) -> None: ...
    def clear_approval(self, dest: str, now: int, event: AuditEvent) -> None: ...
    def approval_and_customer(self, dest: str, phone: str) -> tuple[Approval | None, dict[str, Any] | None]: ...
    def audit(self, dest: str, now: int, event: AuditEvent) -> None: ...


P = ParamSpec("P")
R = TypeVar("R")


def _dynamodb(method: Callable[Concatenate["StateStore", P], R]) -> Callable[Concatenate["StateStore", P], R]:
    """DynamoDB's own failures (unreachable, throttled, an answer we cannot use) as the domain's refusal."""

    @functools.wraps(method)
    def call(self: "StateStore", *args: P.args, **kwargs: P.kwargs) -> R:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(self, *args, **kwargs)
        except (BotoCoreError, ClientError) as failure:
            raise unavailable(f"dynamodb:{_aws_code(failure)}") from None

    return call


class StateStore:
    """The `Store` on DynamoDB (boto3's low-level client)."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self._db = client
        self._table = settings.state_table
        self._customers = settings.customers_table
        self._settings = settings

    # -- sends -------------------------------------------------------------------------------

    @_dynamodb
    def reserve_send(self, dest: str, agent: str, now: int, reservation: str) -> str:
        """Claim one send before Twilio is called, or raise the refusal: lock, cooldown, caps, budgets.

        The same write records who started it (only they, or a supervisor, may cancel it) and revokes
        the destination's approval: a new code means the situation changed. The deployment's caps count
        on the destination's shard; when that shard is full or busy (and nothing else refuses), one more
        transaction counts on others (`_elsewhere`). Returns the reservation as recorded, naming the
        shards it counted on: what `release_send` is given back.
        """
        all_caps = self._caps(dest, agent, limits.shard_of(dest))
        for attempt in range(2):
            token = f"{reservation}#{'.'.join(str(cap.shard) for cap in all_caps if cap.sharded)}"
            names, items = self._reservation(dest, agent, now, token, all_caps)
            try:
                self._db.transact_write_items(TransactItems=[{"Update": item} for item in items])
                return token
            except self._db.exceptions.TransactionCanceledException as exc:
                reasons = dict(zip(names, exc.response.get("CancellationReasons") or [], strict=False))
                breached = {n: _plain(r.get("Item")) for n, r in reasons.items() if r.get("Code") == CHECK_FAILED}
                conflicted = {
                    n.removesuffix("+next") for n, r in reasons.items() if r.get("Code") == "TransactionConflict"
                }
                moved = self._elsewhere(all_caps, breached, conflicted, now, reservation) if attempt == 0 else None
                if moved is None:
                    refusal = self._refusal(breached, conflicted, now, all_caps)
                    if refusal is None:
                        raise
                    raise refusal from None
                all_caps = moved
        raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover

    def _reservation(
        self, dest: str, agent: str, now: int, token: str, all_caps: tuple[limits.Cap, ...]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """The reservation's items, and a name for each (its cancellation reason's): the state, then each
        cap's counter of this window (conditioned on its allowance) and of the next."""
        state = self._update(
            _dest(dest),
            STATE,
            "SET last_send = :now, reservation = :rid, started_by = :agent, expires_at = :exp "
            "REMOVE approved_by, approved_at, approved_until, approved_task, approved_call",
            "(attribute_not_exists(last_send) OR last_send <= :cooled) "
            "AND (attribute_not_exists(locked_until) OR locked_until <= :now)",
            {
                ":now": now,
                ":rid": token,
                ":agent": agent,
                ":exp": now + limits.DAY,
                ":cooled": now - self._settings.send_cooldown_seconds,
            },
        )
        names, items = ["state"], [state]
        for cap in all_caps:
            window = cap.window(now)
            names += [cap.name, f"{cap.name}+next"]
            items += [self._count(cap, window, 1, cap.allowance, own=True), self._count(cap, window + 1, 1)]
        return names, items

    def _refusal(
        self, breached: Mapping[str, Any], conflicted: set[str], now: int, all_caps: tuple[limits.Cap, ...]
    ) -> Refusal | None:
        if breached:
            return limits.send_refusal(breached, now, self._settings, all_caps)
        if "state" in conflicted:  # a concurrent request for this number holds it: a code is on its way
            return limits.send_refusal({"state": None}, now, self._settings, all_caps)
        if conflicted:  # a busy counter, not a limit: transient
            return unavailable("dynamodb:TransactionConflict", retry_after=1)
        return None

    def _elsewhere(
        self,
        all_caps: tuple[limits.Cap, ...],
        breached: Mapping[str, Any],
        conflicted: set[str],
        now: int,
        reservation: str,
    ) -> tuple[limits.Cap, ...] | None:
        """The caps moved off the deployment shards that refused the reservation, or None when moving cannot
        help: something else refused it (the state, the destination's or the agent's counters), or a cap has
        one shard. A full shard's cap moves to a shard with room, read in one BatchGetItem; when none has room
        this raises the budget's refusal, with the wait until the first shard has room. A busy one moves to
        another shard (picked from the reservation, so concurrent retries spread)."""
        sharded = {cap.name for cap in all_caps if cap.sharded}
        if not (breached.keys() | conflicted) or not (breached.keys() | conflicted) <= sharded:
            return None
        full = [cap for cap in all_caps if cap.name in breached]
        room = self._room(full, now) if full else {}
        pick = limits.shard_of(reservation)
        moved: list[limits.Cap] = []
        for cap in all_caps:
            if cap.name in breached:
                shards = [shard for shard in room[cap.name] if shard != cap.shard]
            elif cap.name in conflicted:
                shards = [shard for shard in range(cap.shards) if shard != cap.shard]
            else:
                moved.append(cap)
                continue
            if not shards:
                return None
            moved.append(cap.on(shards[pick % len(shards)]))
        return tuple(moved)

    def _room(self, full: Sequence[limits.Cap], now: int) -> dict[str, list[int]]:
        """Each full cap's shards that have room in this window; raises the cap's refusal when none has."""
        keys = {
            (shard_cap.pk, shard_cap.counter(shard_cap.window(now))): shard_cap
            for cap in full
            for shard_cap in (cap.on(shard) for shard in range(cap.shards))
        }
        answer = self._db.batch_get_item(
            RequestItems={self._table: {"Keys": [_key(pk, sk) for pk, sk in keys], "ConsistentRead": True}}
        )
        if answer.get("UnprocessedKeys"):
            raise unavailable("dynamodb:UnprocessedKeys")
        counts = {(item["pk"]["S"], item["sk"]["S"]): _plain(item) or {} for item in answer["Responses"][self._table]}
        room: dict[str, list[int]] = {cap.name: [] for cap in full}
        soonest: dict[str, tuple[int, limits.Cap, dict[str, Any]]] = {}
        for key, shard_cap in keys.items():
            values = counts.get(key, {})
            if values.get("n", 0) < shard_cap.allowance:
                room[shard_cap.name].append(shard_cap.shard)
                continue
            window = shard_cap.window(now) + (1 if values.get("own", 0) >= shard_cap.allowance else 0)
            wait = shard_cap.ends_at(window)
            if shard_cap.name not in soonest or wait < soonest[shard_cap.name][0]:
                soonest[shard_cap.name] = (wait, shard_cap, values)
        if exhausted := [name for name, shards in room.items() if not shards]:
            # Every shard is full: the budget is spent until the first of them has room.
            refusing = tuple(soonest[name][1] for name in exhausted)
            raise limits.send_refusal({name: soonest[name][2] for name in exhausted}, now, self._settings, refusing)
        return room

    @_dynamodb
    def release_send(self, dest: str, agent: str, now: int, reservation: str, event: AuditEvent) -> None:
        """Give back a reservation whose message Twilio definitely did not send, and audit why.

        `reservation` is what `reserve_send` returned: it names the deployment shards to count back."""
        shards = iter(int(shard) for shard in reservation.rpartition("#")[2].split("."))
        counts = []
        for cap in self._caps(dest, agent, 0):
            counted = cap.on(next(shards)) if cap.sharded else cap
            window = counted.window(now)
            counts += [self._count(counted, window, -1, own=True), self._count(counted, window + 1, -1)]
        # Only this reservation's own mark is removed: a later reservation keeps its cooldown.
        mark = self._update(
            _dest(dest), STATE, "REMOVE last_send, reservation", "reservation = :rid", {":rid": reservation}
        )
        self._transact(
            [{"Update": item} for item in counts] + [self._audit_put(dest, now, event)], optional=[{"Update": mark}]
        )

    @_dynamodb
    def known_signals(self, dest: str, now: int, packages: Sequence[str]) -> Signals | None:
        """Lookup's cached answer for this destination, if it is current and asked for every package."""
        item = _plain(self._db.get_item(TableName=self._table, Key=_key(_dest(dest), LOOKUP)).get("Item"))
        if not item or item.get("expires_at", 0) <= now:  # TTL deletes late
            return None
        signals = Signals.from_stored(json.loads(str(item["signals"])))
        return signals if set(packages) <= set(signals.fields) else None

    @_dynamodb
    def record_start(
        self,
        dest: str,
        now: int,
        event: AuditEvent,
        *,
        fresh: Signals | None,
        sent: tuple[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Audit a start; with `sent` (channel, risk evidence), note how the code went, for the approval to
        show; with `fresh`, cache what Lookup said (for LOOKUP_CACHE_HOURS), all in one write."""
        items = [self._audit_put(dest, now, event)]
        if sent is not None:
            channel, evidence = sent
            values = {":channel": channel, ":risk": json.dumps(evidence, sort_keys=True)}
            note = self._update(_dest(dest), STATE, "SET sent_channel = :channel, sent_risk = :risk", None, values)
            items.append({"Update": note})
        if fresh is not None:
            cached = {
                "pk": _dest(dest),
                "sk": LOOKUP,
                "signals": json.dumps(fresh.stored(), sort_keys=True),
                "expires_at": fresh.at + self._settings.lookup_cache_hours * limits.HOUR,
            }
            items.append({"Put": {"TableName": self._table, "Item": _typed(cached)}})
        if len(items) == 1:
            self._db.put_item(**items[0]["Put"])
        else:
            self._transact(items)

    def _caps(self, dest: str, agent: str, shard: int) -> tuple[limits.Cap, ...]:
        return limits.caps(_dest(dest), f"A#{agent}", self._settings, shard)

    # -- checks ------------------------------------------------------------------------------

    @_dynamodb
    def begin_check(self, dest: str, now: int, limit: int) -> CheckStarted:
        """Count this check as failed until proven right (so no race loses a failure); refuse while locked,
        and refuse a check beyond `limit` failures in flight, so that concurrent checks cannot outrun the lock.

        Failures are consecutive within FAILURE_WINDOW of each other: after a quiet hour (or on an item
        past its expiry that TTL has not deleted yet) a new series starts. That costs one more write,
        only then. Returns the number of consecutive failed checks, this one included.
        """
        unlocked = "(attribute_not_exists(locked_until) OR locked_until <= :now)"
        values = {":one": 1, ":now": now, ":exp": now + limits.DAY, ":stale": now - FAILURE_WINDOW, ":limit": limit}
        for _ in range(2):
            try:
                answer = self._db.update_item(
                    **self._update(
                        _dest(dest),
                        STATE,
                        "ADD failed :one SET failed_at = :now, expires_at = :exp",
                        f"{unlocked} AND (attribute_not_exists(failed_at) OR failed_at > :stale) "
                        "AND (attribute_not_exists(failed) OR failed < :limit)",
                        values,
                    ),
                    ReturnValues="ALL_OLD",
                )
                old = _plain(answer.get("Attributes")) or {}
                return CheckStarted(old.get("failed", 0) + 1, old.get("failed_at"))
            except self._db.exceptions.ConditionalCheckFailedException as exc:
                old = _plain(exc.response.get("Item")) or {}
                if old.get("locked_until", 0) > now:
                    raise limits.locked(old["locked_until"], now) from None
                if old.get("failed", 0) >= limit and old.get("failed_at", 0) > now - FAILURE_WINDOW:
                    # as many checks as may fail are being judged right now: one of them may lock the number
                    raise Refusal("too_many_attempts", "checks_in_flight", retry_after=5) from None
            try:  # the earlier failures are stale: this check starts a new series
                self._db.update_item(
                    **self._update(
                        _dest(dest),
                        STATE,
                        "SET failed = :one, failed_at = :now, expires_at = :exp",
                        f"{unlocked} AND failed_at <= :stale",
                        {k: v for k, v in values.items() if k != ":limit"},
                    )
                )
                return CheckStarted(1, None)
            except self._db.exceptions.ConditionalCheckFailedException:
                continue  # a concurrent check just started the new series: count on top of it
        raise unavailable("dynamodb:begin_check_contended", retry_after=1)

    @_dynamodb
    def approve(self, dest: str, now: int, approval: Approval, event: AuditEvent) -> None:
        expression = (
            "SET failed = :zero, approved_by = :agent, approved_at = :at, approved_until = :until, expires_at = :exp"
        )
        values: dict[str, Any] = {
            ":zero": 0,
            ":agent": approval.agent,
            ":at": approval.approved_at,
            ":until": approval.approved_until,
            ":exp": approval.approved_until + limits.DAY,
        }
        removed = ["locked_until", "failed_at"]
        for name, value in (
            ("approved_task", approval.task_sid),
            ("approved_call", approval.call_sid),
            ("approved_via", approval.via),
        ):
            if value:
                expression += f", {name} = :{name}"
                values[f":{name}"] = value
            else:
                removed.append(name)
        expression += " REMOVE " + ", ".join(removed)
        self._transact(
            [{"Update": self._update(_dest(dest), STATE, expression, None, values)}, self._audit_put(dest, now, event)]
        )

    @_dynamodb
    def fail_check(self, dest: str, now: int, lock_until: int | None, event: AuditEvent) -> None:
        """A wrong code: the failure is already counted; at the limit, lock and start a new count."""
        if lock_until is None:
            self.audit(dest, now, event)
            return
        lock = self._update(
            _dest(dest),
            STATE,
            "SET locked_until = :until, failed = :zero, expires_at = :exp REMOVE failed_at",
            None,
            {":until": lock_until, ":zero": 0, ":exp": lock_until + limits.DAY},
        )
        self._transact([{"Update": lock}, self._audit_put(dest, now, event)])

    @_dynamodb
    def abandon_check(self, dest: str, now: int, started: CheckStarted, event: AuditEvent) -> None:
        """Twilio could not judge the code: this check was not a failure after all (nor its time)."""
        values: dict[str, Any] = {":minus": -1, ":zero": 0}
        if started.previous_failed_at is None:
            expression = "ADD failed :minus REMOVE failed_at"
        else:
            expression, values[":then"] = "ADD failed :minus SET failed_at = :then", started.previous_failed_at
        uncount = self._update(_dest(dest), STATE, expression, "failed > :zero", values)
        self._transact([self._audit_put(dest, now, event)], optional=[{"Update": uncount}])

    # -- approvals and audit -----------------------------------------------------------------

    @_dynamodb
    def clear_approval(self, dest: str, now: int, event: AuditEvent) -> None:
        clear = self._update(
            _dest(dest),
            STATE,
            "REMOVE approved_by, approved_at, approved_until, approved_task, approved_call, approved_via",
            None,
            {},
        )
        self._transact([{"Update": clear}, self._audit_put(dest, now, event)])

    @_dynamodb
    def owner(self, dest: str) -> str | None:
        """Whose verification this destination's is: the agent who sent the last code, or approved it."""
        item = self._db.get_item(
            TableName=self._table,
            Key=_key(_dest(dest), STATE),
            ConsistentRead=True,
            ProjectionExpression="started_by, approved_by",
        ).get("Item")
        state = _plain(item) or {}
        owner = state.get("started_by") or state.get("approved_by")
        return str(owner) if owner else None

    @_dynamodb
    def refuse_source(self, source: str, now: int, event: AuditEvent, limit: int) -> bool:
        """Audit a refused, unauthenticated request under its source (not under the number it named), and
        count it; False, with nothing written, once the source has had `limit` refusals this minute."""
        minute = limits.Cap("source", "source_refusals", f"S#{source}", limits.MINUTE, limit)
        window = minute.window(now)
        count = self._update(
            minute.pk,
            f"REFUSED#{minute.length}#{window}",
            "ADD n :one SET expires_at = :exp",
            "attribute_not_exists(n) OR n < :cap",
            {":one": 1, ":exp": minute.ends_at(window) + minute.length, ":cap": limit},
        )
        audit = self._audit_put(source, now, event, pk=f"S#{source}")
        try:
            self._db.transact_write_items(TransactItems=[{"Update": count}, audit])
        except self._db.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == CHECK_FAILED:
                return False
            raise
        return True

    @_dynamodb
    def approval_and_customer(self, dest: str, phone: str) -> tuple[Approval | None, dict[str, Any] | None]:
        """One round trip for both: the destination's approval and the customer record."""
        answer = self._db.batch_get_item(
            RequestItems={
                self._table: {
                    "Keys": [_key(_dest(dest), STATE)],
                    "ConsistentRead": True,
                    "ProjectionExpression": (
                        "approved_by, approved_at, approved_until, approved_task, approved_call, approved_via, "
                        "sent_channel, sent_risk"
                    ),
                },
                self._customers: {"Keys": [{"phone": {"S": phone}}], "ConsistentRead": True},
            }
        )
        if answer.get("UnprocessedKeys"):
            raise unavailable("dynamodb:UnprocessedKeys")
        responses = answer.get("Responses", {})
        state = _plain(next(iter(responses.get(self._table, [])), None))
        customer = next(iter(responses.get(self._customers, [])), None)
        approval = None
        if state and "approved_by" in state:
            approval = Approval(
                str(state["approved_by"]),
                state.get("approved_task"),
                int(state["approved_at"]),
                int(state["approved_until"]),
                state.get("approved_call"),
                state.get("sent_channel"),
                json.loads(state["sent_risk"]) if state.get("sent_risk") else None,
                state.get("approved_via"),
            )
        return approval, _document(customer) if customer else None

    @_dynamodb
    def audit(self, dest: str, now: int, event: AuditEvent) -> None:
        self._db.put_item(**self._audit_put(dest, now, event)["Put"])

    @_dynamodb
    def audit_trail(self, dest: str) -> list[dict[str, Any]]:
        pages = self._db.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :audit)",
            ExpressionAttributeValues={":pk": {"S": _dest(dest)}, ":audit": {"S": "AUDIT#"}},
        )
        return [_document(item) for page in pages for item in page.get("Items", [])]

    # -- building blocks ---------------------------------------------------------------------

    def _audit_put(self, dest: str, now: int, event: AuditEvent, pk: str | None = None) -> dict[str, Any]:
        at = iso(event.at or now, millis=True)
        item = {
            "pk": pk or _dest(dest),
            "sk": f"AUDIT#{at}#{event.request_id}",
            "at": at,
            "expires_at": now + self._settings.audit_retention_days * limits.DAY,
            "action": event.action,
            "outcome": event.outcome,
            "agent": event.agent,
            "to": event.masked_to,
            "request_id": event.request_id,
            "worker_sid": event.worker_sid,
            "task_sid": event.task_sid,
            "channel": event.channel,
            "twilio_sid": event.twilio_sid,
            "risk": json.dumps(event.risk, sort_keys=True) if event.risk else None,
            "call_sid": event.call_sid,
        }
        return {"Put": {"TableName": self._table, "Item": _typed({k: v for k, v in item.items() if v is not None})}}

    def _update(
        self, pk: str, sk: str, expression: str, condition: str | None, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        update: dict[str, Any] = {"TableName": self._table, "Key": _key(pk, sk), "UpdateExpression": expression}
        if values:
            update["ExpressionAttributeValues"] = _typed(values)
        if condition:
            update["ConditionExpression"] = condition
            update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return update

    def _count(
        self, cap: limits.Cap, window: int, delta: int, limit: int | None = None, *, own: bool = False
    ) -> dict[str, Any]:
        """Add `delta` to the counter that admits sends in `window` (`n`, and `own` for a send of that window
        itself, which tells how long a refusal lasts); with `limit`, only while `n` is below it."""
        values = {":delta": delta, ":exp": cap.ends_at(window) + cap.length}
        condition = None
        if limit is not None:
            condition, values = "attribute_not_exists(n) OR n < :cap", {**values, ":cap": limit}
        adds = "n :delta, own :delta" if own else "n :delta"
        return self._update(cap.pk, cap.counter(window), f"ADD {adds} SET expires_at = :exp", condition, values)

    def _transact(self, items: list[dict[str, Any]], optional: Sequence[dict[str, Any]] = ()) -> None:
        """Write `items` (and `optional` ones, dropped if their condition no longer holds) in one transaction."""
        try:
            self._db.transact_write_items(TransactItems=[*optional, *items])
        except self._db.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons") or []
            dropped = [r.get("Code") == "ConditionalCheckFailed" for r in reasons[: len(optional)]]
            if not optional or not any(dropped):
                raise
            kept = [item for item, drop in zip(optional, dropped, strict=False) if not drop]
            self._db.transact_write_items(TransactItems=[*kept, *items])


def _aws_code(failure: Exception) -> str:
    response = getattr(failure, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or type(failure).__name__)


def _dest(key: str) -> str:
    return f"D#{key}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _typed(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: {"N": str(v)} if isinstance(v, int) else {"S": str(v)} for k, v in values.items()}


def _plain(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A state item's numbers and strings as Python values."""
    if item is None:
        return None
    return {k: int(v["N"]) if "N" in v else v.get("S") for k, v in item.items() if "N" in v or "S" in v}


def _document(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    return {k: _jsonable(deserialize(v)) for k, v in item.items()}


def _jsonable(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return None
    return value

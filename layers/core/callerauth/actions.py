"""What each endpoint does: every decision of the product, in order, over injected adapters.

Each action is a body that returns an `Ending` (or raises a `Refusal` before it has written anything);
`_conclude` then makes the one write that records the ending with its audit event. So every request
leaves exactly one audit event, by construction.
"""

import time
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from callerauth import fields, limits, risk
from callerauth.agents import Agent, Agents
from callerauth.config import ConfigError, Settings
from callerauth.http import Reply, Request
from callerauth.lookup import Lookup, Signals
from callerauth.privacy import Hasher, mask
from callerauth.refusals import Refusal
from callerauth.sources import SourceGate
from callerauth.store import Approval, AuditEvent, Store
from callerauth.twilio_verify import Verify, outcome_unknown
from callerauth.utc import iso
from callerauth.webhooks import Webhooks

if TYPE_CHECKING:
    from callerauth.taskrouter import TaskRouter, TaskView

# Refusals of a request nobody has identified: audited under its source, not the number it names.
UNTRUSTED = frozenset({"agent_auth_required", "agent_auth_invalid", "source_not_allowed"})
# Twilio's refusals of a number itself (geo permissions, landline, Fraud Guard, its own send limit).
NUMBER_REFUSALS = frozenset({"destination_blocked", "max_send_attempts"})


class Services(NamedTuple):
    settings: Settings
    store: Store
    verify: Verify
    lookup: Lookup
    agents: Agents
    hasher: Hasher
    sources: SourceGate
    clock: Callable[[], float] = time.time
    taskrouter: "TaskRouter | None" = None  # with TASKROUTER_WORKSPACE_SID only
    webhooks: Webhooks | None = None  # the IVR's: Twilio's request signatures


Record = Callable[[AuditEvent], None]


class Ending(NamedTuple):
    """How an action ends: what the audit trail says, what the client gets, and the write that records it.

    `record` writes the audit event together with the state change it belongs to (None: the event
    alone). `undo` is what to record instead if that write fails (the state change must not half-happen).
    """

    outcome: str
    answer: Reply | Refusal
    record: Record | None = None
    undo: Record | None = None
    twilio_sid: str | None = None


def start_verify(request: Request, services: Services) -> Reply:
    target = fields.start_target(request.fields, services.settings.allowed_channels)
    locale, task_sid = fields.locale(request.fields), fields.task_sid(request.fields)
    trail = _Trail(request, services, "start", target, task_sid)
    return _conclude(trail, lambda: _start(trail, target, locale))


def check_verify(request: Request, services: Services) -> Reply:
    target, code = fields.recipient(request.fields), fields.verification_code(request.fields)
    trail = _Trail(request, services, "check", target, fields.task_sid(request.fields))
    return _conclude(trail, lambda: _check(trail, code))


def cancel_verify(request: Request, services: Services) -> Reply:
    target = fields.recipient(request.fields)
    trail = _Trail(request, services, "cancel", target, fields.task_sid(request.fields))
    return _conclude(trail, lambda: _cancel(trail))


def customer_info(request: Request, services: Services) -> Reply:
    target = fields.recipient(request.fields)
    trail = _Trail(request, services, "customer_info", target, fields.task_sid(request.fields))
    return _conclude(trail, lambda: _customer(trail))


def start_for_call(request: Request, services: Services, target: fields.Destination, caller: Agent) -> Reply:
    """The IVR's start: `caller` is the IVR on one call (Twilio's signature proved it), the agent of the caps."""
    trail = _Trail(request, services, "start", target, None, caller)
    return _conclude(trail, lambda: _start(trail, target, services.settings.ivr_locale[:2]))


def check_for_call(request: Request, services: Services, target: fields.Destination, caller: Agent, code: str) -> Reply:
    """The IVR's check of the digits the caller keyed (an entry that is no code at all is a wrong one, not
    worth a Twilio call or a failed check); the approval belongs to the call."""
    trail = _Trail(request, services, "check", target, None, caller)
    if not fields.CODE.fullmatch(code):
        return _conclude(trail, partial(_refuse, Refusal("incorrect_code", "not_a_code")))
    return _conclude(trail, lambda: _check(trail, code))


# -- the decisions ---------------------------------------------------------------------------------


def _start(trail: "_Trail", target: fields.Destination, locale: str) -> Ending:
    services, settings = trail.services, trail.services.settings
    agent = trail.identify()
    _hold_task(trail, agent)
    if target.channel != "email":
        if settings.allowed_countries and target.region not in settings.allowed_countries:
            raise Refusal("destination_blocked", "country_not_allowed")
        if target.costly:
            raise Refusal("destination_blocked", target.costly)
    weigh = bool(settings.lookup_fields) and target.channel in risk.PHONE_CHANNELS
    # What is known costs nothing: a number known to be risky is refused before it takes a send.
    known = services.store.known_signals(trail.key, trail.now, settings.lookup_fields) if weigh else None
    unweighed = risk.not_checked(target.channel)
    assessment = trail.note(risk.assess(known, target.channel, settings, trail.now) if known else unweighed)
    if assessment.refusal:
        raise assessment.refusal
    reservation = services.store.reserve_send(trail.key, agent.identity, trail.now, trail.request.request_id)
    # A Lookup is paid for, so it is made only inside the send limits.
    fresh = None
    if weigh and not known:
        fresh = _look_up(trail, target.to)
        assessment = trail.note(risk.assess(fresh, target.channel, settings, trail.now))
    remember = partial(services.store.record_start, trail.key, trail.now, fresh=fresh)
    if assessment.refusal:
        return Ending(assessment.refusal.code, assessment.refusal, record=remember)
    release = partial(services.store.release_send, trail.key, agent.identity, trail.now, reservation)
    try:
        sent = services.verify.start(target.to, assessment.channel, locale)
    except Refusal as failure:
        if outcome_unknown(failure):  # it may have been sent: the reservation stands (cooldown, counts)
            return Ending(failure.code, failure, record=remember)
        # On a send, "not found" means the Verify service itself is missing: our problem, not the caller's.
        answer = Refusal("upstream_error", twilio_code=20404) if failure.code == "verification_not_found" else failure
        # A send Twilio refused for its number keeps the Lookup it paid for: otherwise a stream of numbers
        # Twilio refuses (not enabled countries, Fraud Guard) would buy Lookups without end.
        keep = weigh and not known and answer.code in NUMBER_REFUSALS
        return Ending(answer.code, answer, record=remember if keep else release)
    body = {
        "success": True,
        "status": sent.status,
        "channel": sent.channel,
        "resendAfter": settings.send_cooldown_seconds,
    }
    sent_with = partial(remember, sent=(sent.channel, assessment.evidence))
    return Ending("sent", Reply(200, body), record=sent_with, twilio_sid=sent.sid)


def _refuse(refusal: Refusal) -> Ending:
    raise refusal


def _look_up(trail: "_Trail", number: str) -> Signals | None:
    """Lookup's signals, or None when it did not answer (timeout, 5xx): LOOKUP_FAILURE decides then."""
    try:
        return trail.services.lookup.signals(number, trail.services.settings.lookup_fields, trail.now)
    except Refusal:
        return None


def _check(trail: "_Trail", code: str) -> Ending:
    services, settings, now = trail.services, trail.services.settings, trail.now
    agent = trail.identify()
    task = _hold_task(trail, agent)
    started = services.store.begin_check(trail.key, now, settings.max_failed_checks)
    # Twilio refused to judge the code, or its approval could not be recorded: this check was no failure.
    undo = partial(services.store.abandon_check, trail.key, now, started)
    try:
        approved = services.verify.check(trail.to, code)
    except Refusal as failure:
        if not outcome_unknown(failure):
            return Ending(failure.code, failure, record=undo)
        # It may have been judged (a timeout): it counts as the failure it may have been, lock included.
        lock_until = now + settings.lockout_seconds if started.failures >= settings.max_failed_checks else None
        return Ending(failure.code, failure, record=partial(services.store.fail_check, trail.key, now, lock_until))
    if approved:
        call = task.call_sid if task else agent.call_sid  # the approval follows the call, into any task for it
        via = "ivr" if agent.call_sid else None
        until = now + settings.approval_ttl_seconds
        approval = Approval(agent.identity, trail.task_sid, now, until, call, via=via)
        reply = Reply(
            200, {"success": True, "message": "Verification success.", "verifiedUntil": iso(approval.approved_until)}
        )
        return Ending("approved", reply, record=partial(services.store.approve, trail.key, now, approval), undo=undo)
    if started.failures >= settings.max_failed_checks:
        lock_until = now + settings.lockout_seconds
        lock = partial(services.store.fail_check, trail.key, now, lock_until)
        return Ending("locked", limits.locked(lock_until, now), record=lock)
    return Ending(
        "incorrect_code", Refusal("incorrect_code"), record=partial(services.store.fail_check, trail.key, now, None)
    )


def _cancel(trail: "_Trail") -> Ending:
    agent = trail.identify()
    # Only the agent who sent the code (or approved it), or a supervisor: no one else may end it. With
    # TaskRouter, the verification is the task's: whoever holds the task now may end it.
    if _hold_task(trail, agent) is None:
        owner = trail.services.store.owner(trail.key)
        if owner not in (None, agent.identity) and not _supervises(trail, agent):
            raise Refusal("cancel_not_allowed")
    # The approval is ours to revoke whatever Twilio says; nothing pending at Twilio is fine.
    clear = partial(trail.services.store.clear_approval, trail.key, trail.now)
    try:
        trail.services.verify.cancel(trail.to)
    except Refusal as failure:
        if failure.code != "verification_not_found":
            return Ending(failure.code, failure, record=clear)
    return Ending("canceled", Reply(200, {"success": True, "status": "canceled"}), record=clear)


def _customer(trail: "_Trail") -> Ending:
    agent = trail.identify()
    if not agent.authenticated:
        raise Refusal("agent_auth_required")
    task = _hold_task(trail, agent)
    approval, customer = trail.services.store.approval_and_customer(trail.key, trail.to)
    if approval is None or not _approves(approval, agent, trail.task_sid, trail.now, task):
        raise Refusal("not_verified")
    if customer is None:
        raise Refusal("customer_not_found")
    visible = {name: customer[name] for name in trail.services.settings.customer_fields if name in customer}
    body = {
        "success": True,
        "verifiedAt": iso(approval.approved_at),
        "verifiedUntil": iso(approval.approved_until),
        "customer": visible,
        "assurance": {
            "channel": approval.channel,
            "method": approval.via or "agent",  # "ivr": verified in the IVR, before the call reached an agent
            "verifiedAt": iso(approval.approved_at),
            "riskCheck": approval.risk or {"verdict": "not_checked"},
        },
    }
    return Ending("served", Reply(200, body))


def _approves(approval: Approval, agent: Agent, task_sid: str | None, now: int, task: "TaskView | None") -> bool:
    """A current approval, by this agent; one bound to a task only for a request naming that task.

    `task`: TaskRouter said this agent holds the request's task now, so the approval is the task's, or its
    call's, whoever approved it: after a transfer (the same task moved, or Flex's new task for the same
    call) the new holder needs no second code.
    """
    if approval.approved_until <= now:
        return False
    if task is not None:
        same_call = approval.call_sid is not None and approval.call_sid == task.call_sid
        return (approval.task_sid is not None and approval.task_sid == task.sid) or same_call
    return approval.agent == agent.identity and (approval.task_sid is None or task_sid == approval.task_sid)


def _hold_task(trail: "_Trail", agent: Agent) -> "TaskView | None":
    """With a TaskRouter workspace: the request's task is held by this agent's worker now, and its caller is
    the destination (a supervisor may verify another). The task once checked; None without a workspace."""
    services = trail.services
    if not services.settings.taskrouter_workspace_sid or agent.call_sid is not None:
        return None  # the IVR verifies its own call, before any task exists
    if services.taskrouter is None:
        raise ConfigError("TASKROUTER_WORKSPACE_SID is set but no TaskRouter adapter was wired")
    if trail.task_sid is None:
        raise Refusal("task_not_held", "task_missing")
    if not agent.worker_sid:
        raise Refusal("task_not_held", "no_worker")
    from callerauth.taskrouter import caller_key

    task = services.taskrouter.look(trail.task_sid, agent.worker_sid)
    if not task.held:
        raise Refusal("task_not_held", task.status)
    caller = caller_key(task.caller) if task.caller else None
    if (caller is None or services.hasher.key(caller) != trail.key) and not _supervises(trail, agent):
        raise Refusal("not_task_caller")
    return task


def _supervises(trail: "_Trail", agent: Agent) -> bool:
    return bool(trail.services.settings.supervisor_roles.intersection(agent.roles))


# -- the one exit ----------------------------------------------------------------------------------


def _conclude(trail: "_Trail", body: Callable[[], Ending]) -> Reply:
    """Run the body, then write its ending with its audit event: one event per request, whatever happens."""
    try:
        ending = body()
    except Refusal as refusal:  # refused before anything was written (a limit, a lock, storage down)
        ending = Ending(refusal.code, refusal)
    if trail.agent is None and isinstance(ending.answer, Refusal):
        _refuse_unidentified(trail, ending.answer)
    store = trail.services.store
    try:
        (ending.record or partial(store.audit, trail.key, trail.now))(trail.event(ending.outcome, ending.twilio_sid))
    except Refusal as failure:  # the ending could not be written: say so, and leave a trace if storage allows
        if ending.record is not None:
            with suppress(Refusal):
                (ending.undo or partial(store.audit, trail.key, trail.now))(trail.event(failure.code))
        raise failure from None
    if isinstance(ending.answer, Refusal):
        raise ending.answer
    return ending.answer


def _refuse_unidentified(trail: "_Trail", refusal: Refusal) -> None:
    """A request refused before anyone was identified: audited under its source, within its budget."""
    if refusal.reason == "source_refusals":  # refused from memory: this source is flooding
        raise refusal
    if refusal.code not in UNTRUSTED:
        return  # e.g. IAM unreachable: the request may be genuine, so it is audited as usual
    wait = audit_under_source(trail.services, trail.request.source_ip, trail.now, trail.event(refusal.code))
    if wait is None:
        raise refusal
    trail.request.log["outcome"] = "source_refusals"
    raise Refusal("rate_limited", "source_refusals", retry_after=wait)


def audit_under_source(services: Services, source_ip: str, now: int, event: AuditEvent) -> int | None:
    """Audit a refused request nobody was identified in under its source, within the source's budget of
    such refusals a minute. None when audited; once the budget is spent, nothing is written and the
    source is blocked in memory for the rest of the minute: the seconds until then."""
    budget = services.settings.max_refusals_per_source_per_minute
    if services.store.refuse_source(services.sources.key(source_ip), now, event, budget):
        return None
    minute_ends = (now // limits.MINUTE + 1) * limits.MINUTE
    services.sources.block(source_ip, minute_ends)
    return minute_ends - now


class _Trail:
    """One request's context for its audit event: who, what, which destination (masked and keyed), when.

    A plain class, not a dataclass: the one mutable record, made once a request (a dataclass would compile
    its generated methods at every cold start)."""

    __slots__ = (
        "action",
        "agent",
        "channel",
        "key",
        "masked_to",
        "now",
        "request",
        "services",
        "task_sid",
        "to",
        "weighed",
    )

    def __init__(
        self,
        request: Request,
        services: Services,
        action: str,
        target: fields.Destination,
        task_sid: str | None,
        caller: Agent | None = None,
    ) -> None:
        self.request, self.services, self.action, self.task_sid = request, services, action, task_sid
        self.to, self.masked_to = target.to, mask(target.to)
        request.log["to"] = self.masked_to
        self.now = int(services.clock())
        self.channel: str | None = target.channel if action == "start" else None
        self.key = services.hasher.key(target.key)
        self.agent = caller
        self.weighed: dict[str, Any] | None = None  # what a start weighed about the number (audited)

    def identify(self) -> Agent:
        if self.agent is not None and self.agent.call_sid is not None:  # the IVR, identified by its signature
            self.request.log["agent"] = self.agent.identity
            return self.agent
        self.services.sources.admit(self.request.source_ip)
        self.agent = self.services.agents.identify(self.request.token, self.request.source_ip)
        self.request.log["agent"] = self.agent.identity
        return self.agent

    def note(self, assessment: risk.Assessment) -> risk.Assessment:
        """What a start weighed about the number, for its audit event and log; the channel it decided."""
        on_the_line = self.agent is not None and self.agent.call_sid is not None
        if on_the_line and assessment.channel != self.channel and assessment.refusal is None:
            # The IVR's caller is on the very line a voice code would ring: a landline gets no code there.
            refused = {**assessment.evidence, "verdict": "refused", "reason": "landline"}
            assessment = risk.Assessment(self.channel or "sms", refused, Refusal("destination_risky", "landline"))
        self.weighed, self.request.log["risk"] = assessment.evidence, assessment.evidence["verdict"]
        self.channel = assessment.channel
        return assessment

    def event(self, outcome: str, twilio_sid: str | None = None) -> AuditEvent:
        self.request.log["outcome"] = outcome
        return AuditEvent(
            action=self.action,
            outcome=outcome,
            agent=self.agent.identity if self.agent else "unidentified",
            masked_to=self.masked_to,
            request_id=self.request.request_id,
            worker_sid=self.agent.worker_sid if self.agent else None,
            task_sid=self.task_sid,
            channel=self.channel,
            twilio_sid=twilio_sid,
            risk=self.weighed,
            at=self.services.clock(),
            call_sid=self.agent.call_sid if self.agent else None,
        )

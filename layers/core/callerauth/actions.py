"""What each endpoint does: every decision of the product, in order, over injected adapters."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from callerauth import errors, fields, limits
from callerauth.agents import Agent, Agents
from callerauth.config import Settings
from callerauth.http import Reply, Request
from callerauth.privacy import Hasher, mask
from callerauth.store import Approval, AuditEvent, StateStore
from callerauth.twilio_verify import Verify


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: StateStore
    verify: Verify
    agents: Agents
    hasher: Hasher
    clock: Callable[[], float] = time.time


def start_verify(request: Request, services: Services) -> Reply:
    settings = services.settings
    target = fields.destination(request.fields, missing_message=fields.START_MISSING, more_info=errors.VERIFY_DOCS)
    locale, task_sid = fields.locale(request.fields), fields.task_sid(request.fields)
    with _audited(request, services, "start", target.to, target.channel, task_sid) as trail:
        agent = trail.identify()
        if target.channel != "email" and not _country_allowed(target.to, settings.allowed_country_codes):
            raise errors.destination_blocked("Verification to this country is not allowed.")
        now = trail.now
        reservation = request.request_id
        services.store.reserve_send(trail.key, agent.identity, now, reservation)
        try:
            sent = services.verify.start(target.to, target.channel, locale)
        except errors.ApiError as failure:
            # On a send, "not found" means the Verify service itself is missing: our problem, not the caller's.
            answer = errors.upstream_error(20404) if failure.code == "verification_not_found" else failure
            services.store.release_send(trail.key, agent.identity, now, reservation, trail.event(answer.code))
            trail.written = True
            raise answer from None
        services.store.audit(trail.key, now, trail.event("sent", twilio_sid=sent.sid))
        trail.written = True
    return Reply(
        200,
        {
            "success": True,
            "status": sent.status,
            "channel": sent.channel,
            "resendAfter": settings.send_cooldown_seconds,
        },
    )


def check_verify(request: Request, services: Services) -> Reply:
    settings = services.settings
    to = fields.recipient(request.fields)
    code = fields.verification_code(request.fields)
    task_sid = fields.task_sid(request.fields)
    with _audited(request, services, "check", to, None, task_sid) as trail:
        agent = trail.identify()
        now = trail.now
        started = services.store.begin_check(trail.key, now)
        try:
            approved = services.verify.check(to, code)
        except errors.ApiError as failure:
            services.store.abandon_check(trail.key, now, started, trail.event(failure.code))
            trail.written = True
            raise
        if approved:
            until = now + settings.approval_ttl_seconds
            approval = Approval(agent.identity, task_sid, now, until)
            try:
                services.store.approve(trail.key, now, approval, trail.event("approved"))
            except Exception:
                # Twilio approved but nothing is recorded: no approval, and the right code is no failure.
                with suppress(Exception):
                    services.store.abandon_check(trail.key, now, started, trail.event("upstream_unavailable"))
                    trail.written = True
                raise
            trail.written = True
            return Reply(200, {"success": True, "message": "Verification success.", "verifiedUntil": _iso(until)})
        if started.failures >= settings.max_failed_checks:
            lock_until = now + settings.lockout_seconds
            services.store.fail_check(trail.key, now, lock_until, trail.event("locked"))
            trail.written = True
            raise limits.locked(lock_until, now)
        services.store.fail_check(trail.key, now, None, trail.event("incorrect_code"))
        trail.written = True
        raise errors.incorrect_code()


def cancel_verify(request: Request, services: Services) -> Reply:
    to = fields.recipient(request.fields)
    task_sid = fields.task_sid(request.fields)
    with _audited(request, services, "cancel", to, None, task_sid) as trail:
        trail.identify()
        try:
            services.verify.cancel(to)
        except errors.ApiError as failure:
            if failure.code != "verification_not_found":  # nothing pending is fine: the approval still goes
                # Twilio could not cancel, but the approval is ours to revoke: revoke it, then say so.
                services.store.clear_approval(trail.key, trail.now, trail.event(failure.code))
                trail.written = True
                raise
        services.store.clear_approval(trail.key, trail.now, trail.event("canceled"))
        trail.written = True
    return Reply(200, {"success": True, "status": "canceled"})


def customer_info(request: Request, services: Services) -> Reply:
    to = fields.recipient(request.fields)
    task_sid = fields.task_sid(request.fields)
    with _audited(request, services, "customer_info", to, None, task_sid) as trail:
        agent = trail.identify()
        if not agent.authenticated:
            raise errors.agent_auth_required()
        approval, customer = services.store.approval_and_customer(trail.key, to)
        if not _approves(approval, agent, task_sid, trail.now):
            raise errors.not_verified()
        assert approval is not None
        if customer is None:
            raise errors.customer_not_found()
        services.store.audit(trail.key, trail.now, trail.event("served"))
        trail.written = True
    visible = {name: customer[name] for name in services.settings.customer_fields if name in customer}
    return Reply(
        200,
        {
            "success": True,
            "verifiedAt": _iso(approval.approved_at),
            "verifiedUntil": _iso(approval.approved_until),
            "customer": visible,
        },
    )


def _approves(approval: Approval | None, agent: Agent, task_sid: str | None, now: int) -> bool:
    """A current approval, by this agent, for this task when both sides name one."""
    return (
        approval is not None
        and approval.agent == agent.identity
        and approval.approved_until > now
        and not (task_sid and approval.task_sid and task_sid != approval.task_sid)
    )


def _country_allowed(number: str, allowed: tuple[str, ...]) -> bool:
    return not allowed or number.startswith(allowed)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Trail:
    """One request's audit event: whatever happens, exactly one is written."""

    request: Request
    services: Services
    action: str
    key: str
    masked_to: str
    channel: str | None
    task_sid: str | None
    now: int
    agent: Agent | None = None
    written: bool = False

    def identify(self) -> Agent:
        self.agent = self.services.agents.identify(self.request.token, self.request.source_ip)
        self.request.log["agent"] = self.agent.identity
        return self.agent

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
            at=self.services.clock(),
        )


@contextmanager
def _audited(
    request: Request, services: Services, action: str, to: str, channel: str | None, task_sid: str | None
) -> Iterator[_Trail]:
    """Audit the action whatever its outcome; DynamoDB failures answer 503, never a half-done action."""
    from botocore.exceptions import BotoCoreError, ClientError

    masked = mask(to)
    request.log["to"] = masked
    trail = _Trail(request, services, action, services.hasher.key(to), masked, channel, task_sid, int(services.clock()))
    try:
        yield trail
    except errors.ApiError as refusal:
        if not trail.written:
            _audit_or_503(trail, refusal.code)
        raise
    except (BotoCoreError, ClientError) as failure:
        request.log["dynamodb_error"] = _aws_code(failure)
        if not trail.written:  # DynamoDB may be up again (a conflict, a throttle): leave a trace if it can
            with suppress(BotoCoreError, ClientError):
                services.store.audit(trail.key, trail.now, trail.event("upstream_unavailable"))
        raise errors.upstream_unavailable() from None


def _audit_or_503(trail: _Trail, outcome: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        trail.services.store.audit(trail.key, trail.now, trail.event(outcome))
    except (BotoCoreError, ClientError) as failure:
        trail.request.log["dynamodb_error"] = _aws_code(failure)
        raise errors.upstream_unavailable() from None


def _aws_code(failure: Exception) -> str:
    response = getattr(failure, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or type(failure).__name__)

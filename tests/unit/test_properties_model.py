"""Properties (b): a model of the decisions, run as a state machine (tests/unit/properties_helpers.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from callerauth.actions import cancel_verify, check_verify, customer_info, start_verify
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests.support import TO
from tests.unit.properties_helpers import AGENT_TOKEN

# ------------------------------------------------------------------------------------------ (b) the model

COOLDOWN, CAP, MAX_FAILED, LOCKOUT, APPROVAL_TTL, TWILIO_LIFE = 30, 3, 3, 120, 300, 600
SMALL = {
    "send_cooldown_seconds": COOLDOWN,
    "max_sends_per_destination_per_hour": CAP,
    "max_failed_checks": MAX_FAILED,
    "lockout_seconds": LOCKOUT,
    "approval_ttl_seconds": APPROVAL_TTL,
}


class OneDestination(RuleBasedStateMachine):
    """One number, one agent. The model states what CONTRACT.md and DESIGN.md promise.

    A test binds ``make_world`` (the ``world_factory`` fixture) and ``seen`` (what every example answered).
    """

    make_world: Callable[..., Any]
    seen: Counter[tuple[str, int, str | None]]

    def __init__(self) -> None:
        super().__init__()
        self.world = self.make_world(**SMALL)
        self.world.seed_customer(TO, name="Jane Doe")
        self.now = int(self.world.clock())
        self.requests = 0
        # the model
        self.last_send: int | None = None
        self.sends: Counter[int] = Counter()  # per fixed hour
        self.failed = 0
        self.series_started = 0  # when the current run of consecutive failures began
        self.locked_until = 0
        self.code_created: int | None = None  # Twilio's pending verification
        self.approved_until = 0
        self.action = ""

    # -- the model's view ---------------------------------------------------------------

    def locked(self) -> bool:
        return self.locked_until > self.now

    def pending(self) -> bool:
        return self.code_created is not None and self.now < self.code_created + TWILIO_LIFE

    def call(self, action: Callable[..., Any], fields: dict[str, str]) -> Any:
        """One request, straight into the action (the invariant counts its audit events)."""
        self.requests += 1
        self.action = action.__name__
        return self.world.call(action, {"to": TO, **fields}, token=AGENT_TOKEN)

    def expect(self, out: Any, status: int, code: str | None = None, retry_after: int | None = None) -> None:
        self.seen[(self.action, status, code)] += 1
        assert (out.status, out.code) == (status, code), out.body
        if retry_after is not None:
            assert out.retry_after == retry_after, out.body

    # -- rules ---------------------------------------------------------------------------

    @rule()
    def send(self) -> None:
        out = self.call(start_verify, {})
        hour = self.now // 3600
        waits = []
        if self.locked():
            waits.append(self.locked_until - self.now)
        elif self.last_send is not None and self.now < self.last_send + COOLDOWN:
            waits.append(self.last_send + COOLDOWN - self.now)
        if self.sends[hour - 1] + self.sends[hour] >= CAP:  # no hour-long span may hold more than CAP
            full_next = self.sends[hour] >= CAP  # this hour's own sends fill the next hour's span too
            waits.append((hour + 1 + full_next) * 3600 - self.now)
            self.seen[("start_verify: destination cap", 429, "rate_limited")] += 1
        if waits:
            self.expect(out, 429, "too_many_attempts" if self.locked() else "rate_limited", max(waits))
            return
        self.expect(out, 200)
        assert out.body["resendAfter"] == COOLDOWN
        self.last_send = self.now
        self.sends[hour] += 1
        self.approved_until = 0  # a new code revokes the approval: the situation changed
        if not self.pending():
            self.code_created = self.now

    def check(self, right: bool) -> None:
        live = self.world.verify.pending.get(TO)
        code = live.code if live else "314159"
        out = self.call(check_verify, {"verification_code": code if right else f"{(int(code) + 1) % 10**6:06d}"})
        if self.locked():
            self.expect(out, 429, "too_many_attempts", self.locked_until - self.now)
        elif not self.pending():
            self.expect(out, 404, "verification_not_found")
        elif right:
            self.expect(out, 200)
            self.failed, self.code_created = 0, None
            self.approved_until = self.now + APPROVAL_TTL
        else:
            self.failed += 1
            if self.failed == 1:
                self.series_started = self.now
            if self.failed >= MAX_FAILED:
                self.failed, self.locked_until = 0, self.now + LOCKOUT
                self.expect(out, 429, "too_many_attempts", LOCKOUT)
            else:
                self.expect(out, 401, "incorrect_code")

    @rule()
    def check_right(self) -> None:
        self.check(right=True)

    def failures_are_recent(self) -> bool:
        """DESIGN.md counts failures "within an hour": the model never lets a run of failures get older."""
        return self.failed == 0 or self.now - self.series_started < 3600

    @precondition(failures_are_recent)
    @rule()
    def check_wrong(self) -> None:
        self.check(right=False)

    @precondition(failures_are_recent)
    @rule()
    def lock(self) -> None:
        """A caller guessing: a code is sent, wrong codes until the lock, then a resend and the right code."""
        if self.failed == 0 and not self.locked():
            self.time_passes(2 * 3600 - self.now % 3600 + COOLDOWN)  # two fresh hours: no cap or cooldown refuses
        self.send()
        for _ in range(MAX_FAILED):
            self.check(right=False)
        self.time_passes(COOLDOWN)
        self.send()
        self.check(right=True)

    @rule()
    def resend_until_refused(self) -> None:
        for _ in range(CAP + 1):
            self.time_passes(COOLDOWN)
            self.send()

    @rule()
    def verify_and_read(self) -> None:
        """What an agent does: send, check the code read back, open the customer's record."""
        self.send()
        self.check(right=True)
        self.read_customer()

    @rule()
    def cancel(self) -> None:
        out = self.call(cancel_verify, {})
        self.expect(out, 200)
        self.code_created, self.approved_until = None, 0

    @rule()
    def read_customer(self) -> None:
        out = self.call(customer_info, {})
        if self.now < self.approved_until:
            self.expect(out, 200)
            assert out.body["customer"] == {"name": "Jane Doe"}
        else:
            self.expect(out, 403, "not_verified")

    @rule(seconds=st.sampled_from([1, 5, 29, 30, 31, 59, 60, 119, 120, 121, 299, 300, 301, 599, 600, 1800, 3600]))
    def time_passes(self, seconds: int) -> None:
        self.world.clock.advance(seconds)
        self.now += seconds

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def twilio_agrees_with_the_model(self) -> None:
        assert self.world.verify.is_pending(TO) == self.pending()

    @invariant()
    def one_audit_event_per_request(self) -> None:
        assert self.world.audit_count(TO) == self.requests


def test_the_backend_behaves_like_the_model(world_factory: Callable[..., Any]) -> None:
    seen: Counter[tuple[str, int, str | None]] = Counter()  # (action, status, code) over every example

    class Bound(OneDestination):
        make_world = staticmethod(world_factory)

    Bound.seen = seen

    run_state_machine_as_test(
        Bound,
        # The profile's (tests/conftest.py) but fewer, longer runs: each example builds its own tables.
        settings=settings(max_examples=25, stateful_step_count=15),
    )

    # and the run was not vacuous: every decision of the model was reached and agreed with
    assert set(seen) >= {
        ("start_verify", 200, None),
        ("start_verify", 429, "rate_limited"),
        ("start_verify: destination cap", 429, "rate_limited"),
        ("start_verify", 429, "too_many_attempts"),
        ("check_verify", 200, None),
        ("check_verify", 401, "incorrect_code"),
        ("check_verify", 429, "too_many_attempts"),
        ("check_verify", 404, "verification_not_found"),
        ("cancel_verify", 200, None),
        ("customer_info", 200, None),
        ("customer_info", 403, "not_verified"),
    }, seen

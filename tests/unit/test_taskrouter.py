"""callerauth.taskrouter: the look cache (on the injected clock), a task's caller, and the real adapter
against the sandbox's TaskRouter over loopback HTTP; and the setting's validation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from callerauth.config import ConfigError, Settings
from callerauth.refusals import Refusal
from callerauth.taskrouter import (
    TASK_CACHE_SECONDS,
    CachedTaskRouter,
    TaskView,
    TwilioTaskRouter,
    caller_key,
    caller_of,
)

from devserver.samples import SANDBOX_WORKSPACE_SID
from devserver.sandbox_taskrouter import worker_sid
from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, TASK, TO, FakeClock, free_port, refused, serving

ALICE, BOB = worker_sid(ACCOUNT_SID, "alice"), worker_sid(ACCOUNT_SID, "bob")


# ------------------------------------------------------------------------------------------ the cache


class Scripted:
    """A TaskRouter that answers what the test says, and counts the looks it was asked for."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], TaskView | Refusal] = {}
        self.looks = 0

    def look(self, task_sid: str, worker_sid: str) -> TaskView:
        self.looks += 1
        answer = self.answers[(task_sid, worker_sid)]
        if isinstance(answer, Refusal):
            raise answer
        return answer


@pytest.fixture
def scripted() -> Scripted:
    return Scripted()


def view(status: str = "assigned", held: bool = True) -> TaskView:
    return TaskView(TASK, status, held, TO)


def test_a_look_is_kept_for_30_seconds_per_task_and_worker(scripted: Scripted) -> None:
    # Given a cache on a hand-moved clock, and alice holding the task
    clock = FakeClock()
    cache = CachedTaskRouter(scripted, clock)
    scripted.answers[(TASK, ALICE)] = view()

    # When alice's look is asked for three times within 30 s, then once at 30 s
    looks = [cache.look(TASK, ALICE) for _ in range(3)]
    within = scripted.looks
    clock.advance(TASK_CACHE_SECONDS)
    cache.look(TASK, ALICE)

    # Then TaskRouter was asked once, then again once the look's life was over
    assert looks == [view()] * 3
    assert (within, scripted.looks) == (1, 2)


def test_an_unknown_task_is_remembered_but_taskrouter_down_never_is(scripted: Scripted) -> None:
    cache = CachedTaskRouter(scripted, FakeClock())
    scripted.answers[(TASK, ALICE)] = Refusal("task_not_found")
    for _ in range(2):
        with refused() as caught:
            cache.look(TASK, ALICE)
        assert caught.value.code == "task_not_found"
    assert scripted.looks == 1

    scripted.answers[(TASK, BOB)] = Refusal("upstream_unavailable", "taskrouter_5xx", retry_after=5)
    for _ in range(2):
        with pytest.raises(Refusal):
            cache.look(TASK, BOB)
    assert scripted.looks == 3


def test_a_fresh_look_showing_a_new_holder_drops_the_old_holders_look(scripted: Scripted) -> None:
    # Given the cache saw alice holding the task
    cache = CachedTaskRouter(scripted, FakeClock())
    scripted.answers[(TASK, ALICE)] = view()
    cache.look(TASK, ALICE)

    # When the task moves to bob and bob's fresh look shows him holding it
    scripted.answers[(TASK, ALICE)] = view(held=False)
    scripted.answers[(TASK, BOB)] = view()
    assert cache.look(TASK, BOB).held

    # Then alice's look (a change the cache has now seen) is asked for again, within the 30 s
    assert cache.look(TASK, ALICE).held is False
    assert scripted.looks == 3


def test_a_fresh_look_showing_another_status_drops_every_earlier_look(scripted: Scripted) -> None:
    cache = CachedTaskRouter(scripted, FakeClock())
    scripted.answers[(TASK, ALICE)] = view()
    cache.look(TASK, ALICE)
    scripted.answers[(TASK, ALICE)] = view("completed", held=False)
    scripted.answers[(TASK, BOB)] = view("completed", held=False)

    cache.look(TASK, BOB)  # bob's look sees the task completed

    assert cache.look(TASK, ALICE).status == "completed"
    assert scripted.looks == 3


def test_a_look_that_agrees_keeps_the_others(scripted: Scripted) -> None:
    # Given alice's look (holding), then bob's (the same task, assigned, not his): nothing changed
    cache = CachedTaskRouter(scripted, FakeClock())
    scripted.answers[(TASK, ALICE)] = view()
    scripted.answers[(TASK, BOB)] = view(held=False)
    cache.look(TASK, ALICE)
    cache.look(TASK, BOB)

    # When each asks again / Then both are answered from memory
    cache.look(TASK, ALICE)
    cache.look(TASK, BOB)
    assert scripted.looks == 2


# ----------------------------------------------------------------------------------- a task's caller


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"from": "+12025550100", "to": "+18005550100"}, "+12025550100"),
        ({"from": "whatsapp:+12025550100"}, "+12025550100"),
        ({"customerAddress": "+44 7400 123456"}, "+447400123456"),  # one number, however it is spaced
        ({"from": "client:alice"}, None),  # a Flex client, not a customer
        ({"customerAddress": "+447400123456"}, "+447400123456"),
        ({"customers": {"email": "Jane+Support@Example.com"}}, "jane@example.com"),
        ({"from": ""}, None),
        ({}, None),
        ({"from": "+1555"}, None),
    ],
)
def test_the_callers_key_is_the_destinations(attributes: dict[str, object], expected: str | None) -> None:
    caller = caller_of(attributes)
    assert (caller_key(caller) if caller else None) == expected


# -------------------------------------------------------------------------- the adapter, over HTTP


@dataclass
class Live:
    sandbox: TwilioSandbox
    base_url: str

    def adapter(self, token: str = AUTH_TOKEN, base_url: str | None = None) -> TwilioTaskRouter:
        return TwilioTaskRouter(lambda: (ACCOUNT_SID, token), SANDBOX_WORKSPACE_SID, base_url or self.base_url, 2.0)


@pytest.fixture
def live() -> Iterator[Live]:
    sandbox = TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, clock=FakeClock(), announce=lambda _: None)
    with serving(sandbox) as base_url:
        yield Live(sandbox, base_url)


def test_the_holder_is_seen_holding_with_two_requests(live: Live) -> None:
    task = live.sandbox.taskrouter.create_task(TO, "alice")
    assert live.adapter().look(task, ALICE) == TaskView(task, "assigned", True, TO)
    assert live.sandbox.taskrouter.reads == 2  # the task, then alice's accepted reservation


def test_another_worker_and_a_transferred_holder_are_not_holding(live: Live) -> None:
    task = live.sandbox.taskrouter.create_task(TO, "alice")
    adapter = live.adapter()
    assert adapter.look(task, BOB).held is False
    live.sandbox.taskrouter.transfer(task, "bob")
    assert (adapter.look(task, ALICE).held, adapter.look(task, BOB).held) == (False, True)


def test_wrapping_is_held_and_completed_is_not_in_one_request(live: Live) -> None:
    task = live.sandbox.taskrouter.create_task(TO, "alice")
    adapter = live.adapter()
    live.sandbox.taskrouter.wrap(task)
    assert adapter.look(task, ALICE) == TaskView(task, "wrapping", True, TO)
    live.sandbox.taskrouter.complete(task)
    reads = live.sandbox.taskrouter.reads
    assert adapter.look(task, ALICE) == TaskView(task, "completed", False, TO)
    assert live.sandbox.taskrouter.reads == reads + 1


@pytest.mark.parametrize(
    ("steer", "code", "reason"),
    [
        pytest.param(lambda s: None, "task_not_found", None, id="unknown-task-404"),
        pytest.param(lambda s: s.taskrouter.fail_next(503), "upstream_unavailable", "taskrouter_5xx", id="503"),
        pytest.param(lambda s: s.taskrouter.fail_next(429), "upstream_unavailable", "taskrouter_5xx", id="429"),
        pytest.param(lambda s: s.taskrouter.fail_next(400), "upstream_error", "taskrouter", id="400"),
    ],
)
def test_taskrouter_failures_in_the_domains_terms(live: Live, steer: object, code: str, reason: str | None) -> None:
    assert callable(steer)
    steer(live.sandbox)
    with pytest.raises(Refusal) as raised:
        live.adapter().look(TASK, ALICE)
    assert (raised.value.code, raised.value.reason) == (code, reason)


def test_wrong_credentials_and_an_unreachable_taskrouter(live: Live) -> None:
    task = live.sandbox.taskrouter.create_task(TO, "alice")
    with pytest.raises(Refusal) as raised:
        live.adapter(token="wrong").look(task, ALICE)
    assert (raised.value.code, raised.value.reason) == ("upstream_error", "taskrouter")
    with refused() as caught:
        live.adapter(base_url=f"http://127.0.0.1:{free_port()}").look(task, ALICE)
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (503, "upstream_unavailable", 5)


# ------------------------------------------------------------------------------------------ the setting

TABLES = {"STATE_TABLE": "s", "CUSTOMERS_TABLE": "c"}


def test_the_workspace_setting_is_validated() -> None:
    assert Settings.from_env(TABLES).taskrouter_workspace_sid == ""
    settings = Settings.from_env({**TABLES, "TASKROUTER_WORKSPACE_SID": SANDBOX_WORKSPACE_SID})
    assert settings.taskrouter_workspace_sid == SANDBOX_WORKSPACE_SID
    assert settings.twilio_taskrouter_base_url == "https://taskrouter.twilio.com"
    with pytest.raises(ConfigError, match="WS and 32 hex"):
        Settings.from_env({**TABLES, "TASKROUTER_WORKSPACE_SID": "WT" + "0" * 32})
    with pytest.raises(ConfigError, match="AGENT_AUTH=flex"):
        Settings.from_env({**TABLES, "TASKROUTER_WORKSPACE_SID": SANDBOX_WORKSPACE_SID, "AGENT_AUTH": "none"})

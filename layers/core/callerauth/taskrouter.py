"""Twilio TaskRouter: who holds a task now, and whose call it is (with TASKROUTER_WORKSPACE_SID set).

The adapter reads a task (one HTTP request) and, while the task is `assigned` or `wrapping`, its
reservation for the asking worker in the matching status (a second one): a look costs one or two HTTP
requests. `CachedTaskRouter` keeps each look for TASK_CACHE_SECONDS per (task, worker); a fresh look at a
task drops every earlier look at it that it contradicts, so no answer outlives a change this container has
seen (a transfer seen by the new holder's request, a completion seen by anyone's). A change no request here
has seen yet is seen within TASK_CACHE_SECONDS.
"""

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from callerauth import twilio_rest
from callerauth.refusals import Refusal, unavailable

TASK_CACHE_SECONDS = 30
CACHE_ENTRIES = 1024
# A task is held while it is assigned (the reservation accepted) or wrapping (the reservation wrapping).
HELD = {"assigned": "accepted", "wrapping": "wrapping"}
# Where a task's attributes name the customer: voice and SMS (`from`), Flex Conversations, Flex's CRM fields.
CALLER_ATTRIBUTES = (("from",), ("customerAddress",), ("customers", "phone"), ("customers", "email"))
CHANNEL_PREFIXES = ("whatsapp:", "sms:", "tel:", "messenger:", "client:")


class TaskView(NamedTuple):
    """A task as one worker sees it: its status, whether that worker holds it, and its caller (raw)."""

    sid: str
    status: str  # TaskRouter's assignment_status
    held: bool  # the worker has an accepted (or, wrapping, a wrapping) reservation of it
    caller: str | None  # the task's `from` (or the channel's equivalent), as TaskRouter has it
    call_sid: str | None = None  # the voice call it is for (attributes.call_sid): Flex's transfers keep it


class TaskRouter(Protocol):
    def look(self, task_sid: str, worker_sid: str) -> TaskView:
        """The task as `worker_sid` holds it (or not); raises `task_not_found`, or `upstream_unavailable`."""
        ...


def caller_of(attributes: Mapping[str, Any]) -> str | None:
    """The customer a task's attributes name: `from` for voice and SMS, or the channel's equivalent."""
    for path in CALLER_ATTRIBUTES:
        value: Any = attributes
        for name in path:
            value = value.get(name) if isinstance(value, Mapping) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def caller_key(caller: str) -> str | None:
    """A task's caller as a destination is keyed (fields.Destination.key): E.164, or a mailbox without its +tag."""
    text = caller
    for prefix in CHANNEL_PREFIXES:
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    if "@" in text:
        local, _, domain = text.lower().rpartition("@")
        return f"{local.partition('+')[0]}@{domain}"
    from callerauth import numbers

    number = numbers.parse(text) if text.startswith("+") else None
    return number.e164 if number else None


class CachedTaskRouter:
    """A look at a task, kept for TASK_CACHE_SECONDS per (task, worker); a fresh look replaces them all."""

    def __init__(self, inner: TaskRouter, clock: Callable[[], float] = time.time) -> None:
        self._inner = inner
        self._clock = clock
        self._cache: dict[str, dict[str, tuple[float, TaskView | Refusal]]] = {}

    def look(self, task_sid: str, worker_sid: str) -> TaskView:
        now = self._clock()
        cached = self._cache.get(task_sid, {}).get(worker_sid)
        if cached and cached[0] > now:
            if isinstance(cached[1], Refusal):  # a new one each time: a raised exception keeps its traceback
                raise Refusal(cached[1].code, cached[1].reason)
            return cached[1]
        try:
            answer: TaskView | Refusal = self._inner.look(task_sid, worker_sid)
        except Refusal as refusal:
            if refusal.code != "task_not_found":  # TaskRouter could not say: never remembered
                raise
            answer = refusal
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        # What was seen of this task before and disagrees with this look (a transfer, a completion) is forgotten.
        seen = {
            worker: entry
            for worker, entry in self._cache.get(task_sid, {}).items()
            if worker != worker_sid and _consistent(entry[1], answer)
        }
        self._cache[task_sid] = {**seen, worker_sid: (now + TASK_CACHE_SECONDS, answer)}
        if isinstance(answer, Refusal):
            raise Refusal(answer.code, answer.reason)
        return answer


def _consistent(earlier: TaskView | Refusal, fresh: TaskView | Refusal) -> bool:
    """An earlier look still true beside a fresh one: the same status, and no second holder."""
    if isinstance(earlier, Refusal) or isinstance(fresh, Refusal):
        return False
    return earlier.status == fresh.status and not (earlier.held and fresh.held)


class TwilioTaskRouter:
    """TaskRouter v1 through the `twilio` client (imported on first use), with Verify's timeout and quiet log:
    the calls `workspace.tasks(sid).fetch()` and `.reservations.list(...)` make (twilio_rest.Api says why
    not through them)."""

    def __init__(
        self, credentials: Callable[[], tuple[str, str]], workspace_sid: str, base_url: str, timeout: float
    ) -> None:
        self._credentials = credentials
        self._tasks = f"/Workspaces/{workspace_sid}/Tasks"
        self._api = twilio_rest.Api(base_url, "v1", timeout, _error_for)  # reads: a failure changed nothing

    def look(self, task_sid: str, worker_sid: str) -> TaskView:
        auth = self._credentials()
        task = self._api.get(auth, f"{self._tasks}/{task_sid}")
        try:
            status = str(task["assignment_status"])
            raw = task.get("attributes") or "{}"
            attributes = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(attributes, Mapping):
                raise ValueError("attributes")
        except (ValueError, TypeError, KeyError, AttributeError):
            raise Refusal("upstream_error", "taskrouter_unreadable") from None
        held = False
        if status in HELD:
            filters = {"ReservationStatus": HELD[status], "WorkerSid": worker_sid, "PageSize": "1"}
            page = self._api.get(auth, f"{self._tasks}/{task_sid}/Reservations", filters)
            reservations = page.get("reservations") if isinstance(page, Mapping) else None
            held = any(isinstance(r, Mapping) and r.get("worker_sid") == worker_sid for r in reservations or ())
        call = attributes.get("call_sid")
        return TaskView(task_sid, status, held, caller_of(attributes), call if isinstance(call, str) else None)


def _error_for(status: int, twilio_code: int | None) -> Refusal:
    if status == 404:
        return Refusal("task_not_found")
    if status >= 500 or status == 429:
        return unavailable("taskrouter_5xx")
    return Refusal("upstream_error", "taskrouter")  # 401, 400: our setup, not the agent's task

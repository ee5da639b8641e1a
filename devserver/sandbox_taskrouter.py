"""The Twilio sandbox's TaskRouter v1: the task and reservation endpoints callerauth reads, and tasks to steer.

Twilio's endpoints (HTTP Basic with the sandbox's credentials, one workspace, ``SANDBOX_WORKSPACE_SID``):

- ``GET /v1/Workspaces/{WorkspaceSid}/Tasks/{Sid}``: a task as Twilio writes one (``attributes`` a JSON string);
- ``GET /v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations`` (``ReservationStatus``, ``WorkerSid``,
  ``PageSize``), with Twilio's paging ``meta``.

Sandbox-only: ``POST /sandbox/tasks`` (``{"from": "+1…", "worker": "<identity>"}`` → ``{"taskSid": "WT…"}``: a
task for that caller, assigned to that agent, its reservation accepted), ``POST /sandbox/tasks/{sid}/transfer``
(``{"worker": "<identity>"}``: the holder's reservation completes, the new one's is accepted),
``POST /sandbox/tasks/{sid}/wrap`` (wrap-up: still held), ``POST /sandbox/tasks/{sid}/complete``, and
``POST /sandbox/taskrouter/fail-next`` (``{"status": 503, "count": 1}``: the next TaskRouter reads fail).
A worker's SID is the one the identity's sandbox Flex token carries (``worker_sid``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callerauth.privacy import mask
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devserver.samples import SANDBOX_WORKSPACE_SID

BASE = "https://taskrouter.twilio.com/v1"


def worker_sid(account_sid: str, identity: str) -> str:
    """The stable worker SID of an agent identity: what the sandbox's tokens carry and its tasks name."""
    return "WK" + hashlib.sha256(f"{account_sid}:{identity}".encode()).hexdigest()[:32]


def rules() -> list[Rule]:
    """The routes, each endpoint named ``taskrouter_*`` (the sandbox hands those to `TaskRouterSandbox`)."""
    return [
        Rule("/v1/Workspaces/<workspace>/Tasks/<sid>", methods=["GET"], endpoint="taskrouter_task"),
        Rule("/v1/Workspaces/<workspace>/Tasks/<sid>/Reservations", methods=["GET"], endpoint="taskrouter_list"),
        Rule("/sandbox/tasks", methods=["POST"], endpoint="taskrouter_create"),
        Rule("/sandbox/tasks/<sid>/<change>", methods=["POST"], endpoint="taskrouter_change"),
        Rule("/sandbox/taskrouter/fail-next", methods=["POST"], endpoint="taskrouter_fail"),
    ]


class TaskRouterError(Exception):
    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


@dataclass
class _Reservation:
    sid: str
    worker_sid: str
    worker_name: str
    status: str
    created: float
    updated: float


@dataclass
class _Task:
    sid: str
    caller: str
    status: str
    created: float
    updated: float
    reservations: list[_Reservation] = field(default_factory=list)


class TaskRouterSandbox:
    """One workspace of tasks; thread-safe. `create_task`, `transfer`, `wrap`, `complete` steer it."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        workspace_sid: str = SANDBOX_WORKSPACE_SID,
        *,
        clock: Callable[[], float] = time.time,
        announce: Callable[[str], None] = print,
    ) -> None:
        self.account_sid, self.auth_token, self.workspace_sid = account_sid, auth_token, workspace_sid
        self._clock, self._announce = clock, announce
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}
        self._failures: list[int] = []
        self.reads = 0  # TaskRouter requests served (tests and the bench count them)

    # ------------------------------------------------------------------ controls

    def create_task(self, caller: str, worker: str) -> str:
        """A task for ``caller`` (its ``attributes.from``), assigned to agent ``worker``: its SID."""
        if not caller or not worker:
            raise ValueError("from and worker are required")
        now = self._clock()
        task = _Task("WT" + secrets.token_hex(16), caller, "assigned", now, now)
        task.reservations.append(self._reservation(worker, now))
        with self._lock:
            self._tasks[task.sid] = task
        return task.sid

    def transfer(self, sid: str, worker: str) -> None:
        """A warm transfer: the holder's reservation completes, ``worker``'s is accepted; the task stays assigned."""
        now = self._clock()
        with self._lock:
            task = self._open(sid)
            for reservation in task.reservations:
                if reservation.status in ("accepted", "wrapping"):
                    reservation.status, reservation.updated = "completed", now
            task.reservations.append(self._reservation(worker, now))
            task.status, task.updated = "assigned", now

    def wrap(self, sid: str) -> None:
        """The holder wraps up: task and reservation ``wrapping`` (the task is still the holder's)."""
        self._finish(sid, "wrapping", ("accepted",))

    def complete(self, sid: str) -> None:
        self._finish(sid, "completed", ("accepted", "wrapping"))

    def fail_next(self, status: int, count: int = 1) -> None:
        """The next ``count`` TaskRouter reads answer this HTTP status (a Twilio error)."""
        if not 400 <= status <= 599 or count < 1:
            raise ValueError("status must be an HTTP error status and count at least 1")
        with self._lock:
            self._failures.extend([status] * count)

    def _finish(self, sid: str, status: str, from_statuses: tuple[str, ...]) -> None:
        now = self._clock()
        with self._lock:
            task = self._open(sid)
            for reservation in task.reservations:
                if reservation.status in from_statuses:
                    reservation.status, reservation.updated = status, now
            task.status, task.updated = status, now

    def _open(self, sid: str) -> _Task:
        task = self._tasks.get(sid)
        if task is None:
            raise TaskRouterError(404, 20404, f"The requested resource /Tasks/{sid} was not found")
        if task.status in ("completed", "canceled"):
            raise TaskRouterError(400, 20001, f"Task {sid} is {task.status}")
        return task

    def _reservation(self, worker: str, now: float) -> _Reservation:
        return _Reservation(
            "WR" + secrets.token_hex(16), worker_sid(self.account_sid, worker), worker, "accepted", now, now
        )

    # ------------------------------------------------------------------ HTTP

    def dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        """Answer one request routed to a ``taskrouter_*`` endpoint; raises `TaskRouterError`."""
        if endpoint in ("taskrouter_task", "taskrouter_list"):
            return self._read(request, endpoint, args)
        body = request.get_json(silent=True)
        params: dict[str, Any] = body if isinstance(body, dict) else request.form.to_dict()
        try:
            if endpoint == "taskrouter_create":
                caller, worker = str(params.get("from") or ""), str(params.get("worker") or "")
                sid = self.create_task(caller, worker)
                self._announce(f"[twilio sandbox] task {sid} for {mask(caller)}, held by {worker}")
                return _json({"taskSid": sid}, 201)
            if endpoint == "taskrouter_fail":
                status, count = int(params["status"]), int(params.get("count", 1))
                self.fail_next(status, count)
                return _json({"status": status, "count": count})
        except (KeyError, TypeError, ValueError) as exc:
            raise TaskRouterError(400, 60200, f"Invalid parameter: {exc}") from exc
        sid, change = str(args["sid"]), str(args["change"])
        if change == "transfer":
            target = params.get("worker")
            if not isinstance(target, str) or not target:
                raise TaskRouterError(400, 20001, "Missing required parameter worker")
            self.transfer(sid, target)
        elif change == "wrap":
            self.wrap(sid)
        elif change == "complete":
            self.complete(sid)
        else:
            raise TaskRouterError(404, 20404, f"The requested resource {request.path} was not found")
        with self._lock:
            return _json({"taskSid": sid, "status": self._tasks[sid].status})

    def _read(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        self._authenticate(request)
        with self._lock:
            self.reads += 1
            failure = self._failures.pop(0) if self._failures else None
            if failure is not None:
                raise TaskRouterError(failure, None, "Sandbox injected error")
            if args["workspace"] != self.workspace_sid:
                raise TaskRouterError(
                    404, 20404, f"The requested resource /Workspaces/{args['workspace']} was not found"
                )
            task = self._tasks.get(str(args["sid"]))
            if task is None:
                raise TaskRouterError(404, 20404, f"The requested resource /Tasks/{args['sid']} was not found")
            if endpoint == "taskrouter_task":
                return _json(self._task_json(task))
            return _json(self._reservations_json(task, request.args))

    def _authenticate(self, request: Request) -> None:
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or not hmac.compare_digest((auth.username or "").encode(), self.account_sid.encode())
            or not hmac.compare_digest((auth.password or "").encode(), self.auth_token.encode())
        ):
            raise TaskRouterError(401, 20003, "Authenticate")

    def _task_json(self, task: _Task) -> dict[str, Any]:
        url = f"{BASE}/Workspaces/{self.workspace_sid}/Tasks/{task.sid}"
        attributes = {"from": task.caller, "direction": "inbound", "channelType": "voice"}
        return {
            "account_sid": self.account_sid,
            "age": int(self._clock() - task.created),
            "assignment_status": task.status,
            "attributes": json.dumps(attributes),
            "addons": "{}",
            "date_created": _iso(task.created),
            "date_updated": _iso(task.updated),
            "task_queue_entered_date": _iso(task.created),
            "priority": 0,
            "reason": "completed" if task.status == "completed" else None,
            "sid": task.sid,
            "task_queue_sid": "WQ" + "0" * 32,
            "task_queue_friendly_name": "Everyone",
            "task_channel_sid": "TC" + "0" * 32,
            "task_channel_unique_name": "voice",
            "timeout": 86400,
            "workflow_sid": "WW" + "0" * 32,
            "workflow_friendly_name": "Assign to Anyone",
            "workspace_sid": self.workspace_sid,
            "url": url,
            "links": {"task_queue": f"{BASE}/Workspaces/{self.workspace_sid}/TaskQueues/WQ{'0' * 32}"},
            "virtual_start_time": _iso(task.created),
            "ignore_capacity": False,
            "routing_target": None,
        }

    def _reservations_json(self, task: _Task, query: Mapping[str, str]) -> dict[str, Any]:
        status, worker = query.get("ReservationStatus"), query.get("WorkerSid")
        page_size = int(query.get("PageSize") or 50)
        matching = [
            r
            for r in task.reservations
            if (status is None or r.status == status) and (worker is None or r.worker_sid == worker)
        ]
        url = f"{BASE}/Workspaces/{self.workspace_sid}/Tasks/{task.sid}/Reservations"
        page = matching[:page_size]
        return {
            "reservations": [
                {
                    "account_sid": self.account_sid,
                    "date_created": _iso(r.created),
                    "date_updated": _iso(r.updated),
                    "reservation_status": r.status,
                    "sid": r.sid,
                    "task_sid": task.sid,
                    "worker_name": r.worker_name,
                    "worker_sid": r.worker_sid,
                    "workspace_sid": self.workspace_sid,
                    "url": f"{url}/{r.sid}",
                    "links": {"worker": f"{BASE}/Workspaces/{self.workspace_sid}/Workers/{r.worker_sid}"},
                }
                for r in page
            ],
            "meta": {
                "page": 0,
                "page_size": page_size,
                "first_page_url": f"{url}?PageSize={page_size}&Page=0",
                "previous_page_url": None,
                "url": f"{url}?PageSize={page_size}&Page=0",
                "next_page_url": None,
                "key": "reservations",
            },
        }

"""The real TaskRouter adapter against Prism serving Twilio's published TaskRouter v1 OpenAPI description.

Prism runs with ``--errors``: a request that breaks Twilio's schema (a SID outside its pattern, a
``ReservationStatus`` outside its enum, no Basic auth) is answered 4xx, which the adapter turns into a refusal,
so "a TaskView" means every request it sent conformed. Prism's example task is ``pending``, and the adapter
reads reservations only for a task that is assigned or wrapping: so the reservation request is checked
through a small proxy that forwards every request to Prism unchanged and only rewrites the example task's
``assignment_status`` in its answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest
import requests
from callerauth.refusals import Refusal
from callerauth.taskrouter import TaskView, TwilioTaskRouter
from werkzeug.wrappers import Request, Response

from tests.support import ACCOUNT_SID, serving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from tests.conformance.conftest import Prism

pytestmark = pytest.mark.prism

AUTH_TOKEN = "conformance-auth-token"
TIMEOUT = 10.0
WORKSPACE = "WS" + "0123456789abcdef" * 2
TASK = "WT" + "0123456789abcdef" * 2
WORKER = "WK" + "fedcba9876543210" * 2


def adapter(base_url: str, workspace: str = WORKSPACE) -> TwilioTaskRouter:
    return TwilioTaskRouter(lambda: (ACCOUNT_SID, AUTH_TOKEN), workspace, base_url, TIMEOUT)


class Assigned:
    """Forwards to Prism; a task's answer says ``assigned`` (status), so that the adapter reads reservations."""

    def __init__(self, prism_url: str, status: str) -> None:
        self.prism_url, self.status = prism_url, status
        self.paths: list[str] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        self.paths.append(request.full_path)
        upstream = requests.request(
            request.method,
            self.prism_url + request.full_path.rstrip("?"),
            headers={k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")},
            timeout=TIMEOUT,
        )
        body = upstream.content
        if upstream.status_code == 200 and "/Reservations" not in request.path:
            task = json.loads(body)
            task["assignment_status"] = self.status
            body = json.dumps(task).encode()
        answer = Response(body, status=upstream.status_code, content_type=upstream.headers.get("Content-Type"))
        return answer(environ, start_response)


@pytest.fixture(params=["assigned", "wrapping"])
def assigned(request: pytest.FixtureRequest, prism_taskrouter: Prism) -> Iterator[tuple[str, Assigned]]:
    proxy = Assigned(prism_taskrouter.base_url, request.param)
    with serving(proxy) as url:
        yield url, proxy


def test_a_task_fetch_conforms(prism_taskrouter: Prism) -> None:
    # Given the adapter pointed at Prism / When it looks at a task (Prism's example is pending)
    task = adapter(prism_taskrouter.base_url).look(TASK, WORKER)
    # Then Prism accepted the fetch and the adapter read its answer: a pending task is nobody's
    assert isinstance(task, TaskView)
    assert (task.status, task.held) == ("pending", False)


def test_the_reservation_read_conforms_for_an_assigned_or_wrapping_task(assigned: tuple[str, Assigned]) -> None:
    # Given Prism behind the proxy, which makes its example task assigned (or wrapping)
    url, proxy = assigned
    # When the adapter looks at the task as a worker
    task = adapter(url).look(TASK, WORKER)
    # Then both requests reached Prism and conformed (else a refusal), the second filtered by worker and status
    assert isinstance(task, TaskView)
    assert task.status == proxy.status
    reservations = [path for path in proxy.paths if "/Reservations" in path]
    assert len(proxy.paths) == 2 and len(reservations) == 1
    expected = "accepted" if proxy.status == "assigned" else "wrapping"
    assert f"ReservationStatus={expected}" in reservations[0] and f"WorkerSid={WORKER}" in reservations[0]
    assert "PageSize=1" in reservations[0]


def test_prism_refuses_a_reservation_status_outside_twilios_enum(prism_taskrouter: Prism) -> None:
    # Given a raw request that breaks the schema (the negative control: Prism does check)
    path = f"/v1/Workspaces/{WORKSPACE}/Tasks/{TASK}/Reservations"
    response = requests.get(
        prism_taskrouter.base_url + path,
        params={"ReservationStatus": "held", "WorkerSid": WORKER},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=TIMEOUT,
    )
    # Then Prism answers its validation error, not an example
    assert response.status_code == 422


def test_the_adapter_reports_prism_validation_errors_as_refusals(prism_taskrouter: Prism) -> None:
    # Given the adapter with a workspace SID that breaks Twilio's ^WS[0-9a-fA-F]{32}$ pattern
    # When it looks at a task / Then Prism's 422 is an unexpected upstream answer, never a task
    with pytest.raises(Refusal) as raised:
        adapter(prism_taskrouter.base_url, workspace="WS-not-a-workspace").look(TASK, WORKER)
    assert (raised.value.code, raised.value.reason) == ("upstream_error", "taskrouter")

"""The Twilio sandbox's own endpoints (outbox, agent tokens) and the faults it injects."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from devserver.twilio_sandbox import TwilioSandbox
from tests.support import TO
from tests.unit.twilio_sandbox.conftest import ApiClient, JsonResponse, assert_twilio_error, check, send, validate

# ---------------------------------------------------------------- sandbox-only endpoints


def test_outbox_lists_filters_and_clears(client: ApiClient) -> None:
    # Given codes sent to two numbers
    send(client)
    send(client, to="+447400123456")
    send(client)
    # When the outbox is read whole and filtered
    everything = client.get("/outbox").json
    mine = client.get("/outbox", query_string={"to": TO}).json
    # Then it lists them newest last, and the filter is exact
    assert [m["to"] for m in everything] == [TO, "+447400123456", TO]
    assert [m["to"] for m in mine] == [TO, TO]
    assert client.get("/outbox", query_string={"to": "+1555"}).json == []
    # and DELETE empties it
    assert client.delete("/outbox").json == {"cleared": 3}
    assert client.get("/outbox").json == []


def test_agent_tokens_endpoint_json_and_form(client: ApiClient) -> None:
    # Given the sandbox
    # When tokens are asked for with JSON roles and with a comma string in a form
    as_json = client.post("/agent-tokens", json={"identity": "dev-agent", "roles": ["agent", "admin"]})
    as_form = client.post("/agent-tokens", data={"identity": "sup", "roles": "supervisor, agent"})
    default = client.post("/agent-tokens", json={"identity": "plain"})
    # Then each is a 201 with a token that IAM accepts with those roles
    assert as_json.status_code == as_form.status_code == default.status_code == 201
    assert as_form.json["roles"] == ["supervisor", "agent"] and default.json["roles"] == ["agent"]
    checked = validate(client, as_json.json["token"]).json
    assert (checked["valid"], checked["identity"]) == (True, "dev-agent")
    assert checked["roles"] == ["agent", "admin"]


@pytest.mark.parametrize("body", [{}, {"identity": ""}, {"identity": "x", "roles": [1]}])
def test_agent_tokens_endpoint_rejects_bad_requests(client: ApiClient, body: dict[str, Any]) -> None:
    # Given a request without a usable identity or with bad roles
    # When a token is asked for
    resp = client.post("/agent-tokens", json=body)
    # Then 400 in Twilio's shape
    assert resp.status_code == 400 and resp.json["status"] == 400


# ---------------------------------------------------------------- fault injection


def test_fail_next_answers_injected_errors_then_recovers(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given two injected 503/20500 errors, then one without a code
    sandbox.fail_next(503, 20500, count=2)
    sandbox.fail_next(500)
    # When four sends follow
    responses = [send(client) for _ in range(4)]
    # Then the first two carry the injected Twilio error, the third a bare 500, the fourth works
    for resp in responses[:2]:
        assert_twilio_error(resp, 503, 20500)
        assert resp.json["message"] == "Sandbox injected error"
    assert (responses[2].status_code, responses[2].json) == (500, {"message": "Internal Server Error"})
    assert responses[3].status_code == 201
    assert len(sandbox.outbox) == 1


def test_fail_next_over_http_applies_to_checks(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given a pending verification and an injected 429/20429 over HTTP
    send(client)
    assert client.post("/sandbox/fail-next", json={"status": 429, "code": 20429}).status_code == 200
    # When the right code is checked twice
    first = check(client, sandbox.outbox[-1]["code"])
    second = check(client, sandbox.outbox[-1]["code"])
    # Then only the first fails
    assert_twilio_error(first, 429, 20429)
    assert second.json["status"] == "approved"


def test_fail_next_validates_arguments(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given the sandbox
    # When nonsense is injected
    # Then it is refused
    with pytest.raises(ValueError):
        sandbox.fail_next(42)
    with pytest.raises(ValueError):
        sandbox.fail_next(500, count=0)
    assert client.post("/sandbox/fail-next", json={"code": 1}).status_code == 400


def test_malformed_mode_answers_not_json(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given malformed mode, set over HTTP
    assert client.post("/sandbox/mode", json={"mode": "malformed"}).json == {"mode": "malformed"}
    # When a code is sent
    resp = send(client)
    # Then the answer is 200 with a body that is not JSON, and nothing was sent
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, "not json")
    assert sandbox.outbox == []
    # and normal mode restores service
    sandbox.set_mode("normal")
    assert send(client).status_code == 201


def test_invalid_mode_is_refused(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given the sandbox
    # When an unknown mode is asked for
    resp = client.post("/sandbox/mode", json={"mode": "chaos"})
    # Then it is refused
    assert resp.status_code == 400
    with pytest.raises(ValueError):
        sandbox.set_mode("chaos")  # type: ignore[arg-type]


def test_refuse_iam_mode_answers_503_for_iam_only(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given refuse_iam mode
    sandbox.set_mode("refuse_iam")
    # When a token is validated and a code sent
    iam = validate(client, sandbox.issue_token("alice"))
    verify = send(client)
    # Then IAM answers 503 while Verify works
    assert iam.status_code == 503 and iam.json["status"] == 503
    assert verify.status_code == 201


def test_timeout_mode_hangs_until_normal_mode_wakes_it(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given timeout mode and a send in flight
    sandbox.set_mode("timeout")
    results: list[JsonResponse] = []
    worker = threading.Thread(target=lambda: results.append(send(client)))
    worker.start()
    worker.join(1.0)
    assert worker.is_alive() and results == [] and sandbox.outbox == []
    # When normal mode is set
    started = time.monotonic()
    sandbox.set_mode("normal")
    worker.join(5)
    # Then the sleeper wakes at once and answers normally
    assert not worker.is_alive() and time.monotonic() - started < 0.5
    assert results[0].status_code == 201


def test_timeout_mode_answers_after_the_timeout(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given timeout mode with a short timeout
    sandbox.timeout_seconds = 0.2
    sandbox.set_mode("timeout")
    # When a code is sent
    started = time.monotonic()
    resp = send(client)
    # Then it answers late, normally (a slow Twilio still sends the code)
    assert time.monotonic() - started >= 0.2
    assert resp.status_code == 201 and len(sandbox.outbox) == 1


def test_concurrent_sends_respect_the_send_limit(client: ApiClient, sandbox: TwilioSandbox) -> None:
    # Given twelve simultaneous sends to one number
    barrier = threading.Barrier(12)
    statuses: list[int] = []
    sids: set[str] = set()

    def one() -> None:
        local = ApiClient(sandbox)
        barrier.wait()
        resp = send(local)
        statuses.append(resp.status_code)
        if resp.status_code == 201:
            sids.add(resp.json["sid"])

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # Then exactly five got through, all on one verification, with one code
    assert sorted(statuses) == [201] * 5 + [429] * 7
    assert len(sids) == 1 and len({m["code"] for m in sandbox.outbox}) == 1

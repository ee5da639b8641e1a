"""plugin/plugin-verify.patch: applied to the upstream plugin, its reducer runs under Node against the dev stack.

The upstream source is read from ``../shared/plugin-verify/`` beside the repository (``PLUGIN_VERIFY_SRC``
overrides it) and copied to a temporary folder; the patch is applied there with ``patch -p1``; then
``tests/plugin/harness.mjs`` runs the patched ``src/states/VerifyState.js`` with Node's own fetch and a stub of
``@twilio/flex-ui`` (``Manager.getInstance().user.token``), against a local stack in ``AgentAuth=flex`` mode.
Nothing of the plugin's dependency tree is installed. Without the upstream source (a clone on its own) the
test is skipped, saying so: the project does not vendor the plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devserver.samples import CONTRACT_DEFAULTS
from devserver.stack import Stack, start_stack
from tests.conftest import REPO

pytestmark = pytest.mark.stack

PATCH = REPO / "plugin" / "plugin-verify.patch"
HARNESS = Path(__file__).with_name("harness.mjs")
UPSTREAM = Path(os.environ.get("PLUGIN_VERIFY_SRC") or REPO.parent / "shared" / "plugin-verify")
TO, LOCK_TO = "+12025550100", "+12025550123"
TASK_SID = "WT" + "0123456789abcdef" * 2
MAX_FAILED_CHECKS = 3


def _upstream() -> Path:
    if not (UPSTREAM / "src" / "states" / "VerifyState.js").is_file():
        pytest.skip(
            f"the upstream plugin source is not at {UPSTREAM} (a clone on its own has no ../shared/plugin-verify; "
            "set PLUGIN_VERIFY_SRC=<plugin-verify checkout> to run this test)"
        )
    if shutil.which("patch") is None or shutil.which("node") is None:
        pytest.fail("this test needs `patch` and `node` (Node 18+) on PATH", pytrace=False)
    return UPSTREAM


@pytest.fixture(scope="module")
def patched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    upstream = _upstream()
    target = tmp_path_factory.mktemp("plugin") / "plugin-verify"
    shutil.copytree(upstream, target, ignore=shutil.ignore_patterns("node_modules"))
    for path in [target, *target.rglob("*")]:  # the shared copy is read-only
        path.chmod(path.stat().st_mode | 0o200)
    applied = subprocess.run(  # noqa: S603 - a fixed command, no shell
        ["patch", "-p1", "--forward", "--batch", "-i", str(PATCH)],  # noqa: S607
        cwd=target,
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, f"the patch does not apply:\n{applied.stdout}\n{applied.stderr}"
    assert not list(target.rglob("*.rej")) and not list(target.rglob("*.orig"))
    return target


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {**CONTRACT_DEFAULTS, "AGENT_AUTH": "flex", "MAX_FAILED_CHECKS": str(MAX_FAILED_CHECKS)}
    with start_stack(REPO, api_port=0, sandbox_port=0, dynamodb_port=0, env=env, announce=lambda _: None) as running:
        yield running


@pytest.fixture(scope="module")
def run(patched: Path, stack: Stack) -> dict[str, Any]:
    assert stack.sandbox is not None and stack.outbox_url is not None
    scenario = {
        "api": stack.api_url,
        "outbox": stack.outbox_url,
        "tokens": {
            "a": stack.sandbox.issue_token("agent-a", ["agent"]),
            "renewed": stack.sandbox.issue_token("agent-a", ["agent"]),
            "b": stack.sandbox.issue_token("agent-b", ["agent"]),
        },
        "to": TO,
        "lockTo": LOCK_TO,
        "taskSid": TASK_SID,
        "maxFailedChecks": MAX_FAILED_CHECKS,
    }
    done = subprocess.run(  # noqa: S603 - a fixed command, no shell
        ["node", str(HARNESS), str(patched)],  # noqa: S607
        input=json.dumps(scenario),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"the harness failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    result["scenario"] = scenario
    result["steps"] = {s["name"]: s for s in result["steps"]}
    return result


def _state(run: dict[str, Any], step: str) -> dict[str, Any]:
    state: dict[str, Any] = run["steps"][step]["state"]
    return state


def test_every_request_carries_the_token_read_at_call_time_and_the_task(run: dict[str, Any]) -> None:
    tokens = run["scenario"]["tokens"]
    expected_token = {
        "start": tokens["a"],
        "resend at once": tokens["a"],
        "wrong code": tokens["a"],
        "right code": tokens["renewed"],  # Flex renewed the token: the next call sends the new one
        "cancel": tokens["renewed"],
    }
    for name, token in expected_token.items():
        (request,) = run["steps"][name]["requests"]
        assert request["method"] == "POST"
        assert request["body"]["Token"] == token, name
        assert request["body"]["taskSid"] == TASK_SID, name
        assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded;charset=UTF-8"
    (start,) = run["steps"]["start"]["requests"]
    assert start["url"] == run["scenario"]["api"] + "/start-verify" and start["body"]["to"] == TO
    (no_token,) = run["steps"]["no token"]["requests"]
    assert "Token" not in no_token["body"]
    (info,) = run["steps"]["customer"]["requests"]
    assert info["method"] == "GET" and info["url"] == run["scenario"]["api"] + "/customer-info"
    assert info["headers"]["X-Flex-Token"] == tokens["renewed"]
    assert info["query"] == {"to": TO, "taskSid": TASK_SID}


def test_a_sent_code_opens_the_form_and_resend_waits_for_resend_after(run: dict[str, Any]) -> None:
    start = run["steps"]["start"]
    assert start["state"]["tokenSent"] is True and start["state"]["pendingSent"] is False
    assert "error" not in start["state"]
    assert 25 <= start["secondsToResend"] <= 30  # resendAfter: 30 (SEND_COOLDOWN_SECONDS)
    assert run["storage"][f"tokenSent:{TASK_SID}"] == "false"  # cancelled at the end


def test_every_failure_shows_the_backend_s_own_message(run: dict[str, Any]) -> None:
    resend = _state(run, "resend at once")
    assert resend["error"].startswith("A code was just sent; you can resend in ")
    assert resend["tokenSent"] is True  # the code already sent is still good: its form stays
    assert _state(run, "wrong code")["error"] == "Incorrect token."
    assert _state(run, "no token")["error"] == "Agent authentication required: send the agent's Flex token as 'Token'."
    locked = _state(run, f"wrong code {MAX_FAILED_CHECKS} (lock)")
    assert locked["error"] == "Too many incorrect codes for this number; try again in 15 minutes."
    assert locked["tokenSent"] is False  # that code is of no more use
    assert _state(run, "wrong code 1 (lock)")["error"] == "Incorrect token."


def test_the_info_tab_gets_the_record_from_customer_info_only_once_verified(run: dict[str, Any]) -> None:
    before = _state(run, "customer before approval")
    assert before.get("customer") is None  # (JSON has no undefined: an unset field is absent)
    assert before["customerError"] == "This caller has not been verified by this agent, or it has expired."
    assert _state(run, "right code")["verified"] is True
    customer = _state(run, "customer")
    assert customer["customer"]["name"] and customer.get("customerError") is None
    assert set(customer["customer"]) <= set(CONTRACT_DEFAULTS["CUSTOMER_FIELDS"].split(","))
    assert _state(run, "customer for another agent")["customerError"].startswith("This caller has not been verified")


def test_cancel_resets_the_plugin_and_revokes_the_approval(run: dict[str, Any]) -> None:
    cancelled = _state(run, "cancel")
    assert (cancelled["tokenSent"], cancelled["verified"]) == (False, False)
    assert cancelled.get("error") is None
    assert _state(run, "customer after cancel")["customerError"].startswith("This caller has not been verified")

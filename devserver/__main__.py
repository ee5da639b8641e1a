"""``python -m devserver`` (what ``make dev`` runs): the local stack until Ctrl-C or SIGTERM.

Stopping: the first SIGINT or SIGTERM stops the stack within a few seconds, whatever it is doing.

- While the stack is starting, the handler raises: the main thread may be blocked in a wait with no
  timeout (moto's ``ThreadedMotoServer.start()`` waits for its server thread, for ever if that thread
  failed to bind), and a handler that only set a flag would leave it there, the signal in effect ignored.
- Once it serves, the handler only sets a flag that the main loop polls with ``time.sleep``: it takes no
  lock, since a handler runs on the main thread, possibly while that thread already holds the lock it
  would take (``threading.Event.set()`` from a handler interrupting ``Event.wait()``).
- A watchdog ends the process if the orderly stop has not finished in ``STOP_SECONDS``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from devserver.samples import SAMPLE_CUSTOMER as SAMPLE_NUMBER
from devserver.sandbox_lookup import RISK_NUMBERS
from devserver.stack import Stack, resolve_settings, start_stack

ROOT = Path(__file__).resolve().parent.parent
FORM = "-H 'Content-Type: application/x-www-form-urlencoded;charset=UTF-8'"
# Clear of 3000, where `flex-plugin start` serves the plugin itself.
DEFAULT_PORTS = {"API_PORT": 3030, "SANDBOX_PORT": 3031, "DYNAMODB_PORT": 3032, "DEMO_PORT": 3033}
STOP_SECONDS = 8.0
# Where a running stack writes its addresses (for `make audit` and other local tools); removed on stop.
STATE_FILE = Path(os.environ.get("CALLERAUTH_DEV_STATE") or ROOT / ".dev" / "stack.json")


def _say(message: str) -> None:
    print(message, flush=True)  # flush: under make, stdout is a pipe and would hold the codes back


def _port(settings: dict[str, str], name: str) -> int:
    value = settings.get(name, "").strip() or str(DEFAULT_PORTS[name])
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise ValueError(f"{name}={value!r} is not a port number")
    return int(value)


def _json_field(key: str, index: str = "") -> str:
    return f"python3 -c 'import json,sys; print(json.load(sys.stdin){index}[\"{key}\"])'"


def _ivr_lines(stack: Stack, taskrouter: bool) -> list[str]:
    """The call simulator's ready line (the IVR's agent side needs TaskRouter checks)."""
    if stack.sandbox is None or not taskrouter:
        return []
    return [
        "A call through the IVR (the sandbox plays Twilio: signed webhooks, the code keyed; then the task):",
        f"  curl -s {stack.sandbox_url}/sandbox/calls -H 'Content-Type: application/json'"
        f' -d \'{{"from": "{SAMPLE_NUMBER}", "digits": "code", "worker": "dev-agent"}}\'',
        '  then customer-info with that taskSid, as dev-agent: no code of the agent\'s (digits "wrong": refused)',
        "",
    ]


def banner(stack: Stack, agent_auth: str) -> str:
    flex = agent_auth != "none"
    token = stack.sandbox.issue_token("dev-agent", ["agent"]) if stack.sandbox else "<your Flex token>"
    token_field = ' --data-urlencode "Token=$TOKEN"' if flex else ""
    taskrouter = flex and bool(os.environ.get("TASKROUTER_WORKSPACE_SID", "").strip())
    task_field = ' --data-urlencode "taskSid=$TASK"' if taskrouter else ""
    task_query = "&taskSid=$TASK" if taskrouter else ""
    lines = [
        "",
        "Caller verification dev server",
        f"  API            {stack.api_url}",
        f"  DynamoDB       {stack.dynamodb_url}  (moto; tables: {', '.join(stack.table_names.values())})",
    ]
    if stack.sandbox is not None:
        lines += [f"  Twilio         sandbox at {stack.sandbox_url}  (outbox: {stack.outbox_url})"]
    else:
        lines += ["  Twilio         REAL Twilio (credentials from the environment / .env); messages are sent"]
    lines += [f"  AGENT_AUTH     {agent_auth}"]
    if taskrouter:
        lines += [
            f"  TaskRouter     workspace {os.environ['TASKROUTER_WORKSPACE_SID'].strip()}: every request names a task"
        ]
    if stack.ready_task:
        lines += [f"  Ready task     {stack.ready_task}  (caller {SAMPLE_NUMBER}, held by dev-agent)"]
    lines += ["", f"Try it in another terminal ({SAMPLE_NUMBER} is a sample customer):"]
    if stack.sandbox is not None:
        lines += [f"  export TOKEN={token}   # agent dev-agent (a fresh one: POST {stack.sandbox_url}/agent-tokens)"]
    else:
        lines += ["  export TOKEN='<your Flex token>'"]
    if taskrouter:
        lines += [f"  export TASK={stack.ready_task or '<the task SID>'}   # TaskRouter's task of the call"]
    lines += [
        f"  curl -s {stack.api_url}/start-verify {FORM} --data-urlencode 'to={SAMPLE_NUMBER}'{token_field}{task_field}"
    ]
    if stack.outbox_url:
        lines += [f"  CODE=$(curl -s '{stack.outbox_url}?to=%2B{SAMPLE_NUMBER[1:]}' | {_json_field('code', '[-1]')})"]
    else:
        lines += ["  CODE=<the code the caller received>"]
    lines += [
        f"  curl -s {stack.api_url}/check-verify {FORM} --data-urlencode 'to={SAMPLE_NUMBER}'"
        f' --data-urlencode "verification_code=$CODE"{token_field}{task_field}',
        f'  curl -s "{stack.api_url}/customer-info?to=%2B{SAMPLE_NUMBER[1:]}{task_query}"'
        ' -H "X-Flex-Token: $TOKEN"' + ("" if flex else "   # refused with AGENT_AUTH=none, by design"),
        "",
    ]
    if stack.sandbox is not None:
        lines += ["The sandbox's Lookup risk numbers (a start to each shows what the risk check does):"]
        lines += [f"  {number}  {what}" for number, (what, _) in RISK_NUMBERS.items()]
        lines += [""]
    if stack.demo_url:
        page = f"{stack.demo_url}/" if stack.sandbox else f"{stack.demo_url}/?token=<your Flex token>"
        signed_in = "  (signed in as dev-agent)" if stack.sandbox else ""
        lines += [f"Try the whole flow in a browser: {page}{signed_in}", ""]
    lines += _ivr_lines(stack, taskrouter)
    if stack.sandbox is not None and not taskrouter and flex:
        lines += [
            "With TaskRouter checks (the sandbox plays TaskRouter too; tasks: POST /sandbox/tasks):",
            f"  TASKROUTER_WORKSPACE_SID={stack.sandbox.taskrouter.workspace_sid} make dev",
            "",
        ]
    lines += ["Ctrl-C to stop."]
    return "\n".join(lines)


class _Stop(BaseException):
    """Raised by the signal handler while the stack is still starting: unwinds start_stack, which cleans up."""


def _write_state(stack: Stack) -> None:
    state = {
        "pid": os.getpid(),
        "api_url": stack.api_url,
        "dynamodb_url": stack.dynamodb_url,
        "sandbox_url": stack.sandbox_url,
        "demo_url": stack.demo_url,
        "tables": stack.table_names,
    }
    try:
        STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
        STATE_FILE.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        _say(f"devserver: cannot write {STATE_FILE}: {exc}")


def _remove_state() -> None:
    try:
        if json.loads(STATE_FILE.read_text(encoding="utf-8")).get("pid") == os.getpid():
            STATE_FILE.unlink()
    except (OSError, ValueError):
        pass


def _watchdog() -> None:
    """The orderly stop has STOP_SECONDS; then the process ends anyway."""
    time.sleep(STOP_SECONDS)
    print(f"devserver: not stopped after {STOP_SECONDS:.0f} s; exiting", file=sys.stderr, flush=True)
    os._exit(1)


def main() -> int:
    settings = resolve_settings(ROOT)
    try:
        ports = {name: _port(settings, name) for name in DEFAULT_PORTS}
    except ValueError as exc:
        print(f"devserver: {exc}", file=sys.stderr)
        return 2

    state = {"starting": True, "stop": False}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if state["stop"]:
            return  # the stop is under way (and the watchdog bounds it)
        state["stop"] = True
        threading.Thread(target=_watchdog, name="stop-watchdog", daemon=True).start()
        if state["starting"]:
            raise _Stop

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack = start_stack(
            ROOT,
            api_port=ports["API_PORT"],
            sandbox_port=ports["SANDBOX_PORT"],
            dynamodb_port=ports["DYNAMODB_PORT"],
            demo_port=ports["DEMO_PORT"],
            announce=_say,
        )
    except _Stop:
        _say("devserver: stopped while starting")
        return 0
    except (OSError, ValueError) as exc:
        hint = (
            " (free the port, or set API_PORT / SANDBOX_PORT / DYNAMODB_PORT / DEMO_PORT)"
            if getattr(exc, "errno", None) == errno.EADDRINUSE
            else ""
        )
        print(f"devserver: cannot start: {exc}{hint}", file=sys.stderr)
        return 1
    state["starting"] = False
    try:
        with stack:
            if not state["stop"]:
                _write_state(stack)
                # start_stack has applied .env to os.environ, so this is the mode the handlers will use.
                _say(banner(stack, os.environ.get("AGENT_AUTH", "flex").strip().lower() or "flex"))
            while not state["stop"]:
                time.sleep(0.1)  # a plain sleep: a signal interrupts it, and no lock is held
            _say("devserver: stopping")
    finally:
        _remove_state()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m devserver`` (what ``make dev`` runs): the local stack until Ctrl-C or SIGTERM."""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devserver.samples import SAMPLE_CUSTOMER as SAMPLE_NUMBER
from devserver.stack import Stack, resolve_settings, start_stack

ROOT = Path(__file__).resolve().parent.parent
FORM = "-H 'Content-Type: application/x-www-form-urlencoded;charset=UTF-8'"


def _say(message: str) -> None:
    print(message, flush=True)  # flush: under make, stdout is a pipe and would hold the codes back


def _port(settings: dict[str, str], name: str, default: int) -> int:
    value = settings.get(name, "").strip() or str(default)
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise ValueError(f"{name}={value!r} is not a port number")
    return int(value)


def banner(stack: Stack, agent_auth: str) -> str:
    flex = agent_auth != "none"
    token = stack.sandbox.issue_token("dev-agent", ["agent"]) if stack.sandbox else "<your Flex token>"
    token_field = f" --data-urlencode 'Token={token}'" if flex else ""
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
    if flex and stack.sandbox is not None:
        lines += [f"  Agent token    dev-agent: {token}"]
    lines += [
        "",
        f"Try it ({SAMPLE_NUMBER} is a sample customer):",
        f"  curl -s {stack.api_url}/start-verify {FORM} --data-urlencode 'to={SAMPLE_NUMBER}'{token_field}",
    ]
    if stack.outbox_url:
        lines += [f"  curl -s '{stack.outbox_url}?to=%2B{SAMPLE_NUMBER[1:]}'"]
    lines += [
        f"  curl -s {stack.api_url}/check-verify {FORM} --data-urlencode 'to={SAMPLE_NUMBER}'"
        f" --data-urlencode 'verification_code=<code from the outbox>'{token_field}",
        f"  curl -s '{stack.api_url}/customer-info?to=%2B{SAMPLE_NUMBER[1:]}'"
        f" -H 'X-Flex-Token: {token}'" + ("" if flex else "   # refused with AGENT_AUTH=none, by design"),
        "",
    ]
    if stack.demo_url:
        page = f"{stack.demo_url}/" if stack.sandbox else f"{stack.demo_url}/?token=<your Flex token>"
        signed_in = "  (signed in as dev-agent)" if stack.sandbox else ""
        lines += [f"Try the whole flow in a browser: {page}{signed_in}", ""]
    lines += ["Ctrl-C to stop."]
    return "\n".join(lines)


def main() -> int:
    settings = resolve_settings(ROOT)
    try:
        api_port = _port(settings, "API_PORT", 3000)
        sandbox_port = _port(settings, "SANDBOX_PORT", 3001)
        dynamodb_port = _port(settings, "DYNAMODB_PORT", 3002)
        demo_port = _port(settings, "DEMO_PORT", 3003)
    except ValueError as exc:
        print(f"devserver: {exc}", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack = start_stack(
            ROOT,
            api_port=api_port,
            sandbox_port=sandbox_port,
            dynamodb_port=dynamodb_port,
            demo_port=demo_port,
            announce=_say,
        )
    except (OSError, ValueError) as exc:
        hint = (
            " (free the port, or set API_PORT / SANDBOX_PORT / DYNAMODB_PORT / DEMO_PORT)"
            if getattr(exc, "errno", None) == errno.EADDRINUSE
            else ""
        )
        print(f"devserver: cannot start: {exc}{hint}", file=sys.stderr)
        return 1
    with stack:
        # start_stack has applied .env to os.environ, so this is the mode the handlers will use.
        _say(banner(stack, os.environ.get("AGENT_AUTH", "flex").strip().lower() or "flex"))
        while not stopping.wait(0.2):
            pass
        _say("devserver: stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())

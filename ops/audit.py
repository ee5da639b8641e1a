"""Print one destination's audit trail, newest last.

Locally (the `make dev` stack):   python -m ops.audit +12025550100
Deployed (reads the stack's outputs with your AWS credentials):
                                  python -m ops.audit +12025550100 --stack callerauth
The trail is keyed by an HMAC of the number, so the hashing secret is needed to find it: from the
stack's HashSecret in Secrets Manager, or locally from HASH_SECRET (environment, then .env).
Locally the DynamoDB address is the running stack's (``.dev/stack.json``, which ``make dev`` writes, so the
ports it was given are the ones read here); without a running stack, DYNAMODB_PORT (environment, .env, 3032).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from callerauth.config import Settings
from callerauth.fields import recipient
from callerauth.privacy import Hasher
from callerauth.refusals import Refusal
from callerauth.store import StateStore

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.audit", description=__doc__.splitlines()[0])
    parser.add_argument("to", help="E.164 number (or e-mail address) whose trail to print")
    parser.add_argument("--stack", help="a deployed stack's name; default: the local dev stack")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)

    import boto3

    try:
        to = recipient({"to": args.to})
    except Exception:
        print("expected an E.164 number such as +12025550100, or an e-mail address", file=sys.stderr)
        return 2
    if args.stack:
        outputs = _stack_outputs(boto3.client("cloudformation"), args.stack)
        table, secret = outputs["StateTableName"], _secret_value(outputs["HashSecretArn"])
        client = boto3.client("dynamodb")
    else:
        env = {**_dotenv(ROOT / ".env"), **os.environ}
        running = running_stack()
        table = env.get("STATE_TABLE") or running.get("tables", {}).get("StateTable") or "callerauth-state"
        secret = env.get("HASH_SECRET", "")
        endpoint = running.get("dynamodb_url") or f"http://127.0.0.1:{env.get('DYNAMODB_PORT') or '3032'}"
        if "DYNAMODB_PORT" in os.environ:  # said on this command line: that one
            endpoint = f"http://127.0.0.1:{os.environ['DYNAMODB_PORT']}"
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's placeholder, not a secret
        )
        if not secret:
            from devserver.stack import DEV_HASH_SECRET

            secret = DEV_HASH_SECRET
    store = StateStore(client, Settings(state_table=table, customers_table="-"))
    try:
        events = sorted(store.audit_trail(Hasher(secret.encode()).key(to.key)), key=lambda e: e["sk"])
    except Refusal as exc:
        where = f"stack {args.stack}" if args.stack else "the dev stack (is `make dev` running?)"
        print(f"cannot read the audit trail from {where}: {exc}", file=sys.stderr)
        return 1
    for event in events:
        if args.json:
            print(json.dumps({k: v for k, v in event.items() if k not in ("pk", "sk")}))
        else:
            print(_line(event))
    if not events:
        print("no audit events for this destination", file=sys.stderr)
    return 0


def _line(event: dict[str, Any]) -> str:
    extras = " ".join(f"{k}={event[k]}" for k in ("task_sid", "twilio_sid", "worker_sid") if event.get(k))
    return (
        f"{event['at']}  {event['action']:<13} {event['outcome']:<22} {event['to']}  "
        f"agent={event['agent']}  request={event['request_id']} {extras}".rstrip()
    )


def running_stack(path: Path | None = None) -> dict[str, Any]:
    """The addresses a running ``make dev`` wrote (``.dev/stack.json``), if its process is still there."""
    path = path or Path(os.environ.get("CALLERAUTH_DEV_STATE") or ROOT / ".dev" / "stack.json")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return state if isinstance(state, dict) else {}


def _stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def _secret_value(arn: str) -> str:
    import boto3

    return str(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def _dotenv(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip().strip("'\"") for k, v in pairs}


if __name__ == "__main__":
    sys.exit(main())

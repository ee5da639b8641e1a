"""The cold-start GC pause (callerauth/__init__.py): in Lambda only, and over after the first answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import gc, json
from callerauth.wiring import handler_for
paused = not gc.isenabled()
handler = handler_for({"/x": {}})
answer = handler({"resource": "/x", "httpMethod": "OPTIONS"}, None)
print(json.dumps([paused, gc.isenabled(), answer["statusCode"]]))
"""


def _probe(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"} | env
    environment["PYTHONPATH"] = str(ROOT / "layers" / "core")
    environment.setdefault("STATE_TABLE", "state")
    environment.setdefault("CUSTOMERS_TABLE", "customers")
    done = subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, check=True)  # noqa: S603
    return done.stdout.strip().splitlines()[-1]


def test_in_lambda_the_collector_is_paused_until_the_first_answer() -> None:
    assert _probe(AWS_LAMBDA_FUNCTION_NAME="fn") == "[true, true, 204]"


def test_outside_lambda_the_collector_is_left_alone() -> None:
    assert _probe() == "[false, true, 204]"

"""What the property tests (Hypothesis) share: the real routes, CONTRACT.md's codes, serve() over a world.

(a) drives serve() with the real routes and actions over moto tables, with fakes for Twilio and IAM only.
(b) is a RuleBasedStateMachine for one destination and one agent: send, check (right or wrong), cancel,
customer-info, lock and the passing of time, each answer predicted by a model of CONTRACT.md and DESIGN.md.
Both run under the Hypothesis profile of tests/conftest.py.
"""

from __future__ import annotations

import re
import uuid
from types import SimpleNamespace
from typing import Any

from callerauth import errors
from callerauth.actions import cancel_verify, check_verify, customer_info, start_verify
from callerauth.config import Settings
from callerauth.http import serve

AGENT_TOKEN = "token-agent-a"
ROUTES = {
    "/start-verify": {"POST": start_verify},
    "/cancel-verify": {"POST": cancel_verify},
    "/check-verify": {"POST": check_verify},
    "/customer-info": {"GET": customer_info, "POST": customer_info},
}
# CONTRACT.md's table: every error code and its HTTP status (the edge's one mapping; the contract tests pin it).
CONTRACT_CODES = errors.STATUS
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class Runtime:
    def __init__(self, world: Any) -> None:
        self._world = world

    def settings(self) -> Settings:
        return self._world.settings

    def services(self) -> Any:
        return self._world.services


def answer(world: Any, evt: dict[str, Any]) -> dict[str, Any]:
    return serve(evt, SimpleNamespace(aws_request_id=str(uuid.uuid4())), ROUTES, Runtime(world))

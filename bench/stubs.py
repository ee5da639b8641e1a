"""The real handlers over stub adapters (no network, no DynamoDB): what is left is our own overhead."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from callerauth import actions
from callerauth.actions import Services
from callerauth.agents import Agent
from callerauth.config import Settings
from callerauth.lookup import Signals
from callerauth.privacy import Hasher
from callerauth.sources import SourceGate
from callerauth.store import Approval, CheckStarted
from callerauth.twilio_verify import Sent
from callerauth.wiring import handler_for

from devserver.events import rest_proxy_event
from devserver.samples import PLUGIN_FORM, SAMPLE_CUSTOMER

NOW = 1_800_000_000
TO = SAMPLE_CUSTOMER
TOKEN = "stub-token"


class StubStore:
    def reserve_send(self, *args: Any) -> str:
        return "reservation#0.0.0"

    def release_send(self, *args: Any) -> None: ...
    def known_signals(self, dest: str, now: int, packages: tuple[str, ...]) -> Signals:
        return Signals(fields=packages, at=now, line_type="mobile")  # the common case: a number seen today

    def record_start(self, *args: Any, **kwargs: Any) -> None: ...
    def begin_check(self, *args: Any) -> CheckStarted:
        return CheckStarted(1, None)

    def approve(self, *args: Any) -> None: ...
    def fail_check(self, *args: Any) -> None: ...
    def abandon_check(self, *args: Any) -> None: ...
    def clear_approval(self, *args: Any) -> None: ...
    def audit(self, *args: Any) -> None: ...
    def approval_and_customer(self, *args: Any) -> tuple[Approval, dict[str, Any]]:
        return Approval("stub-agent", None, NOW, NOW + 600), {"name": "Ada", "accountNumber": "1", "notes": "x"}


class StubVerify:
    def start(self, to: str, channel: str, locale: str) -> Sent:
        return Sent("VE" + "0" * 32, "pending", channel)

    def check(self, to: str, code: str) -> bool:
        return True

    def cancel(self, to: str) -> None: ...


class StubLookup:
    def signals(self, number: str, packages: tuple[str, ...], now: int) -> Signals:
        return Signals(fields=packages, at=now, line_type="mobile")


class StubAgents:
    def identify(self, token: str, source_ip: str) -> Agent:
        return Agent("stub-agent", "WK" + "0" * 32, ("agent",))


class StubContainer:
    def __init__(self) -> None:
        self._settings = Settings(state_table="state", customers_table="customers")
        self._services = Services(
            self._settings,
            StubStore(),  # type: ignore[arg-type]  # duck-typed: what the actions call on a store
            StubVerify(),
            StubLookup(),
            StubAgents(),
            Hasher(b"0123456789abcdef0123456789abcdef"),
            SourceGate(self._settings, Hasher(b"0123456789abcdef0123456789abcdef")),
            clock=lambda: NOW,
        )

    def settings(self) -> Settings:
        return self._settings

    def services(self) -> Services:
        return self._services


def stub_handlers() -> dict[str, tuple[Callable[[dict[str, Any], Any], dict[str, Any]], dict[str, Any]]]:
    """Each endpoint's handler over stubs, with a request it answers with success."""
    _quiet_logs()
    container: Any = StubContainer()
    routes: dict[str, tuple[str, str, Callable[..., Any], str]] = {
        "start-verify": ("/start-verify", "POST", actions.start_verify, f"to=%2B{TO[1:]}&Token={TOKEN}"),
        "check-verify": (
            "/check-verify",
            "POST",
            actions.check_verify,
            f"to=%2B{TO[1:]}&verification_code=123456&Token={TOKEN}",
        ),
        "customer-info": ("/customer-info", "POST", actions.customer_info, f"to=%2B{TO[1:]}&Token={TOKEN}"),
    }
    handlers = {}
    for endpoint, (path, method, action, body) in routes.items():
        handler = handler_for({path: {method: action}}, container)
        event = rest_proxy_event(method, path, headers={"Content-Type": PLUGIN_FORM}, body=body, request_id="bench")
        assert handler(event, None)["statusCode"] == 200
        handlers[endpoint] = (handler, event)
    return handlers


def _quiet_logs() -> None:
    """Log lines are still formatted (that is overhead we own) but written to /dev/null, not the terminal."""
    from callerauth.observability import logger

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the bench
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)

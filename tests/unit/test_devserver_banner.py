"""What `make dev` prints: the sandbox's risk numbers, each with what it is (README: "Try it locally")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from devserver.__main__ import banner
from devserver.sandbox_lookup import RISK_NUMBERS
from devserver.twilio_sandbox import TwilioSandbox
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID


def a_stack(sandbox: TwilioSandbox | None) -> Any:
    return SimpleNamespace(
        api_url="http://127.0.0.1:3030",
        dynamodb_url="http://127.0.0.1:3032",
        table_names={"StateTable": "state", "CustomersTable": "customers"},
        sandbox=sandbox,
        sandbox_url="http://127.0.0.1:3031" if sandbox else None,
        outbox_url="http://127.0.0.1:3031/outbox" if sandbox else None,
        demo_url=None,
        ready_task=None,
    )


def test_the_banner_lists_the_sandbox_s_risk_numbers() -> None:
    text = banner(a_stack(TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID)), "flex")

    assert [f"  {number}  {what}" in text for number, (what, _) in RISK_NUMBERS.items()] == [True] * 6
    assert "+12025550183  SIM swapped 2 days ago" in text


def test_no_risk_numbers_against_real_twilio() -> None:
    assert "+12025550181" not in banner(a_stack(None), "flex")

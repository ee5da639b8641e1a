"""docs/studio-flow.json, the README's Studio flow example: valid JSON, a flow that reaches /ivr/start through
a TwiML Redirect widget and hands `verified` to Flex."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from callerauth import ivr

REPO = Path(__file__).resolve().parents[2]
FLOW = REPO / "docs" / "studio-flow.json"


def _flow() -> dict[str, Any]:
    return dict(json.loads(FLOW.read_text()))


def test_the_flow_is_valid_json_whose_transitions_lead_to_its_own_states() -> None:
    flow = _flow()
    names = {state["name"] for state in flow["states"]}
    assert flow["initial_state"] in names
    targets = {t["next"] for state in flow["states"] for t in state["transitions"] if "next" in t}
    assert targets <= names


def test_an_incoming_call_goes_to_the_ivr_s_start_and_every_way_back_goes_to_flex() -> None:
    states = {state["name"]: state for state in _flow()["states"]}
    trigger = next(state for state in states.values() if state["type"] == "trigger")
    first = states[next(t["next"] for t in trigger["transitions"] if t["event"] == "incomingCall")]
    assert first["type"] == "add-twiml-redirect"
    url = urlsplit(first["properties"]["url"])
    assert url.scheme == "https" and url.path.endswith(ivr.START) and first["properties"]["method"] == "POST"
    # Returned, timed out or failed: the caller always reaches an agent (unverified unless the IVR said so)
    assert {t["event"] for t in first["transitions"]} == {"return", "timeout", "fail"}
    assert all(states[t["next"]]["type"] == "send-to-flex" for t in first["transitions"])


def test_flex_gets_the_call_sid_and_the_ivr_s_verified_flag() -> None:
    states = _flow()["states"]
    redirect = next(state["name"] for state in states if state["type"] == "add-twiml-redirect")
    to_flex = next(state for state in states if state["type"] == "send-to-flex")
    attributes = to_flex["properties"]["attributes"]
    assert f"{{{{widgets.{redirect}.verified}}}}" in attributes
    assert '"call_sid": "{{trigger.call.CallSid}}"' in attributes  # what binds the task to the verified call
    assert json.loads(attributes.replace("{{", "").replace("}}", ""))  # JSON once Studio fills it in

"""The demo agent page in a real browser (Chromium, through Playwright), against the local stack.

The page and the API are on two origins, so every call is a CORS request; the ``X-Flex-Token`` header makes
the browser send a preflight (``OPTIONS``) first, and read error bodies only if their CORS headers allow it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from werkzeug.test import Client

from devserver.__main__ import banner
from devserver.demo import DEMO_AGENT, DemoPage
from devserver.twilio_sandbox import TwilioSandbox
from tests.support import PLUGIN_FORM as FORM

CUSTOMER = "+12025550100"  # the sample customer the page is prefilled with
SCREENSHOT = "/tmp/demo.png"


def _open(page: Any, expect: Any, url: str) -> Any:
    """Load the page and wait until it has read its configuration; the status element."""
    page.goto(url)
    status = page.locator("#status")
    expect(status).to_contain_text("Ready")
    return status


def _new_lines(demo_stack: Any, since: int, path: str) -> list[str]:
    """``METHOD STATUS`` of the gateway's log lines for ``path`` after the first ``since`` lines."""
    return [
        f"{line.split()[0]} {line.split()[2]}" for line in demo_stack.gateway_log[since:] if line.split()[1] == path
    ]


# ------------------------------------------------------------------------------------------ in Chromium


@pytest.mark.browser
def test_the_whole_flow_send_verify_and_show_the_customer(page: Any, expect: Any, demo_stack: Any) -> None:
    # Given the demo page, on its own origin, with config.json's token for dev-agent
    status = _open(page, expect, demo_stack.demo_url + "/")
    expect(page.get_by_label("Customer phone number")).to_have_value(CUSTOMER)
    expect(page.get_by_role("button", name="Verify")).to_be_disabled()
    expect(page.get_by_role("button", name="Show customer")).to_be_disabled()

    # When the agent sends a code
    page.get_by_role("button", name="Send code").click()

    # Then the page says so, and the sandbox "sent" a code to the customer
    expect(status).to_contain_text("Code sent by sms")
    code = demo_stack.last_code(CUSTOMER)

    # When the agent types the code the caller read back
    page.get_by_label("Code the caller read back").fill(code)
    page.get_by_role("button", name="Verify").click()

    # Then the caller is verified
    expect(status).to_contain_text("Verification success.")
    expect(status).to_have_attribute("data-kind", "ok")

    # When the agent asks for the customer
    page.get_by_role("button", name="Show customer").click()

    # Then the server's record is shown, with the configured fields only: never the notes
    expect(status).to_contain_text("Verified until")
    expect(status).to_contain_text("Customer record released by the server.")
    customer = page.locator("#customer")
    expect(customer).to_be_visible()
    expect(customer.locator('dd[data-field="name"]')).to_have_text("Ada Lovelace")
    expect(customer.locator('dd[data-field="accountNumber"]')).to_have_text("ACCT-100100")
    # and how strong the verification was (the server's assurance)
    expect(customer.locator('dd[data-field="assurance"]')).to_have_text(
        "by an agent, code by sms; number risk check: passed"
    )
    assert customer.locator('dd[data-field="notes"]').count() == 0
    assert "SENSITIVE" not in page.content()
    expect(page.get_by_label("Code the caller read back")).to_be_empty()  # that code is spent
    page.screenshot(path=SCREENSHOT, full_page=True)


@pytest.mark.browser
def test_a_wrong_code_shows_incorrect_token(page: Any, expect: Any, demo_stack: Any) -> None:
    # Given a code sent to another sample customer
    to = "+12025550101"
    status = _open(page, expect, demo_stack.demo_url + "/")
    page.get_by_label("Customer phone number").fill(to)
    page.get_by_role("button", name="Send code").click()
    expect(status).to_contain_text("Code sent")
    code = demo_stack.last_code(to)

    # When the agent types a wrong one
    page.get_by_label("Code the caller read back").fill(f"{(int(code) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Verify").click()

    # Then the page shows the API's error.message (read through CORS from a 401), and nothing is released
    expect(status).to_have_text("Incorrect token.")
    expect(status).to_have_attribute("data-kind", "error")
    expect(page.get_by_role("button", name="Show customer")).to_be_disabled()


@pytest.mark.browser
@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not-a-flex-token", "The agent's Flex token is invalid or expired."),
        ("", "Agent authentication required: send the agent's Flex token as 'Token'."),
    ],
    ids=["invalid-token", "no-token"],
)
def test_agent_token_problems_show_the_api_message(
    page: Any, expect: Any, demo_stack: Any, token: str, message: str
) -> None:
    # Given the page opened with a token of its own in the query string (overriding config.json's)
    status = _open(page, expect, f"{demo_stack.demo_url}/?{urlencode({'token': token})}")
    assert "token=" not in page.url  # the page took the token out of the address bar

    # When the agent sends a code
    page.get_by_role("button", name="Send code").click()

    # Then the 403's error.message is shown: its CORS headers let the page read it, no "System error."
    expect(status).to_have_text(message)
    expect(status).to_have_attribute("data-kind", "error")


@pytest.mark.browser
def test_each_call_is_a_cors_request_preflighted_because_of_x_flex_token(
    page: Any, expect: Any, demo_stack: Any
) -> None:
    # Given the page (one origin) with an agent's token in its query, the API (another), and a record of
    # what the browser sends
    to = "+12025550102"
    api = demo_stack.stack.api_url
    assert api.rsplit(":", 1)[1] != demo_stack.demo_url.rsplit(":", 1)[1]
    token = demo_stack.sandbox.issue_token("browser-agent", ["agent"])
    sent: list[Any] = []
    page.on("request", lambda request: sent.append(request) if request.url.startswith(api) else None)
    status = _open(page, expect, f"{demo_stack.demo_url}/?{urlencode({'token': token})}")
    since = len(demo_stack.gateway_log)

    # When the agent sends a code
    page.get_by_label("Customer phone number").fill(to)
    page.get_by_role("button", name="Send code").click()
    expect(status).to_contain_text("Code sent")

    # Then the gateway saw the browser's preflight, answered 204, and only then the POST
    assert _new_lines(demo_stack, since, "/start-verify") == ["OPTIONS 204", "POST 200"]

    # And the POST is the plugin's form, from the page's origin, with the token in X-Flex-Token
    posts = [r for r in sent if r.method == "POST" and r.url == f"{api}/start-verify"]
    assert len(posts) == 1
    headers = posts[0].all_headers()
    assert headers["content-type"] == FORM
    assert headers["x-flex-token"] == token
    assert headers["origin"] == demo_stack.demo_url
    task = page.get_by_label("Task SID").input_value()
    assert posts[0].post_data == f"to={quote(to, safe='')}&taskSid={task}"

    # And the GET of /customer-info is preflighted too (and refused: nothing was verified)
    since = len(demo_stack.gateway_log)
    page.evaluate("document.getElementById('show').disabled = false")
    page.get_by_role("button", name="Show customer").click()
    # (not_verified's message, read through CORS from a 403)
    expect(status).to_have_text("This caller has not been verified by this agent, or it has expired.")
    assert _new_lines(demo_stack, since, "/customer-info") == ["OPTIONS 204", "GET 403"]


# ------------------------------------------------------------------------------------ the demo server


ACCOUNT_SID, AUTH_TOKEN = "AC" + "0" * 32, "5a" * 16


def _sandbox() -> TwilioSandbox:
    return TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN, "VA" + "0" * 32, announce=lambda _: None)


def test_config_json_gives_the_api_and_a_fresh_dev_agent_token_with_the_sandbox() -> None:
    sandbox = _sandbox()
    client = Client(DemoPage("http://127.0.0.1:3000", sandbox))

    response = client.get("/config.json")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    config = json.loads(response.get_data())
    assert config["apiUrl"] == "http://127.0.0.1:3000"
    assert config["agent"] == DEMO_AGENT
    # the token is one the sandbox's IAM endpoint validates, for dev-agent
    validated = Client(sandbox).post(
        f"/v1/Accounts/{ACCOUNT_SID}/Tokens/validate",
        json={"token": config["token"]},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    assert validated.json is not None
    assert (validated.json["valid"], validated.json["identity"]) == (True, DEMO_AGENT)
    assert json.loads(client.get("/config.json").get_data())["token"] != config["token"]  # fresh each time


def test_config_json_has_no_token_without_the_sandbox() -> None:
    response = Client(DemoPage("https://api.example.test/Prod")).get("/config.json")

    assert json.loads(response.get_data()) == {
        "apiUrl": "https://api.example.test/Prod",
        "token": "",
        "agent": "",
        "agentAuth": "flex",
        "outboxUrl": "",
    }


def test_the_page_and_nothing_else() -> None:
    client = Client(DemoPage("http://127.0.0.1:3000"))

    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'aria-live="polite"' in page.get_data()
    assert client.get("/index.html").get_data() == page.get_data()
    head = client.head("/")
    assert head.status_code == 200 and head.get_data() == b""
    assert client.get("/../template.yaml").status_code == 404
    assert client.get("/demo.py").status_code == 404
    refused = client.post("/config.json")
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"


def test_the_banner_points_at_the_page(demo_stack: Any) -> None:
    text = banner(demo_stack.stack, "flex")

    assert f"Try the whole flow in a browser: {demo_stack.demo_url}/  (signed in as dev-agent)" in text

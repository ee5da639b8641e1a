"""docs/openapi.yaml's routes are the template's, the gateway's responses conform, the checker bites."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from devserver.template import api_routes, gateway_responses, load_template
from tests.contract.openapi.conftest import CORS, FUNCTIONS, REPO, _operations
from tests.openapi_conformance import Contract

# ------------------------------------------------------------------------------------------ routes


def test_the_paths_are_the_template_s_api_events(doc: Mapping[str, Any]) -> None:
    # Given the template's API events / Then they are the document's paths, each routing every method
    routes = api_routes(load_template(REPO / "template.yaml"))
    assert {route.path for route in routes} == set(doc["paths"])
    assert {route.method for route in routes} == {"ANY"}  # so that any other method reaches the function (405)


def test_the_methods_are_the_functions_route_tables(doc: Mapping[str, Any]) -> None:
    # Given the route table each functions/*/app.py hands to the core
    before = set(sys.modules)
    try:
        modules = [load_handler_module(name) for name in FUNCTIONS]
    finally:
        for module in set(sys.modules) - before:
            sys.modules.pop(module, None)
    tables: list[Mapping[str, Mapping[str, Any]]] = [module.routes for module in modules]
    served = {f"{method} {path}" for table in tables for path, actions in table.items() for method in actions}

    # Then they are the document's operations (OPTIONS is the core's own answer, on every path)
    documented = {f"{m} {p}" for m, p, _ in _operations(doc) if m != "OPTIONS"}
    assert len(tables) == len(FUNCTIONS)
    assert served == documented
    # (the IVR's paths answer no preflight: Twilio calls them, never a browser)
    assert {f"OPTIONS {p}" for p in doc["paths"] if not p.startswith("/ivr/")} == {
        f"{m} {p}" for m, p, _ in _operations(doc) if m == "OPTIONS"
    }


def load_handler_module(name: str) -> Any:
    """functions/<name>/app.py as a module of its own (the three files share the name app.py)."""
    sys.path.insert(0, str(REPO / "layers" / "core"))
    spec = importlib.util.spec_from_file_location(f"app_{name}", REPO / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ gateway responses


def _gateway_answer(response_type: str, status: int | None = None) -> dict[str, Any]:
    response = gateway_responses(load_template(REPO / "template.yaml"))[response_type]
    return {
        "statusCode": response.status_code or status,
        "headers": {**response.headers, **CORS},
        "body": response.templates["application/json"],
    }


@pytest.mark.parametrize(
    ("response_type", "method", "path"),
    [("MISSING_AUTHENTICATION_TOKEN", "GET", "/nowhere"), ("THROTTLED", "POST", "/start-verify")],
)
def test_the_gateway_s_own_responses_conform(contract: Contract, response_type: str, method: str, path: str) -> None:
    # Given a response API Gateway makes itself / Then the document describes it
    assert list(contract.check_answer(method, path, _gateway_answer(response_type))) == []


def test_the_gateway_s_request_too_large_conforms(contract: Contract) -> None:
    answer = _gateway_answer("REQUEST_TOO_LARGE")
    assert list(contract.check_answer("POST", "/start-verify", answer)) == []


@pytest.mark.parametrize("status", [502, 504])
def test_the_gateway_s_lambda_failures_conform(contract: Contract, status: int) -> None:
    answer = _gateway_answer("DEFAULT_5XX", status=status)
    assert list(contract.check_answer("POST", "/start-verify", answer)) == []


# ------------------------------------------------------------------------------------------ the checker


def _answer(status: int, body: str, **headers: str) -> dict[str, Any]:
    cors = {
        "Content-Type": "application/json",
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, X-Flex-Token",
    }
    return {
        "statusCode": status,
        "headers": {**cors, **{k.replace("_", "-"): v for k, v in headers.items()}},
        "body": body,
    }


RIGHT = {
    "start": (
        "POST",
        "/start-verify",
        _answer(200, '{"success": true, "status": "pending", "channel": "sms", "resendAfter": 30}'),
    ),
    "wrong code": (
        "POST",
        "/check-verify",
        _answer(
            401,
            '{"success": false, "message": "Incorrect token.", "error": '
            '{"code": "incorrect_code", "message": "Incorrect token."}}',
        ),
    ),
    "locked": (
        "POST",
        "/check-verify",
        _answer(
            429,
            '{"success": false, "message": "Wait.", "error": {"code": "too_many_attempts", "message": "Wait."}}',
            Retry_After="900",
        ),
    ),
    "preflight": ("OPTIONS", "/customer-info", _answer(204, "")),
    "wrong method": (
        "DELETE",
        "/customer-info",
        _answer(
            405,
            '{"success": false, "message": "Method not allowed.", '
            '"error": {"code": "method_not_allowed", "message": '
            '"Method not allowed."}}',
            Allow="GET, POST, OPTIONS",
        ),
    ),
    "unknown path": (
        "GET",
        "/admin",
        _answer(
            404, '{"success": false, "message": "Not found.", "error": {"code": "not_found", "message": "Not found."}}'
        ),
    ),
}
SECRET_NOTE = "SENSITIVE note for Ada at +12025550100, ada.lovelace@example.com: must never be shown to agents"
WRONG = {
    "a code of another status": (
        "POST",
        "/start-verify",
        _answer(400, '{"success": false, "message": "No.", "error": {"code": "incorrect_code", "message": "No."}}'),
        "body.error.code",
    ),
    "no Retry-After on a 429": (
        "POST",
        "/start-verify",
        _answer(429, '{"success": false, "message": "Wait.", "error": {"code": "rate_limited", "message": "Wait."}}'),
        "header Retry-After is missing",
    ),
    "two different sentences": (
        "POST",
        "/check-verify",
        _answer(400, '{"success": false, "message": "A.", "error": {"code": "missing_parameter", "message": "B."}}'),
        "differ",
    ),
    "no error object (the plugin's reducer throws)": (
        "POST",
        "/start-verify",
        _answer(400, '{"success": false, "message": "Missing parameter."}'),
        "'error'",
    ),
    "a status the operation does not have": (
        "POST",
        "/start-verify",
        _answer(404, '{"success": false, "message": "N.", "error": {"code": "not_found", "message": "N."}}'),
        "status 404 is not documented",
    ),
    "no CORS": (
        "POST",
        "/cancel-verify",
        {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": '{"success": true, "status": "canceled"}',
        },
        "Access-Control-Allow-Methods is missing",
    ),
    "an HTML error page": ("POST", "/check-verify", _answer(502, "<html>Bad Gateway</html>"), "not JSON"),
    "a customer field that must not leave": (
        "GET",
        "/customer-info",
        _answer(
            200,
            '{"success": true, "verifiedAt": "2030-03-26T00:00:00Z", "verifiedUntil": "2030-03-26T00:30:00Z", '
            '"customer": {"name": "Ada"}, '
            '"assurance": {"channel": "sms", "method": "agent", "verifiedAt": "2030-03-26T00:00:00Z", '
            '"riskCheck": {"verdict": "not_checked"}}, '
            '"notes": "' + SECRET_NOTE + '"}',
        ),
        "'notes' was unexpected",
    ),
    "a customer value of the wrong type": (
        "POST",
        "/customer-info",
        _answer(
            200,
            '{"success": true, "verifiedAt": "2030-03-26T00:00:00Z", "verifiedUntil": "2030-03-26T00:30:00Z", '
            '"assurance": {"channel": "sms", "method": "agent", "verifiedAt": "2030-03-26T00:00:00Z", '
            '"riskCheck": {"verdict": "not_checked"}}, '
            '"customer": {"name": "' + SECRET_NOTE + '", "tier": 3}}',
        ),
        "body.customer.tier",
    ),
}


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_the_checker_accepts_documented_answers(contract: Contract, name: str) -> None:
    method, path, answer = RIGHT[name]
    assert list(contract.check_answer(method, path, answer)) == []


@pytest.mark.parametrize("name", sorted(WRONG))
def test_the_checker_reports_a_wrong_answer_without_quoting_customer_data(contract: Contract, name: str) -> None:
    # Given a deliberately wrong answer / When it is checked
    method, path, answer, expected = WRONG[name]
    violations = list(contract.check_answer(method, path, answer))

    # Then it is reported, with the route and status, and no customer value
    report = "\n".join(map(str, violations))
    assert violations, name
    assert expected in report
    assert report.startswith(f"{method} {path} -> {answer['statusCode']}: ")
    for secret in ("SENSITIVE", "+12025550100", "ada.lovelace", "Bad Gateway"):
        assert secret not in report


def test_a_test_made_route_is_held_to_the_status_but_not_its_success_body(contract: Contract) -> None:
    # Given a route table a unit test made up (its actions are not callerauth.actions')
    def echo(request: Any, services: Any) -> Any:
        raise NotImplementedError

    served = {"/echo": {"POST": echo}, "/start-verify": {"POST": echo}}
    error = '{"success": false, "message": "X.", "error": {"code": "%s", "message": "X."}}'

    # Then its success bodies are not checked, its errors are held to the one shape of their status
    assert list(contract.check_answer("POST", "/echo", _answer(200, '{"anything": 1}'), served)) == []
    assert list(contract.check_answer("POST", "/echo", _answer(404, error % "customer_not_found"), served)) == []
    assert list(contract.check_answer("POST", "/start-verify", _answer(429, error % "rate_limited"), served))
    assert list(contract.check_answer("POST", "/echo", _answer(418, error % "teapot"), served))
    # ... while a path the route table lacks is the unmatched path (404), whatever the document lists
    assert list(contract.check_answer("POST", "/check-verify", _answer(404, error % "not_found"), served)) == []


def test_the_plugin_fails_the_test_that_produced_a_wrong_answer(tmp_path: Path) -> None:
    # Given a test module whose tests answer through serve: wrongly, wrongly after a fresh import of the core
    # (as the dev stack does), and rightly
    module = tmp_path / "test_wrong_answers.py"
    module.write_text(
        textwrap.dedent("""
        import sys
        from types import SimpleNamespace

        import callerauth.http as first

        RUNTIME = SimpleNamespace(settings=lambda: SimpleNamespace(allowed_origins=("*",)), services=lambda: None)

        def made_up(request, services):
            from callerauth import errors
            raise errors.ApiError(400, "made_up_code", "Call +12025550123 back.")

        def answer(http, path="/x"):
            event = {"httpMethod": "POST", "resource": path, "path": path, "headers": {}, "body": ""}
            return http.serve(event, None, {"/x": {"POST": made_up}}, RUNTIME)

        def test_wrong():
            assert answer(first)["statusCode"] == 400

        def test_wrong_after_a_fresh_import():
            for name in [n for n in sys.modules if n == "callerauth" or n.startswith("callerauth.")]:
                del sys.modules[name]
            import callerauth.http as second
            assert second is not first
            assert answer(second)["statusCode"] == 400

        def test_right():
            assert answer(first, "/elsewhere")["statusCode"] == 404
    """)
    )

    # When pytest runs it with the plugin
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "layers" / "core"), str(REPO)])}
    result = subprocess.run(  # noqa: S603 - this interpreter, this repository's plugin
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.openapi_conformance",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(module),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr

    # Then both wrong answers fail their test (at teardown), naming route, status and problem, and nothing else
    assert result.returncode == 1, output
    assert "3 passed, 2 errors" in output, output  # a teardown error does not undo the pass
    assert "ERROR at teardown of test_wrong " in output, output
    assert "ERROR at teardown of test_wrong_after_a_fresh_import" in output, output
    assert "POST /x -> 400: body.error.code: 'made_up_code' is not one of" in output, output
    assert "12025550123" not in output

"""docs/openapi.yaml: a valid OpenAPI document that says what the code does (and the conformance checker works).

- the document is valid OpenAPI 3.1, and every example in it validates against its schema;
- its error codes, status by status, are exactly the ones the core can raise (read from the source) and the
  ones CONTRACT.md's table lists;
- its fields and aliases are ``callerauth.fields.ALIASES``, with the core's own patterns and limits;
- its paths and methods are the template's API events and the functions' route tables;
- the gateway's own responses (template.yaml GatewayResponses) conform to it;
- ``tests/openapi_conformance.py`` finds a wrong response, and fails the test that produced it.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from callerauth import agents, fields
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from devserver.template import api_routes, gateway_responses, load_template
from tests.openapi_conformance import SPEC_PATH, Contract

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "layers" / "core" / "callerauth"
CONTRACT_MD = REPO / "docs" / "CONTRACT.md"
FUNCTIONS = ("start_verify", "check_verify", "customer_info")

# CONTRACT.md's table of failures: (HTTP status, error.code).
CONTRACT_ERRORS = {
    (400, "missing_parameter"),
    (400, "invalid_parameter"),
    (400, "malformed_body"),
    (401, "incorrect_code"),
    (403, "agent_auth_required"),
    (403, "agent_auth_invalid"),
    (403, "not_verified"),
    (403, "destination_blocked"),
    (404, "verification_not_found"),
    (404, "customer_not_found"),
    (404, "not_found"),
    (405, "method_not_allowed"),
    (413, "body_too_large"),
    (429, "rate_limited"),
    (429, "too_many_attempts"),
    (429, "max_send_attempts"),
    (502, "upstream_error"),
    (503, "upstream_unavailable"),
    (500, "internal_error"),
}
# CONTRACT.md's fields of each endpoint (canonical names of callerauth.fields.ALIASES).
ENDPOINT_FIELDS = {
    "POST /start-verify": {"to", "channel", "locale", "token", "task_sid"},
    "POST /check-verify": {"to", "verification_code", "token", "task_sid"},
    "POST /cancel-verify": {"to", "token", "task_sid"},
    "GET /customer-info": {"to", "token", "task_sid"},
    "POST /customer-info": {"to", "token", "task_sid"},
}
REQUIRED_FIELDS = {
    "POST /start-verify": {"to"},
    "POST /check-verify": {"to", "verification_code"},
    "POST /cancel-verify": {"to"},
    "POST /customer-info": {"to"},
}
CORS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load()


@pytest.fixture(scope="module")
def doc(contract: Contract) -> Mapping[str, Any]:
    return contract.document


def _resolve(doc: Mapping[str, Any], node: Any) -> Any:
    while isinstance(node, Mapping) and "$ref" in node:
        target: Any = doc
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _operations(doc: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
                yield method.upper(), path, operation


def _all_responses(doc: Mapping[str, Any]) -> Iterator[tuple[str, int, Mapping[str, Any]]]:
    """(where, status, response object) for every response the document gives, extensions included."""
    for method, path, operation in _operations(doc):
        for status, response in operation["responses"].items():
            yield f"{method} {path}", int(status), _resolve(doc, response)
    for path, item in doc["paths"].items():
        for status, response in item["x-other-methods"]["responses"].items():
            yield f"other methods on {path}", int(status), _resolve(doc, response)
    for status, response in doc["x-unmatched-path"]["responses"].items():
        yield "unmatched path", int(status), _resolve(doc, response)


def _codes(doc: Mapping[str, Any], schema: Any) -> set[str] | None:
    """The error codes a body schema allows (None: not an error schema); allOf narrows."""
    schema = _resolve(doc, schema)
    allowed: set[str] | None = None
    for member in schema.get("allOf", []):
        codes = _codes(doc, member)
        if codes is not None:
            allowed = codes if allowed is None else allowed & codes
    code = schema.get("properties", {}).get("error", {}).get("properties", {}).get("code")
    if code is not None:
        code = _resolve(doc, code)
        codes = set(code["enum"]) if "enum" in code else {code["const"]} if "const" in code else None
        if codes is not None:
            allowed = codes if allowed is None else allowed & codes
    return allowed


# ------------------------------------------------------------------------------------------ the document


def test_the_document_is_valid_openapi_3_1() -> None:
    # Given the document as a tool reads it / When it is validated / Then it is valid
    spec, _ = read_from_filename(str(SPEC_PATH))
    validate(spec)
    assert str(spec["openapi"]).startswith("3.1.")


def test_the_validator_would_notice_a_broken_document(doc: Mapping[str, Any]) -> None:
    # Given the document with a dangling reference / When it is validated / Then it is refused
    broken = yaml.safe_load(SPEC_PATH.read_text())
    broken["paths"]["/start-verify"]["post"]["responses"]["200"] = {"$ref": "#/components/responses/Nope"}
    with pytest.raises(Exception, match="Nope"):
        validate(broken)


def test_every_example_validates_against_its_schema(contract: Contract) -> None:
    # Given every example in the document (schema examples, and media-type examples)
    checked, problems = 0, []

    def walk(node: Any, pointer: str) -> None:
        nonlocal checked
        if isinstance(node, Mapping):
            examples = node.get("examples")
            if isinstance(examples, list):  # a schema's own examples
                for example in examples:
                    checked += 1
                    problems.extend(f"{pointer}: {e.message}" for e in contract.validator(pointer).iter_errors(example))
            elif isinstance(examples, Mapping) and "schema" in node:  # a media type's named examples
                for name, example in examples.items():
                    checked += 1
                    validator = contract.validator(f"{pointer}/schema")
                    problems.extend(f"{pointer} {name}: {e.message}" for e in validator.iter_errors(example["value"]))
            for key, value in node.items():
                walk(value, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pointer}/{index}")

    # When each is validated
    walk(contract.document, "")

    # Then all are valid
    assert checked > 10
    assert problems == []


# ------------------------------------------------------------------------------------------ error codes


def _raised_by_the_core() -> set[tuple[int, str]]:
    """(status, code) of every ``ApiError(status, code, ...)`` in the core's source."""
    found: set[tuple[int, str]] = set()
    for source in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name != "ApiError":
                continue
            arguments = {**dict(enumerate(node.args)), **{k.arg: k.value for k in node.keywords}}
            status, code = arguments.get(0, arguments.get("status")), arguments.get(1, arguments.get("code"))
            assert isinstance(status, ast.Constant) and isinstance(code, ast.Constant), (
                f"{source.name}:{node.lineno}: ApiError with a computed status or code; list it here by hand"
            )
            found.add((int(status.value), str(code.value)))
    return found


def test_the_error_codes_are_the_ones_the_core_raises_and_the_contract_lists(doc: Mapping[str, Any]) -> None:
    # Given the (status, code) pairs the document allows, the core can raise, and CONTRACT.md lists
    documented: set[tuple[int, str]] = set()
    for _, status, response in _all_responses(doc):
        schema = ((response.get("content") or {}).get("application/json") or {}).get("schema")
        if schema is not None:
            documented |= {(status, code) for code in _codes(doc, schema) or ()}
    enum = set(_resolve(doc, {"$ref": "#/components/schemas/ErrorCode"})["enum"])
    raised = _raised_by_the_core()

    # Then they are the same
    assert raised == CONTRACT_ERRORS, "the core's errors differ from CONTRACT.md's table"
    assert documented == CONTRACT_ERRORS, "the document's errors differ from CONTRACT.md's table"
    assert enum == {code for _, code in CONTRACT_ERRORS}


def test_the_contract_table_here_is_contract_md_s() -> None:
    # Given the project's contract document, docs/CONTRACT.md
    assert CONTRACT_MD.is_file(), f"{CONTRACT_MD} is missing"

    # When its table of failures is read
    rows = re.findall(r"^\|\s*(\d{3})\s*\|\s*`([a-z_]+)`\s*\|", CONTRACT_MD.read_text(), re.MULTILINE)

    # Then it is the table these tests use
    assert {(int(status), code) for status, code in rows} == CONTRACT_ERRORS


def test_every_response_that_may_wait_says_how_long(doc: Mapping[str, Any]) -> None:
    # Given every 429 and 503 the document gives / Then each requires Retry-After (and a 405, Allow)
    for where, status, response in _all_responses(doc):
        headers = {name: _resolve(doc, header) for name, header in (response.get("headers") or {}).items()}
        required = {name for name, header in headers.items() if header.get("required")}
        assert {"Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} <= required, (where, status)
        assert "Access-Control-Allow-Origin" in headers, (where, status)
        if status in (429, 503):
            assert "Retry-After" in required, (where, status)
        if status == 405:
            assert "Allow" in required, (where, status)


# ------------------------------------------------------------------------------------------ fields


def _fields_of(doc: Mapping[str, Any], operation: Mapping[str, Any]) -> tuple[dict[str, str], Any]:
    """{name: x-field} of an operation's body (the same in both media types) or query, and its body schema."""
    body = operation.get("requestBody")
    if body is None:
        parameters = [_resolve(doc, p) for p in operation.get("parameters", [])]
        return {p["name"]: p["x-field"] for p in parameters if p["in"] == "query"}, None
    content = _resolve(doc, body)["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
    schemas = [_resolve(doc, media["schema"]) for media in content.values()]
    mappings = [{name: prop.get("x-field") for name, prop in schema["properties"].items()} for schema in schemas]
    assert mappings[0] == mappings[1]
    return mappings[0], schemas[0]


def _required_alternatives(schema: Mapping[str, Any]) -> list[set[str]]:
    """Each ``anyOf`` of single ``required`` names in a body schema (directly, or within its allOf)."""
    groups = [schema.get("anyOf")] + [member.get("anyOf") for member in schema.get("allOf", [])]
    return [{name for option in group for name in option["required"]} for group in groups if group]


@pytest.mark.parametrize("route", sorted(ENDPOINT_FIELDS))
def test_each_operation_documents_its_fields_with_every_alias(doc: Mapping[str, Any], route: str) -> None:
    # Given an operation's documented fields
    method, path = route.split(" ")
    names, schema = _fields_of(doc, doc["paths"][path][method.lower()])

    # Then every name feeds a known field, and each field is documented under all its aliases, no more
    assert None not in names.values(), f"{route}: a field without x-field"
    by_field: dict[str, set[str]] = {}
    for name, field_name in names.items():
        by_field.setdefault(field_name, set()).add(name)
    assert set(by_field) == ENDPOINT_FIELDS[route]
    for field_name, aliases in by_field.items():
        assert aliases == set(fields.ALIASES[field_name]), f"{route}: {field_name}"
        assert all(fields.FIELD_OF_ALIAS[alias] == field_name for alias in aliases)
    if schema is not None:  # required fields: any one of their aliases
        expected = [set(fields.ALIASES[name]) for name in sorted(REQUIRED_FIELDS[route])]
        assert sorted(_required_alternatives(schema), key=sorted) == sorted(expected, key=sorted)


def test_every_field_the_core_decodes_is_documented(doc: Mapping[str, Any]) -> None:
    documented: set[str] = set()
    for route in ENDPOINT_FIELDS:
        method, path = route.split(" ")
        documented |= set(_fields_of(doc, doc["paths"][path][method.lower()])[0])
    assert documented == set(fields.FIELD_OF_ALIAS)


def test_the_field_rules_are_the_core_s(doc: Mapping[str, Any]) -> None:
    # Given the document's field schemas
    schemas = doc["components"]["schemas"]

    # Then patterns are the core's regular expressions, anchored; enums, defaults and limits are the core's
    assert schemas["E164Number"]["pattern"] == f"^{fields.E164.pattern}$"
    assert schemas["EmailAddress"]["pattern"] == f"^{fields.EMAIL.pattern}$"
    assert schemas["Locale"]["pattern"] == f"^{fields.LOCALE.pattern}$"
    assert schemas["VerificationCode"]["pattern"] == f"^{fields.CODE.pattern}$"
    assert schemas["TaskSid"]["pattern"] == f"^{fields.TASK_SID.pattern}$"
    assert schemas["Channel"]["enum"] == list(fields.CHANNELS)
    assert schemas["Channel"]["default"] == fields.destination({"to": "+12025550100"}).channel
    assert schemas["Locale"]["default"] == fields.locale({})
    assert schemas["FlexToken"]["maxLength"] == agents.MAX_TOKEN_LENGTH


@pytest.mark.parametrize(
    ("schema", "at_limit", "channel"),
    [("E164Number", "+1" + "5" * 14, "sms"), ("EmailAddress", "a" * 64 + "@" + "b" * 185 + ".com", "email")],
)
def test_the_length_limits_are_the_core_s(doc: Mapping[str, Any], schema: str, at_limit: str, channel: str) -> None:
    # Given a destination exactly at the document's maxLength, and one character more
    limit = doc["components"]["schemas"][schema]["maxLength"]
    assert len(at_limit) == limit
    too_long = at_limit[:-1] + "0" + at_limit[-1] if channel == "sms" else "a" + at_limit

    # Then the core takes the first and refuses the second
    assert fields.destination({"to": at_limit, "channel": channel}).to == at_limit.lower()
    with pytest.raises(Exception, match="Invalid parameter 'to'"):
        fields.destination({"to": too_long, "channel": channel})


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
    assert {f"OPTIONS {p}" for p in doc["paths"]} == {f"{m} {p}" for m, p, _ in _operations(doc) if m == "OPTIONS"}


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
            '"customer": {"name": "Ada"}, "notes": "' + SECRET_NOTE + '"}',
        ),
        "'notes' was unexpected",
    ),
    "a customer value of the wrong type": (
        "POST",
        "/customer-info",
        _answer(
            200,
            '{"success": true, "verifiedAt": "2030-03-26T00:00:00Z", "verifiedUntil": "2030-03-26T00:30:00Z", '
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

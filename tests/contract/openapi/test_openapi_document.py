"""docs/openapi.yaml itself: valid, its examples valid, its error codes and fields the code's."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any, get_args

import pytest
import yaml
from callerauth import agents, errors, fields
from callerauth.refusals import Code
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from tests.contract.openapi.conftest import (
    CONTRACT_ERRORS,
    CONTRACT_MD,
    CORE,
    ENDPOINT_FIELDS,
    REQUIRED_FIELDS,
    _all_responses,
    _codes,
    _resolve,
)
from tests.openapi_conformance import SPEC_PATH, Contract

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
    checked, problems = 0, list[str]()

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
    """(status, code) of every refusal code the core can raise (as the edge answers it), and of every
    literal ``ApiError(status, code, ...)`` the edge makes itself."""
    found = {(errors.STATUS[code], code) for code in get_args(Code)}
    for source in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name != "ApiError":
                continue
            arguments: dict[int | str | None, ast.expr] = {
                **dict(enumerate(node.args)),
                **{k.arg: k.value for k in node.keywords},
            }
            status, code = arguments.get(0, arguments.get("status")), arguments.get(1, arguments.get("code"))
            if isinstance(status, ast.Subscript):  # the one mapping: STATUS[refusal.code], counted above
                continue
            assert isinstance(status, ast.Constant) and isinstance(code, ast.Constant), (
                f"{source.name}:{node.lineno}: ApiError with a computed status or code; list it here by hand"
            )
            found.add((int(str(status.value)), str(code.value)))
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
        if status == 405:
            assert "Allow" in required, (where, status)
        if "/ivr/" in where:  # Twilio's webhooks: no browser calls them, so no CORS (and no waits to say)
            continue
        assert {"Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} <= required, (where, status)
        assert "Access-Control-Allow-Origin" in headers, (where, status)
        if status in (429, 503):
            assert "Retry-After" in required, (where, status)


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
    # Given the document's field schemas, and the blanks the core strips around `to` and codes
    schemas = doc["components"]["schemas"]
    blanks = "[" + fields.BLANKS.encode("unicode_escape").decode() + "]*"

    # Then patterns are the core's regular expressions, anchored, with the documented leniency
    # (blanks around a destination or a code; an empty locale, task SID or channel taken as absent)
    assert schemas["E164Number"]["pattern"] == f"^{blanks}{fields.E164.pattern}{blanks}$"
    assert schemas["EmailAddress"]["pattern"] == f"^{blanks}{fields.EMAIL.pattern}{blanks}$"
    assert schemas["VerificationCode"]["pattern"] == f"^{blanks}{fields.CODE.pattern}{blanks}$"
    assert schemas["Locale"]["pattern"] == f"^({fields.LOCALE.pattern})?$"
    assert schemas["TaskSid"]["pattern"] == f"^({fields.TASK_SID.pattern})?$"
    assert schemas["Channel"]["enum"] == [*fields.CHANNELS, ""]
    assert schemas["Channel"]["default"] == fields.destination({"to": "+12025550100"}).channel
    assert schemas["Locale"]["default"] == fields.locale({})
    assert schemas["FlexToken"]["maxLength"] == agents.MAX_TOKEN_LENGTH


@pytest.mark.parametrize(
    ("at_limit", "too_long", "channel"),
    [
        pytest.param("+4915123456789", "+1" + "5" * 15, "sms", id="E164-over-15-digits"),
        pytest.param("a" * 64 + "@" + "b" * 185 + ".com", "a" * 65 + "@" + "b" * 185 + ".com", "email", id="email-254"),
    ],
)
def test_the_length_limits_are_the_core_s(doc: Mapping[str, Any], at_limit: str, too_long: str, channel: str) -> None:
    # Given a destination exactly at the documented limit (15 digits; 254 characters), and one longer
    email = doc["components"]["schemas"]["EmailAddress"]
    assert "at most 254 characters" in email["description"]
    assert len("a" * 64 + "@" + "b" * 185 + ".com") == 254

    # Then the core takes the first, padded or not, and refuses the second
    assert fields.destination({"to": f" {at_limit}\t", "channel": channel}).to == at_limit.lower()
    with pytest.raises(Exception, match="Invalid parameter 'to'"):
        fields.destination({"to": too_long, "channel": channel})

"""docs/openapi.yaml: a valid OpenAPI document that says what the code does (and the conformance checker works).

- the document is valid OpenAPI 3.1, and every example in it validates against its schema;
- its error codes, status by status, are exactly the ones the core can raise (read from the source) and the
  ones CONTRACT.md's table lists;
- its fields and aliases are ``callerauth.fields.ALIASES``, with the core's own patterns and limits;
- its paths and methods are the template's API events and the functions' route tables;
- the gateway's own responses (template.yaml GatewayResponses) conform to it;
- ``tests/openapi_conformance.py`` finds a wrong response, and fails the test that produced it.

This conftest holds what the test files here share: the document, the contract, and CONTRACT.md's tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.openapi_conformance import Contract

REPO = Path(__file__).resolve().parents[3]
CORE = REPO / "layers" / "core" / "callerauth"
CONTRACT_MD = REPO / "docs" / "CONTRACT.md"
FUNCTIONS = ("start_verify", "check_verify", "customer_info", "ivr")

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
    (403, "destination_risky"),
    (403, "source_not_allowed"),
    (403, "cancel_not_allowed"),
    (403, "task_not_held"),
    (403, "task_not_found"),
    (403, "not_task_caller"),
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

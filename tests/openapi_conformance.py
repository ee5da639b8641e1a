"""A pytest plugin: every response the test suite produces must be one that ``docs/openapi.yaml`` documents.

Registered by ``pytest_plugins = ["tests.openapi_conformance"]`` in ``tests/conftest.py`` (or, for one run,
``pytest -p tests.openapi_conformance``). For the whole session it wraps ``callerauth.http.serve``, the one
function through which every answer leaves the core: handler tests (``functions/*/app.py`` call it through
``callerauth.wiring``), unit tests that call ``serve`` directly, and HTTP tests through the dev stack's
API Gateway emulator (which runs the real handlers in-process). A module re-imported after the dev stack
has unloaded the core (``devserver.lambdas.unload_project_modules``) is wrapped again by an import hook.

Each answer is checked against the response the document gives for its path, method and status:

- the status is documented for that operation (``x-other-methods`` of the path for a method it does not
  serve; the root's ``x-unmatched-path`` for a path the function does not serve);
- the body validates against that response's JSON Schema, and the Content-Type is the documented one
  (no body where none is documented);
- every header the response marks ``required`` is there (CORS, ``Retry-After``, ``Allow``), every
  documented header that is there has a valid value, and CORS is answered (``Access-Control-Allow-Origin``,
  or ``Vary: Origin`` when an allow-list did not list the origin);
- an error's ``message`` is its ``error.message`` (the contract's rule, which a schema cannot say).

Route tables made up by a test (actions that are not ``callerauth.actions``' own, e.g. an ``echo`` route)
are not the product: their answers are checked against what the document says of that status anywhere
(the one error shape, the 204 preflight), and their success bodies are not checked.

A test that produced a non-conforming response fails at teardown, with the route, the status and the
problem (values shortened and masked: never a body that could hold customer data). Answers produced
outside any test fail the session.
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib.abc
import importlib.machinery
import json
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parents[1]
SPEC_PATH = REPO / "docs" / "openapi.yaml"
DOC_URI = "urn:callerauth:openapi"
HTTP_MODULE = "callerauth.http"
PRODUCT_ACTIONS = "callerauth.actions"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_PROBLEM_CHARS = 300


class OpenAPIConformanceWarning(UserWarning):
    """A non-conforming response in a test that is expected to fail (xfail): reported, not failed."""


class Undocumented(Exception):
    """The product serves a path that the document does not list."""


@dataclass(frozen=True)
class Violation:
    route: str  # "POST /start-verify"
    status: Any
    problem: str

    def __str__(self) -> str:
        return f"{self.route} -> {self.status}: {self.problem}"


# ------------------------------------------------------------------------------------------ the document


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _mask(text: str) -> str:
    """Numbers and e-mail addresses masked, long values shortened: problems may quote a body's values."""
    text = re.sub(r"\+?\d[\d\s().-]{5,}\d", "<number>", text)
    text = re.sub(r"[^\s'\"@<>(),:]+@[^\s'\"@<>(),:]+", "<email>", text)
    return text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 1] + "…"


def _describe(error: ValidationError, where: str) -> str:
    """A validation error without the instance itself when it is an object, an array or a long string."""
    message = error.message
    instance = error.instance
    if isinstance(instance, dict | list) or (isinstance(instance, str) and len(instance) > 40):
        kind = {dict: "an object", list: "an array"}.get(type(instance), f"a string of {len(instance)} chars")
        message = message.replace(repr(instance), f"<{kind}>")
    location = error.json_path.replace("$", where, 1)
    return _mask(f"{location}: {message} (schema keyword {error.validator!r})")


class Contract:
    """``docs/openapi.yaml``: which response documents an answer, and whether the answer conforms to it."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self._registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        self.by_status = self._index_by_status()

    @classmethod
    @functools.cache
    def load(cls, path: Path = SPEC_PATH) -> Contract:
        return cls(yaml.safe_load(path.read_text(encoding="utf-8")))

    # -- looking things up ------------------------------------------------------------------

    def resolve(self, node: Mapping[str, Any], pointer: str) -> tuple[Mapping[str, Any], str]:
        """Follow an object's ``$ref`` (local ones only) to the object and its JSON pointer."""
        seen = set()
        while "$ref" in node:
            ref = str(node["$ref"])
            if not ref.startswith("#/") or ref in seen:
                raise ValueError(f"unsupported or circular $ref {ref!r} at {pointer}")
            seen.add(ref)
            pointer = ref[1:]
            node = self.document
            for part in pointer.lstrip("/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, pointer

    def responses_for(
        self, method: str, path: str, served: Mapping[str, Mapping[str, Any]] | None
    ) -> tuple[str, Mapping[str, Any], str] | None:
        """``(what, responses, pointer)`` that documents an answer; None for a route table made up by a test.

        ``served`` is the route table the answer came from (``serve``'s ``routes``); None means the deployed
        API (API Gateway routes exactly the template's paths, every method, to the functions).
        """
        paths = self.document.get("paths") or {}
        unmatched = ("unmatched path", self.document["x-unmatched-path"]["responses"], "/x-unmatched-path/responses")
        if served is not None and path not in served:
            return unmatched
        item = paths.get(path)
        product = served is None or all(_is_product(action) for action in served[path].values())
        if item is None:
            if served is None:
                return unmatched
            if product:
                raise Undocumented(f"the function serves {path}, but the document does not")
            return None
        if not product:
            return None
        operation = item.get(method.lower())
        if operation is not None:
            return "operation", operation["responses"], _pointer("paths", path, method.lower(), "responses")
        return (
            "x-other-methods",
            item["x-other-methods"]["responses"],
            _pointer("paths", path, "x-other-methods", "responses"),
        )

    def _index_by_status(self) -> dict[str, list[tuple[Mapping[str, Any], str]]]:
        """Every distinct response object the document gives, by status."""
        found: dict[str, dict[str, Mapping[str, Any]]] = {}

        def add(responses: Mapping[str, Any], pointer: str) -> None:
            for status, response in responses.items():
                resolved, where = self.resolve(response, pointer + _pointer(str(status)))
                found.setdefault(str(status), {})[where] = resolved

        for path, item in (self.document.get("paths") or {}).items():
            for method in METHODS:
                if method in item:
                    add(item[method]["responses"], _pointer("paths", path, method, "responses"))
            if "x-other-methods" in item:
                add(item["x-other-methods"]["responses"], _pointer("paths", path, "x-other-methods", "responses"))
        add(self.document["x-unmatched-path"]["responses"], "/x-unmatched-path/responses")
        return {status: [(obj, where) for where, obj in objects.items()] for status, objects in found.items()}

    def validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            self._validators[pointer] = Draft202012Validator(
                {"$ref": f"{DOC_URI}#{pointer}"},
                registry=self._registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
        return self._validators[pointer]

    # -- checking an answer -----------------------------------------------------------------

    def check(self, event: Mapping[str, Any], routes: Mapping[str, Any] | None, answer: Mapping[str, Any]) -> Counted:
        """The violations of one ``serve(event, ..., routes, ...)`` answer (routes None: the deployed API)."""
        method = str(event.get("httpMethod") or "").upper()
        path = str(event.get("resource") or event.get("path") or "")
        return self.check_answer(method, path, answer, routes)

    def check_answer(
        self, method: str, path: str, answer: Mapping[str, Any], served: Mapping[str, Any] | None = None
    ) -> Counted:
        route = f"{method} {path}"
        status = answer.get("statusCode")
        if not isinstance(status, int):
            return Counted("checked", [Violation(route, status, "statusCode is not an int")])
        try:
            found = self.responses_for(method, path, served)
        except Undocumented as exc:
            return Counted("checked", [Violation(route, status, str(exc))])
        if found is None:  # a route table made up by a test: what the document says of this status anywhere
            if 200 <= status < 300 and status != 204:
                return Counted("skipped", [])
            candidates = self.by_status.get(str(status), [])
            if not candidates:
                return Counted("generic", [Violation(route, status, f"status {status} is documented nowhere")])
            attempts = [self.conformance(response, where, answer) for response, where in candidates]
            best = min(attempts, key=len)
            return Counted("generic", [Violation(route, status, problem) for problem in best])
        what, responses, pointer = found
        key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
        if key is None:
            served_methods = set((served or {}).get(path, {})) if served is not None else set()
            if what == "x-other-methods" and method in served_methods:
                problem = f"the function serves {method} {path}, but the document does not"
            else:
                documented = ", ".join(sorted(str(k) for k in responses))
                problem = f"status {status} is not documented for this {what} (documented: {documented})"
            return Counted("checked", [Violation(route, status, problem)])
        response, where = self.resolve(responses[key], pointer + _pointer(key))
        return Counted(
            "checked", [Violation(route, status, problem) for problem in self.conformance(response, where, answer)]
        )

    def conformance(self, response: Mapping[str, Any], pointer: str, answer: Mapping[str, Any]) -> list[str]:
        """Problems of an answer against one response object (at ``pointer``); empty when it conforms."""
        headers = _headers(answer)
        problems = self._header_problems(response, pointer, headers)
        vary = {token.strip().lower() for token in headers.get("vary", "").split(",")}
        if "access-control-allow-origin" not in headers and "origin" not in vary:
            problems.append("CORS: neither Access-Control-Allow-Origin nor Vary: Origin")
        return [*problems, *self._body_problems(response, pointer, headers, answer)]

    def _header_problems(self, response: Mapping[str, Any], pointer: str, headers: Mapping[str, str]) -> list[str]:
        problems: list[str] = []
        for name, header in (response.get("headers") or {}).items():
            header, header_pointer = self.resolve(header, pointer + _pointer("headers", name))
            value = headers.get(name.lower())
            if value is None:
                if header.get("required"):
                    problems.append(f"header {name} is missing")
                continue
            schema = header.get("schema") or {}
            instance: Any = value
            if schema.get("type") == "integer" and re.fullmatch(r"-?\d+", value):
                instance = int(value)
            error = best_match(self.validator(header_pointer + "/schema").iter_errors(instance))
            if error is not None:
                problems.append(_describe(error, f"header {name}"))
        return problems

    def _body_problems(
        self, response: Mapping[str, Any], pointer: str, headers: Mapping[str, str], answer: Mapping[str, Any]
    ) -> list[str]:
        content = response.get("content") or {}
        try:
            text = _body_text(answer)
        except ValueError as exc:
            return [str(exc)]
        if not content:
            return [f"a body of {len(text)} chars where the document has none"] if text else []
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type not in content:
            return [f"Content-Type {media_type or '(none)'!r} is not documented ({', '.join(content)})"]
        if "json" not in media_type:
            return []
        try:
            body = json.loads(text)
        except ValueError:
            return [f"the body ({len(text)} chars) is not JSON"]
        problems: list[str] = []
        schema_pointer = pointer + _pointer("content", media_type, "schema")
        error = best_match(self.validator(schema_pointer).iter_errors(body))
        if error is not None:
            problems.append(_describe(error, "body"))
        error_object = body.get("error") if isinstance(body, dict) else None
        if isinstance(error_object, dict) and body.get("message") != error_object.get("message"):
            problems.append("body.message and body.error.message differ (the contract: the same sentence)")
        return problems


@dataclass(frozen=True)
class Counted:
    """A check's violations, and how it was made: against the operation, generically, or skipped."""

    kind: str
    violations: list[Violation]

    def __iter__(self) -> Iterator[Violation]:
        return iter(self.violations)

    def __len__(self) -> int:
        return len(self.violations)

    def __bool__(self) -> bool:
        return bool(self.violations)


def _is_product(action: Any) -> bool:
    return getattr(action, "__module__", None) == PRODUCT_ACTIONS


def _headers(answer: Mapping[str, Any]) -> dict[str, str]:
    headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        if values:
            headers.setdefault(str(name).lower(), ", ".join(str(v) for v in values))
    return headers


def _body_text(answer: Mapping[str, Any]) -> str:
    body = answer.get("body")
    if body is None:
        return ""
    if not isinstance(body, str):
        raise ValueError(f"the body is a {type(body).__name__}, not a string")
    if answer.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("the body is not valid base64 of UTF-8 text") from None
    return body


# ------------------------------------------------------------------------------------- the recording


@dataclass
class _Recorder:
    """Violations per test (answers may come from the dev stack's server threads), and what was checked."""

    current: str | None = None
    by_test: dict[str, list[Violation]] = field(default_factory=dict)
    orphans: list[tuple[str, Violation]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"checked": 0, "generic": 0, "skipped": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, event: Any, routes: Any, answer: Any) -> None:
        try:
            result = Contract.load().check(event, routes, answer)
            kind, violations = result.kind, list(result)
        except Exception as exc:  # a checker failure is reported, never raised into the code under test
            where = f"{event.get('httpMethod')} {event.get('resource') or event.get('path')}"
            kind, violations = "checked", [Violation(where, "?", f"the checker failed: {type(exc).__name__}: {exc}")]
        with self.lock:
            self.counts[kind] += 1
            if not violations:
                return
            if self.current is None:
                self.orphans.extend(("(outside any test)", v) for v in violations)
            else:
                self.by_test.setdefault(self.current, []).extend(violations)

    def take(self, nodeid: str) -> list[Violation]:
        with self.lock:
            return self.by_test.pop(nodeid, [])


_RECORDER = _Recorder()


def _checking(serve: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(serve)
    def checked_serve(event: Any, context: Any, routes: Any, runtime: Any) -> Any:
        answer = serve(event, context, routes, runtime)
        _RECORDER.observe(event, routes, answer)
        return answer

    checked_serve.__openapi_original__ = serve  # type: ignore[attr-defined]
    return checked_serve


class _ServeWrapper(importlib.abc.MetaPathFinder):
    """Wraps ``serve`` in ``callerauth.http`` now, and whenever that module is imported again."""

    def install(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        module = sys.modules.get(HTTP_MODULE)
        if module is not None:
            self.wrap(module)

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for module in list(sys.modules.values()):
            serve = getattr(module, "__dict__", {}).get("serve")
            original = getattr(serve, "__openapi_original__", None)
            if original is not None:
                module.serve = original  # type: ignore[attr-defined]

    @staticmethod
    def wrap(module: ModuleType) -> None:
        original = module.__dict__.get("serve")
        if original is None or hasattr(original, "__openapi_original__"):
            return
        checked = _checking(original)
        module.serve = checked  # type: ignore[attr-defined]
        # Modules that took the function itself (`from callerauth.http import serve`) before we got here.
        for other in list(sys.modules.values()):
            if getattr(other, "__dict__", {}).get("serve") is original:
                other.serve = checked  # type: ignore[attr-defined]

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != HTTP_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _WrappingLoader(spec.loader, self.wrap)
                return spec
        return None


class _WrappingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, wrap: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._wrap = wrap

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._wrap(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename...: the real loader's
        return getattr(self._loader, name)


_WRAPPER = _ServeWrapper()


# ------------------------------------------------------------------------------------------ pytest hooks


def pytest_configure(config: pytest.Config) -> None:
    _WRAPPER.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    _WRAPPER.uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _RECORDER.current = item.nodeid
    try:
        return (yield)
    finally:
        _RECORDER.current = None
        # Answers after the fixture below had looked (a fixture torn down later): they fail the session.
        _RECORDER.orphans.extend((item.nodeid, v) for v in _RECORDER.take(item.nodeid))


@pytest.fixture(autouse=True)
def _openapi_conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails, at teardown, the test that produced a response docs/openapi.yaml does not document."""
    yield
    violations = _RECORDER.take(request.node.nodeid)
    if not violations:
        return
    lines = "\n".join(f"  {v}" for v in violations[:20])
    more = f"\n  … and {len(violations) - 20} more" if len(violations) > 20 else ""
    message = f"{len(violations)} response(s) do not conform to docs/openapi.yaml:\n{lines}{more}"
    if request.node.get_closest_marker("xfail") is not None:
        warnings.warn(OpenAPIConformanceWarning(message), stacklevel=1)
        return
    pytest.fail(message, pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts = _RECORDER.counts
    terminalreporter.write_line(
        f"openapi conformance: {counts['checked']} responses checked against their operation in "
        f"docs/openapi.yaml, {counts['generic']} from test-made route tables checked by status, "
        f"{counts['skipped']} test-made success bodies not checked"
    )
    if _RECORDER.orphans:
        terminalreporter.section("openapi conformance: violations outside a test's teardown", red=True)
        for where, violation in _RECORDER.orphans:
            terminalreporter.write_line(f"{where}: {violation}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _RECORDER.orphans and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

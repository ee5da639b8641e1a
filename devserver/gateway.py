"""A local API Gateway REST API (Lambda proxy integration) as a WSGI app.

It builds the same version 1.0 proxy event that API Gateway sends, calls the handler in-process, and
translates the handler's answer the way API Gateway does, including its failure modes: unknown routes
answer the MISSING_AUTHENTICATION_TOKEN gateway response, a crash or a malformed answer is a 502
``{"message": "Internal server error"}``, and more than 10 MB of body is a 413.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from devserver.events import rest_proxy_event
from devserver.lambdas import ACCOUNT_ID, Handler, make_context
from devserver.template import GatewayResponse, Route

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
INTEGRATION_TIMEOUT_SECONDS = 29.0  # API Gateway's default integration timeout
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# What API Gateway answers when the template does not customise a response type.
_DEFAULTS: dict[str, tuple[int, str, str | None]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token", "MissingAuthenticationTokenException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", None),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", None),
    "LAMBDA_ERROR": (502, "Internal server error", "InternalServerErrorException"),
}
# Response types that fall back to a DEFAULT_4XX / DEFAULT_5XX customisation, like API Gateway.
_FAMILY = {
    "MISSING_AUTHENTICATION_TOKEN": "DEFAULT_4XX",
    "REQUEST_TOO_LARGE": "DEFAULT_4XX",
    "INTEGRATION_TIMEOUT": "DEFAULT_5XX",
    "LAMBDA_ERROR": "DEFAULT_5XX",
}
# Headers API Gateway does not pass through from a proxy response as they are: it renames them.
_REMAPPED = {"authorization", "connection", "content-length", "date", "server", "www-authenticate"}
_DROPPED = {"transfer-encoding"}


class MalformedResponse(Exception):
    """The handler answered something that is not a Lambda proxy response."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class _Call:
    """Per-request facts that the event, the gateway responses and the log all use."""

    request: Request
    request_id: str
    extended_request_id: str
    started: datetime
    route: Route | None = None


class Gateway:
    """WSGI app: ``Gateway(routes, handler_for, responses)(environ, start_response)``.

    ``handler_for(route)`` is called lazily, on the first request for that function (a cold start); if it
    raises, the request is a 502 and the next request tries again. Calls to one function are serialised,
    as one warm Lambda container would serve them.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        handler_for: Callable[[Route], Handler],
        responses: Mapping[str, GatewayResponse] | None = None,
        *,
        stage: str = "Prod",
        api_id: str = "1234567890",
        log: Callable[[str], None] = _stderr,
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
    ) -> None:
        self.routes = list(routes)
        self.responses = dict(responses or {})
        self.stage, self.api_id, self.log = stage, api_id, log
        self.integration_timeout = integration_timeout
        self._handler_for = handler_for
        self._handlers: dict[str, Handler] = {}
        self._locks = {route.function_logical_id: threading.Lock() for route in self.routes}

    # ------------------------------------------------------------------------------------------- WSGI

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        began = time.perf_counter()
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        call = _Call(request, str(uuid.uuid4()), _extended_id(), datetime.now(UTC))
        response = self._respond(call)
        response.headers["x-amzn-RequestId"] = call.request_id
        response.headers["x-amz-apigw-id"] = call.extended_request_id
        elapsed_ms = (time.perf_counter() - began) * 1000
        self.log(f"{_printable(request.method)} {_printable(request.path)} {response.status_code} {elapsed_ms:.1f}ms")
        return response(environ, start_response)

    def _respond(self, call: _Call) -> Response:
        request = call.request
        try:
            body = request.get_data(cache=True)
        except RequestEntityTooLarge:
            return self.gateway_response("REQUEST_TOO_LARGE", call)
        matched = self.match(request.method, request.path)
        if matched is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", call)
        call.route, path_parameters = matched
        event = self.build_event(call, body, path_parameters)
        try:
            result, elapsed = self._invoke(call.route, event)
            response = self.translate(result)
        except Exception:  # whatever the handler did, API Gateway answers 502
            self.log(
                f"{_printable(request.method)} {_printable(request.path)}: Lambda error (request {call.request_id})\n"
                + traceback.format_exc().rstrip()
            )
            return self.gateway_response("LAMBDA_ERROR", call)
        # A function cannot be interrupted in-process; judge afterwards what the cloud would have done.
        if elapsed > call.route.timeout_seconds and call.route.timeout_seconds < self.integration_timeout:
            self.log(f"{_printable(request.method)} {_printable(request.path)}: Task timed out after {elapsed:.2f} s")
            return self.gateway_response("LAMBDA_ERROR", call)
        if elapsed > self.integration_timeout:
            return self.gateway_response("INTEGRATION_TIMEOUT", call)
        return response

    # ------------------------------------------------------------------------------------- routing

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for this request; a literal resource wins over one with path parameters."""
        candidates = [
            (route, params)
            for route in self.routes
            if (params := route.match_path(path)) is not None and route.allows(method)
        ]
        candidates.sort(key=lambda c: (bool(c[1]), c[0].method == "ANY"))
        return candidates[0] if candidates else None

    def _invoke(self, route: Route, event: dict[str, Any]) -> tuple[Any, float]:
        """The handler's JSON result and how long it ran (not counting a cold start or the queue)."""
        with self._locks[route.function_logical_id]:
            handler = self._handlers.get(route.function_logical_id)
            if handler is None:
                handler = self._handlers[route.function_logical_id] = self._handler_for(route)
            context = make_context(
                route.function_logical_id, timeout_seconds=route.timeout_seconds, memory_limit_in_mb=route.memory_mb
            )
            started = time.monotonic()
            result = handler(event, context)
            elapsed = time.monotonic() - started
        # The Lambda runtime serialises the result; what JSON cannot carry never reaches API Gateway.
        return json.loads(json.dumps(result)), elapsed

    # ------------------------------------------------------------------------------------- the event

    def build_event(self, call: _Call, body: bytes, path_parameters: Mapping[str, str]) -> dict[str, Any]:
        request, route = call.request, call.route
        assert route is not None
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        client_ip = request.remote_addr or "127.0.0.1"
        forwarded = {
            "X-Forwarded-For": f"{headers['X-Forwarded-For']}, {client_ip}"
            if "X-Forwarded-For" in headers
            else client_ip,
            "X-Forwarded-Port": str(request.environ.get("SERVER_PORT", "")),
            "X-Forwarded-Proto": request.scheme,
            "X-Amzn-Trace-Id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}",
        }
        for name, value in forwarded.items():
            headers[name] = value
            multi_headers[name] = [value]
        query = request.args
        body_text, is_base64 = _event_body(body)
        epoch_ms = int(call.started.timestamp() * 1000)
        resource_path = route.path
        return rest_proxy_event(
            request.method,
            request.path,
            resource=resource_path,
            headers=headers,
            multi_headers=multi_headers,
            query={k: query.getlist(k) for k in query},
            path_parameters=path_parameters,
            body=body_text,
            is_base64=is_base64,
            source_ip=client_ip,
            request_id=call.request_id,
            stage=self.stage,
            context={
                "resourceId": hashlib.sha1(resource_path.encode()).hexdigest()[:6],  # noqa: S324 - an id
                "extendedRequestId": call.extended_request_id,
                "requestTime": _request_time(call.started),
                "accountId": ACCOUNT_ID,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "domainPrefix": request.host.split(".")[0].split(":")[0],
                "requestTimeEpoch": epoch_ms,
                "domainName": request.host,
                "apiId": self.api_id,
            },
            identity={
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": request.headers.get("User-Agent"),
                "user": None,
            },
        )

    # ---------------------------------------------------------------------------------- the response

    def translate(self, result: Any) -> Response:
        """A proxy-integration answer as an HTTP response; MalformedResponse when API Gateway would 502."""
        if not isinstance(result, dict):
            raise MalformedResponse(f"handler returned {type(result).__name__}, not an object")
        status = result.get("statusCode")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise MalformedResponse(f"statusCode {status!r} is not an HTTP status")
        body = result.get("body")
        if body is not None and not isinstance(body, str):
            raise MalformedResponse(f"body is {type(body).__name__}, not a string")
        is_base64 = result.get("isBase64Encoded", False)
        if is_base64 is not None and not isinstance(is_base64, bool):
            raise MalformedResponse("isBase64Encoded is not a boolean")
        if is_base64 and body is not None:
            try:
                payload = base64.b64decode(body, validate=True)
            except binascii.Error as exc:
                raise MalformedResponse("isBase64Encoded but body is not base64") from exc
        else:
            payload = (body or "").encode("utf-8")
        single = _header_map(result.get("headers"), multi=False)
        multi = _header_map(result.get("multiValueHeaders"), multi=True)
        # Both maps merge; for a name in both, only multiValueHeaders counts (as documented by AWS).
        multi_names = {name.lower() for name in multi}
        pairs = [(k, v[0]) for k, v in single.items() if k.lower() not in multi_names]
        pairs += [(k, value) for k, values in multi.items() for value in values]
        headers: list[tuple[str, str]] = []
        for name, value in pairs:
            lowered = name.lower()
            if lowered in _DROPPED:
                continue
            headers.append((f"x-amzn-Remapped-{name}" if lowered in _REMAPPED else name, value))
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        return Response(payload, status=status, headers=headers)

    def gateway_response(self, response_type: str, call: _Call) -> Response:
        """API Gateway's own answer for ``response_type``, with the template's customisation if any."""
        status, message, error_type = _DEFAULTS[response_type]
        custom = self.responses.get(response_type) or self.responses.get(_FAMILY[response_type])
        headers: list[tuple[str, str]] = []
        if error_type:
            headers.append(("x-amzn-ErrorType", error_type))
        if custom is None:
            headers.append(("Content-Type", "application/json"))
            return Response(json.dumps({"message": message}), status=status, headers=headers)
        headers += list(custom.headers.items())
        for name, expression in custom.mapped_headers.items():
            value = _mapped_value(expression, call.request)
            if value is not None:
                headers.append((name, value))
        if custom.templates:
            content_type = (
                "application/json" if "application/json" in custom.templates else next(iter(custom.templates))
            )
            body = self._render(custom.templates[content_type], call, response_type, message)
        else:
            content_type, body = "application/json", json.dumps({"message": message})
        headers.append(("Content-Type", content_type))
        return Response(body, status=custom.status_code or status, headers=headers)

    def _render(self, template: str, call: _Call, response_type: str, message: str) -> str:
        """Fill the ``$context`` variables that gateway response templates use; others stay as written."""
        request = call.request
        variables = {
            "error.message": message,
            "error.messageString": json.dumps(message),
            "error.responseType": response_type if response_type != "LAMBDA_ERROR" else "DEFAULT_5XX",
            "requestId": call.request_id,
            "extendedRequestId": call.extended_request_id,
            "path": f"/{self.stage}{request.path}",
            "resourcePath": call.route.path if call.route else "",
            "httpMethod": request.method,
            "stage": self.stage,
            "apiId": self.api_id,
            "accountId": ACCOUNT_ID,
            "domainName": request.host,
            "requestTime": _request_time(call.started),
            "requestTimeEpoch": str(int(call.started.timestamp() * 1000)),
            "identity.sourceIp": request.remote_addr or "",
            "identity.userAgent": request.headers.get("User-Agent", ""),
        }

        def substitute(m: re.Match[str]) -> str:
            return variables.get(m.group(1) or m.group(2), m.group(0))

        return re.sub(r"\$\{context\.([\w.]+)\}|\$context\.(\w+(?:\.\w+)*)", substitute, template)


# ------------------------------------------------------------------------------------------- helpers


def _event_body(body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _header_map(value: Any, *, multi: bool) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedResponse("headers must be an object")
    out: dict[str, list[str]] = {}
    for name, raw in value.items():
        values = raw if multi else [raw]
        if not isinstance(values, list):
            raise MalformedResponse(f"multiValueHeaders[{name!r}] is not a list")
        out[name] = [_header_value(name, v) for v in values]
    return out


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedResponse(f"header {name!r} has a {type(value).__name__} value")


def _mapped_value(expression: str, request: Request) -> str | None:
    for prefix, source in (("method.request.header.", request.headers), ("method.request.querystring.", request.args)):
        if expression.startswith(prefix):
            return source.get(expression[len(prefix) :])
    return None


def _extended_id() -> str:
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii")[:14] + "="


def _request_time(moment: datetime) -> str:
    return f"{moment:%d}/{_MONTHS[moment.month - 1]}/{moment:%Y:%H:%M:%S} +0000"


def _printable(text: str) -> str:
    """A request's own words in one log line: a decoded `%0a` in a path must not forge a line of its own."""
    return text.encode("unicode_escape").decode("ascii")

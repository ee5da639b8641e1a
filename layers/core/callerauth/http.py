"""API Gateway (REST, proxy) events in, the contract's JSON answers out: decoding, CORS, errors."""

import base64
import binascii
import json
import re
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qsl

from callerauth import errors
from callerauth.config import ConfigError, Settings
from callerauth.fields import FIELD_OF_ALIAS
from callerauth.observability import logger, record
from callerauth.refusals import Refusal

if TYPE_CHECKING:
    from callerauth.actions import Services

MAX_BODY_BYTES = 8 * 1024
# The charsets a browser or a Twilio client sends; any other (EBCDIC, UTF-16, ...) is refused, not guessed at.
CHARSETS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "iso-8859-1": "latin-1",
    "latin1": "latin-1",
    "latin-1": "latin-1",
}
BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, X-Flex-Token"


class Request(NamedTuple):
    method: str
    path: str
    fields: dict[str, str]
    headers: dict[str, str]
    source_ip: str
    request_id: str
    # The request's one log line: actions add the masked destination, the agent and the outcome.
    log: dict[str, Any]

    @property
    def token(self) -> str:
        return self.fields.get("token") or self.headers.get("x-flex-token", "")


class Reply(NamedTuple):
    status: int
    body: dict[str, Any]


class Runtime(Protocol):
    """What a handler needs from its container: settings first (for CORS), then the adapters."""

    def settings(self) -> Settings: ...
    def services(self) -> "Services": ...


Action = Callable[[Request, "Services"], Reply]
Routes = Mapping[str, Mapping[str, Action]]


def serve(event: Mapping[str, Any], context: Any, routes: Routes, runtime: Runtime) -> dict[str, Any]:
    """Answer one API Gateway event: route, decode, run the action, encode; never raise."""
    started = time.perf_counter()
    request_id = str(getattr(context, "aws_request_id", "") or "local")
    headers = _lower_keys(event.get("headers"))
    method = str(event.get("httpMethod") or "").upper()
    path = str(event.get("resource") or event.get("path") or "")
    # Both ids: Lambda's (this log line) and API Gateway's (its access log), to follow one request across them.
    api_request_id = (event.get("requestContext") or {}).get("requestId")
    log: dict[str, Any] = {"method": method, "route": path, "request_id": request_id, "api_request_id": api_request_id}
    try:
        cors = cors_headers(runtime.settings().allowed_origins, headers.get("origin"))
    except Exception as exc:  # no settings, no allow-list: still answer in the contract's shape
        problem = str(exc) if isinstance(exc, ConfigError) else type(exc).__name__
        logger.error("configuration error", extra={**log, "problem": problem})
        return _encode(errors.internal_error(), cors_headers(("*",), None))
    try:
        actions = routes.get(path)
        if actions is None:
            raise errors.not_found()
        if method == "OPTIONS":
            log["status"] = 204
            return {"statusCode": 204, "headers": cors, "body": ""}
        action = actions.get(method)
        if action is None:
            log |= {"status": 405, "error": "method_not_allowed"}
            return _encode(errors.method_not_allowed(), cors | {"Allow": ", ".join([*actions, "OPTIONS"])})
        request = decode(event, method, path, headers, request_id, log)
        try:
            reply = action(request, runtime.services())
        except Refusal as refusal:
            raise errors.api_error(refusal) from None
        log["status"] = reply.status
        return {"statusCode": reply.status, "headers": cors, "body": json.dumps(reply.body)}
    except errors.ApiError as exc:
        log |= {"status": exc.status, "error": exc.code}
        if exc.reason:
            log["reason"] = exc.reason
        return _encode(exc, cors)
    except ConfigError as exc:
        log |= {"status": 500, "error": "internal_error", "problem": str(exc)}
        logger.error("configuration error", extra=log)
        return _encode(errors.internal_error(), cors)
    except Exception as exc:  # the contract promises one error shape, even for our own bugs
        # Frames only: an exception's message can carry a number or a Twilio URL with one.
        log |= {
            "status": 500,
            "error": "internal_error",
            "exception": type(exc).__name__,
            "frames": traceback.format_tb(exc.__traceback__)[-5:],
        }
        logger.error("unhandled exception", extra=log)
        return _encode(errors.internal_error(), cors)
    finally:
        log["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        record(log)


def cors_headers(allowed_origins: Iterable[str], origin: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        # Browsers may reuse a preflight for 10 minutes: one OPTIONS (and Lambda call) per agent, not per request.
        "Access-Control-Max-Age": "600",
    }
    allowed = tuple(allowed_origins)
    if "*" in allowed:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Vary"] = "Origin"
        if origin and origin in allowed:
            headers["Access-Control-Allow-Origin"] = origin
    return headers


def decode(
    event: Mapping[str, Any], method: str, path: str, headers: dict[str, str], request_id: str, log: dict[str, Any]
) -> Request:
    if method == "GET":
        pairs = _query_pairs(event)
        if any(FIELD_OF_ALIAS.get(key) == "token" for key, _ in pairs):
            # URLs land in access logs, proxies and browser history: a token must never travel in one.
            raise errors.invalid_parameter(
                "Invalid parameter 'Token': send the agent's Flex token in the X-Flex-Token header, never in a URL."
            )
    else:
        pairs = _body_pairs(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-type", ""))
    identity = (event.get("requestContext") or {}).get("identity") or {}
    source_ip = str(identity.get("sourceIp") or "unknown")
    return Request(method, path, _canonical(pairs), headers, source_ip, request_id, log)


def _encode(error: errors.ApiError, cors: dict[str, str]) -> dict[str, Any]:
    headers = dict(cors)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return {"statusCode": error.status, "headers": headers, "body": json.dumps(error.body())}


def _lower_keys(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _query_pairs(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    multi = event.get("multiValueQueryStringParameters") or {}
    if multi:
        return [(k, v) for k, values in multi.items() for v in values]
    return list((event.get("queryStringParameters") or {}).items())


def _body_pairs(body: str | None, is_base64: bool, content_type: str) -> list[tuple[str, Any]]:
    if not body:
        return []
    if len(body) > MAX_BODY_BYTES * 2:  # cheap early refusal, before decoding anything
        raise errors.body_too_large()
    try:
        raw = base64.b64decode(body, validate=True) if is_base64 else body.encode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        raise errors.malformed_body("The body is not valid base64.") from None
    if len(raw) > MAX_BODY_BYTES:
        raise errors.body_too_large()
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    charset = _charset(params)
    if (
        media_type == "application/json"
        or media_type.endswith("+json")
        or (not media_type and raw.lstrip()[:1] == b"{")
    ):
        return _json_pairs(raw)
    if media_type in ("application/x-www-form-urlencoded", ""):
        return _form_pairs(raw, charset)
    raise errors.malformed_body("Unsupported Content-Type: send application/x-www-form-urlencoded or JSON.")


def _charset(params: str) -> str:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = CHARSETS.get(value.strip().strip('"').lower() or "utf-8")
            if charset is None:
                raise errors.malformed_body("Unsupported charset in Content-Type: send UTF-8.")
            return charset
    return "utf-8"


def _form_pairs(raw: bytes, charset: str) -> list[tuple[str, Any]]:
    try:
        text = raw.decode(charset)
        if BAD_PERCENT.search(text):
            raise errors.malformed_body("The form body has bad percent-encoding.")
        return parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
    except LookupError:
        raise errors.malformed_body("Unsupported charset in Content-Type.") from None
    except UnicodeError:
        raise errors.malformed_body(f"The form body is not valid {charset}.") from None


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, so that a repeated key is seen, not silently dropped."""


def _json_pairs(raw: bytes) -> list[tuple[str, Any]]:
    try:
        document = json.loads(raw, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        raise errors.malformed_body("The body is not valid JSON.") from None
    if not isinstance(document, _Pairs):
        raise errors.malformed_body("The JSON body must be an object.")
    return document


def _canonical(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Known fields under their canonical names; unknown fields ignored, conflicting repeats refused."""
    fields: dict[str, str] = {}
    for key, value in pairs:
        name = FIELD_OF_ALIAS.get(key)
        if name is None:
            continue
        if not isinstance(value, str) or not _is_utf8(value):
            raise errors.invalid_parameter(f"Invalid parameter '{key}': expected a string.")
        if name in fields and fields[name] != value:
            raise errors.invalid_parameter(f"Invalid parameter '{key}': given more than once.")
        fields[name] = value
    return fields


def _is_utf8(value: str) -> bool:
    """False for a lone surrogate (JSON allows the escape \\ud800): such text cannot be hashed or logged."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

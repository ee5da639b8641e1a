"""API Gateway REST proxy events (payload format 1.0): one builder, for the gateway emulator, tests and bench.

What API Gateway itself does with a request (nulls for absent maps, the last of repeated query keys in
``queryStringParameters``, the stage in ``requestContext.path``) is done here, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Every key of `sam local generate-event apigateway aws-proxy`.
REST_PROXY_KEYS = frozenset(
    {
        "resource",
        "path",
        "httpMethod",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "requestContext",
        "body",
        "isBase64Encoded",
    }
)


def rest_proxy_event(  # noqa: PLR0913 - keyword-only, each with a default: the parts of one request
    method: str,
    path: str,
    *,
    resource: str | None = None,
    headers: Mapping[str, str] | None = None,
    multi_headers: Mapping[str, Sequence[str]] | None = None,
    query: Mapping[str, str | Sequence[str]] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    body: str | None = None,
    is_base64: bool = False,
    source_ip: str = "127.0.0.1",
    request_id: str = "local",
    stage: str = "Prod",
    context: Mapping[str, Any] | None = None,
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event API Gateway's proxy integration sends for one request.

    ``resource`` is the route's path (``path`` unless a route has path parameters); ``headers`` one value a
    name (``multi_headers``, all of them, defaults to those); ``query`` a value or the list of values a key;
    ``context`` and ``identity`` add to (or override) ``requestContext`` and its ``identity``.
    """
    resource = resource or path
    single_headers = dict(headers or {})
    all_headers = (
        {name: list(values) for name, values in multi_headers.items()}
        if multi_headers is not None
        else {name: [value] for name, value in single_headers.items()}
    )
    all_query = {key: [value] if isinstance(value, str) else list(value) for key, value in (query or {}).items()}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": all_headers or None,
        # API Gateway sends null, not {}, when there are none; for repeated keys the last value wins.
        "queryStringParameters": {key: values[-1] for key, values in all_query.items()} or None,
        "multiValueQueryStringParameters": all_query or None,
        "pathParameters": dict(path_parameters or {}) or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            **(context or {}),
            "identity": {"sourceIp": source_ip, **(identity or {})},
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }

"""Read what the dev server needs out of the SAM template: tables, API routes and gateway responses.

The template stays the single source of truth, so the local stack cannot drift from what is deployed.
Only literal values are used; anything behind an intrinsic function (``!Ref``, ``!Sub``...) is ignored or,
where it cannot be ignored (a key schema), refused with a clear error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Template = dict[str, Any]

SAM_DEFAULT_TIMEOUT = 3.0  # SAM's default when neither the function nor Globals set Timeout
DEFAULT_MEMORY_MB = 256  # the project's Globals value; SAM's own default (128) is not what we deploy


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation short tags instead of refusing them."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def parse_template(text: str) -> Template:
    """Parse SAM/CloudFormation YAML (short tags become their long ``Fn::`` form)."""
    data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ValueError("not a CloudFormation template: no Resources mapping")
    return data


def load_template(path: Path) -> Template:
    return parse_template(path.read_text(encoding="utf-8"))


def is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return isinstance(key, str) and (key in ("Ref", "Condition") or key.startswith("Fn::"))


def _resources(template: Template, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template.get("Resources", {}).items():
        if isinstance(resource, dict) and resource.get("Type") == resource_type:
            yield logical_id, resource.get("Properties") or {}


def _literal(value: Any, where: str) -> Any:
    """Refuse values that only CloudFormation could resolve: a local table cannot guess them."""
    if is_intrinsic(value):
        raise ValueError(f"{where}: intrinsic function {value!r} cannot be resolved locally")
    if isinstance(value, dict):
        return {k: _literal(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------------------------------------- tables

_GSI_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")
_LSI_KEYS = ("IndexName", "KeySchema", "Projection")


@dataclass(frozen=True)
class TableSpec:
    """``create_table_kwargs`` go straight to boto3 (add ``TableName``); TTL needs a separate call."""

    logical_id: str
    create_table_kwargs: dict[str, Any]
    ttl_attribute: str | None = None


def table_specs(template: Template) -> dict[str, TableSpec]:
    specs: dict[str, TableSpec] = {}
    for logical_id, props in _resources(template, "AWS::DynamoDB::Table"):
        where = f"{logical_id}.Properties"
        billing = _literal(props.get("BillingMode", "PROVISIONED"), f"{where}.BillingMode")
        kwargs: dict[str, Any] = {
            "AttributeDefinitions": _literal(props["AttributeDefinitions"], f"{where}.AttributeDefinitions"),
            "KeySchema": _literal(props["KeySchema"], f"{where}.KeySchema"),
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = _literal(
                props.get("ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}),
                f"{where}.ProvisionedThroughput",
            )
        # CloudFormation accepts index properties CreateTable does not (ContributorInsightsSpecification).
        for prop, keys in (("GlobalSecondaryIndexes", _GSI_KEYS), ("LocalSecondaryIndexes", _LSI_KEYS)):
            if prop in props:
                indexes = _literal(props[prop], f"{where}.{prop}")
                kwargs[prop] = [{k: index[k] for k in keys if k in index} for index in indexes]
        stream = props.get("StreamSpecification")
        if isinstance(stream, dict) and "StreamViewType" in stream:
            view = _literal(stream["StreamViewType"], f"{where}.StreamSpecification")
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
        ttl = props.get("TimeToLiveSpecification")
        ttl_attribute = None
        if isinstance(ttl, dict) and ttl.get("Enabled") is True and isinstance(ttl.get("AttributeName"), str):
            ttl_attribute = ttl["AttributeName"]
        specs[logical_id] = TableSpec(logical_id, kwargs, ttl_attribute)
    return specs


def table_env_vars(template: Template) -> dict[str, str]:
    """Environment variable name → table logical id, for every ``VAR: !Ref SomeTable`` in the functions."""
    tables = set(table_specs(template))
    found: dict[str, str] = {}
    blocks = [(template.get("Globals") or {}).get("Function") or {}]
    blocks += [props for _, props in _resources(template, "AWS::Serverless::Function")]
    for block in blocks:
        variables = ((block.get("Environment") or {}).get("Variables")) or {}
        for name, value in variables.items():
            if isinstance(value, dict) and value.get("Ref") in tables:
                found[name] = value["Ref"]
    return found


def literal_global_env(template: Template) -> dict[str, str]:
    """``Globals.Function`` environment variables with literal values (``TWILIO_TIMEOUT_SECONDS: "5"``).

    Values behind ``!Ref`` are parameters or resources; the handlers' own defaults and the dev stack stand in.
    """
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    variables = ((globals_.get("Environment") or {}).get("Variables")) or {}
    return {
        name: str(value)
        for name, value in variables.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    }


# ---------------------------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    path: str  # as in the template, e.g. "/start-verify" or "/items/{id}"
    method: str  # upper case; "ANY" matches every method
    function_logical_id: str
    code_uri: str
    handler: str
    timeout_seconds: float = SAM_DEFAULT_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = ""
        for part in re.split(r"(\{[^}]+\})", self.path.rstrip("/") or "/"):
            if part.startswith("{") and part.endswith("+}"):
                regex += f"(?P<{_group(part[1:-2])}>.+)"
            elif part.startswith("{"):
                regex += f"(?P<{_group(part[1:-1])}>[^/]+)"
            else:
                regex += re.escape(part)
        object.__setattr__(self, "_pattern", re.compile(regex + "/?"))  # API Gateway ignores a trailing /

    @property
    def param_names(self) -> list[str]:
        return [name.rstrip("+") for name in re.findall(r"\{([^}]+)\}", self.path)]

    def match_path(self, path: str) -> dict[str, str] | None:
        """Path parameters (possibly empty) when ``path`` is this route's resource, else None."""
        m = self._pattern.fullmatch(path)
        if m is None:
            return None
        return dict(zip(self.param_names, m.groups(), strict=True))

    def allows(self, method: str) -> bool:
        return self.method == "ANY" or self.method == method.upper()


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


def _function_setting(props: Mapping[str, Any], globals_: Mapping[str, Any], key: str) -> Any:
    value = props.get(key, globals_.get(key))
    return None if is_intrinsic(value) else value


def api_routes(template: Template) -> list[Route]:
    """One Route per ``Type: Api`` event (REST API, proxy integration); HttpApi and others are skipped."""
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    routes: list[Route] = []
    for logical_id, props in _resources(template, "AWS::Serverless::Function"):
        for event in (props.get("Events") or {}).values():
            if not isinstance(event, dict) or event.get("Type") != "Api":
                continue
            event_props = event.get("Properties") or {}
            code_uri = _function_setting(props, globals_, "CodeUri")
            handler = _function_setting(props, globals_, "Handler")
            if not isinstance(code_uri, str) or not isinstance(handler, str):
                raise ValueError(f"{logical_id}: CodeUri and Handler must be literal strings for local runs")
            timeout = _function_setting(props, globals_, "Timeout")
            memory = _function_setting(props, globals_, "MemorySize")
            routes.append(
                Route(
                    path=str(event_props["Path"]),
                    method=str(event_props.get("Method", "any")).upper(),
                    function_logical_id=logical_id,
                    code_uri=code_uri,
                    handler=handler,
                    timeout_seconds=float(timeout) if isinstance(timeout, int | float) else SAM_DEFAULT_TIMEOUT,
                    memory_mb=int(memory) if isinstance(memory, int) else DEFAULT_MEMORY_MB,
                )
            )
    return routes


def layer_dirs(template: Template) -> list[str]:
    """ContentUri of every layer: with a python BuildMethod, its top level is what ends up on sys.path."""
    return [
        str(props["ContentUri"])
        for _, props in _resources(template, "AWS::Serverless::LayerVersion")
        if isinstance(props.get("ContentUri"), str)
    ]


# ------------------------------------------------------------------------------------- gateway responses


@dataclass(frozen=True)
class GatewayResponse:
    response_type: str
    status_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # static values, quotes stripped
    mapped_headers: dict[str, str] = field(default_factory=dict)  # e.g. "method.request.header.Origin"
    templates: dict[str, str] = field(default_factory=dict)  # content type → body template


def _gateway_response(
    response_type: str, status: Any, headers: Mapping[str, Any], templates: Mapping[str, Any]
) -> GatewayResponse:
    static: dict[str, str] = {}
    mapped: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == "'":
            static[name] = value[1:-1]
        elif isinstance(value, str):
            mapped[name] = value
    return GatewayResponse(
        response_type=response_type,
        status_code=int(status) if isinstance(status, int | str) and str(status).isdigit() else None,
        headers=static,
        mapped_headers=mapped,
        templates={k: v for k, v in templates.items() if isinstance(v, str)},
    )


def gateway_responses(template: Template) -> dict[str, GatewayResponse]:
    """Customised gateway responses by type, from Serverless::Api and raw GatewayResponse resources."""
    found: dict[str, GatewayResponse] = {}
    for _, props in _resources(template, "AWS::Serverless::Api"):
        for response_type, spec in (props.get("GatewayResponses") or {}).items():
            params = spec.get("ResponseParameters") or {}
            found[response_type] = _gateway_response(
                response_type, spec.get("StatusCode"), params.get("Headers") or {}, spec.get("ResponseTemplates") or {}
            )
    for _, props in _resources(template, "AWS::ApiGateway::GatewayResponse"):
        prefix = "gatewayresponse.header."
        headers = {
            k[len(prefix) :]: v for k, v in (props.get("ResponseParameters") or {}).items() if k.startswith(prefix)
        }
        response_type = str(props["ResponseType"])
        found[response_type] = _gateway_response(
            response_type, props.get("StatusCode"), headers, props.get("ResponseTemplates") or {}
        )
    return found

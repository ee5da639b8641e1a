"""template.yaml's abuse resistance: the limits reach the functions, AgentAuth=none is never an open relay by
accident, the API has one logged and throttled stage, the hashing secret outlives the stack, the alarms can fire.

The Rules section is checked by evaluating it here, with a small evaluator of the rule functions it uses, so that
a rule that is removed, inverted or weakened fails a test (CloudFormation itself only runs it at deploy time).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from devserver.template import Template, load_template

ROOT = Path(__file__).resolve().parents[2]

# parameter -> (environment variable or None, default as CloudFormation holds it)
NEW_PARAMETERS: dict[str, tuple[str | None, str]] = {
    "AllowedCountries": ("ALLOWED_COUNTRIES", ""),
    "AllowedChannels": ("ALLOWED_CHANNELS", "sms"),
    "MaxSendsPerHour": ("MAX_SENDS_PER_HOUR", "1000"),
    "MaxSendsPerDay": ("MAX_SENDS_PER_DAY", "10000"),
    "DeploymentCounterShards": ("DEPLOYMENT_COUNTER_SHARDS", "8"),
    "AllowedSourceCidrs": ("ALLOWED_SOURCE_CIDRS", ""),
    "AcknowledgePublicApi": (None, "no"),
    "SupervisorRoles": ("SUPERVISOR_ROLES", "supervisor,admin"),
    "MaxRefusalsPerSourcePerMinute": ("MAX_REFUSALS_PER_SOURCE_PER_MINUTE", "30"),
}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(ROOT / "template.yaml")


def _parameters(template: Template) -> dict[str, dict[str, Any]]:
    return template["Parameters"]


def _defaults(template: Template) -> dict[str, str]:
    """Every parameter's default as the string CloudFormation would pass (it has no other types)."""
    return {name: str(spec.get("Default", "")) for name, spec in _parameters(template).items()}


def _global_env(template: Template) -> dict[str, Any]:
    return template["Globals"]["Function"]["Environment"]["Variables"]


# ------------------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(("parameter", "expected"), NEW_PARAMETERS.items(), ids=list(NEW_PARAMETERS))
def test_each_new_parameter_has_its_default_and_reaches_the_functions(
    template: Template, parameter: str, expected: tuple[str | None, str]
) -> None:
    # Given the parameter / Then it exists with its default and a description
    variable, default = expected
    spec = _parameters(template)[parameter]
    assert str(spec["Default"]) == default
    assert spec.get("Description")
    # And every function sees it under its environment variable (or none sees it: AcknowledgePublicApi)
    env = _global_env(template)
    refs = {name for name, value in env.items() if value == {"Ref": parameter}}
    assert refs == ({variable} if variable else set())


def test_no_function_overrides_the_global_environment_of_the_new_parameters(template: Template) -> None:
    # Given the functions' own environment blocks / Then none replaces a global variable of this issue
    names = {variable for variable, _ in NEW_PARAMETERS.values() if variable}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        own = ((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        assert names.isdisjoint(own), logical_id


def test_env_example_lists_every_setting_the_stack_passes(template: Template) -> None:
    # Given the variables the functions get from stack parameters / Then .env.example names each of them
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    passed = {
        name
        for name, value in _global_env(template).items()
        if isinstance(value, dict) and value.get("Ref") in _parameters(template)
    }
    assert passed - listed == set()
    assert "ALLOWED_COUNTRY_CODES" not in listed


def test_allowed_countries_replaces_allowed_country_codes(template: Template) -> None:
    assert "AllowedCountryCodes" not in _parameters(template)
    assert "ALLOWED_COUNTRY_CODES" not in _global_env(template)


def test_the_budgets_are_numbers_of_at_least_one(template: Template) -> None:
    for name in ("MaxSendsPerHour", "MaxSendsPerDay", "MaxRefusalsPerSourcePerMinute"):
        spec = _parameters(template)[name]
        assert spec["Type"] == "Number" and spec["MinValue"] >= 1, name
    # And the budgets are wider than the breaker in front of them, as defaults
    defaults = {k: int(v) for k, v in _defaults(template).items() if k.startswith("MaxSendsPer")}
    assert defaults["MaxSendsPerMinute"] < defaults["MaxSendsPerHour"] < defaults["MaxSendsPerDay"]


def test_allowed_source_cidrs_is_a_string_so_that_rules_can_test_it(template: Template) -> None:
    assert _parameters(template)["AllowedSourceCidrs"]["Type"] == "String"
    assert _parameters(template)["AcknowledgePublicApi"]["AllowedValues"] == ["no", "yes"]


def _matches(template: Template, parameter: str, value: str) -> bool:
    """CloudFormation's AllowedPattern: the whole value must match (Java regex; these use no Java-only syntax)."""
    return re.fullmatch(_parameters(template)[parameter]["AllowedPattern"], value) is not None


@pytest.mark.parametrize(
    ("parameter", "value", "allowed"),
    [
        ("AllowedCountries", "", True),
        ("AllowedCountries", "US", True),
        ("AllowedCountries", "US,CA,GB", True),
        ("AllowedCountries", "us", False),
        ("AllowedCountries", "US, CA", False),
        ("AllowedCountries", "+1,+44", False),  # the old parameter's calling codes
        ("AllowedCountries", "USA", False),
        ("AllowedCountries", "US,", False),
        ("AllowedChannels", "sms", True),
        ("AllowedChannels", "sms,call,email,whatsapp", True),
        ("AllowedChannels", "", False),
        ("AllowedChannels", "sms,fax", False),
        ("AllowedChannels", "sms, call", False),
        ("AllowedSourceCidrs", "", True),
        ("AllowedSourceCidrs", "203.0.113.0/24", True),
        ("AllowedSourceCidrs", "203.0.113.7/32,198.51.100.0/22", True),
        ("AllowedSourceCidrs", "2001:db8::/32", True),
        ("AllowedSourceCidrs", "203.0.113.0/24,2001:db8:0:1::/64,::1/128", True),
        ("AllowedSourceCidrs", "203.0.113.7", False),  # no prefix length
        ("AllowedSourceCidrs", "0.0.0.0/0", False),  # "any" is the empty list
        ("AllowedSourceCidrs", "::/0", False),
        ("AllowedSourceCidrs", "203.0.113.0/33", False),
        ("AllowedSourceCidrs", "256.0.113.0/24", False),
        ("AllowedSourceCidrs", "203.0.113.0/24, 198.51.100.0/22", False),  # Split would keep the blank
        ("AllowedSourceCidrs", "203.0.113.0/24,", False),
        ("AllowedSourceCidrs", "2001:db8::/129", False),
        ("SupervisorRoles", "supervisor,admin", True),
        ("SupervisorRoles", "wfo.full_access", True),
        ("SupervisorRoles", "", False),
        ("SupervisorRoles", "supervisor, admin", False),
    ],
)
def test_allowed_patterns(template: Template, parameter: str, value: str, allowed: bool) -> None:
    assert _matches(template, parameter, value) is allowed


def test_every_default_satisfies_its_own_constraints(template: Template) -> None:
    # Given each parameter / Then its default is a value CloudFormation would accept
    for name, spec in _parameters(template).items():
        default = spec.get("Default")
        if "AllowedPattern" in spec:
            assert _matches(template, name, str(default)), name
        if "AllowedValues" in spec:
            assert default in spec["AllowedValues"], name
        if "MinValue" in spec:
            assert default >= spec["MinValue"], name
        if "MaxValue" in spec:
            assert default <= spec["MaxValue"], name


# ------------------------------------------------------------------------------------------------ rules

Value = str | bool | list[str]


def _evaluate(node: Any, parameters: Mapping[str, str]) -> Value:
    """The rule functions this template uses, as CloudFormation defines them; anything else fails loudly."""
    if isinstance(node, str | bool):
        return node
    if isinstance(node, list):
        return [str(_evaluate(item, parameters)) for item in node]
    assert isinstance(node, dict) and len(node) == 1, f"not a rule function: {node!r}"
    ((function, args),) = node.items()
    if function == "Ref":
        return parameters[args]
    if function == "Fn::Equals":
        left, right = (_evaluate(arg, parameters) for arg in args)
        return left == right
    if function == "Fn::Not":
        (arg,) = args
        return not _truth(_evaluate(arg, parameters))
    if function == "Fn::And":
        return all(_truth(_evaluate(arg, parameters)) for arg in args)
    if function == "Fn::Or":
        return any(_truth(_evaluate(arg, parameters)) for arg in args)
    if function == "Fn::Contains":
        haystack, needle = (_evaluate(arg, parameters) for arg in args)
        assert isinstance(haystack, list)
        return needle in haystack
    raise AssertionError(f"rule function {function} has no evaluator here: add one")


def _truth(value: Value) -> bool:
    assert isinstance(value, bool), f"a rule condition must be a boolean, not {value!r}"
    return value


def refusals(template: Template, overrides: Mapping[str, str]) -> list[str]:
    """The AssertDescription of every rule assertion that fails for the defaults with ``overrides``."""
    parameters = {**_defaults(template), **overrides}
    refused = []
    for rule in (template.get("Rules") or {}).values():
        if "RuleCondition" in rule and not _truth(_evaluate(rule["RuleCondition"], parameters)):
            continue
        for assertion in rule["Assertions"]:
            if not _truth(_evaluate(assertion["Assert"], parameters)):
                refused.append(assertion["AssertDescription"])
    return refused


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        ({"AgentAuth": "none", "AllowedSourceCidrs": "", "AcknowledgePublicApi": "no"}, True),
        ({"AgentAuth": "none"}, True),  # the defaults of the other two are the unsafe ones
        ({"AgentAuth": "none", "AllowedSourceCidrs": "", "AcknowledgePublicApi": "yes"}, False),
        ({"AgentAuth": "none", "AllowedSourceCidrs": "203.0.113.0/24", "AcknowledgePublicApi": "no"}, False),
        ({"AgentAuth": "none", "AllowedSourceCidrs": "203.0.113.0/24", "AcknowledgePublicApi": "yes"}, False),
        ({"AgentAuth": "flex", "AllowedSourceCidrs": "", "AcknowledgePublicApi": "no"}, False),
        ({"AgentAuth": "flex", "AllowedSourceCidrs": "203.0.113.0/24"}, False),
        ({}, False),  # the defaults deploy
    ],
)
def test_rules_refuse_only_an_unacknowledged_public_api_without_agent_auth(
    template: Template, overrides: dict[str, str], refused: bool
) -> None:
    # Given the parameters / When the Rules section is evaluated / Then only the open relay is refused
    messages = refusals(template, overrides)
    assert bool(messages) is refused
    assert all("AllowedSourceCidrs" in m and "AcknowledgePublicApi" in m for m in messages)


def test_rules_use_only_functions_cloudformation_allows_in_rules(template: Template) -> None:
    allowed = {"Ref", "Fn::And", "Fn::Or", "Fn::Not", "Fn::Equals", "Fn::Contains", "Fn::EachMemberEquals"}
    allowed |= {"Fn::EachMemberIn", "Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll"}

    def functions(node: Any) -> set[str]:
        if isinstance(node, list):
            return set().union(*(functions(n) for n in node))
        if isinstance(node, dict):
            own = {k for k in node if k == "Ref" or k.startswith("Fn::")}
            return own.union(*(functions(v) for v in node.values()))
        return set()

    assert template["Rules"]
    assert functions(template["Rules"]) <= allowed


# ------------------------------------------------------------------------------------ resource policy


def _api(template: Template) -> dict[str, Any]:
    (api,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Api"]
    return api


def _policy_statements(template: Template, parameters: Mapping[str, str]) -> list[dict[str, Any]]:
    """Auth.ResourcePolicy's statements as CloudFormation resolves them (Fn::If, Split, Ref, AWS::NoValue)."""
    values = {**_defaults(template), **parameters}
    conditions = {"HasSourceCidrs": values["AllowedSourceCidrs"] != ""}
    assert template["Conditions"]["HasSourceCidrs"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AllowedSourceCidrs"}, ""]}]
    }
    no_value = object()

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [r for r in (resolve(n) for n in node) if r is not no_value]
        if isinstance(node, dict) and len(node) == 1:
            ((key, args),) = node.items()
            if key == "Ref":
                return no_value if args == "AWS::NoValue" else values[args]
            if key == "Fn::If":
                condition, then, otherwise = args
                return resolve(then if conditions[condition] else otherwise)
            if key == "Fn::Split":
                separator, text = args
                return resolve(text).split(separator)
        if isinstance(node, dict):
            return {k: resolve(v) for k, v in node.items()}
        return node

    statements = resolve(_api(template)["Auth"]["ResourcePolicy"]["CustomStatements"])
    assert isinstance(statements, list)
    return statements


def _invoke_allowed(statements: list[dict[str, Any]], source_ip: str, path: str = "/start-verify") -> bool:
    """IAM's evaluation for these statements: an explicit Deny wins, else an Allow is needed."""
    import fnmatch
    import ipaddress

    def applies(statement: dict[str, Any]) -> bool:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert statement["Action"] == "execute-api:Invoke"
        assert all(r == "execute-api:/*" or r.startswith("execute-api:/*/*/") for r in resources)
        # execute-api:/<stage>/<method>/<path>, as API Gateway matches it
        if not any(fnmatch.fnmatchcase(f"execute-api:/Prod/POST{path}", r) for r in resources):
            return False
        assert statement["Principal"] == "*"
        condition = statement.get("Condition") or {}
        assert set(condition) <= {"IpAddress", "NotIpAddress"}
        ip = ipaddress.ip_address(source_ip)
        for operator, keys in condition.items():
            assert set(keys) == {"aws:SourceIp"}
            inside = any(ip in ipaddress.ip_network(cidr) for cidr in keys["aws:SourceIp"])
            if inside != (operator == "IpAddress"):
                return False
        return True

    effects = {s["Effect"] for s in statements if applies(s)}
    return "Deny" not in effects and "Allow" in effects


@pytest.mark.parametrize(
    ("cidrs", "source_ip", "allowed"),
    [
        ("", "198.51.100.7", True),
        ("", "2001:db8::1", True),
        ("203.0.113.0/24", "203.0.113.77", True),
        ("203.0.113.0/24", "198.51.100.7", False),
        ("203.0.113.0/24,2001:db8::/32", "2001:db8::1", True),
        ("203.0.113.0/24,2001:db8::/32", "2001:db9::1", False),
        ("203.0.113.0/24,2001:db8::/32", "203.0.114.1", False),
    ],
)
def test_the_resource_policy_admits_only_the_listed_sources(
    template: Template, cidrs: str, source_ip: str, allowed: bool
) -> None:
    # Given AllowedSourceCidrs / When a source invokes the API / Then only a listed one (or any, if none) may
    statements = _policy_statements(template, {"AllowedSourceCidrs": cidrs})
    assert _invoke_allowed(statements, source_ip) is allowed


@pytest.mark.parametrize("path", ["/start-verify", "/cancel-verify", "/check-verify", "/customer-info"])
def test_the_source_list_covers_every_agent_path(template: Template, path: str) -> None:
    statements = _policy_statements(template, {"AllowedSourceCidrs": "203.0.113.0/24"})
    assert _invoke_allowed(statements, "198.51.100.7", path) is False


@pytest.mark.parametrize("path", ["/ivr/start", "/ivr/check"])
def test_twilio_s_webhooks_are_not_held_to_the_source_list(template: Template, path: str) -> None:
    # Twilio's servers call the IVR (proved by their signatures), from addresses that are not the centre's
    statements = _policy_statements(template, {"AllowedSourceCidrs": "203.0.113.0/24"})
    assert _invoke_allowed(statements, "54.172.60.1", path) is True


def test_without_source_cidrs_the_policy_only_allows(template: Template) -> None:
    statements = _policy_statements(template, {"AllowedSourceCidrs": ""})
    assert [s["Effect"] for s in statements] == ["Allow"]
    assert "Condition" not in statements[0]


# ------------------------------------------------------------------------------------ stage and secret


def test_globals_api_sets_open_api_version_so_sam_makes_no_stage_stage(template: Template) -> None:
    version = template["Globals"]["Api"]["OpenApiVersion"]
    assert isinstance(version, str) and re.fullmatch(r"3\.\d+\.\d+", version)
    assert "OpenApiVersion" not in _api(template) or _api(template)["OpenApiVersion"] == version


def test_hash_secret_is_retained_like_the_tables_it_keys(template: Template) -> None:
    resources = template["Resources"]
    for logical_id in ("HashSecret", "StateTable", "CustomersTable"):
        assert resources[logical_id]["DeletionPolicy"] == "Retain", logical_id
        assert resources[logical_id]["UpdateReplacePolicy"] == "Retain", logical_id


# ------------------------------------------------------------------------------------------------ alarms


def _alarm(template: Template, metric: str) -> dict[str, Any]:
    (alarm,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == metric
    ]
    return alarm


def _default(template: Template, value: Any) -> int:
    if isinstance(value, dict):
        return int(_parameters(template)[value["Ref"]]["Default"])
    return int(value)


def test_the_send_volume_alarm_can_fire_with_the_default_limits(template: Template) -> None:
    # Given the send-volume alarm and the default deployment-wide limits
    alarm = _alarm(template, "CodesSent")
    assert alarm["Statistic"] == "Sum" and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    period_minutes = alarm["Period"] * alarm["EvaluationPeriods"] // 60
    defaults = _defaults(template)
    most = min(
        period_minutes * int(defaults["MaxSendsPerMinute"]),
        int(defaults["MaxSendsPerHour"]),
        int(defaults["MaxSendsPerDay"]),
    )
    threshold = _default(template, alarm["Threshold"])
    # Then its threshold is one that the limits let the deployment exceed, with room to spare
    assert threshold < most
    assert threshold <= most // 2
    # And a pace the hourly budget sustains does not fire it: only one that would spend the budget within the hour
    assert threshold * (60 / period_minutes) >= int(defaults["MaxSendsPerHour"])


def test_the_circuit_breaker_alarm_fires_on_the_first_refusal(template: Template) -> None:
    # Given the metric the core publishes for any deployment-wide cap (minute, hour, day) that refuses a send
    alarm = _alarm(template, "CircuitBreakerTripped")
    assert _default(template, alarm["Threshold"]) == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    for limit in ("MaxSendsPerMinute", "MaxSendsPerHour", "MaxSendsPerDay"):
        assert limit in alarm["AlarmDescription"]


# ------------------------------------------------------------------------- what SAM's transform makes of it


def _transformed(template: Template, monkeypatch: pytest.MonkeyPatch, **parameters: str) -> dict[str, Any]:
    """template.yaml through the SAM transform (the same translator CloudFormation runs), with ``parameters``."""
    import copy

    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    local = copy.deepcopy(template)
    for resource in local["Resources"].values():  # what `sam deploy` uploads: S3 locations, not folders
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://bucket/" + props[key].strip("/")
    return transform(local, parameters, NoManagedPolicies())


def test_sam_writes_the_policy_into_the_api_and_redeploys_when_the_list_changes(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the template transformed without and with AllowedSourceCidrs
    cidrs = "203.0.113.0/24,2001:db8::/32"
    runs = {value: _transformed(template, monkeypatch, AllowedSourceCidrs=value)["Resources"] for value in ("", cidrs)}
    for value, resources in runs.items():
        # Then the policy is in the API's definition, statement for statement (no list wrapped in a list)
        policy = resources["Api"]["Properties"]["Body"]["x-amazon-apigateway-policy"]
        assert policy["Statement"][0]["Effect"] == "Allow"
        deny = policy["Statement"][1]["Fn::If"]
        assert deny[0] == "HasSourceCidrs" and deny[2] == {"Ref": "AWS::NoValue"}
        # with the parameter already resolved by SAM (so that the definition, and its hash, follow the value)
        assert deny[1]["Condition"]["NotIpAddress"]["aws:SourceIp"] == {"Fn::Split": [",", value]}
        # And the only stage is Prod: the deployment makes no "Stage" stage of its own
        deployments = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Deployment"]
        assert len(deployments) == 1 and "StageName" not in deployments[0]["Properties"]
        stages = [r["Properties"]["StageName"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
        assert stages == ["Prod"]
    # And a changed list is a new deployment (API Gateway applies a changed resource policy only when deployed)
    ids = [
        {k for k, r in resources.items() if r["Type"] == "AWS::ApiGateway::Deployment"} for resources in runs.values()
    ]
    assert ids[0] != ids[1]


def test_sam_keeps_the_rules_and_the_retained_secret(template: Template, monkeypatch: pytest.MonkeyPatch) -> None:
    transformed = _transformed(template, monkeypatch)
    assert transformed["Rules"] == template["Rules"]
    secret = transformed["Resources"]["HashSecret"]
    assert (secret["DeletionPolicy"], secret["UpdateReplacePolicy"]) == ("Retain", "Retain")


WORKSPACE = "WS" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        ({"TaskRouterWorkspaceSid": WORKSPACE, "AgentAuth": "flex"}, False),
        ({"TaskRouterWorkspaceSid": WORKSPACE, "AgentAuth": "none", "AcknowledgePublicApi": "yes"}, True),
        ({"TaskRouterWorkspaceSid": "", "AgentAuth": "none", "AcknowledgePublicApi": "yes"}, False),
    ],
)
def test_rules_refuse_taskrouter_checks_without_agent_auth(
    template: Template, overrides: dict[str, str], refused: bool
) -> None:
    # Given a workspace with AgentAuth=none (no worker to hold a task) / Then the Rules section refuses it
    messages = [m for m in refusals(template, overrides) if "TaskRouterWorkspaceSid" in m]
    assert bool(messages) is refused
    assert _matches(template, "TaskRouterWorkspaceSid", WORKSPACE)
    assert not _matches(template, "TaskRouterWorkspaceSid", "WT" + "0123456789abcdef" * 2)

"""The dev server reads tables, routes and gateway responses out of the SAM template itself."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from devserver.template import (
    GatewayResponse,
    Route,
    api_routes,
    gateway_responses,
    layer_dirs,
    literal_global_env,
    load_template,
    parse_template,
    table_env_vars,
    table_specs,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("fixtures") / "sam_template.yaml"
REAL_TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def fixture_template() -> dict:
    return load_template(FIXTURE)


@pytest.fixture(scope="module")
def real_template() -> dict:
    if not REAL_TEMPLATE.is_file():
        pytest.skip("template.yaml is not written yet")
    return load_template(REAL_TEMPLATE)


# ------------------------------------------------------------------------------------- loading


def test_short_tags_become_their_long_form() -> None:
    # Given a template using CloudFormation's short tags in every node kind
    text = """
Resources:
  X:
    Type: Custom
    Properties:
      A: !Ref Param
      B: !GetAtt Table.Arn
      C: !GetAtt [Table, StreamArn]
      D: !Sub "${AWS::StackName}-x"
      E: !If [Cond, !Ref P, !Ref AWS::NoValue]
      F: !Not [!Condition Other]
      G: !Select [0, !Split [",", "a,b"]]
      H: !Join ["", [a, !Ref B]]
      I: !FindInMap {Map: x}
"""
    # When it is parsed
    props = parse_template(text)["Resources"]["X"]["Properties"]
    # Then each tag is the JSON form CloudFormation would have seen
    assert props["A"] == {"Ref": "Param"}
    assert props["B"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert props["C"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert props["D"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert props["E"] == {"Fn::If": ["Cond", {"Ref": "P"}, {"Ref": "AWS::NoValue"}]}
    assert props["F"] == {"Fn::Not": [{"Condition": "Other"}]}
    assert props["G"] == {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}
    assert props["H"] == {"Fn::Join": ["", ["a", {"Ref": "B"}]]}
    assert props["I"] == {"Fn::FindInMap": {"Map": "x"}}


def test_the_loader_does_not_teach_pyyaml_safe_load_the_tags() -> None:
    # Given the module is imported (it registers its tags on a SafeLoader subclass)
    import yaml

    # When plain yaml.safe_load meets a short tag
    # Then it still refuses it: nothing global was changed
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("a: !Ref B")


def test_a_document_without_resources_is_refused() -> None:
    # Given YAML that is not a CloudFormation template
    # When / Then
    with pytest.raises(ValueError, match="Resources"):
        parse_template("just: text\n")


# -------------------------------------------------------------------------------------- tables


def test_table_specs_give_create_table_arguments_and_ttl(fixture_template: dict) -> None:
    # Given the fixture's two tables (with properties CreateTable does not know)
    # When their specs are read
    specs = table_specs(fixture_template)
    # Then only CreateTable's arguments remain, without TableName, and the TTL attribute is separate
    assert set(specs) == {"StateTable", "CustomersTable"}
    state = specs["StateTable"]
    assert state.ttl_attribute == "expires_at"
    assert state.create_table_kwargs == {
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "gsi1",
                "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    }
    customers = specs["CustomersTable"]
    assert customers.ttl_attribute is None
    assert customers.create_table_kwargs["KeySchema"] == [{"AttributeName": "phone", "KeyType": "HASH"}]


def test_provisioned_tables_get_throughput_and_disabled_ttl_is_ignored() -> None:
    # Given a table without BillingMode (CloudFormation's default is PROVISIONED) and a disabled TTL
    template = parse_template("""
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: false}
""")
    # When
    spec = table_specs(template)["T"]
    # Then
    kwargs = spec.create_table_kwargs
    assert kwargs["BillingMode"] == "PROVISIONED"
    assert kwargs["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    assert kwargs["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert spec.ttl_attribute is None


def test_a_key_schema_behind_an_intrinsic_is_refused() -> None:
    # Given a key schema only CloudFormation could resolve
    template = parse_template("""
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: !Ref KeyName, AttributeType: S}]
      KeySchema: [{AttributeName: !Ref KeyName, KeyType: HASH}]
""")
    # When / Then
    with pytest.raises(ValueError, match=r"T\.Properties\.AttributeDefinitions\[0\]\.AttributeName"):
        table_specs(template)


def test_table_env_vars_follow_the_functions_refs(fixture_template: dict) -> None:
    # Given STATE_TABLE in Globals and CUSTOMERS_TABLE on one function, both !Ref a table
    # When / Then
    assert table_env_vars(fixture_template) == {"STATE_TABLE": "StateTable", "CUSTOMERS_TABLE": "CustomersTable"}


def test_literal_global_env_skips_intrinsics(fixture_template: dict) -> None:
    # Given Globals with one literal variable and two !Ref ones
    # When / Then
    assert literal_global_env(fixture_template) == {"POWERTOOLS_SERVICE_NAME": "callerauth"}


# -------------------------------------------------------------------------------------- routes


def test_api_routes_come_from_api_events_only(fixture_template: dict) -> None:
    # Given three functions, one with two Api events and one with a Schedule event as well
    # When
    routes = api_routes(fixture_template)
    # Then every Api event is a route, with the function's code, handler and timeout; Schedule is not
    assert [(r.path, r.method, r.function_logical_id, r.code_uri, r.timeout_seconds) for r in routes] == [
        ("/start-verify", "ANY", "StartVerifyFunction", "functions/start_verify/", 10.0),
        ("/cancel-verify", "ANY", "StartVerifyFunction", "functions/start_verify/", 10.0),
        ("/check-verify", "POST", "CheckVerifyFunction", "functions/check_verify/", 5.0),
        ("/customer-info", "ANY", "CustomerInfoFunction", "functions/customer_info/", 10.0),
    ]
    assert {r.handler for r in routes} == {"app.lambda_handler"}
    assert {r.memory_mb for r in routes} == {256}


def test_layer_dirs(fixture_template: dict) -> None:
    # Given one AWS::Serverless::LayerVersion
    # When / Then
    assert layer_dirs(fixture_template) == ["layers/core/"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/start-verify", {}),
        ("/start-verify/", {}),  # API Gateway ignores one trailing slash
        ("/start-verify/x", None),
        ("/start-verifyx", None),
    ],
)
def test_literal_route_matching(path: str, expected: dict | None) -> None:
    # Given a literal route
    route = Route("/start-verify", "ANY", "F", "functions/f/", "app.handler")
    # When / Then
    assert route.match_path(path) == expected


def test_path_parameters_and_greedy_proxy() -> None:
    # Given routes with a parameter and a greedy one
    item = Route("/items/{id}", "GET", "F", "functions/f/", "app.handler")
    proxy = Route("/files/{proxy+}", "ANY", "F", "functions/f/", "app.handler")
    # When / Then
    assert item.match_path("/items/42") == {"id": "42"}
    assert item.match_path("/items/42/more") is None
    assert proxy.match_path("/files/a/b.txt") == {"proxy": "a/b.txt"}
    assert item.allows("get") and not item.allows("POST")
    assert proxy.allows("DELETE")


# --------------------------------------------------------------------------- gateway responses


def test_gateway_responses_strip_quotes_and_keep_templates(fixture_template: dict) -> None:
    # Given the fixture's two customised responses
    # When
    responses = gateway_responses(fixture_template)
    # Then static header values lose their single quotes and the status is an int
    missing = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert missing.status_code == 404
    assert missing.headers == {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, OPTIONS"}
    assert missing.templates["application/json"].startswith('{"success":false')
    assert responses["DEFAULT_5XX"].status_code is None


def test_raw_gateway_response_resources_are_read_too() -> None:
    # Given an AWS::ApiGateway::GatewayResponse with a static and a mapped header
    template = parse_template("""
Resources:
  R:
    Type: AWS::ApiGateway::GatewayResponse
    Properties:
      ResponseType: REQUEST_TOO_LARGE
      StatusCode: "413"
      RestApiId: !Ref Api
      ResponseParameters:
        gatewayresponse.header.Access-Control-Allow-Origin: "'*'"
        gatewayresponse.header.Vary: method.request.header.Origin
      ResponseTemplates:
        application/json: '{"message":"big"}'
""")
    # When / Then
    assert gateway_responses(template) == {
        "REQUEST_TOO_LARGE": GatewayResponse(
            response_type="REQUEST_TOO_LARGE",
            status_code=413,
            headers={"Access-Control-Allow-Origin": "*"},
            mapped_headers={"Vary": "method.request.header.Origin"},
            templates={"application/json": '{"message":"big"}'},
        )
    }


# ------------------------------------------------------------------------- the real template.yaml


def test_real_template_tables_match_the_design(real_template: dict) -> None:
    # Given the lead's template.yaml
    # When
    specs = table_specs(real_template)
    # Then the state table is pk/sk with TTL on expires_at, the customers table is keyed by phone
    state, customers = specs["StateTable"], specs["CustomersTable"]
    assert state.create_table_kwargs["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert state.ttl_attribute == "expires_at"
    assert customers.create_table_kwargs["KeySchema"] == [{"AttributeName": "phone", "KeyType": "HASH"}]
    assert {s.create_table_kwargs["BillingMode"] for s in specs.values()} == {"PAY_PER_REQUEST"}


def test_real_template_tables_can_be_created_by_dynamodb(real_template: dict) -> None:
    # Given moto's DynamoDB
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        # When every table is created from its spec, with TTL
        for logical_id, spec in table_specs(real_template).items():
            client.create_table(TableName=logical_id, **spec.create_table_kwargs)
            if spec.ttl_attribute:
                client.update_time_to_live(
                    TableName=logical_id, TimeToLiveSpecification={"AttributeName": spec.ttl_attribute, "Enabled": True}
                )
        # Then DynamoDB accepted them as written
        ttl = client.describe_time_to_live(TableName="StateTable")["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expires_at"
        assert set(client.list_tables()["TableNames"]) == set(table_specs(real_template))


def test_real_template_routes_point_at_existing_handlers(real_template: dict) -> None:
    # Given the lead's template.yaml
    # When
    routes = {r.path: r for r in api_routes(real_template)}
    # Then the four contract paths are served by the three functions, with every method (the handler
    # answers OPTIONS and 405 itself)
    assert {path: r.function_logical_id for path, r in routes.items()} == {
        "/start-verify": "StartVerifyFunction",
        "/cancel-verify": "StartVerifyFunction",
        "/check-verify": "CheckVerifyFunction",
        "/customer-info": "CustomerInfoFunction",
        "/ivr/start": "IvrFunction",
        "/ivr/check": "IvrFunction",
    }
    assert {r.method for r in routes.values()} == {"ANY"}
    missing = [r.code_uri for r in routes.values() if not (ROOT / r.code_uri / "app.py").is_file()]
    assert missing == []


def test_real_template_unknown_path_answer_follows_the_contract(real_template: dict) -> None:
    # Given the lead's template.yaml
    # When
    missing = gateway_responses(real_template)["MISSING_AUTHENTICATION_TOKEN"]
    # Then an unknown path is the contract's 404 not_found, with CORS
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == "*"
    body = json.loads(missing.templates["application/json"])
    assert body["success"] is False and body["error"]["code"] == "not_found"

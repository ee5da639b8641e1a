"""The conventional handler (never deployed), written the way the Powertools docs teach, for comparison.

APIGatewayRestResolver with CORSConfig, Logger and Metrics decorators, secrets through Parameters and
the Twilio client built at module top. It does the same work as the real handlers through the same core
(fields, actions, store, IAM validation): the difference `make bench` measures is the edge and the wiring.
One module for the three routes, as the docs' examples do.
"""

import json
import os
from typing import Any
from urllib.parse import quote

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext
from callerauth import actions, errors
from callerauth.actions import Services
from callerauth.agents import FlexAgents, IamTokenValidator
from callerauth.config import Settings
from callerauth.http import decode
from callerauth.lookup import Signals, read
from callerauth.privacy import Hasher
from callerauth.sources import SourceGate
from callerauth.store import StateStore
from callerauth.twilio_verify import Sent
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

logger = Logger()
metrics = Metrics()
settings = Settings.from_env(os.environ)
twilio_secret: Any = parameters.get_secret(os.environ["TWILIO_SECRET_ARN"], transform="json", max_age=300)
twilio = Client(
    twilio_secret["ACCOUNT_SID"],
    twilio_secret["AUTH_TOKEN"],
    http_client=TwilioHttpClient(timeout=settings.twilio_timeout_seconds),
)
twilio.verify.base_url = settings.twilio_verify_base_url
twilio.lookups.base_url = settings.twilio_lookup_base_url
verify_service = twilio.verify.v2.services(twilio_secret["VERIFY_SERVICE_SID"])


class Verify:
    def start(self, to: str, channel: str, locale: str) -> Sent:
        verification = verify_service.verifications.create(to=to, channel=channel, locale=locale)
        return Sent(verification.sid, verification.status, verification.channel)

    def check(self, to: str, code: str) -> bool:
        return bool(verify_service.verification_checks.create(to=to, code=code).status == "approved")

    def cancel(self, to: str) -> None:
        verify_service.verifications(quote(to, safe="")).update(status="canceled")


class Lookup:
    def signals(self, number: str, packages: tuple[str, ...], now: int) -> Signals:
        answer = twilio.lookups.v2.phone_numbers(quote(number, safe="")).fetch(fields=",".join(packages))
        return read({package: getattr(answer, package, None) for package in packages}, packages, now)


services = Services(
    settings=settings,
    store=StateStore(boto3.client("dynamodb"), settings),
    verify=Verify(),
    lookup=Lookup(),
    agents=FlexAgents(
        IamTokenValidator(
            settings.twilio_iam_base_url,
            lambda: (twilio_secret["ACCOUNT_SID"], twilio_secret["AUTH_TOKEN"]),
            settings.twilio_timeout_seconds,
        ),
        settings.allowed_roles,
    ),
    hasher=(hasher := Hasher(str(parameters.get_secret(os.environ["HASH_SECRET_ARN"], max_age=300)).encode())),
    sources=SourceGate(settings, hasher),
)
cors = CORSConfig(allow_origin="*", allow_headers=["Content-Type", "X-Flex-Token"], max_age=600)
app = APIGatewayRestResolver(cors=cors)


def _answer(action: Any) -> Response[str]:
    event = app.current_event
    log: dict[str, Any] = {"route": event.resource, "method": event.http_method}
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    try:
        request = decode(event.raw_event, event.http_method, event.resource, headers, "", log)
        reply = action(request, services)
        status, body = reply.status, reply.body
    except errors.ApiError as exc:
        status, body = exc.status, exc.body()
    log["status"] = status
    logger.info("request", extra=log)
    if status == 200:
        metrics.add_metric(name=f"{event.resource.strip('/')}-ok", unit=MetricUnit.Count, value=1)
    return Response(status, "application/json", json.dumps(body), {"Cache-Control": "no-store"})


@app.post("/start-verify")
def start_verify() -> Response[str]:
    return _answer(actions.start_verify)


@app.post("/cancel-verify")
def cancel_verify() -> Response[str]:
    return _answer(actions.cancel_verify)


@app.post("/check-verify")
def check_verify() -> Response[str]:
    return _answer(actions.check_verify)


@app.get("/customer-info")
@app.post("/customer-info")
def customer_info() -> Response[str]:
    return _answer(actions.customer_info)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

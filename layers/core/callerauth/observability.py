"""Structured logs and EMF metrics (Powertools): one log line and at most one metric per request."""

import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

# Log masked destinations only: never a code, a token or a customer field.
logger = Logger(service="callerauth")
metrics = Metrics(service="callerauth", namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "CallerAuth")

# (route, outcome or error code) -> metric; the alarms in template.yaml watch some of these.
METRICS = {
    ("/start-verify", "sent"): "CodesSent",
    ("/start-verify", "rate_limited"): "SendsRefused",
    ("/start-verify", "destination_risky"): "RiskyNumbersRefused",
    ("/check-verify", "approved"): "Approvals",
    ("/check-verify", "incorrect_code"): "FailedChecks",
    ("/check-verify", "locked"): "Lockouts",
    ("/customer-info", "served"): "CustomerInfoServed",
    ("/ivr/start", "sent"): "CodesSent",
    ("/ivr/start", "rate_limited"): "SendsRefused",
    ("/ivr/start", "destination_risky"): "RiskyNumbersRefused",
    ("/ivr/check", "approved"): "Approvals",
    ("/ivr/check", "incorrect_code"): "FailedChecks",
    ("/ivr/check", "locked"): "Lockouts",
    ("/ivr/start", "signature_invalid"): "WebhookSignaturesRefused",
    ("/ivr/check", "signature_invalid"): "WebhookSignaturesRefused",
}


DEPLOYMENT_CAPS = {"circuit_breaker", "hourly_budget", "daily_budget"}  # sends refused across the deployment


def record(log: Mapping[str, Any]) -> None:
    """Log the request's one line, and publish its metric (EMF: a log line CloudWatch turns into metrics)."""
    logger.info("request", extra=dict(log))
    route, status = str(log.get("route")), int(log.get("status") or 0)
    names = [METRICS.get((route, str(log.get("outcome") or log.get("error"))))]
    if log.get("reason") in DEPLOYMENT_CAPS:
        names.append("CircuitBreakerTripped")
    if log.get("reason") == "source_refusals":
        names.append("SourceRefusalsCapped")
    if log.get("risk") == "incomplete" or log.get("reason") == "risk_unknown":  # Lookup could not answer
        names.append("LookupFailures")
    if route == "/customer-info" and 400 <= status < 500 and status != 404:
        names.append("CustomerInfoRefused")
    if status >= 500:
        names.append("ServerErrors")
    try:
        for name in filter(None, names):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        if any(names):
            metrics.flush_metrics()
    except Exception as exc:  # a metric must never cost an answer
        logger.warning("metrics not published", extra={"exception": type(exc).__name__})

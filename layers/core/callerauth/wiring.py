"""Builds the real adapters from the environment, once per container (and only when first needed)."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from callerauth import deferred, resume_gc
from callerauth.actions import Services
from callerauth.config import ConfigError, Settings
from callerauth.http import Routes, serve
from callerauth.twilio_verify import Credentials, basic_auth

SECRET_MAX_AGE_SECONDS = 300


class Container:
    """Settings and services for one Lambda container; the dev server and tests give it their env."""

    def __init__(self, env: Mapping[str, str] = os.environ, clock: Callable[[], float] = time.time) -> None:
        self._env = env
        self._clock = clock

    @functools.cache  # noqa: B019 - one container object per process, never collected
    def settings(self) -> Settings:
        return Settings.from_env(self._env)

    @functools.cache  # noqa: B019
    def services(self) -> Services:
        import boto3
        from botocore.config import Config

        from callerauth.agents import Agents, AnonymousAgents, FlexAgents, IamTokenValidator
        from callerauth.lookup import TwilioLookup
        from callerauth.privacy import Hasher
        from callerauth.sources import SourceGate
        from callerauth.store import StateStore
        from callerauth.twilio_verify import TwilioVerify
        from callerauth.webhooks import TwilioWebhooks

        settings = self.settings()
        credentials = self._twilio_credentials()
        dynamodb = boto3.client(
            "dynamodb",
            config=Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2}),
        )
        if settings.agent_auth == "flex":
            validator = IamTokenValidator(
                settings.twilio_iam_base_url,
                lambda: basic_auth(credentials()),
                settings.twilio_timeout_seconds,
            )
            agents: Agents = FlexAgents(validator, settings.allowed_roles, self._clock)
        else:
            agents = AnonymousAgents()
        hasher = Hasher(self._hash_secret())
        taskrouter = None
        if settings.taskrouter_workspace_sid:  # imported only then: the cold start without it pays nothing
            from callerauth.taskrouter import CachedTaskRouter, TwilioTaskRouter

            adapter = TwilioTaskRouter(
                lambda: basic_auth(credentials()),
                settings.taskrouter_workspace_sid,
                settings.twilio_taskrouter_base_url,
                settings.twilio_timeout_seconds,
            )
            taskrouter = CachedTaskRouter(adapter, self._clock)
        return Services(
            settings=settings,
            store=StateStore(dynamodb, settings),
            verify=TwilioVerify(credentials, settings.twilio_verify_base_url, settings.twilio_timeout_seconds),
            lookup=TwilioLookup(credentials, settings.twilio_lookup_base_url, settings.twilio_timeout_seconds),
            agents=agents,
            hasher=hasher,
            sources=SourceGate(settings, hasher, self._clock),
            clock=self._clock,
            taskrouter=taskrouter,
            webhooks=TwilioWebhooks(lambda: credentials().auth_token),
        )

    def _twilio_credentials(self) -> Callable[[], Credentials]:
        """Secrets Manager in the cloud (re-read every few minutes, so a filled secret is picked up)."""
        arn = self._env.get("TWILIO_SECRET_ARN")
        if arn:
            return lambda: _credentials(self._secret(arn))
        fixed = _credentials(self._env)
        return lambda: fixed

    def _hash_secret(self) -> bytes:
        arn = self._env.get("HASH_SECRET_ARN")
        secret = self._secret(arn) if arn else self._env.get("HASH_SECRET", "")
        if not isinstance(secret, str) or len(secret) < 16:
            raise ConfigError("HASH_SECRET (or the secret at HASH_SECRET_ARN) must be at least 16 characters")
        return secret.encode()

    def _secret(self, arn: str) -> Any:
        """A secret's value through Powertools Parameters, cached in memory for a few minutes."""
        return self._secrets().get(arn, max_age=SECRET_MAX_AGE_SECONDS)

    @functools.cache  # noqa: B019
    def _secrets(self) -> Any:
        """Parameters' provider on boto3's default session, the DynamoDB client's: `get_secret` would make
        a session of its own, whose loader reads botocore's endpoint and model data again (~100 ms of CPU).
        Its module alone: the package's `__init__` imports every provider (SSM, AppConfig, DynamoDB with
        boto3.dynamodb), ~2 ms of every cold start."""
        import boto3

        secrets = deferred.submodule("aws_lambda_powertools.utilities.parameters", "secrets")
        return secrets.SecretsProvider(boto3_client=boto3.client("secretsmanager"))


def handler_for(
    routes: Mapping[str, Mapping[str, Any]],
    container: Container | None = None,
    server: Callable[[dict[str, Any], Any, Any, Container], dict[str, Any]] | None = None,
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for a set of routes: the whole body of a thin handler module. `server` answers
    an event (default: the JSON API's `http.serve`; the IVR's is `ivr.serve`, TwiML)."""
    runtime = container or Container()
    table: Routes = routes
    answer = server or serve

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return answer(event, context, table, runtime)
        finally:
            resume_gc()  # a no-op after the first request

    return handler


def _credentials(values: Any) -> Credentials:
    if isinstance(values, str):
        values = json.loads(values)
    sid, token, service = (str(values.get(k, "")) for k in ("ACCOUNT_SID", "AUTH_TOKEN", "VERIFY_SERVICE_SID"))
    if not (sid.startswith("AC") and len(sid) == 34 and token and service.startswith("VA") and len(service) == 34):
        raise ConfigError(
            "Twilio credentials are missing or placeholders: set ACCOUNT_SID, AUTH_TOKEN and "
            "VERIFY_SERVICE_SID (in .env locally, in the Twilio secret in AWS)"
        )
    return Credentials(sid, token, service)

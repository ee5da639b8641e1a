"""Who is calling: the agent behind a request, from a Flex token validated by Twilio IAM."""

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import urllib3

from callerauth.refusals import Refusal, unavailable

CACHE_SECONDS = 60
REFUSAL_CACHE_SECONDS = 30  # a refused token stays refused: a flood of one token asks IAM twice a minute
CACHE_ENTRIES = 1024
MAX_TOKEN_LENGTH = 8192


class Agent(NamedTuple):
    identity: str
    worker_sid: str | None = None
    roles: tuple[str, ...] = ()
    # False for AgentAuth=none: the caller is known only by source IP and may never see customer data.
    authenticated: bool = True
    # The IVR (callerauth.ivr): Twilio itself, proved by its webhook's signature, on this call (no task yet).
    call_sid: str | None = None


class TokenValidator(Protocol):
    def validate(self, token: str) -> dict[str, Any]:
        """Twilio IAM's answer for a token; raises a Refusal when IAM cannot be asked or says no."""
        ...


class Agents(Protocol):
    def identify(self, token: str, source_ip: str) -> Agent: ...


class AnonymousAgents:
    """AgentAuth=none: the unmodified plugin sends no token. Callers are told apart by source IP."""

    def identify(self, token: str, source_ip: str) -> Agent:
        return Agent(identity=f"anonymous:{source_ip}", authenticated=False)


class FlexAgents:
    """AgentAuth=flex: a token is required, validated by IAM, and its roles must be allowed.

    A positive answer is cached for at most a minute and never past the token's expiration,
    so a warm container asks IAM at most once a minute per token; a refused token is remembered
    (by its hash) for half a minute. IAM's own failures are never cached.
    """

    def __init__(
        self, validator: TokenValidator, allowed_roles: frozenset[str], clock: Callable[[], float] = time.time
    ) -> None:
        self._validator = validator
        self._allowed_roles = allowed_roles
        self._clock = clock
        self._cache: dict[str, tuple[float, Agent | Refusal]] = {}

    def identify(self, token: str, source_ip: str) -> Agent:
        if not token:
            raise Refusal("agent_auth_required")
        if len(token) > MAX_TOKEN_LENGTH:
            raise Refusal("agent_auth_invalid")
        now = self._clock()
        cache_key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(cache_key)
        if cached and cached[0] > now:
            if isinstance(cached[1], Refusal):  # a new one each time: a raised exception keeps its traceback
                raise Refusal(cached[1].code, cached[1].reason)
            return cached[1]
        try:
            agent, expires_at = self._agent_of(self._validator.validate(token), now)
        except Refusal as refusal:
            if refusal.code == "agent_auth_invalid":  # IAM said no (not: IAM could not say)
                self._remember(cache_key, now + REFUSAL_CACHE_SECONDS, refusal)
            raise
        self._remember(cache_key, min(now + CACHE_SECONDS, expires_at), agent)
        return agent

    def _remember(self, cache_key: str, until: float, answer: Agent | Refusal) -> None:
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[cache_key] = (until, answer)

    def _agent_of(self, answer: dict[str, Any], now: float) -> tuple[Agent, float]:
        identity = answer.get("identity")
        expires_at = _epoch(answer.get("expiration"))
        if answer.get("valid") is not True or not isinstance(identity, str) or not identity:
            raise Refusal("agent_auth_invalid")
        if expires_at is not None and expires_at <= now:
            raise Refusal("agent_auth_invalid")
        roles = tuple(str(role) for role in answer.get("roles") or ())
        if not self._allowed_roles.intersection(roles):
            raise Refusal("agent_auth_invalid", "role_not_allowed")
        worker_sid = answer.get("worker_sid")
        agent = Agent(identity, worker_sid if isinstance(worker_sid, str) else None, roles)
        return agent, expires_at if expires_at is not None else now + CACHE_SECONDS


class IamTokenValidator:
    """POST {iam}/v1/Accounts/{sid}/Tokens/validate, as twilio-flex-token-validator does.

    urllib3, not the Twilio client: botocore loads it anyway, so IAM costs the cold start nothing extra.
    """

    def __init__(self, base_url: str, credentials: Callable[[], tuple[str, str]], timeout: float) -> None:
        self._base_url = base_url
        self._credentials = credentials
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)

    def validate(self, token: str) -> dict[str, Any]:
        account_sid, auth_token = self._credentials()
        headers = urllib3.make_headers(basic_auth=f"{account_sid}:{auth_token}")
        headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(
                "POST",
                f"{self._base_url}/v1/Accounts/{account_sid}/Tokens/validate",
                body=json.dumps({"token": token}).encode(),
                headers=headers,
            )
        except urllib3.exceptions.HTTPError:
            raise unavailable("iam") from None
        if response.status >= 500 or response.status == 429:
            raise unavailable("iam")
        if response.status != 200:
            # 401: our own credentials are wrong; 4xx: the token is unusable. Either way: not let through.
            raise Refusal("agent_auth_invalid")
        try:
            answer = json.loads(response.data)
        except ValueError:
            raise Refusal("upstream_error", "iam") from None
        if not isinstance(answer, dict):
            raise Refusal("upstream_error", "iam")
        return answer


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

"""Settings: parsed and validated once per container, from the environment (see CONTRACT.md)."""

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

CHANNELS = ("sms", "call", "email", "whatsapp")
LOOKUP_FIELDS = ("line_type_intelligence", "sim_swap", "call_forwarding", "sms_pumping_risk")
# Lookup v2's line types (line_type_intelligence.type).
LINE_TYPES = (
    "landline", "mobile", "fixedVoip", "nonFixedVoip", "personal", "tollFree",
    "premium", "sharedCost", "uan", "voicemail", "pager", "unknown",
)  # fmt: skip
BLOCKED_LINE_TYPES = "nonFixedVoip,premium,sharedCost,uan,pager,voicemail,tollFree"
MAX_SHARDS = 32
IVR_LANGUAGES = ("en", "es")  # the languages the IVR's sentences are written in (callerauth/ivr.py)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """The deployment is misconfigured; requests answer 500 and the log says what to fix."""


class Settings(NamedTuple):
    state_table: str
    customers_table: str
    agent_auth: str = "flex"
    allowed_roles: frozenset[str] = frozenset({"agent", "supervisor", "admin"})
    allowed_origins: tuple[str, ...] = ("*",)
    approval_ttl_seconds: int = 1800
    send_cooldown_seconds: int = 30
    max_sends_per_destination_per_hour: int = 5
    max_sends_per_agent_per_hour: int = 30
    max_sends_per_minute: int = 60
    max_sends_per_hour: int = 1000
    max_sends_per_day: int = 10000
    deployment_counter_shards: int = 8  # the deployment's caps are split over this many counters (limits.py)
    max_failed_checks: int = 10
    lockout_seconds: int = 900
    allowed_countries: frozenset[str] = frozenset()  # ISO 3166 alpha-2; empty: every country
    allowed_channels: tuple[str, ...] = ("sms",)
    allowed_source_cidrs: tuple[Network, ...] = ()  # empty: any source
    supervisor_roles: frozenset[str] = frozenset({"supervisor", "admin"})
    max_refusals_per_source_per_minute: int = 30
    lookup_fields: tuple[str, ...] = ("line_type_intelligence",)  # empty: Lookup off
    blocked_line_types: frozenset[str] = frozenset(BLOCKED_LINE_TYPES.split(","))
    sim_swap_window_days: int = 7
    sms_pumping_risk_threshold: int = 80  # Twilio's score, 0-100
    lookup_failure: str = "allow"  # or "refuse": what a start does when Lookup cannot answer
    lookup_cache_hours: int = 24
    audit_retention_days: int = 90
    customer_fields: tuple[str, ...] = ("name", "accountNumber", "tier", "email", "postcode")
    twilio_timeout_seconds: float = 5.0
    twilio_verify_base_url: str = "https://verify.twilio.com"
    twilio_iam_base_url: str = "https://iam.twilio.com"
    twilio_lookup_base_url: str = "https://lookups.twilio.com"
    # Set: every request names a task that TaskRouter says the agent holds, for the task's caller.
    taskrouter_workspace_sid: str = ""
    twilio_taskrouter_base_url: str = "https://taskrouter.twilio.com"
    # The IVR (POST /ivr/start, /ivr/check): Twilio's signed voice webhooks.
    ivr_base_url: str = ""  # the public URL Twilio calls, before /ivr/...; empty: the request's own API URL
    ivr_max_attempts: int = 3  # wrong entries before the call goes on to an agent unverified
    ivr_locale: str = "en-US"  # the voice of <Say>, and the language of its sentences and of the code's SMS
    ivr_redirect_url: str = ""  # a Studio flow's webhook URL: <Redirect> there, with verified=true|false
    ivr_workflow_sid: str = ""  # or a TaskRouter workflow: <Enqueue> into it, the verification in the task

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        def number(name: str, default: int, minimum: int = 0) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or int(raw) < minimum:
                raise ConfigError(f"{name} must be a whole number >= {minimum}, not {raw!r}")
            return int(raw)

        def listing(name: str, default: str) -> tuple[str, ...]:
            return tuple(item.strip() for item in env.get(name, default).split(",") if item.strip())

        agent_auth = text("AGENT_AUTH", "flex").lower()
        if agent_auth not in ("flex", "none"):
            raise ConfigError(f"AGENT_AUTH must be 'flex' or 'none', not {agent_auth!r}")
        state_table, customers_table = env.get("STATE_TABLE", ""), env.get("CUSTOMERS_TABLE", "")
        if not state_table or not customers_table:
            raise ConfigError("STATE_TABLE and CUSTOMERS_TABLE must name the DynamoDB tables")
        try:
            timeout = float(text("TWILIO_TIMEOUT_SECONDS", "5"))
        except ValueError:
            raise ConfigError("TWILIO_TIMEOUT_SECONDS must be a number of seconds") from None
        return cls(
            state_table=state_table,
            customers_table=customers_table,
            agent_auth=agent_auth,
            allowed_roles=frozenset(listing("ALLOWED_ROLES", "agent,supervisor,admin")),
            allowed_origins=listing("ALLOWED_ORIGINS", "*") or ("*",),
            approval_ttl_seconds=number("APPROVAL_TTL_SECONDS", 1800, 1),
            send_cooldown_seconds=number("SEND_COOLDOWN_SECONDS", 30),
            max_sends_per_destination_per_hour=number("MAX_SENDS_PER_DESTINATION_PER_HOUR", 5, 1),
            max_sends_per_agent_per_hour=number("MAX_SENDS_PER_AGENT_PER_HOUR", 30, 1),
            max_sends_per_minute=number("MAX_SENDS_PER_MINUTE", 60, 1),
            max_sends_per_hour=number("MAX_SENDS_PER_HOUR", 1000, 1),
            max_sends_per_day=number("MAX_SENDS_PER_DAY", 10000, 1),
            deployment_counter_shards=_shards(number("DEPLOYMENT_COUNTER_SHARDS", 8, 1)),
            max_failed_checks=number("MAX_FAILED_CHECKS", 10, 1),
            lockout_seconds=number("LOCKOUT_SECONDS", 900, 1),
            allowed_countries=_countries(listing("ALLOWED_COUNTRIES", ""), env),
            allowed_channels=_channels(listing("ALLOWED_CHANNELS", "sms")),
            allowed_source_cidrs=_networks(listing("ALLOWED_SOURCE_CIDRS", "")),
            supervisor_roles=frozenset(listing("SUPERVISOR_ROLES", "supervisor,admin")),
            max_refusals_per_source_per_minute=number("MAX_REFUSALS_PER_SOURCE_PER_MINUTE", 30, 1),
            lookup_fields=_known("LOOKUP_FIELDS", listing("LOOKUP_FIELDS", "line_type_intelligence"), LOOKUP_FIELDS),
            blocked_line_types=frozenset(
                _known("BLOCKED_LINE_TYPES", listing("BLOCKED_LINE_TYPES", BLOCKED_LINE_TYPES), LINE_TYPES)
            ),
            sim_swap_window_days=number("SIM_SWAP_WINDOW_DAYS", 7, 1),
            sms_pumping_risk_threshold=_at_most(
                "SMS_PUMPING_RISK_THRESHOLD", number("SMS_PUMPING_RISK_THRESHOLD", 80), 100
            ),
            lookup_failure=_choice("LOOKUP_FAILURE", text("LOOKUP_FAILURE", "allow").lower(), ("allow", "refuse")),
            lookup_cache_hours=number("LOOKUP_CACHE_HOURS", 24, 1),
            audit_retention_days=number("AUDIT_RETENTION_DAYS", 90, 1),
            customer_fields=listing("CUSTOMER_FIELDS", "name,accountNumber,tier,email,postcode"),
            twilio_timeout_seconds=timeout,
            twilio_verify_base_url=text("TWILIO_VERIFY_BASE_URL", "https://verify.twilio.com").rstrip("/"),
            twilio_iam_base_url=text("TWILIO_IAM_BASE_URL", "https://iam.twilio.com").rstrip("/"),
            twilio_lookup_base_url=text("TWILIO_LOOKUP_BASE_URL", "https://lookups.twilio.com").rstrip("/"),
            taskrouter_workspace_sid=_workspace(text("TASKROUTER_WORKSPACE_SID", ""), agent_auth),
            twilio_taskrouter_base_url=text("TWILIO_TASKROUTER_BASE_URL", "https://taskrouter.twilio.com").rstrip("/"),
            **_ivr(env, number),
        )


def _ivr(env: Mapping[str, str], number: Callable[[str, int, int], int]) -> dict[str, Any]:
    base_url, redirect_url = env.get("IVR_BASE_URL", "").strip(), env.get("IVR_REDIRECT_URL", "").strip()
    workflow, locale = env.get("IVR_WORKFLOW_SID", "").strip(), env.get("IVR_LOCALE", "").strip() or "en-US"
    # The base URL is a prefix (no query); the redirect URL may carry one (Studio's ?FlowEvent=return).
    if base_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base_url):
        raise ConfigError(f"IVR_BASE_URL must be an http(s) URL with no query, not {base_url!r}")
    if redirect_url and not re.fullmatch(r"https?://[^\s/?#]+[^\s#]*", redirect_url):
        raise ConfigError(f"IVR_REDIRECT_URL must be an http(s) URL, not {redirect_url!r}")
    if workflow and not re.fullmatch(r"WW[0-9a-fA-F]{32}", workflow):
        raise ConfigError(f"IVR_WORKFLOW_SID must be WW and 32 hex digits, not {workflow!r}")
    if workflow and redirect_url:
        raise ConfigError("Set IVR_REDIRECT_URL (a Studio flow) or IVR_WORKFLOW_SID (a workflow), not both")
    if not re.fullmatch(r"[a-z]{2}-[A-Z]{2}", locale) or locale[:2] not in IVR_LANGUAGES:
        raise ConfigError(f"IVR_LOCALE must be a voice locale such as en-US or es-MX, not {locale!r}")
    attempts = number("IVR_MAX_ATTEMPTS", 3, 1)
    if attempts > 10:
        raise ConfigError(f"IVR_MAX_ATTEMPTS must be at most 10, not {attempts}")
    return {
        "ivr_base_url": base_url.rstrip("/"),
        "ivr_max_attempts": attempts,
        "ivr_locale": locale,
        "ivr_redirect_url": redirect_url,
        "ivr_workflow_sid": workflow,
    }


def _workspace(sid: str, agent_auth: str) -> str:
    if sid and not re.fullmatch(r"WS[0-9a-fA-F]{32}", sid):
        raise ConfigError(f"TASKROUTER_WORKSPACE_SID must be WS and 32 hex digits, not {sid!r}")
    if sid and agent_auth != "flex":  # with no agent identity there is no worker to hold a task
        raise ConfigError("TASKROUTER_WORKSPACE_SID needs AGENT_AUTH=flex: with 'none' no agent holds a task")
    return sid


def _countries(codes: tuple[str, ...], env: Mapping[str, str]) -> frozenset[str]:
    if env.get("ALLOWED_COUNTRY_CODES", "").strip():  # calling codes let +1 876 (Jamaica) pass as "+1"
        raise ConfigError("ALLOWED_COUNTRY_CODES is gone: list ISO country codes in ALLOWED_COUNTRIES (e.g. US,CA)")
    if bad := [code for code in codes if not re.fullmatch(r"[A-Za-z]{2}", code)]:
        raise ConfigError(f"ALLOWED_COUNTRIES has entries that are not ISO 3166 alpha-2 codes: {bad}")
    return frozenset(code.upper() for code in codes)


def _shards(shards: int) -> int:
    if shards > MAX_SHARDS:  # the store reads every shard of the three deployment caps in one BatchGetItem
        raise ConfigError(f"DEPLOYMENT_COUNTER_SHARDS must be at most {MAX_SHARDS}, not {shards}")
    return shards


def _channels(channels: tuple[str, ...]) -> tuple[str, ...]:
    if not channels or any(channel not in CHANNELS for channel in channels):
        raise ConfigError(f"ALLOWED_CHANNELS must list some of {', '.join(CHANNELS)}, not {channels}")
    return channels


def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)
    except ValueError as exc:
        raise ConfigError(f"ALLOWED_SOURCE_CIDRS has an entry that is not a CIDR: {exc}") from None


def _known(name: str, values: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    if unknown := [value for value in values if value not in known]:
        raise ConfigError(f"{name} has entries that are not among {', '.join(known)}: {unknown}")
    return values


def _at_most(name: str, value: int, maximum: int) -> int:
    if value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, not {value}")
    return value


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}, not {value!r}")
    return value

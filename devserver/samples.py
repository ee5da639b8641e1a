"""The sample values that the local stack, its tests and the bench share: each defined here, once."""

from __future__ import annotations

SAMPLE_CUSTOMER = "+12025550100"  # the first of sample_customers.json
SAMPLE_CUSTOMER_MASKED = "+1******0100"  # as the core shows it in logs and audit events
PLUGIN_FORM = "application/x-www-form-urlencoded;charset=UTF-8"  # what plugin-verify posts
FLEX_ORIGIN = "https://flex.twilio.com"

# The Twilio sandbox's obviously fake credentials, shaped as the core demands (AC/VA + 32 hex).
SANDBOX_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
SANDBOX_AUTH_TOKEN = "5a" * 16
SANDBOX_SERVICE_SID = "VA" + "fedcba9876543210" * 2
SANDBOX_WORKSPACE_SID = "WS" + "00112233445566778899aabbccddeeff"  # its TaskRouter workspace
SANDBOX_WORKFLOW_SID = "WW" + "00112233445566778899aabbccddeeff"  # the workflow the dev IVR enqueues calls into

# Every setting of CONTRACT.md at its default, and empty Twilio credentials: a local stack started with these
# never inherits a setting from the shell or from .env, and always serves its Twilio sandbox.
CONTRACT_DEFAULTS = {
    "AGENT_AUTH": "flex",
    "ALLOWED_ROLES": "agent,supervisor,admin",
    "ALLOWED_ORIGINS": "*",
    "APPROVAL_TTL_SECONDS": "1800",
    "SEND_COOLDOWN_SECONDS": "30",
    "MAX_SENDS_PER_DESTINATION_PER_HOUR": "5",
    "MAX_SENDS_PER_AGENT_PER_HOUR": "30",
    "MAX_SENDS_PER_MINUTE": "60",
    "MAX_FAILED_CHECKS": "10",
    "LOCKOUT_SECONDS": "900",
    "MAX_SENDS_PER_HOUR": "1000",
    "MAX_SENDS_PER_DAY": "10000",
    "ALLOWED_COUNTRIES": "",
    "ALLOWED_CHANNELS": "sms",
    "ALLOWED_SOURCE_CIDRS": "",
    "SUPERVISOR_ROLES": "supervisor,admin",
    "MAX_REFUSALS_PER_SOURCE_PER_MINUTE": "30",
    "LOOKUP_FIELDS": "line_type_intelligence",
    "BLOCKED_LINE_TYPES": "nonFixedVoip,premium,sharedCost,uan,pager,voicemail,tollFree",
    "SIM_SWAP_WINDOW_DAYS": "7",
    "SMS_PUMPING_RISK_THRESHOLD": "80",
    "LOOKUP_FAILURE": "allow",
    "LOOKUP_CACHE_HOURS": "24",
    "AUDIT_RETENTION_DAYS": "90",
    "CUSTOMER_FIELDS": "name,accountNumber,tier,email,postcode",
    "TASKROUTER_WORKSPACE_SID": "",
    "ACCOUNT_SID": "",
    "AUTH_TOKEN": "",
    "VERIFY_SERVICE_SID": "",
}

# The defaults, with the send limits out of the way (no cooldown, caps nothing reaches) and the handlers'
# own logs and metrics quiet: what the bench measures under.
BENCH_SETTINGS = {
    **CONTRACT_DEFAULTS,
    "SEND_COOLDOWN_SECONDS": "0",
    "MAX_SENDS_PER_DESTINATION_PER_HOUR": "100000",
    "MAX_SENDS_PER_AGENT_PER_HOUR": "100000",
    "MAX_SENDS_PER_MINUTE": "100000",
    "MAX_SENDS_PER_HOUR": "100000",
    "MAX_SENDS_PER_DAY": "100000",
    "MAX_FAILED_CHECKS": "100",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
}

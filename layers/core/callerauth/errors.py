"""The contract's one error shape, and the one place where a refusal becomes HTTP."""

from __future__ import annotations

from typing import Any

from callerauth.refusals import Refusal

VERIFY_DOCS = "https://www.twilio.com/docs/verify/api/verification"

# Every `error.code` of the contract, and the HTTP status it answers with.
STATUS: dict[str, int] = {
    "missing_parameter": 400,
    "invalid_parameter": 400,
    "malformed_body": 400,
    "incorrect_code": 401,
    "agent_auth_required": 403,
    "agent_auth_invalid": 403,
    "not_verified": 403,
    "destination_blocked": 403,
    "destination_risky": 403,
    "source_not_allowed": 403,
    "cancel_not_allowed": 403,
    "task_not_held": 403,
    "task_not_found": 403,
    "not_task_caller": 403,
    "verification_not_found": 404,
    "customer_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "body_too_large": 413,
    "rate_limited": 429,
    "too_many_attempts": 429,
    "max_send_attempts": 429,
    "internal_error": 500,
    "upstream_error": 502,
    "upstream_unavailable": 503,
}

# (code, reason) -> the sentence the agent reads; (code, None) is the code's default.
# Placeholders: {seconds} and {minutes} (the wait), {limit} (the setting reached).
MESSAGES: dict[tuple[str, str | None], str] = {
    ("incorrect_code", None): "Incorrect token.",
    ("agent_auth_required", None): "Agent authentication required: send the agent's Flex token as 'Token'.",
    ("agent_auth_invalid", None): "The agent's Flex token is invalid or expired.",
    ("agent_auth_invalid", "role_not_allowed"): "This agent's Flex role is not allowed to verify callers.",
    ("not_verified", None): "This caller has not been verified by this agent, or it has expired.",
    ("customer_not_found", None): "No customer record for this number.",
    ("destination_blocked", None): "Verification to this country is not allowed.",
    ("destination_blocked", "landline"): "This number is a landline and cannot receive SMS; use channel 'call'.",
    ("destination_blocked", "fraud_guard"): "Twilio has blocked this number (fraud prevention).",
    ("destination_blocked", "geo_permissions"): "Verification to this country is not enabled.",
    ("destination_blocked", "premium_rate"): "This is a premium-rate number: codes are never sent to it.",
    ("destination_blocked", "shared_cost"): "This is a shared-cost number: codes are never sent to it.",
    ("destination_risky", None): "This number did not pass its risk check: authenticate the caller another way.",
    ("destination_risky", "sim_swap"): ("This number's SIM changed recently: authenticate the caller another way."),
    ("destination_risky", "call_forwarding"): (
        "Calls to this number are forwarded elsewhere, so a code by voice may reach someone else: "
        "send it by SMS, or authenticate the caller another way."
    ),
    ("destination_risky", "line_type"): (
        "This kind of number (virtual, toll-free, pager or voicemail) cannot prove who holds it: "
        "authenticate the caller another way."
    ),
    ("destination_risky", "landline"): (
        "This number is a landline: it cannot receive a code by SMS and voice codes are not enabled; "
        "authenticate the caller another way."
    ),
    ("destination_risky", "sms_pumping_risk"): (
        "Twilio rates this number as a likely source of SMS fraud: authenticate the caller another way."
    ),
    ("destination_risky", "risk_unknown"): (
        "This number's risk could not be checked just now: try again shortly, or authenticate the caller another way."
    ),
    ("source_not_allowed", None): "Requests from this network are not allowed.",
    ("cancel_not_allowed", None): "Only the agent who sent this code, or a supervisor, can cancel it.",
    ("task_not_held", None): "You are not handling this task now (it was transferred, completed or canceled).",
    ("task_not_held", "task_missing"): "This deployment checks the agent's task: send the task SID as 'taskSid'.",
    ("task_not_held", "no_worker"): "Your Flex token names no TaskRouter worker, so your task cannot be checked.",
    ("task_not_found", None): "No such task in this contact centre's TaskRouter workspace.",
    ("not_task_caller", None): "This is not the caller of your task: only the task's caller can be verified.",
    ("verification_not_found", None): (
        "No pending verification for this number (expired, approved or canceled); send a new code."
    ),
    ("invalid_parameter", None): "Twilio refused a parameter as invalid.",
    ("rate_limited", None): "Too many requests; try again in {seconds} s.",
    ("rate_limited", "concurrent_requests"): "Too many concurrent requests for this number; try again shortly.",
    ("rate_limited", "cooldown"): "A code was just sent; you can resend in {seconds} s.",
    ("rate_limited", "destination_cap"): (
        "Too many codes sent to this number ({limit} an hour); try again in {minutes}."
    ),
    ("rate_limited", "agent_cap"): "You have sent too many codes ({limit} an hour); try again in {minutes}.",
    ("rate_limited", "circuit_breaker"): (
        "Verification is paused: too many codes sent across the contact centre ({limit} a minute); "
        "try again in {seconds} s."
    ),
    ("rate_limited", "hourly_budget"): (
        "Verification is paused: the contact centre has sent its {limit} codes for this hour; try again in {minutes}."
    ),
    ("rate_limited", "daily_budget"): (
        "Verification is paused: the contact centre has sent its {limit} codes for today; try again in {minutes}."
    ),
    ("rate_limited", "source_refusals"): "Too many refused requests from this address; try again in {seconds} s.",
    ("too_many_attempts", None): "Max check attempts reached; send a new code later.",
    ("too_many_attempts", "checks_in_flight"): "This number is being checked already; try again in {seconds} s.",
    ("too_many_attempts", "locked"): "Too many incorrect codes for this number; try again in {minutes}.",
    ("max_send_attempts", None): "Max send attempts reached; try again later.",
    ("upstream_error", None): "The verification service answered unexpectedly; try again.",
    ("upstream_unavailable", None): "Service unavailable; try again in a moment.",
}


class ApiError(Exception):
    """A failure that answers the client: HTTP status, stable code, one human sentence. `reason` is finer
    than `code`, for logs and metrics only (e.g. which send limit)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        more_info: str | None = None,
        twilio_code: int | None = None,
        retry_after: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.more_info = status, code, message, more_info
        self.twilio_code, self.retry_after, self.reason = twilio_code, retry_after, reason

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.more_info:
            error["moreInfo"] = self.more_info
        if self.twilio_code is not None:
            error["twilioCode"] = self.twilio_code
        return {"success": False, "message": self.message, "error": error}


def api_error(refusal: Refusal) -> ApiError:
    """The contract's answer to a refusal."""
    template = MESSAGES.get((refusal.code, refusal.reason)) or MESSAGES[(refusal.code, None)]
    wait = refusal.retry_after or 0
    message = template.format(seconds=wait, minutes=_minutes(wait), limit=refusal.limit)
    more_info = VERIFY_DOCS if refusal.code == "incorrect_code" else _twilio_docs(refusal.twilio_code)
    return ApiError(
        STATUS[refusal.code],
        refusal.code,
        message,
        more_info=more_info,
        twilio_code=refusal.twilio_code,
        retry_after=refusal.retry_after,
        reason=refusal.reason,
    )


# -- what the edge refuses itself, before any decision: the request cannot be read ----------------


def missing_parameter(message: str = "Missing parameter.", more_info: str | None = None) -> ApiError:
    return ApiError(400, "missing_parameter", message, more_info=more_info)


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def malformed_body(message: str) -> ApiError:
    return ApiError(400, "malformed_body", message)


def body_too_large() -> ApiError:
    return ApiError(413, "body_too_large", "Request body is too large (limit 8 KiB).")


def not_found() -> ApiError:
    return ApiError(404, "not_found", "Not found.")


def method_not_allowed() -> ApiError:
    return ApiError(405, "method_not_allowed", "Method not allowed.")


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "Internal error.")


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _twilio_docs(twilio_code: int | None) -> str | None:
    return f"https://www.twilio.com/docs/errors/{twilio_code}" if twilio_code else None

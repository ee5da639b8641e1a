"""The contract's one error shape, and every failure the API can answer with."""

from __future__ import annotations

from typing import Any

VERIFY_DOCS = "https://www.twilio.com/docs/verify/api/verification"


class ApiError(Exception):
    """A failure that answers the client: HTTP status, stable code, one human sentence."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        more_info: str | None = None,
        twilio_code: int | None = None,
        retry_after: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason  # finer than `code`, for logs and metrics only (e.g. which send limit)
        self.status = status
        self.code = code
        self.message = message
        self.more_info = more_info
        self.twilio_code = twilio_code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.more_info:
            error["moreInfo"] = self.more_info
        if self.twilio_code is not None:
            error["twilioCode"] = self.twilio_code
        return {"success": False, "message": self.message, "error": error}


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


def incorrect_code() -> ApiError:
    return ApiError(401, "incorrect_code", "Incorrect token.", more_info=VERIFY_DOCS)


def agent_auth_required() -> ApiError:
    return ApiError(
        403, "agent_auth_required", "Agent authentication required: send the agent's Flex token as 'Token'."
    )


def agent_auth_invalid(message: str = "The agent's Flex token is invalid or expired.") -> ApiError:
    return ApiError(403, "agent_auth_invalid", message)


def not_verified() -> ApiError:
    return ApiError(403, "not_verified", "This caller has not been verified by this agent, or it has expired.")


def customer_not_found() -> ApiError:
    return ApiError(404, "customer_not_found", "No customer record for this number.")


def destination_blocked(message: str, twilio_code: int | None = None) -> ApiError:
    return ApiError(403, "destination_blocked", message, twilio_code=twilio_code, more_info=_twilio_docs(twilio_code))


def rate_limited(message: str, retry_after: int, reason: str | None = None) -> ApiError:
    return ApiError(429, "rate_limited", message, retry_after=max(1, retry_after), reason=reason)


def too_many_attempts(message: str, retry_after: int, twilio_code: int | None = None) -> ApiError:
    return ApiError(
        429,
        "too_many_attempts",
        message,
        retry_after=max(1, retry_after),
        twilio_code=twilio_code,
        more_info=_twilio_docs(twilio_code),
    )


def upstream_unavailable(retry_after: int = 5) -> ApiError:
    return ApiError(503, "upstream_unavailable", "Service unavailable; try again in a moment.", retry_after=retry_after)


def upstream_error(twilio_code: int | None = None) -> ApiError:
    return ApiError(
        502,
        "upstream_error",
        "The verification service answered unexpectedly; try again.",
        twilio_code=twilio_code,
        more_info=_twilio_docs(twilio_code),
    )


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "Internal error.")


def _twilio_docs(twilio_code: int | None) -> str | None:
    return f"https://www.twilio.com/docs/errors/{twilio_code}" if twilio_code else None

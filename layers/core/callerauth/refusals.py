"""Why the product will not do what was asked: domain facts, with no HTTP in them.

Adapters (store, Twilio, IAM) and the decisions in `actions` raise a `Refusal`; the edge
(`errors.api_error`) is the one place that says it in HTTP: status, message, headers.
"""

from __future__ import annotations

from typing import Literal

# The stable codes a refusal can carry; the contract's `error.code` and the audit trail use the same words.
Code = Literal[
    "incorrect_code",
    "agent_auth_required",
    "agent_auth_invalid",
    "not_verified",
    "destination_blocked",
    "source_not_allowed",
    "cancel_not_allowed",
    "task_not_held",
    "task_not_found",
    "not_task_caller",
    "verification_not_found",
    "customer_not_found",
    "invalid_parameter",
    "rate_limited",
    "too_many_attempts",
    "max_send_attempts",
    "upstream_error",
    "upstream_unavailable",
]


class Refusal(Exception):
    """A request refused, and why.

    `code` is the stable outcome; `reason` is finer (which limit, which Twilio refusal, which
    upstream), for messages, logs and metrics; `retry_after` is when a retry can pass, in seconds;
    `limit` is the setting that was reached, for the message.
    """

    def __init__(
        self,
        code: Code,
        reason: str | None = None,
        *,
        retry_after: int | None = None,
        twilio_code: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(code if reason is None else f"{code}: {reason}")
        self.code: Code = code
        self.reason = reason
        self.retry_after = None if retry_after is None else max(1, retry_after)
        self.twilio_code = twilio_code
        self.limit = limit


def unavailable(reason: str, retry_after: int = 5) -> Refusal:
    """An upstream (Twilio, IAM, DynamoDB) could not answer: try again shortly."""
    return Refusal("upstream_unavailable", reason, retry_after=retry_after)

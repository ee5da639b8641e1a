"""Twilio's request signatures (`X-Twilio-Signature`): only Twilio, with the account's auth token, can sign."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol


class Webhooks(Protocol):
    def signed(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        """True when `signature` is Twilio's for this URL (query included) and these form parameters."""
        ...


class TwilioWebhooks:
    """The `twilio` library's `RequestValidator`, with the auth token read when a request comes (the secret
    may be filled or rotated after the container started)."""

    def __init__(self, auth_token: Callable[[], str]) -> None:
        self._auth_token = auth_token

    def signed(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        if not signature:
            return False
        from twilio.request_validator import RequestValidator  # the IVR's function only

        return bool(RequestValidator(self._auth_token()).validate(url, dict(params), signature))

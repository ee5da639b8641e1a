"""Twilio Verify v2 through the official client, and Twilio's errors in the contract's terms."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from callerauth import errors

# Seconds until Twilio lets a destination try again after its own limits (a verification lives 10 minutes).
TWILIO_WINDOW_SECONDS = 600


@dataclass(frozen=True, slots=True)
class Credentials:
    account_sid: str
    auth_token: str
    verify_service_sid: str


@dataclass(frozen=True, slots=True)
class Sent:
    sid: str
    status: str
    channel: str


class Verify(Protocol):
    def start(self, to: str, channel: str, locale: str) -> Sent: ...
    def check(self, to: str, code: str) -> bool:
        """True when Twilio approves the code; False when it is wrong."""
        ...

    def cancel(self, to: str) -> None: ...


class TwilioVerify:
    """The `twilio` client, with a timeout well under the Lambda's, rebuilt when the credentials change."""

    def __init__(self, credentials: Callable[[], Credentials], base_url: str, timeout: float) -> None:
        self._credentials = credentials
        self._base_url = base_url
        self._timeout = timeout
        self._client: Any = None
        self._client_credentials: Credentials | None = None

    def start(self, to: str, channel: str, locale: str) -> Sent:
        verification = self._call(lambda service: service.verifications.create(to=to, channel=channel, locale=locale))
        return Sent(sid=verification.sid, status=verification.status, channel=verification.channel)

    def check(self, to: str, code: str) -> bool:
        result = self._call(lambda service: service.verification_checks.create(to=to, code=code))
        return result.status == "approved"

    def cancel(self, to: str) -> None:
        # The client puts the path segment in the URL as given: encode the "+" of a number ourselves.
        self._call(lambda service: service.verifications(quote(to, safe="")).update(status="canceled"))

    def _call(self, request: Callable[[Any], Any]) -> Any:
        from requests import RequestException
        from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

        try:
            result = request(self._service())
        except (TwilioRestException, TwilioServiceException) as exc:  # the legacy and the RFC 9457 error shapes
            raise error_for(exc.status, exc.code) from None
        except RequestException:
            raise errors.upstream_unavailable() from None
        except (TwilioException, ValueError, KeyError, TypeError, AttributeError):  # an answer we cannot read
            raise errors.upstream_error() from None
        if not isinstance(getattr(result, "status", None), str):
            raise errors.upstream_error()
        return result

    def _service(self) -> Any:
        credentials = self._credentials()
        if self._client is None or credentials != self._client_credentials:
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            # Twilio's client logs request parameters at INFO, and urllib3 logs URLs at DEBUG (a cancel's
            # URL holds the number): neither may reach the logs, whatever the log level.
            quiet = logging.getLogger("callerauth.twilio")
            quiet.setLevel(logging.WARNING)
            logging.getLogger("urllib3").setLevel(logging.INFO)
            http = TwilioHttpClient(timeout=self._timeout, logger=quiet)
            self._client = Client(credentials.account_sid, credentials.auth_token, http_client=http)
            self._client.verify.base_url = self._base_url
            self._client_credentials = credentials
        return self._client.verify.v2.services(credentials.verify_service_sid)


def error_for(status: int, twilio_code: int | None) -> errors.ApiError:
    """Twilio's answer (HTTP status, Twilio error code) as the contract's error."""
    if twilio_code is not None and twilio_code < 10000:
        twilio_code = None  # the client fills in the HTTP status when Twilio gave no code: not a Twilio code
    match twilio_code:
        case 60200:
            return errors.ApiError(
                400,
                "invalid_parameter",
                "Twilio refused a parameter as invalid.",
                twilio_code=60200,
                more_info="https://www.twilio.com/docs/errors/60200",
            )
        case 60202:
            return errors.too_many_attempts(
                "Max check attempts reached; send a new code later.", TWILIO_WINDOW_SECONDS, twilio_code=60202
            )
        case 60203:
            return errors.ApiError(
                429,
                "max_send_attempts",
                "Max send attempts reached; try again later.",
                twilio_code=60203,
                retry_after=TWILIO_WINDOW_SECONDS,
                more_info="https://www.twilio.com/docs/errors/60203",
            )
        case 60205:
            return errors.destination_blocked(
                "This number is a landline and cannot receive SMS; use channel 'call'.", 60205
            )
        case 60410:
            return errors.destination_blocked("Twilio has blocked this number (fraud prevention).", 60410)
        case 60605:
            return errors.destination_blocked("Verification to this country is not enabled.", 60605)
        case 60212:
            return errors.rate_limited("Too many concurrent requests for this number; try again shortly.", 5)
        case 20404:
            return errors.ApiError(
                404,
                "verification_not_found",
                "No pending verification for this number (expired, approved or canceled); send a new code.",
                twilio_code=20404,
                more_info="https://www.twilio.com/docs/errors/20404",
            )
        case 20429:
            return errors.upstream_unavailable(retry_after=1)
    if status >= 500:
        return errors.upstream_unavailable()
    return errors.upstream_error(twilio_code)

"""The `twilio` client as every Twilio adapter uses it: one timeout, quiet logs, and failures as refusals."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from callerauth.refusals import Refusal, unavailable

T = TypeVar("T")


class Clients:
    """One client for the credentials of the moment: built on first use, again when a rotated secret changes them."""

    def __init__(self, timeout: float, base_urls: Mapping[str, str]) -> None:
        self._timeout, self._base_urls = timeout, base_urls
        self._client: Any = None
        self._for: tuple[str, str] | None = None

    def get(self, account_sid: str, auth_token: str) -> Any:
        if self._client is None or self._for != (account_sid, auth_token):
            self._client = client(account_sid, auth_token, self._timeout, self._base_urls)
            self._for = (account_sid, auth_token)
        return self._client


def client(account_sid: str, auth_token: str, timeout: float, base_urls: Mapping[str, str]) -> Any:
    """A client whose requests time out after `timeout` seconds; `base_urls` moves a domain (e.g. "verify")
    elsewhere (the sandbox, Prism)."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    # Twilio's client logs request parameters at INFO, and urllib3 logs URLs at DEBUG (a URL may hold a
    # number): neither may reach the logs, whatever the log level.
    quiet = logging.getLogger("callerauth.twilio")
    quiet.setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.INFO)
    rest = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout, logger=quiet))
    for domain, url in base_urls.items():
        getattr(rest, domain).base_url = url
    return rest


def call(request: Callable[[], T], error_for: Callable[[int, int | None], Refusal]) -> T:
    """Make one request; Twilio's refusals through `error_for`, and transport failures as the domain says them."""
    from requests import RequestException
    from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

    try:
        return request()
    except (TwilioRestException, TwilioServiceException) as exc:  # the legacy and the RFC 9457 error shapes
        raise error_for(exc.status, exc.code) from None
    except RequestException as exc:
        # Refused before anything was sent: Twilio did nothing. Any other failure (a read timeout, a
        # dropped connection) leaves it unknown whether Twilio acted.
        raise unavailable("twilio_unreachable" if _never_sent(exc) else "twilio_no_answer") from None
    except (TwilioException, ValueError, KeyError, TypeError, AttributeError):  # an answer we cannot read
        raise Refusal("upstream_error", "twilio_unreadable") from None


def _never_sent(exc: Exception) -> bool:
    from requests import ConnectTimeout
    from urllib3.exceptions import NewConnectionError

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, ConnectTimeout) or isinstance(reason, NewConnectionError)

"""The `twilio` client as every Twilio adapter uses it: one timeout, quiet logs, and failures as refusals."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from callerauth.refusals import Refusal, unavailable

T = TypeVar("T")

# The layer leaves charset-normalizer out (layers/core/tools/layer.py), so requests warns at import that it
# cannot guess encodings. It never has to: Twilio answers JSON, which requests decodes as UTF-8.
warnings.filterwarnings("ignore", "Unable to find acceptable character detection", module="requests")


class Api:
    """One Twilio API (a base URL and a version: Verify v2, Lookup v2, TaskRouter v1) through the `twilio`
    client's own request path, `twilio.base.version.Version`: what every generated resource calls (auth,
    user agent, timeout, Twilio's errors as TwilioRestException). Not through the generated resources: a
    product's tree of them is imported whole (Verify's is 40 modules, ~13 ms of every cold start) for the
    one or two calls an adapter makes. The client is built on first use, again when a rotated secret
    changes the credentials; every failure comes out as the adapter's `error_for` says (see `call`)."""

    def __init__(
        self, base_url: str, version: str, timeout: float, error_for: Callable[[int, int | None], Refusal]
    ) -> None:
        self._base_url, self._version, self._timeout, self._error_for = base_url, version, timeout, error_for
        self._api: Any = None
        self._for: tuple[str, str] | None = None

    def post(self, auth: tuple[str, str], uri: str, data: dict[str, str]) -> Any:
        """A form POST (what the generated resources' `create` and `update` send); its JSON answer."""
        return call(lambda: self._client(auth).create(method="POST", uri=uri, data=data, headers=FORM), self._error_for)

    def get(self, auth: tuple[str, str], uri: str, params: dict[str, str] | None = None) -> Any:
        """A GET (what the generated resources' `fetch` and `list` send); its JSON answer."""
        return call(lambda: self._client(auth).fetch(method="GET", uri=uri, params=params), self._error_for)

    def _client(self, auth: tuple[str, str]) -> Any:
        """`auth`: the account SID and auth token of the moment (the adapter reads its secret once a call)."""
        if self._api is None or self._for != auth:
            from twilio.base.domain import Domain
            from twilio.base.version import Version

            self._api = Version(Domain(client(*auth, self._timeout), self._base_url), self._version)
            self._for = auth
        return self._api


# What the generated resources send with a form (requests would say the same; they say it explicitly).
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}


def client(account_sid: str, auth_token: str, timeout: float) -> Any:
    """A client whose requests time out after `timeout` seconds."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    # Twilio's client logs request parameters at INFO, and urllib3 logs URLs at DEBUG (a URL may hold a
    # number): neither may reach the logs, whatever the log level.
    quiet = logging.getLogger("callerauth.twilio")
    quiet.setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.INFO)
    return Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout, logger=quiet))


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

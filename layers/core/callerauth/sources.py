"""Where a request comes from: the source allow-list, and a budget of refused unauthenticated requests.

API Gateway's resource policy enforces `AllowedSourceCidrs` in the cloud; the same check here makes
the dev stack (and any other front door) enforce it too.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from callerauth.config import Settings
from callerauth.privacy import Hasher
from callerauth.refusals import Refusal

BLOCKED_ENTRIES = 4096


class SourceGate:
    """Refuses sources outside the allow-list, and (from memory) sources over their refusal budget."""

    def __init__(self, settings: Settings, hasher: Hasher, clock: Callable[[], float] = time.time) -> None:
        self._networks = settings.allowed_source_cidrs
        self._hasher = hasher
        self._clock = clock
        self._blocked: dict[str, int] = {}  # source IP -> until when this container refuses it unheard

    def admit(self, source_ip: str) -> None:
        until = self._blocked.get(source_ip)
        now = int(self._clock())
        if until is not None and until > now:
            raise Refusal("rate_limited", "source_refusals", retry_after=until - now)
        if self._networks and not self._allowed(source_ip):
            raise Refusal("source_not_allowed")

    def block(self, source_ip: str, until: int) -> None:
        if len(self._blocked) >= BLOCKED_ENTRIES:
            self._blocked.clear()
        self._blocked[source_ip] = until

    def key(self, source_ip: str) -> str:
        """The source's key at rest (an IP address is personal data too)."""
        return self._hasher.key(f"source:{source_ip}")

    def _allowed(self, source_ip: str) -> bool:
        try:
            address = ipaddress.ip_address(source_ip)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

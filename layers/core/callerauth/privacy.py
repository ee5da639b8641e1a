"""Destinations are keyed by HMAC at rest and masked everywhere a person may read them."""

from __future__ import annotations

import hashlib
import hmac


def mask(destination: str) -> str:
    """`+12025550100` -> `+1******0100`; `jane@example.com` -> `j***@example.com`."""
    if "@" in destination:
        local, _, domain = destination.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(destination) <= 6:
        return "*" * len(destination)
    return destination[:2] + "*" * (len(destination) - 6) + destination[-4:]


class Hasher:
    """HMAC-SHA-256 with the deployment's secret: a stable key that reveals nothing without the secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the hashing secret must be at least 16 bytes")
        self._secret = secret

    def key(self, destination: str) -> str:
        return hmac.new(self._secret, destination.encode(), hashlib.sha256).hexdigest()

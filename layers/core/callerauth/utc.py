"""Times as the contract and the audit trail write them: ISO 8601, UTC, with a Z."""

from datetime import UTC, datetime


def iso(epoch: float, *, millis: bool = False) -> str:
    """`1764000000` -> `2025-11-24T16:00:00Z` (or `...00.000Z` with millis, to order a trail within a second)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds" if millis else "seconds").replace("+00:00", "Z")

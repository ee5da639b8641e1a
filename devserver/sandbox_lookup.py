"""The Twilio sandbox's Lookup v2: ``GET /v2/PhoneNumbers/{PhoneNumber}?Fields=...``, with documented risk numbers.

Answers in Twilio's shape (its published description, twilio_lookups_v2.json): every package asked for is an
object with ``error_code: null``, every other one ``null``. Numbers not listed in RISK_NUMBERS are ordinary
mobiles. Nothing here is deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

PACKAGES = ("line_type_intelligence", "sim_swap", "call_forwarding", "sms_pumping_risk")
OTHER_PACKAGES = (
    "caller_name",
    "line_status",
    "identity_match",
    "reassigned_number",
    "phone_number_quality_score",
    "pre_fill",
)

# The sandbox's risk numbers, as `make dev` prints them: number -> (what it is, how it differs from a mobile).
RISK_NUMBERS: dict[str, tuple[str, dict[str, Any]]] = {
    "+12025550180": ("an ordinary mobile", {}),
    "+12025550181": ("a landline", {"type": "landline"}),
    "+12025550182": ("a non-fixed VoIP number", {"type": "nonFixedVoip"}),
    "+12025550183": ("SIM swapped 2 days ago", {"swapped_days_ago": 2}),
    "+12025550184": ("call forwarding on", {"forwarding": True}),
    "+12025550185": ("high SMS-pumping risk", {"risk_score": 95}),
}
SWAPPED_PERIOD = "PT168H"  # Twilio reports "swapped within the last 7 days" for this account
DAY = 86400


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LookupSandbox:
    """What Lookup v2 answers for a number, by the sandbox's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def answer(self, number: str, fields: str, base_url: str) -> dict[str, Any] | None:
        """Lookup's answer, or None for a number that is not E.164 (Twilio answers 404 then)."""
        if not number.startswith("+") or not number[1:].isdigit():
            return None
        asked = {field.strip() for field in fields.split(",") if field.strip()}
        risk = RISK_NUMBERS.get(number, ("", {}))[1]
        packages = {
            "line_type_intelligence": self._line_type(risk),
            "sim_swap": self._sim_swap(risk),
            "call_forwarding": {"call_forwarding_status": bool(risk.get("forwarding")), "error_code": None},
            "sms_pumping_risk": self._pumping(risk),
        }
        return {
            "calling_country_code": "1" if number.startswith("+1") else None,
            "country_code": "US" if number.startswith("+1") else None,
            "phone_number": number,
            "national_format": number,
            "valid": True,
            "validation_errors": [],
            **{name: (packages[name] if name in asked else None) for name in PACKAGES},
            **dict.fromkeys(OTHER_PACKAGES),
            "url": f"{base_url}v2/PhoneNumbers/{number}",
        }

    @staticmethod
    def _line_type(risk: dict[str, Any]) -> dict[str, Any]:
        return {
            "carrier_name": "Sandbox Wireless",
            "mobile_country_code": "310",
            "mobile_network_code": "150",
            "type": risk.get("type", "mobile"),
            "error_code": None,
        }

    def _sim_swap(self, risk: dict[str, Any]) -> dict[str, Any]:
        days = risk.get("swapped_days_ago")
        last = {
            "last_sim_swap_date": iso(self._clock() - days * DAY) if days is not None else None,
            "swapped_period": SWAPPED_PERIOD,
            "swapped_in_period": days is not None and days < 7,
        }
        return {
            "last_sim_swap": last,
            "carrier_name": "Sandbox Wireless",
            "mobile_country_code": "310",
            "mobile_network_code": "150",
            "error_code": None,
        }

    @staticmethod
    def _pumping(risk: dict[str, Any]) -> dict[str, Any]:
        score = risk.get("risk_score", 4)
        return {
            "carrier_risk_category": "high" if score >= 80 else "low",
            "number_blocked": False,
            "number_blocked_date": None,
            "number_blocked_last_3_months": None,
            "sms_pumping_risk_score": score,
            "error_code": None,
        }

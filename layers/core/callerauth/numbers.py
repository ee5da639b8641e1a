"""Phone numbers as Google's libphonenumber reads them: real or not, which region, what kind, one spelling.

`phonenumberslite` (the library without its geocoding and carrier data) costs a few tens of
milliseconds to import, so it is imported on first use, by the actions that send or check a code.
"""

from __future__ import annotations

from dataclasses import dataclass

# libphonenumber's PhoneNumberType values that must never receive a code: they bill the sender.
COSTLY_KINDS = {4: "premium_rate", 6: "shared_cost"}


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    e164: str  # the canonical spelling: the key of every limit, and what Twilio is sent
    region: str | None  # ISO 3166 alpha-2, e.g. "US"; None for non-geographic numbers
    costly: str | None  # "premium_rate" or "shared_cost" when the number bills the sender


def parse(text: str) -> PhoneNumber | None:
    """The number `text` spells, or None when it is not a valid, allocated number."""
    import phonenumbers

    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return PhoneNumber(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        region=phonenumbers.region_code_for_number(number),
        costly=COSTLY_KINDS.get(phonenumbers.number_type(number)),
    )

"""Phone numbers as Google's libphonenumber reads them: real or not, which region, what kind, one spelling.

`phonenumberslite` (the library without its geocoding and carrier data) is imported on first use, by
the actions that name a number, and only its core: `phonenumbers.phonenumberutil` and the metadata it
loads. The package's `__init__` also imports the as-you-type formatter, the matcher (with every
alternate-format table) and short-number info, which we never use: about half the library's import
cost, ~10 ms of every cold start (docs/performance.md). `parse` calls the very functions
`phonenumbers.parse`, `is_valid_number`, `format_number`, `region_code_for_number` and `number_type`
are (the package re-exports them), so its answers are the library's.
"""

from types import ModuleType
from typing import NamedTuple

from callerauth import deferred

# libphonenumber's PhoneNumberType values that must never receive a code: they bill the sender.
COSTLY_KINDS = {4: "premium_rate", 6: "shared_cost"}
PACKAGE = "phonenumbers"
_lib: ModuleType | None = None


class PhoneNumber(NamedTuple):
    e164: str  # the canonical spelling: the key of every limit, and what Twilio is sent
    region: str | None  # ISO 3166 alpha-2, e.g. "US"; None for non-geographic numbers
    costly: str | None  # "premium_rate" or "shared_cost" when the number bills the sender


def parse(text: str) -> PhoneNumber | None:
    """The number `text` spells, or None when it is not a valid, allocated number."""
    lib = _core()
    try:
        number = lib.parse(text, None)
    except lib.NumberParseException:
        return None
    if not lib.is_valid_number(number):
        return None
    return PhoneNumber(
        e164=lib.format_number(number, lib.PhoneNumberFormat.E164),
        region=lib.region_code_for_number(number),
        costly=COSTLY_KINDS.get(lib.number_type(number)),
    )


def _core() -> ModuleType:
    """`phonenumbers.phonenumberutil`, imported without running the package's `__init__` first (a later
    `import phonenumbers` still gets the whole library: callerauth.deferred)."""
    global _lib
    if _lib is None:
        _lib = deferred.submodule(PACKAGE, "phonenumberutil")
    return _lib
